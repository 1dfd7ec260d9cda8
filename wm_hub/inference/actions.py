"""Batched action text from an inverse-dynamics model (the IDM side of pipelines, annotation and the demo).

An IDM trained with ``idm_rationale`` writes ``"<rationale> => <action>"``; the outputs split the two.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from wm_hub.inference.generation import left_pad
from wm_hub.models.base import Backbone, ImageLike
from wm_hub.models.processing import split_idm_completion


@dataclass(frozen=True)
class IDMOutput:
    """What an inverse-dynamics model wrote for one pair.

    Attributes:
        action: The action text, stripped.
        rationale: What an IDM that reasons first (``idm_rationale``) wrote before the action; ``None`` for one
            that writes the action alone.
    """

    action: str
    rationale: str | None = None


@torch.no_grad()
def generate_idm_outputs(
    idm: Backbone,
    pairs: Sequence[tuple[ImageLike, ImageLike]],
    max_new_tokens: int = 48,
    do_sample: bool = False,
    temperature: float = 1.0,
    seed: int | None = None,
    max_rationale_tokens: int = 96,
) -> list[IDMOutput]:
    """Action text (and rationale) for (source, target) pairs in ONE batched ``generate`` call (image tokens
    suppressed).

    Args:
        idm: The inverse-dynamics backbone.
        pairs: ``(source, target)`` observations (PIL images or their LM ids).
        max_new_tokens: Longest action, in tokens.
        do_sample: Sample instead of greedy decoding.
        temperature: Sampling temperature (with ``do_sample``).
        seed: Seeds torch's RNG (with ``do_sample``).
        max_rationale_tokens: Longest rationale, in tokens, added to the budget of an IDM that reasons first.

    Returns:
        One output per pair, in the order of ``pairs``.
    """
    if not pairs:
        return []
    prompts = [idm.build_idm_sequence(source, target).input_ids for source, target in pairs]
    input_ids, attention_mask = left_pad(prompts, idm.pad_token_id)
    if seed is not None:
        torch.manual_seed(seed)
    sampling = {"temperature": temperature, "top_k": 0, "top_p": 1.0} if do_sample else {}
    output = idm.model.generate(
        input_ids=input_ids.to(idm.device),
        attention_mask=attention_mask.to(idm.device),
        do_sample=do_sample,
        max_new_tokens=max_new_tokens + (max_rationale_tokens if idm.writes_rationale else 0),
        eos_token_id=idm.eos_token_id,
        pad_token_id=idm.pad_token_id,
        suppress_tokens=idm.image_token_ids.tolist(),
        **sampling,
    )
    texts = idm.tokenizer.batch_decode(output[:, input_ids.shape[1] :], skip_special_tokens=True)
    outputs = []
    for text in texts:
        rationale, action = split_idm_completion(text, idm.writes_rationale)
        outputs.append(IDMOutput(action, rationale))
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
    return [output.action for output in generate_idm_outputs(idm, pairs, max_new_tokens, do_sample, temperature, seed)]
