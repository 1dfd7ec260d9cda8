"""The generation primitive: N candidate images for a batch of prompts in one ``generate`` call."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psutil
import torch
from PIL import Image
from transformers import (
    GenerationConfig,
    LogitsProcessorList,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from wm_hub.inference.kv_cache import cache_argument, growing_cache
from wm_hub.models.base import Backbone
from wm_hub.models.logits_processors import GumbelMaxSampler


@dataclass
class ImageGenerationOutput:
    """Result of :func:`generate_images`.

    Attributes:
        image_ids: LongTensor ``(batch, num_candidates, image_seq_len)`` of LM image token ids.
        images: ``images[b][n]``: candidate ``n`` of prompt ``b`` (``None`` when decoding was skipped).
        sequences: The full generated sequences ``(batch * num_candidates, prompt + layout)`` (left-padded).
    """

    image_ids: torch.Tensor
    images: list[list[Image.Image]] | None
    sequences: torch.Tensor


def left_pad(prompts: Sequence[Sequence[int]], pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad token id lists into ``input_ids`` and ``attention_mask``."""
    length = max(len(prompt) for prompt in prompts)
    input_ids = torch.full((len(prompts), length), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(prompts), length), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        input_ids[row, length - len(prompt) :] = torch.as_tensor(list(prompt), dtype=torch.long)
        attention_mask[row, length - len(prompt) :] = 1
    return input_ids, attention_mask


@torch.no_grad()
def _prefilled_candidates(
    backbone: Backbone, input_ids: torch.Tensor, attention_mask: torch.Tensor, num_candidates: int
) -> dict[str, Any]:
    """``generate`` inputs for ``num_candidates`` rows per prompt whose KV cache holds each prompt but its last token.

    The prompts run once (positions from the attention mask, as ``generate`` numbers left-padded rows); the cache is
    repeated row by row, the candidates of a prompt together (the order of ``num_return_sequences``).
    ``generate`` then feeds only the last prompt token and samples from there.
    """
    head_mask = attention_mask[:, :-1]
    position_ids = (head_mask.cumsum(-1) - 1).clamp(min=0)
    cache = growing_cache()
    backbone.model(
        input_ids=input_ids[:, :-1],
        attention_mask=head_mask,
        position_ids=position_ids,
        **{cache_argument(backbone.model): cache},
        use_cache=True,
        logits_to_keep=1,
    )
    cache.batch_repeat_interleave(num_candidates)
    return {
        "input_ids": input_ids.repeat_interleave(num_candidates, dim=0),
        "attention_mask": attention_mask.repeat_interleave(num_candidates, dim=0),
        cache_argument(backbone.model): cache,
    }


def check_cache_memory(backbone: Backbone, rows: int, length: int) -> None:
    """Refuse a generation whose KV cache alone would not fit in the free memory of the model's device.

    The estimate is ``rows * length * layers * 2 * kv_heads * head_dim`` elements of the model's dtype (plus the
    growing cache's spare quarter); a request far past it (``num_candidates=10**12``) would otherwise end in an
    allocator error deep inside ``generate``, or in the kernel's out-of-memory killer.

    Raises:
        ValueError: Naming the rows, the estimate and the free memory.
    """
    config = backbone.model.config.get_text_config()
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    element = torch.finfo(backbone.model.dtype).bits // 8
    needed = 1.25 * rows * length * config.num_hidden_layers * 2 * kv_heads * head_dim * element
    device = backbone.device
    free = torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else psutil.virtual_memory().available
    if needed > free:
        raise ValueError(
            f"{rows} rows of {length} tokens need about {needed / 2**30:.1f} GiB of KV cache, more than the "
            f"{free / 2**30:.1f} GiB free on {device}: lower num_candidates or the number of prompts per call"
        )


@torch.no_grad()
def check_sampling(
    temperature: float | None, top_k: int | None, top_p: float | None, *, as_flags: bool = False
) -> None:
    """Refuse sampling settings that would silently mean something else (top_k=0 keeps every token, top_p > 1 too).

    Args:
        temperature: Sampling temperature (``None``: not given).
        top_k: Top-k (``None``: off).
        top_p: Nucleus mass (``None``: off).
        as_flags: Name the settings as command-line flags (``--top-k``) in the error.

    Raises:
        ValueError: Naming the setting and the values it takes.
    """

    def name(setting: str) -> str:
        return f"--{setting.replace('_', '-')}" if as_flags else setting

    if temperature is not None and not 0 < temperature < float("inf"):
        raise ValueError(f"{name('temperature')} must be > 0 and finite (sampling), got {temperature}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"{name('top_k')} must be an integer >= 1 (unset keeps every image token), got {top_k!r}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"{name('top_p')} must be in (0, 1] (unset or 1 keeps every image token), got {top_p!r}")


