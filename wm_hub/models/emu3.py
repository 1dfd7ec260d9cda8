"""Emu3: transformers' own ``Emu3ForConditionalGeneration`` and the VQ-VAE it contains.

Emu3 needs no patching: its LM does not suppress image-token logits, and ``model.model.vqmodel`` (an
``Emu3VQVAE``) has both the encoder and the decoder, so the checkpoint alone turns pixels into tokens and back.

An image block in the LM sequence is laid out exactly as ``Emu3Processor`` writes it::

    <|image start|> {h}*{w} <|image token|>  (w visual tokens, <|extra_200|>) x h  <|extra_201|> <|image end|>

i.e. the grid size as text, one end-of-line token (``<|extra_200|>``) after every row of codes, and an end-of-frame
token (``<|extra_201|>``) before ``<|image end|>``. ``image_seq_len`` counts the codes only (``h * w``); the layout
tokens are added by the processor (:meth:`~wm_hub.models.processing.WorldModelProcessor.image_body_ids`,
``image_suffix_ids``) and forced during generation. A 512 px image costs 64 * 65 + 7 = 4167 tokens.

Notes:
    * The VQ model lives inside the LM, so it follows the LM's device and dtype (``Backbone.to(dtype=bf16)`` casts
      it too, as transformers' Emu3 does). Load with ``dtype=torch.float32`` for float32 tokenisation.
    * It is frozen (``requires_grad=False``) and always run in eval mode (its temporal blocks use BatchNorm).
    * LoRA: the VQ's attention blocks also have ``q_proj``/``k_proj``/``v_proj`` modules, so ``target_modules`` given
      as plain names would adapt the VQ decoder too; restrict LoRA to the text model with a regex such as
      ``r"model\\.text_model\\..*\\.(q_proj|k_proj|v_proj|o_proj)"``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import Emu3ForConditionalGeneration
from transformers.models.emu3.modeling_emu3 import Emu3ImageVocabularyMapping, Emu3VQVAE

from wm_hub.models.base import Backbone, BackboneConfig
from wm_hub.models.image_processing import SquareImageProcessor
from wm_hub.models.processing import WorldModelProcessor

BOI_TOKEN = "<|image start|>"
EOI_TOKEN = "<|image end|>"
IMAGE_WRAPPER_TOKEN = "<|image token|>"
EOL_TOKEN = "<|extra_200|>"
EOF_TOKEN = "<|extra_201|>"
SEPARATOR_TOKEN = "<|extra_0|>"


class Emu3Backbone(Backbone):
    """Emu3 (Emu3-Gen / Emu3-Chat in HF layout, and tiny presets of the same layout).

    Args:
        model: ``Emu3ForConditionalGeneration``; its ``model.vqmodel`` is the image tokenizer.
        processor: Emu3's tokenizer (visual tokens are ``<|visual token 000000|>``... vocabulary entries) and a
            cropping :class:`~wm_hub.models.image_processing.SquareImageProcessor`; the separator defaults to
            ``<|extra_0|>``.
        config: wm-hub settings.

    Raises:
        ValueError: If ``config.image_size`` is not a multiple of the VQ's spatial factor, or the vocabulary and the
            codebook disagree.
    """

    arch = "emu3"
    separator_token = SEPARATOR_TOKEN

    def __init__(self, model: Emu3ForConditionalGeneration, processor: WorldModelProcessor, config: BackboneConfig):
        super().__init__(model, processor, config)
        self.vqmodel.eval().requires_grad_(False)
        factor = self.vqmodel.vision_spatial_factor
        if config.image_size % factor:
            raise ValueError(
                f"image_size {config.image_size} is not a multiple of the Emu3 VQ spatial factor {factor}"
            )
        side = config.image_size // factor
        mapping = Emu3ImageVocabularyMapping(model.config.vocabulary_map)
        num_codes = self.vqmodel.config.codebook_size
        if sorted(mapping.img2bpe) != list(range(num_codes)):
            raise ValueError(
                f"the vocabulary has {len(mapping.img2bpe)} visual tokens but the Emu3 VQ has {num_codes} codes"
            )
        code_to_id = torch.tensor([mapping.img2bpe[code] for code in range(num_codes)], dtype=torch.long)
        grid_text = self.tokenizer.convert_ids_to_tokens(self._text_ids(f"{side}*{side}"))
        start = [BOI_TOKEN, *grid_text, IMAGE_WRAPPER_TOKEN]
        self._set_image_vocabulary((side, side), code_to_id, start, [EOF_TOKEN, EOI_TOKEN], row_end=EOL_TOKEN)

    @classmethod
    def default_image_processor(cls, path: str, config: BackboneConfig) -> SquareImageProcessor:
        """wm-hub's Emu3 preprocessing: alpha on white, short side to ``image_size`` (bicubic), centre crop."""
        return SquareImageProcessor(size=config.image_size, square="crop")

    @property
    def vqmodel(self) -> Emu3VQVAE:
        """The VQ-VAE inside the LM (``model.model.vqmodel``)."""
        return self.model.model.vqmodel

    @property
    def image_tokenizer(self) -> Emu3VQVAE:
        return self.vqmodel

    @property
    def eol_token_id(self) -> int:
        """End-of-line token (``<|extra_200|>``) after each row of image codes."""
        return self.processor.token_id(EOL_TOKEN)

    @property
    def eof_token_id(self) -> int:
        """End-of-frame token (``<|extra_201|>``) after the last row."""
        return self.processor.token_id(EOF_TOKEN)

    # ----------------------------------------------------------------------------------------------------------
    # Image tokenizer
    # ----------------------------------------------------------------------------------------------------------
    def _encode_codes(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``Emu3VQVAE.encode`` for images, also returning the quant_conv output (pre-quantisation features)."""
        vq = self.vqmodel.eval()
        frames = pixel_values.to(vq.dtype).unsqueeze(1).repeat(1, vq.config.temporal_downsample_factor, 1, 1, 1)
        hidden = vq.encoder(frames)  # (B, T', C, h, w), T' = 1 for an image
        features = vq.quant_conv(hidden.permute(0, 2, 1, 3, 4)).permute(0, 2, 1, 3, 4)  # (B, T', D, h, w)
        codes = vq.quantize(features)  # (B, T', h, w)
        if codes.shape[1] != 1:
            raise RuntimeError(f"the Emu3 VQ returned {codes.shape[1]} latent frames for one image")
        return codes[:, 0].flatten(1), features[:, 0].flatten(2).transpose(1, 2)

    def _decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        height, width = self.image_grid
        return self.vqmodel.eval().decode(codes.reshape(-1, height, width))

    # ----------------------------------------------------------------------------------------------------------
    # Persistence
    # ----------------------------------------------------------------------------------------------------------
    def _save_image_tokenizer(self, save_directory: Path) -> None:
        """Nothing to write: the VQ is saved with the LM, the preprocessing with the processor."""

    @classmethod
    def from_pretrained(
        cls, path: str, config: BackboneConfig, processor: WorldModelProcessor, **model_kwargs: Any
    ) -> Emu3Backbone:
        """Load an Emu3 checkpoint in HF layout (e.g. ``BAAI/Emu3-Gen-hf``) or a folder saved by wm-hub.

        Args:
            path: Folder.
            config: wm-hub settings.
            processor: Its processor (:func:`~wm_hub.models.loading.load_backbone` reads it).
            **model_kwargs: For ``Emu3ForConditionalGeneration.from_pretrained`` (``dtype``, ``device_map``,
                ``attn_implementation``...).
        """
        model = Emu3ForConditionalGeneration.from_pretrained(path, **model_kwargs)
        return cls(model, processor, config)
