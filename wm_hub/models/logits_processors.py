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


class GumbelMaxSampler(LogitsProcessor):
    """Sample from ``softmax(scores)`` inside the logits processors, so that greedy ``generate`` returns samples.

    Adds independent Gumbel noise ``-log(E)``, ``E ~ Exp(1)``, to every score: the argmax of the result is a sample of
    ``softmax(scores)`` (the Gumbel-max trick; ``-inf`` scores stay ``-inf``, so masks and top-k/top-p hold). Put it
    LAST, after the temperature/top-k/top-p warpers, and generate with ``do_sample=False``.

    Why not ``do_sample=True``: ``torch.multinomial`` draws its exponential variables one double at a time on the CPU
    (146 us per step with the softmax for 8 rows of a 776-token vocabulary, against 39 us for a vectorised
    ``uniform_`` and two ``log``), which made sampling the largest cost of best-of-8 after attention
    (``docs/inference.md``, ``benchmarks/bench_sampling.py``). The distribution is the same; the samples drawn for a
    seed are not those of ``torch.multinomial``.
    """

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        uniform = torch.empty(scores.shape, dtype=torch.float32, device=scores.device).uniform_()
        # E = -log(u) ~ Exp(1). u = 0 (probability 2^-24 per entry) gives E = inf: clamped, that token is all but
        # excluded (a relative error of ~1e-7 in its probability) yet stays finite, so a row with one allowed token
        # (a forced layout step) still picks it.
        exponential = uniform.log_().neg_().clamp_max_(torch.finfo(torch.float32).max)
        return scores - exponential.log_()
