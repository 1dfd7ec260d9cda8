"""Batched action text from an inverse-dynamics model (the IDM side of pipelines, annotation and the demo).

An IDM trained with ``idm_rationale`` writes ``"<rationale> => <action>"``; the outputs split the two. Each output
keeps the tokens it was written as and their log-probabilities, so that scoring what the IDM wrote
(:func:`~wm_hub.inference.scoring.output_log_likelihoods`) needs no second forward pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from wm_hub.inference.generation import left_pad
from wm_hub.inference.kv_cache import cache_argument, growing_cache
from wm_hub.models.base import Backbone, ImageLike
from wm_hub.models.processing import split_idm_completion


@dataclass(frozen=True)
class IDMOutput:
    """What an inverse-dynamics model wrote for one pair.

    Attributes:
        action: The action text, stripped.
        rationale: What an IDM that reasons first (``idm_rationale``) wrote before the action; ``None`` for one
            that writes the action alone.
        token_ids: The generated tokens, up to and including the closing ``eos`` (without it when the budget ran
            out first).
        token_log_probs: ``log p(token | everything before it)`` of each of ``token_ids``, from the generation's
            raw logits (before any logits processor, so at temperature 1 and with image tokens allowed, as the
            teacher-forced scores compute it).
    """

    action: str
    rationale: str | None = None
    token_ids: tuple[int, ...] = ()
    token_log_probs: tuple[float, ...] = ()


class TokenLogProbs:
    """A forward hook on a causal LM that, during ``generate``, records ``log p(token)`` of every generated token.

    Each forward's last-position raw logits (the model's own, before any logits processor: temperature 1, no
    suppressed tokens, as teacher forcing scores them) become log-probabilities that are kept for one step only:
    the next forward's input is the token ``generate`` chose from them, whose log-probability is then written to a
    ``(batch, max_steps)`` table allocated once (small tensors kept from every step would split the large blocks
    the allocator frees between steps, and the process would grow by a step's logits at every step). Register it
    with ``model.register_forward_hook(recorder, with_kwargs=True)`` and call :meth:`finish` with the last
    generated tokens once ``generate`` returns.

    Args:
        max_steps: The most tokens ``generate`` may write (its ``max_new_tokens``).
    """

    def __init__(self, max_steps: int) -> None:
        self.max_steps = max_steps
        self._last: torch.Tensor | None = None
        self._table: torch.Tensor | None = None
        self._steps = 0

    def __call__(self, module: torch.nn.Module, args: tuple, kwargs: dict, output) -> None:
        if self._last is not None:  # a decoding step: its input is the token chosen from the previous logits
            fed = kwargs["input_ids"] if kwargs.get("input_ids") is not None else args[0]
            self._record(fed[:, -1])
        self._last = torch.log_softmax(output.logits[:, -1].float(), dim=-1)

    def _record(self, tokens: torch.Tensor) -> None:
        if self._table is None:  # on the model's device: no copy to the CPU (a GPU sync) at every step
            self._table = torch.empty((len(tokens), self.max_steps), device=self._last.device)
        self._table[:, self._steps] = self._last.gather(-1, tokens[:, None].to(self._last.device))[:, 0]
        self._steps += 1

    def finish(self, last_tokens: torch.Tensor) -> torch.Tensor:
        """``(batch, steps)`` log-probabilities of the generated tokens (on the CPU), given the tokens of the last
        step."""
        if self._last is None:
            raise RuntimeError("TokenLogProbs saw no forward pass: register it on the model before generate")
        self._record(last_tokens)
        return self._table[:, : self._steps].cpu()


@torch.no_grad()
def generate_idm_outputs(
    idm: Backbone,
    pairs: Sequence[tuple[ImageLike, ImageLike]],
    max_new_tokens: int = 48,
    do_sample: bool = False,
    temperature: float = 1.0,
    seed: int | None = None,
    max_rationale_tokens: int = 96,
    log_probs: bool = True,
) -> list[IDMOutput]:
    """Action text (and rationale) for (source, target) pairs in ONE batched ``generate`` call (image tokens
    suppressed).

    With ``log_probs`` each generated token's log-probability is read off the model's raw logits as the call runs
    (:class:`TokenLogProbs`), so the memory it takes is one step's ``pairs x vocabulary``, not ``pairs x steps x
    vocabulary`` (``output_logits``: 2.4 GB of float32 for 64 pairs, 144 steps and Chameleon's 65536 tokens).

    Args:
        idm: The inverse-dynamics backbone.
        pairs: ``(source, target)`` observations (PIL images or their LM ids).
        max_new_tokens: Longest action, in tokens.
        do_sample: Sample instead of greedy decoding.
        temperature: Sampling temperature (with ``do_sample``).
        seed: Seeds torch's RNG (with ``do_sample``).
        max_rationale_tokens: Longest rationale, in tokens, added to the budget of an IDM that reasons first.
        log_probs: Keep each generated token's log-probability (``token_log_probs``; empty without), what
            :func:`~wm_hub.inference.scoring.output_log_likelihoods` scores with.

    Returns:
        One output per pair, in the order of ``pairs``.
    """
    if not pairs:
        return []
    images = idm.images_as_ids([image for pair in pairs for image in pair])
    prompts = [idm.build_idm_sequence(source, target).input_ids for source, target in zip(images[::2], images[1::2])]
    input_ids, attention_mask = left_pad(prompts, idm.pad_token_id)
    if seed is not None:
        torch.manual_seed(seed)
    sampling = {"temperature": temperature, "top_k": 0, "top_p": 1.0} if do_sample else {}
    budget = max_new_tokens + (max_rationale_tokens if idm.writes_rationale else 0)
    what = f"the IDM prompt and max_new_tokens={max_new_tokens}" + (
        f" + max_rationale_tokens={max_rationale_tokens}" if idm.writes_rationale else ""
    )
    idm.check_sequence_length(input_ids.shape[1] + budget, what)
    recorder = TokenLogProbs(budget)
    hook = idm.model.register_forward_hook(recorder, with_kwargs=True) if log_probs else None
    try:
        sequences = idm.model.generate(
            input_ids=input_ids.to(idm.device),
            attention_mask=attention_mask.to(idm.device),
            do_sample=do_sample,
            max_new_tokens=budget,
            eos_token_id=idm.eos_token_id,
            pad_token_id=idm.pad_token_id,
            suppress_tokens=idm.image_token_ids.tolist(),
            **{cache_argument(idm.model): growing_cache()},  # written in place, not concatenated at every step
            **sampling,
        )
    finally:
        if hook is not None:
            hook.remove()
    generated = sequences[:, input_ids.shape[1] :]
    texts = idm.tokenizer.batch_decode(generated, skip_special_tokens=True)
    picked = recorder.finish(generated[:, -1]).tolist() if log_probs else [[]] * len(texts)
    outputs = []
    for text, ids, token_log_probs in zip(texts, generated.tolist(), picked):
        end = ids.index(idm.eos_token_id) + 1 if idm.eos_token_id in ids else len(ids)
        rationale, action = split_idm_completion(text, idm.writes_rationale)
        outputs.append(IDMOutput(action, rationale, tuple(ids[:end]), tuple(token_log_probs[:end])))
    return outputs


def generate_actions(
    idm: Backbone,
    pairs: Sequence[tuple[ImageLike, ImageLike]],
    max_new_tokens: int = 48,
    do_sample: bool = False,
    temperature: float = 1.0,
    seed: int | None = None,
) -> list[str]:
    """The actions of :func:`generate_idm_outputs` (an IDM's rationale, if it writes one, left out), whose
    arguments these are.

    Returns:
        The decoded actions, stripped, in the order of ``pairs``.
    """
    outputs = generate_idm_outputs(idm, pairs, max_new_tokens, do_sample, temperature, seed, log_probs=False)
    return [output.action for output in outputs]
