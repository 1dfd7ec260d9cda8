"""Liquid: a Gemma-family causal LM whose vocabulary continues with the VQGAN's image codes.

Liquid-7B is ``AutoModelForCausalLM`` (Gemma) with the 8192 codes of Chameleon's VQGAN appended after the text
vocabulary (LM id = ``image_token_offset + code``, 256000 for Liquid-7B) and ``<boi>``/``<eoi>`` text tokens around
each image. Images are padded to a square with RGB (122, 116, 104), resized, and scaled to [-1, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import VQModel
from PIL import Image
from transformers import AutoModelForCausalLM, AutoTokenizer

from wm_hub.models.base import Backbone, BackboneConfig
from wm_hub.models.chameleon_vqgan import VQGAN_SUBFOLDER, decode_codes, encode_codes, load_vqgan

PAD_COLOR = (122, 116, 104)
BOI_TOKEN = "<boi>"
EOI_TOKEN = "<eoi>"
END_OF_TURN_TOKEN = "<end_of_turn>"


def pad_to_square(image: Image.Image, fill: tuple[int, int, int] = PAD_COLOR) -> Image.Image:
    """Centre an RGB image on a square canvas of colour ``fill`` (Liquid's preprocessing)."""
    image = image.convert("RGB")
    width, height = image.size
    if width == height:
        return image
    side = max(width, height)
    canvas = Image.new("RGB", (side, side), fill)
    canvas.paste(image, ((side - width) // 2, (side - height) // 2))
    return canvas


class LiquidBackbone(Backbone):
    """Liquid-7B (and tiny presets of the same layout).

    Args:
        model: The Gemma-family causal LM with ``image_token_offset + num_codes <= vocab_size``.
        tokenizer: Its text tokenizer (with ``<boi>``/``<eoi>``).
        vqgan: Chameleon's VQGAN as a ``diffusers.VQModel``.
        config: wm-hub settings; ``image_token_offset`` defaults to ``len(tokenizer)``.
    """

    arch = "liquid"

    def __init__(self, model, tokenizer, vqgan: VQModel, config: BackboneConfig):
        if config.separator_token is None:
            config.separator_token = END_OF_TURN_TOKEN
        if config.image_token_offset is None:
            config.image_token_offset = len(tokenizer)
        super().__init__(model, tokenizer, config)
        self.vqgan = vqgan.eval().requires_grad_(False)
        num_codes = vqgan.config.num_vq_embeddings
        offset = config.image_token_offset
        if offset + num_codes > model.config.vocab_size:
            raise ValueError(
                f"image_token_offset {offset} + {num_codes} codes exceed the LM vocabulary ({model.config.vocab_size})"
            )
        missing = [token for token in (BOI_TOKEN, EOI_TOKEN) if token not in tokenizer.get_vocab()]
        if missing:
            raise ValueError(f"not a Liquid checkpoint: the tokenizer has no {missing} (a plain Gemma model?)")
        side = config.image_size // 2 ** (len(vqgan.config.block_out_channels) - 1)
        self._set_image_vocabulary((side, side), torch.arange(offset, offset + num_codes), BOI_TOKEN, EOI_TOKEN)

    @property
    def image_tokenizer(self) -> VQModel:
        return self.vqgan

    def codes_to_ids(self, codes: torch.Tensor) -> torch.Tensor:
        return codes.long() + self.config.image_token_offset

    def ids_to_codes(self, ids: torch.Tensor) -> torch.Tensor:
        return ids.long() - self.config.image_token_offset

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        size = self.config.image_size
        arrays = [
            np.asarray(pad_to_square(image).resize((size, size), Image.Resampling.BICUBIC), dtype=np.float32)
            for image in images
        ]
        pixels = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
        return pixels / 127.5 - 1.0

    def _encode_codes(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return encode_codes(self.vqgan, pixel_values)

    def _decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        return decode_codes(self.vqgan, codes, self.image_grid)

    def _save_image_tokenizer(self, save_directory: Path) -> None:
        self.vqgan.save_pretrained(save_directory / VQGAN_SUBFOLDER)

    @classmethod
    def from_pretrained(
        cls,
        path: str,
        config: BackboneConfig,
        vqgan: str | None = None,
        vqgan_config: str | None = None,
        **model_kwargs: Any,
    ) -> LiquidBackbone:
        """Load a Liquid checkpoint and the Chameleon VQGAN (``<path>/vqgan`` or ``vqgan=``, as for Chameleon)."""
        model = AutoModelForCausalLM.from_pretrained(path, **model_kwargs)
        tokenizer = AutoTokenizer.from_pretrained(path)
        return cls(model, tokenizer, load_vqgan(path, vqgan, vqgan_config), config)
