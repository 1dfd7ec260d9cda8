"""``pipeline("inverse-dynamics")``: two observations -> the action between them, and the verifier's score."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image

from wm_hub.inference.actions import generate_idm_outputs
from wm_hub.inference.generation import check_sampling
from wm_hub.inference.pipelines import (
    BackbonePipeline,
    check_action,
    check_seed,
    encode_observations,
    load_observation,
)
from wm_hub.inference.registration import register_pipelines
from wm_hub.inference.scoring import SequenceScore, action_log_likelihoods, output_log_likelihoods

Observation = Image.Image | str | os.PathLike | torch.Tensor
REDUCTIONS = ("sum", "mean")


class InverseDynamicsPipeline(BackbonePipeline):
    """Inverse dynamics: ``pipe(source, target) -> {"action": str, "score": float}``.

    Built by ``transformers.pipeline("inverse-dynamics", model=DIR_OR_HUB_ID)`` after ``import wm_hub`` (or directly
    from a :class:`~wm_hub.models.base.Backbone`). The action is generated greedily by default, in the IDM's own
    training format (the instruction saved in the checkpoint), with image tokens suppressed; ``score`` is its
    log-likelihood under the same model (see :meth:`score`). Lists of sources and targets run as ONE batched
    ``generate`` call and ONE batched scoring forward. An IDM that reasons first (``idm_rationale``) also returns
    ``"rationale"``, what it wrote before the action, and its score covers both.

    Observations are PIL images, image paths, URLs, or LongTensors of the model's LM image ids.

    Call arguments:
        max_new_tokens: Longest action, in tokens (default 48).
        do_sample: Sample the action instead of greedy decoding (default ``False``).
        temperature: Sampling temperature (with ``do_sample``).
        seed: Seeds torch's RNG (with ``do_sample``).
        reduction: ``"sum"`` (default) or ``"mean"``: the score is the total or per-token log-probability.
    """

    trained_task = "idm"

    def __call__(
        self, source: Observation | Sequence[Observation], target: Observation | Sequence[Observation], **kwargs: Any
    ) -> dict[str, Any] | list[dict[str, Any]]:
        """Predict the action that turns ``source`` into ``target``.

        Args:
            source: The first observation, or a list of them.
            target: The next observation, or a list of the same length.
            **kwargs: The call arguments of the class docstring.

        Returns:
            ``{"action": str, "score": float}`` (plus ``"rationale"`` from an IDM that reasons first), or a list of
            them for lists of observations.
        """
        batched = isinstance(source, (list, tuple))
        if batched != isinstance(target, (list, tuple)):
            raise ValueError("give source and target both as single observations or both as lists")
        sources, targets = (list(source), list(target)) if batched else ([source], [target])
        if len(sources) != len(targets):
            raise ValueError(f"{len(sources)} sources but {len(targets)} targets")
        if not sources:
            return []
        outputs = super().__call__({"sources": sources, "targets": targets}, **kwargs)
        return outputs if batched else outputs[0]

    def _sanitize_parameters(
        self,
        max_new_tokens: int | None = None,
        do_sample: bool | None = None,
        temperature: float | None = None,
        seed: int | None = None,
        reduction: str | None = None,
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        forward: dict[str, Any] = {}
        if max_new_tokens is not None:
            if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
                raise ValueError(f"max_new_tokens must be an integer >= 1, got {max_new_tokens!r}")
            forward["max_new_tokens"] = max_new_tokens
        if do_sample is not None:
            if not isinstance(do_sample, bool):
                raise TypeError(f"do_sample must be True or False, got {do_sample!r}")
            forward["do_sample"] = do_sample
        if temperature is not None:
            check_sampling(temperature, None, None)
            forward["temperature"] = temperature
        if seed is not None:
            forward["seed"] = check_seed(seed)
        postprocess = {}
        if reduction is not None:
            postprocess["reduction"] = _check_reduction(reduction)
        return {}, forward, postprocess

    def preprocess(self, inputs: dict[str, list[Observation]]) -> dict[str, list[torch.Tensor]]:
        """Load the observations and encode all their images in one VQ call."""
        count = len(inputs["sources"])
        observations = [_observation(item, f"source {i}") for i, item in enumerate(inputs["sources"])]
        observations += [_observation(item, f"target {i}") for i, item in enumerate(inputs["targets"])]
        ids = encode_observations(self.backbone, observations)
        return {"sources": ids[:count], "targets": ids[count:]}

    def _forward(
        self,
        model_inputs: dict[str, list[torch.Tensor]],
        max_new_tokens: int = 48,
        do_sample: bool = False,
        temperature: float = 1.0,
        seed: int | None = None,
    ) -> dict[str, Any]:
        sources, targets = model_inputs["sources"], model_inputs["targets"]
        outputs = generate_idm_outputs(
            self.backbone,
            list(zip(sources, targets)),
            max_new_tokens=max_new_tokens,
            do_sample=do_sample,
            temperature=temperature,
            seed=seed,
        )
        scores = output_log_likelihoods(self.backbone, sources, targets, outputs, batch_size=None)
        return {"actions": [o.action for o in outputs], "rationales": [o.rationale for o in outputs], "scores": scores}

    def postprocess(self, model_outputs: dict[str, Any], reduction: str = "sum") -> list[dict[str, Any]]:
        results = []
        for action, rationale, score in zip(
            model_outputs["actions"], model_outputs["rationales"], model_outputs["scores"]
        ):
            result = {"action": action, "score": _reduce(score, reduction)}
            results.append(result if rationale is None else {**result, "rationale": rationale})
        return results

    def score(
        self,
        source: Observation | Sequence[Observation],
        target: Observation | Sequence[Observation],
        action: str | Sequence[str],
        reduction: str = "sum",
    ) -> float | list[float]:
        """Log-likelihood of given actions: the best-of-N verifier's primitive.

        ``log p(action | source, target)`` in the IDM's training format, summed (natural log) over the action's
        tokens and the closing ``eos``, exactly the tokens the IDM was trained on; never the images or the
        instruction. All rows go through ONE batched forward.

        Args:
            source: An observation or a list; a single one is shared by every row (e.g. the source of N candidates).
            target: An observation or a list (e.g. N candidate next observations).
            action: An action text or a list; a single one is shared by every row.
            reduction: ``"sum"`` (the total log-probability, the default) or ``"mean"`` (per scored token).

        Returns:
            A float when all three are single, else one float per row.
        """
        _check_reduction(reduction)
        columns = {"source": source, "target": target, "action": action}
        lengths = {len(value) for value in columns.values() if isinstance(value, (list, tuple))}
        if len(lengths) > 1:
            raise ValueError(f"source, target and action lists differ in length: {sorted(lengths)}")
        rows = lengths.pop() if lengths else None
        if rows == 0:
            return []
        count = rows or 1
        expanded = {
            key: list(value) if isinstance(value, (list, tuple)) else [value] * count for key, value in columns.items()
        }
        for index, text in enumerate(expanded["action"]):
            check_action(text, f"action {index}")
        # A shared observation is loaded and encoded once.
        loaded: dict[int, Image.Image | torch.Tensor] = {}
        observations = []
        for key in ("source", "target"):
            for index, item in enumerate(expanded[key]):
                if id(item) not in loaded:
                    loaded[id(item)] = _observation(item, f"{key} {index}")
                observations.append(loaded[id(item)])
        ids = encode_observations(self.backbone, observations)
        with self.device_placement(), torch.no_grad():
            scores = action_log_likelihoods(self.backbone, ids[:count], ids[count:], expanded["action"], None)
        values = [_reduce(score, reduction) for score in scores]
        return values if rows is not None else values[0]


def _observation(item: Observation, what: str) -> Image.Image | torch.Tensor:
    return item if isinstance(item, torch.Tensor) else load_observation(item, what)


def _check_reduction(reduction: str) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return reduction


def _reduce(score: SequenceScore, reduction: str) -> float:
    return score.total if reduction == "sum" else score.mean


register_pipelines()  # the task is usable as soon as its class exists (see wm_hub.inference.registration)