def generate_images(
    backbone: Backbone,
    prompts: Sequence[Sequence[int]],
    num_candidates: int = 1,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    cache_implementation: str | None = None,
    decode: bool = True,
    share_prefill: bool = True,
) -> ImageGenerationOutput:
    """Sample ``num_candidates`` images per prompt in ONE ``generate`` call.

    Candidates of a prompt share it: one call decodes ``batch * num_candidates`` rows in lockstep, the regime where
    decoding costs little more per step than a single sample. With ``share_prefill`` (and the dynamic cache) each
    prompt is read once: one forward fills the KV cache of the ``batch`` prompts, the cache is repeated for the
    candidates and ``generate`` continues from it, instead of running the prompt ``num_candidates`` times. The
    samples are the same for a seed (tested). ``generate`` decodes greedily over scores that the
    :class:`~wm_hub.models.logits_processors.GumbelMaxSampler` perturbed, which samples from the softmax of the
    (masked, warped) scores without ``torch.multinomial``'s slow CPU draw. Only image codes can be
    sampled (:class:`~wm_hub.models.logits_processors.ImageOnlyLogitsProcessor`); layout tokens (``eoi``, Emu3's
    end-of-line) are forced, so every candidate has exactly ``image_seq_len`` image tokens.

    Args:
        backbone: The world-model backbone.
        prompts: Token id lists that end with the image prefix (e.g. ``build_fdm_sequence(src, action).input_ids``).
        num_candidates: Samples per prompt.
        temperature: Sampling temperature (the paper uses 1.0; lower values tend to copy the source).
        top_k: Keep the k most likely image tokens (``None``: all).
        top_p: Nucleus sampling over image tokens (``None``: off).
        seed: Seeds torch's RNG for reproducible samples.
        cache_implementation: ``"static"`` for a static KV cache (much faster decoding on GPU), ``None`` dynamic.
        decode: Also decode the images with the VQ decoder.
        share_prefill: Read each prompt once for all its candidates (ignored with a static cache or one candidate).

    Returns:
        Image token ids, decoded images and raw sequences.
    """
    if not prompts:
        raise ValueError("generate_images needs at least one prompt")
    check_sampling(temperature, top_k, top_p)
    prefix = backbone.image_prefix_ids()
    layout = backbone.generation_layout()
    for row, prompt in enumerate(prompts):
        if list(prompt[-len(prefix) :]) != prefix:
            raise ValueError(f"prompt {row} does not end with the image prefix {prefix}")
        backbone.check_sequence_length(len(prompt) + len(layout), f"prompt {row} and the image to generate")
    input_ids, attention_mask = left_pad(prompts, backbone.pad_token_id)
    check_cache_memory(backbone, len(prompts) * num_candidates, input_ids.shape[1] + len(layout))
    device = backbone.device
    input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
    processors = LogitsProcessorList([backbone.image_logits_processor(input_ids.shape[1])])
    if temperature != 1.0:
        processors.append(TemperatureLogitsWarper(temperature))
    if top_k:
        processors.append(TopKLogitsWarper(top_k))
    if top_p is not None and top_p < 1.0:
        processors.append(TopPLogitsWarper(top_p))
    processors.append(GumbelMaxSampler())
    shared = share_prefill and num_candidates > 1 and cache_implementation is None
    generation_config = GenerationConfig(
        do_sample=False,  # the GumbelMaxSampler samples; greedy decoding takes its argmax
        max_new_tokens=len(layout),
        pad_token_id=backbone.pad_token_id,
        bos_token_id=backbone.bos_token_id,
        eos_token_id=backbone.eos_token_id,
        cache_implementation=cache_implementation,
    )
    if shared:
        inputs = _prefilled_candidates(backbone, input_ids, attention_mask, num_candidates)
    else:  # the rows num_return_sequences would make (greedy generate refuses it)
        inputs = {
            "input_ids": input_ids.repeat_interleave(num_candidates, dim=0),
            "attention_mask": attention_mask.repeat_interleave(num_candidates, dim=0),
        }
    if seed is not None:
        torch.manual_seed(seed)
    sequences = backbone.model.generate(**inputs, generation_config=generation_config, logits_processor=processors)
    generated = sequences[:, input_ids.shape[1] :].cpu()
    if generated.shape[1] != len(layout):
        raise RuntimeError(f"generation stopped after {generated.shape[1]} of {len(layout)} layout tokens")
    image_ids = generated[:, layout < 0].reshape(len(prompts), num_candidates, backbone.image_seq_len)
    images = None
    if decode:
        flat = backbone.decode_images(image_ids.reshape(-1, backbone.image_seq_len))
        images = [flat[row * num_candidates : (row + 1) * num_candidates] for row in range(len(prompts))]
    return ImageGenerationOutput(image_ids=image_ids, images=images, sequences=sequences.cpu())
