"""Liquid: a Gemma-family causal LM whose vocabulary continues with the VQGAN's image codes.

Liquid-7B is ``AutoModelForCausalLM`` (Gemma) with the 8192 codes of Chameleon's VQGAN appended after the text
vocabulary (LM id = ``image_token_offset + code``, 256000 for Liquid-7B) and ``<boi>``/``<eoi>`` text tokens around
each image. Images are padded to a square with RGB (122, 116, 104), resized, and scaled to [-1, 1].
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import VQModel
from transformers import AutoModelForCausalLM

from wm_hub.models.base import BackboneConfig
from wm_hub.models.chameleon_vqgan import VQGANBackbone, load_vqgan
from wm_hub.models.image_processing import LIQUID_PAD_COLOR, SquareImageProcessor
from wm_hub.models.processing import WorldModelProcessor

BOI_TOKEN = "<boi>"
EOI_TOKEN = "<eoi>"
END_OF_TURN_TOKEN = "<end_of_turn>"


class LiquidBackbone(VQGANBackbone):
    """Liquid-7B (and tiny presets of the same layout).

    Args:
        model: The Gemma-family causal LM with ``image_token_offset + num_codes <= vocab_size``.
        processor: Its text tokenizer (with ``<boi>``/``<eoi>``) and a padding
            :class:`~wm_hub.models.image_processing.SquareImageProcessor`.
        vqgan: Chameleon's VQGAN as a ``diffusers.VQModel``.
        config: wm-hub settings; ``image_token_offset`` defaults to ``len(tokenizer)``.
    """

    arch = "liquid"
    separator_token = END_OF_TURN_TOKEN

    def __init__(self, model, processor: WorldModelProcessor, vqgan: VQModel, config: BackboneConfig):
        if config.image_token_offset is None:
            config.image_token_offset = len(processor.tokenizer)
        super().__init__(model, processor, vqgan, config)
        num_codes = vqgan.config.num_vq_embeddings
        offset = config.image_token_offset
        if offset + num_codes > model.config.vocab_size:
            raise ValueError(
                f"image_token_offset {offset} + {num_codes} codes exceed the LM vocabulary ({model.config.vocab_size})"
            )
        missing = [token for token in (BOI_TOKEN, EOI_TOKEN) if token not in self.tokenizer.get_vocab()]
        if missing:
            raise ValueError(f"not a Liquid checkpoint: the tokenizer has no {missing} (a plain Gemma model?)")
        code_to_id = torch.arange(offset, offset + num_codes)
        self._set_image_vocabulary(self.vqgan_grid(), code_to_id, [BOI_TOKEN], [EOI_TOKEN])

    @classmethod
    def default_image_processor(cls, path: str, config: BackboneConfig) -> SquareImageProcessor:
        """Liquid's preprocessing: pad to a square of RGB (122, 116, 104), resize (bicubic), scale to [-1, 1]."""
        return SquareImageProcessor(size=config.image_size, square="pad", pad_color=LIQUID_PAD_COLOR)

    @classmethod
    def from_pretrained(
        cls,
        path: str,
        config: BackboneConfig,
        processor: WorldModelProcessor,
        vqgan: str | None = None,
        vqgan_config: str | None = None,
        **model_kwargs: Any,
    ) -> LiquidBackbone:
        """Load a Liquid checkpoint and the Chameleon VQGAN (``<path>/vqgan`` or ``vqgan=``, as for Chameleon)."""
        model = AutoModelForCausalLM.from_pretrained(path, **model_kwargs)
        return cls(model, processor, load_vqgan(path, vqgan, vqgan_config), config)
