"""Logits processors that constrain what a unified VLM may emit."""

from __future__ import annotations

import torch
from transformers import LogitsProcessor


class ImageOnlyLogitsProcessor(LogitsProcessor):
    """Make ``generate`` emit exactly one well-formed image block after the prompt.

    At every step after the prompt, the layout says either "sample an image code" (all logits outside
    ``allowed_ids`` become ``-inf``) or "emit this token" (a layout token such as Emu3's end-of-line or the closing
    ``eoi``: every other logit becomes ``-inf``). After the layout it forces ``fallback_token_id``. Put it BEFORE
    temperature/top-k/top-p so those act on image tokens only.

    Args:
        prompt_length: Length of the (left-padded) prompt the generation starts from.
        layout: LongTensor, one entry per generated step: ``-1`` to sample an image code, else the forced id.
        allowed_ids: LM ids of the image codes.
        fallback_token_id: Token forced once the layout is complete.
    """

    def __init__(self, prompt_length: int, layout: torch.Tensor, allowed_ids: torch.Tensor, fallback_token_id: int):
        self.prompt_length = prompt_length
        self.layout = layout.long()
        self.allowed_ids = allowed_ids.long()
        self.fallback_token_id = fallback_token_id
        self._bias: torch.Tensor | None = None

    def _image_bias(self, scores: torch.Tensor) -> torch.Tensor:
        if self._bias is None or self._bias.device != scores.device or self._bias.dtype != scores.dtype:
            bias = torch.full((scores.shape[-1],), float("-inf"), dtype=scores.dtype, device=scores.device)
            bias[self.allowed_ids.to(scores.device)] = 0
            self._bias = bias
        return self._bias

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        step = input_ids.shape[1] - self.prompt_length
        forced = int(self.layout[step]) if step < len(self.layout) else self.fallback_token_id
        if forced < 0:
            return scores + self._image_bias(scores)
        out = torch.full_like(scores, float("-inf"))
        out[:, forced] = 0
        return out
