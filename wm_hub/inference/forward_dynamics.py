"""``pipeline("forward-dynamics")``: observation + action -> next observation, with best-of-N IDM verification.

Best-of-N (paper section 3.3): the FDM samples N candidates of each prompt in ONE batched ``generate`` call (the
candidates share the prompt: ``num_return_sequences``); the verifier, an inverse-dynamics model, scores every
(source, candidate, action) in ONE batched forward with ``log p(action | source, candidate)`` summed over the action
tokens and the closing ``eos`` (the IDM's training labels, in its own training format); the highest score wins. As
every candidate of a prompt is scored on the same action tokens, the sum and the per-token mean rank them alike.
Equal candidates of one prompt (a confident model samples the same picture several times) are scored, and for a
verifier with its own VQ decoded and re-encoded, once; each gets that score.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from wm_hub.inference.generation import check_sampling, generate_images
from wm_hub.inference.inverse_dynamics import InverseDynamicsPipeline
from wm_hub.inference.pipelines import (
    BackbonePipeline,
    check_action,
    check_seed,
    encode_observations,
    load_observation,
    load_pipeline,
)
from wm_hub.inference.registration import register_pipelines
from wm_hub.inference.tasks import INVERSE_DYNAMICS_TASK
from wm_hub.models.base import Backbone

ImageInput = Image.Image | str | os.PathLike


@dataclass
class _Observation:
    """A pipeline input: the picture (what the verifier reads) and, once known, the FDM's LM ids of it.

    A rollout feeds each prediction to the next step with the ids it was sampled as, so the FDM continues from
    exactly its own tokens instead of a decode/re-encode round trip.
    """

    image: Image.Image
    ids: torch.Tensor | None = None


class ForwardDynamicsPipeline(BackbonePipeline):
    """Forward dynamics: ``pipe(image, action) -> {"image", "score", "candidates", "scores"}``.

    Built by ``transformers.pipeline("forward-dynamics", model=DIR_OR_HUB_ID)`` after ``import wm_hub`` (or directly
    from a :class:`~wm_hub.models.base.Backbone`). Prompts use the FDM's own training format (the instruction saved
    in the checkpoint); only image codes are sampled.

    Call arguments (also accepted by ``pipeline(...)`` as defaults):
        num_candidates: Samples per prompt (default 1). With ``verifier``, the best-scored one is returned.
        verifier: An inverse-dynamics pipeline, a :class:`~wm_hub.models.base.Backbone`, or the folder / Hub id of
            an IDM (loaded once with ``pipeline("inverse-dynamics")`` on this pipeline's device and cached).
        temperature: Sampling temperature (default 1.0, the paper's; lower values tend to copy the source).
        top_k: Keep the k most likely image tokens (default: all).
        top_p: Nucleus sampling over image tokens (default: off).
        seed: Seeds torch's RNG; step ``i`` of a rollout uses ``seed + i``.
        return_candidates: Fill ``candidates`` (all N images, in sampling order) and ``scores`` when N > 1.
        return_image_ids: Add ``image_ids``, the LM image ids of the returned image.
        cache_implementation: ``"static"`` for a static KV cache (faster decoding on GPU), default dynamic.

    Result keys: ``image`` (PIL), ``score`` (the verifier's log-likelihood of the returned image, ``None`` without
    verifier), ``candidates`` and ``scores`` (empty unless ``return_candidates`` and N > 1; ``scores`` stays empty
    without verifier).
    """

    trained_task = "fdm"

    def __init__(self, model: Any, **kwargs: Any):
        super().__init__(model, **kwargs)
        self._verifiers: dict[str, InverseDynamicsPipeline] = {}

    def __call__(
        self,
        image: ImageInput | Sequence[ImageInput],
        action: str | Sequence[str] | None = None,
        *,
        actions: Sequence[str | Sequence[str]] | None = None,
        **kwargs: Any,
    ) -> dict[str, Any] | list[dict[str, Any]] | list[list[dict[str, Any]]]:
        """Predict the next observation(s).

        Args:
            image: The current observation (PIL image, path or URL), or a list of them: a list runs as one batch.
            action: The action text; with a list of images, one shared action or one per image.
            actions: Instead of ``action``, a rollout: step ``i`` applies ``actions[i]`` (one text, or one per
                image) to the prediction of step ``i - 1`` (paper Figure 5).
            **kwargs: The call arguments of the class docstring.

        Returns:
            One result dict; a list per image for a list of images; a list per step for a rollout (a list of
            per-step lists for a rollout of a list of images).
        """
        if (action is None) == (actions is None):
            raise ValueError("give either action= (one step) or actions= (a rollout), not both or neither")
        batched = isinstance(image, (list, tuple))
        images = list(image) if batched else [image]
        if not images:
            return []
        rollout = actions is not None
        if rollout and isinstance(actions, str):  # list("push") would be a rollout of "p", "u", "s", "h"
            raise TypeError("actions= is a rollout, a list of actions (one per step); for one step give action=")
        steps = list(actions) if rollout else [action]
        if not steps:
            raise ValueError("actions= is empty: give at least one action")
        step_actions = [
            _per_image(step, len(images), f"actions[{i}]" if rollout else "action") for i, step in enumerate(steps)
        ]
        seed = kwargs.pop("seed", self._forward_params.get("seed"))
        if seed is not None:
            check_seed(seed)
        return_ids = kwargs.pop("return_image_ids", self._postprocess_params.get("return_image_ids", False))
        current: list[ImageInput | _Observation] = images
        history: list[list[dict[str, Any]]] = []
        for step, texts in enumerate(step_actions):
            step_seed = None if seed is None else seed + step
            results = super().__call__(
                {"images": current, "actions": texts}, seed=step_seed, return_image_ids=True, **kwargs
            )
            current = [_Observation(result["image"], result["image_ids"]) for result in results]
            if not return_ids:
                for result in results:
                    del result["image_ids"]
            history.append(results)
        if not rollout:
            return history[0] if batched else history[0][0]
        per_image = [[history[step][row] for step in range(len(steps))] for row in range(len(images))]
        return per_image if batched else per_image[0]

    def _sanitize_parameters(
        self,
        num_candidates: int | None = None,
        verifier: Any = None,
        temperature: float | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        return_candidates: bool | None = None,
        return_image_ids: bool | None = None,
        cache_implementation: str | None = None,
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        forward: dict[str, Any] = {}
        if num_candidates is not None:
            if isinstance(num_candidates, bool) or not isinstance(num_candidates, int) or num_candidates < 1:
                raise ValueError(f"num_candidates must be an integer >= 1, got {num_candidates!r}")
            forward["num_candidates"] = num_candidates
        if verifier is not None:
            forward["verifier"] = self._resolve_verifier(verifier)
        check_sampling(temperature, top_k, top_p)
        if temperature is not None:
            forward["temperature"] = temperature
        if top_k is not None:
            forward["top_k"] = top_k
        if top_p is not None:
            forward["top_p"] = top_p
        if seed is not None:
            forward["seed"] = check_seed(seed)
        if cache_implementation is not None:
            forward["cache_implementation"] = cache_implementation
        postprocess: dict[str, Any] = {}
        if return_candidates is not None:
            forward["keep_candidates"] = return_candidates
            postprocess["return_candidates"] = return_candidates
        if return_image_ids is not None:
            postprocess["return_image_ids"] = return_image_ids
        return {}, forward, postprocess

    def _resolve_verifier(self, verifier: Any) -> InverseDynamicsPipeline:
        if isinstance(verifier, InverseDynamicsPipeline):
            return verifier
        if isinstance(verifier, Backbone):
            return InverseDynamicsPipeline(model=verifier, device=self.device)
        if isinstance(verifier, (str, os.PathLike)):
            key = os.fspath(verifier)
            if key not in self._verifiers:
                # a checkpoint that does not load is a ValueError naming the verifier, not transformers' OSError
                self._verifiers[key] = load_pipeline(INVERSE_DYNAMICS_TASK, "verifier", key, device=str(self.device))
            return self._verifiers[key]
        raise TypeError(
            f"verifier must be an inverse-dynamics pipeline, a Backbone or an IDM folder / Hub id, got "
            f"{type(verifier).__name__}"
        )

    def preprocess(self, inputs: dict[str, list[Any]]) -> dict[str, Any]:
        """Load the observations, encode the new ones in one VQ call and build the FDM prompts."""
        observations = [
            item if isinstance(item, _Observation) else _Observation(load_observation(item, f"image {index}"))
            for index, item in enumerate(inputs["images"])
        ]
        missing = [obs for obs in observations if obs.ids is None]
        for obs, ids in zip(missing, encode_observations(self.backbone, [obs.image for obs in missing])):
            obs.ids = ids
        prompts = [
            self.backbone.build_fdm_sequence(obs.ids, text).input_ids
            for obs, text in zip(observations, inputs["actions"])
        ]
        return {
            "prompts": prompts,
            "sources": [obs.image for obs in observations],
            "source_ids": [obs.ids for obs in observations],
            "actions": inputs["actions"],
        }

    def _forward(
        self,
        model_inputs: dict[str, Any],
        num_candidates: int = 1,
        verifier: InverseDynamicsPipeline | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        cache_implementation: str | None = None,
        keep_candidates: bool = False,
    ) -> dict[str, Any]:
        if num_candidates > 1 and verifier is None and not keep_candidates:
            raise ValueError(
                f"num_candidates={num_candidates} without verifier= has nothing to choose with: pass an "
                "inverse-dynamics verifier (best-of-N), or return_candidates=True to get every sample"
            )
        generated = generate_images(
            self.backbone,
            model_inputs["prompts"],
            num_candidates=num_candidates,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            seed=seed,
            cache_implementation=cache_implementation,
            decode=False,
        )
        ids = generated.image_ids  # (batch, N, image_seq_len)
        batch = ids.shape[0]
        flat_ids = ids.reshape(batch * num_candidates, -1)
        # Equal candidates of one prompt (common once a model is sure) are decoded and scored once
        if verifier is not None or (keep_candidates and num_candidates > 1):
            kept, where = _distinct_per_prompt(flat_ids, num_candidates)
        candidates = None
        if keep_candidates and num_candidates > 1:
            distinct_pictures = self.backbone.decode_images(flat_ids[kept])
            candidates, seen = [], set()
            for group in where:  # a repeated candidate gets its own copy of the picture
                picture = distinct_pictures[group]
                candidates.append(picture.copy() if group in seen else picture)
                seen.add(group)
        scores = None
        decoded: dict[int, Image.Image] = {}  # flat candidate index -> its picture, where decoded for the verifier
        if verifier is not None:
            # With the FDM's own image tokenizer the verifier reads the sampled ids themselves, and the source's ids
            # the FDM read: no decode and re-encode (a lossy VQGAN need not map a decoded picture back to the ids
            # the FDM sampled)
            if verifier.backbone.image_fingerprint() == self.backbone.image_fingerprint():
                observed, sources = [flat_ids[index] for index in kept], model_inputs["source_ids"]
            else:
                if candidates is None:
                    decoded = dict(zip(kept, self.backbone.decode_images(flat_ids[kept])))
                pictures = decoded if candidates is None else candidates
                observed = [pictures[index] for index in kept]
                sources = model_inputs["sources"]
            prompt_of = [index // num_candidates for index in kept]
            distinct = verifier.score(  # a source shared by its candidates is encoded once
                [sources[row] for row in prompt_of], observed, [model_inputs["actions"][row] for row in prompt_of]
            )
            scores = [distinct[position] for position in where]
        winners = []
        for row in range(batch):
            if scores is None:
                winners.append(0)
                continue
            row_scores = scores[row * num_candidates : (row + 1) * num_candidates]
            winners.append(max(range(num_candidates), key=row_scores.__getitem__))  # first of equal maxima
        chosen = [row * num_candidates + winner for row, winner in enumerate(winners)]
        if candidates is None:
            missing = [index for index in chosen if index not in decoded]
            if missing:
                decoded.update(zip(missing, self.backbone.decode_images(flat_ids[missing])))
            images = [decoded[index] for index in chosen]
        else:
            images = [candidates[index] for index in chosen]
        return {
            "image_ids": ids,
            "winners": winners,
            "images": images,
            "candidates": candidates,
            "scores": scores,
            "num_candidates": num_candidates,
        }

    def postprocess(
        self, model_outputs: dict[str, Any], return_candidates: bool = False, return_image_ids: bool = False
    ) -> list[dict[str, Any]]:
        count = model_outputs["num_candidates"]
        scores, candidates = model_outputs["scores"], model_outputs["candidates"]
        results = []
        for row, winner in enumerate(model_outputs["winners"]):
            span = slice(row * count, (row + 1) * count)
            result: dict[str, Any] = {
                "image": model_outputs["images"][row],
                "score": None if scores is None else scores[row * count + winner],
                "candidates": list(candidates[span]) if return_candidates and count > 1 else [],
                "scores": list(scores[span]) if return_candidates and count > 1 and scores is not None else [],
            }
            if return_image_ids:
                result["image_ids"] = model_outputs["image_ids"][row, winner].clone()
            results.append(result)
        return results


def _distinct_per_prompt(flat_ids: torch.Tensor, num_candidates: int) -> tuple[list[int], list[int]]:
    """The first of each group of equal candidates of a prompt, and where each candidate's group is in that list.

    Args:
        flat_ids: ``(prompts * num_candidates, image_seq_len)`` sampled image ids, the candidates of a prompt together.
        num_candidates: Candidates per prompt.

    Returns:
        ``kept`` (flat indices, in order) and ``where`` (for every flat index, the position in ``kept`` of its group).
    """
    kept: list[int] = []
    where: list[int] = []
    groups: dict[tuple[int, tuple[int, ...]], int] = {}
    for index, row in enumerate(flat_ids.tolist()):
        key = (index // num_candidates, tuple(row))
        if key not in groups:
            groups[key] = len(kept)
            kept.append(index)
        where.append(groups[key])
    return kept, where


def _per_image(action: Any, count: int, what: str) -> list[str]:
    """One action text per image: a shared string, or a list with one string per image."""
    texts = (
        [action] * count if isinstance(action, str) else list(action) if isinstance(action, (list, tuple)) else None
    )
    if texts is None:
        raise TypeError(f"{what}: expected a string or a list of strings, got {type(action).__name__}")
    if len(texts) != count:
        raise ValueError(f"{what}: {len(texts)} actions for {count} images")
    for index, text in enumerate(texts):
        check_action(text, f"{what}[{index}]")
    return texts


register_pipelines()  # the task is usable as soon as its class exists (see wm_hub.inference.registration)
