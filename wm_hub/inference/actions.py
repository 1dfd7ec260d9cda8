"""Batched action text from an inverse-dynamics model (the IDM side of pipelines, annotation and the demo)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from wm_hub.inference.generation import left_pad
from wm_hub.models.base import Backbone, ImageLike


@torch.no_grad()
def generate_actions(
    idm: Backbone,
    pairs: Sequence[tuple[ImageLike, ImageLike]],
    max_new_tokens: int = 48,
    do_sample: bool = False,
    temperature: float = 1.0,
    seed: int | None = None,
) -> list[str]:
    """Action text for (source, target) pairs in ONE batched ``generate`` call (image tokens suppressed).

    Args:
        idm: The inverse-dynamics backbone.
        pairs: ``(source, target)`` observations (PIL images or their LM ids).
        max_new_tokens: Longest action, in tokens.
        do_sample: Sample instead of greedy decoding.
        temperature: Sampling temperature (with ``do_sample``).
        seed: Seeds torch's RNG (with ``do_sample``).

    Returns:
        The decoded actions, stripped, in the order of ``pairs``.
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
        max_new_tokens=max_new_tokens,
        eos_token_id=idm.eos_token_id,
        pad_token_id=idm.pad_token_id,
        suppress_tokens=idm.image_token_ids.tolist(),
        **sampling,
    )
    texts = idm.tokenizer.batch_decode(output[:, input_ids.shape[1] :], skip_special_tokens=True)
    return [text.strip() for text in texts]
