"""Emu3: transformers' own ``Emu3ForConditionalGeneration`` and the VQ-VAE it contains.

Emu3 needs no patching: its LM does not suppress image-token logits, and ``model.model.vqmodel`` (an
``Emu3VQVAE``) has both the encoder and the decoder, so the checkpoint alone turns pixels into tokens and back.

An image block in the LM sequence is laid out exactly as ``Emu3Processor`` writes it::

    <|image start|> {h}*{w} <|image token|>  (w visual tokens, <|extra_200|>) x h  <|extra_201|> <|image end|>

i.e. the grid size as text, one end-of-line token (``<|extra_200|>``) after every row of codes, and an end-of-frame
token (``<|extra_201|>``) before ``<|image end|>``. ``image_seq_len`` counts the codes only (``h * w``); the layout
tokens are added by :meth:`Emu3Backbone.image_body_ids` / :meth:`Emu3Backbone.image_suffix_ids` and forced during
generation. A 512 px image costs 64 * 65 + 7 = 4167 tokens.

Notes:
    * The VQ model lives inside the LM, so it follows the LM's device and dtype (``Backbone.to(dtype=bf16)`` casts
      it too, as transformers' Emu3 does). Load with ``dtype=torch.float32`` for float32 tokenisation.
    * It is frozen (``requires_grad=False``) and always run in eval mode (its temporal blocks use BatchNorm).
    * LoRA: the VQ's attention blocks also have ``q_proj``/``k_proj``/``v_proj`` modules, so ``target_modules`` given
      as plain names would adapt the VQ decoder too; restrict LoRA to the text model with a regex such as
      ``r"model\\.text_model\\..*\\.(q_proj|k_proj|v_proj|o_proj)"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps
from transformers import AutoTokenizer, Emu3ForConditionalGeneration
from transformers.models.emu3.modeling_emu3 import Emu3ImageVocabularyMapping, Emu3VQVAE

from wm_hub.models.base import Backbone, BackboneConfig

BOI_TOKEN = "<|image start|>"
EOI_TOKEN = "<|image end|>"
IMAGE_WRAPPER_TOKEN = "<|image token|>"
EOL_TOKEN = "<|extra_200|>"
EOF_TOKEN = "<|extra_201|>"
SEPARATOR_TOKEN = "<|extra_0|>"


def square_rgb(image: Image.Image, size: int) -> Image.Image:
    """RGB (alpha blended on white), short side resized to ``size`` (bicubic) and centre-cropped to a square."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    image = image.convert("RGB")
    return ImageOps.fit(image, (size, size), method=Image.Resampling.BICUBIC, centering=(0.5, 0.5))


class Emu3Backbone(Backbone):
    """Emu3 (Emu3-Gen / Emu3-Chat in HF layout, and tiny presets of the same layout).

    Args:
        model: ``Emu3ForConditionalGeneration``; its ``model.vqmodel`` is the image tokenizer.
        tokenizer: Emu3's tokenizer (visual tokens are ``<|visual token 000000|>``... vocabulary entries).
        config: wm-hub settings; ``separator_token`` defaults to ``<|extra_0|>``.

    Raises:
        ValueError: If ``config.image_size`` is not a multiple of the VQ's spatial factor, or the vocabulary and the
            codebook disagree.
    """

    arch = "emu3"

    def __init__(self, model: Emu3ForConditionalGeneration, tokenizer, config: BackboneConfig):
        if config.separator_token is None:
            config.separator_token = SEPARATOR_TOKEN
        super().__init__(model, tokenizer, config)
        self.vqmodel.eval().requires_grad_(False)
        factor = self.vqmodel.vision_spatial_factor
        if config.image_size % factor:
            raise ValueError(
                f"image_size {config.image_size} is not a multiple of the Emu3 VQ spatial factor {factor}"
            )
        side = config.image_size // factor
        height, width = side, side

        mapping = Emu3ImageVocabularyMapping(model.config.vocabulary_map)
        num_codes = self.vqmodel.config.codebook_size
        if sorted(mapping.img2bpe) != list(range(num_codes)):
            raise ValueError(
                f"the vocabulary has {len(mapping.img2bpe)} visual tokens but the Emu3 VQ has {num_codes} codes"
            )
        self._code_to_id = torch.tensor([mapping.img2bpe[code] for code in range(num_codes)], dtype=torch.long)
        self._id_to_code = torch.full((model.config.text_config.vocab_size,), -1, dtype=torch.long)
        self._id_to_code[self._code_to_id] = torch.arange(num_codes)
        self._set_image_vocabulary((height, width), self._code_to_id, BOI_TOKEN, EOI_TOKEN)
        self._eol = self._token_id(EOL_TOKEN)
        self._eof = self._token_id(EOF_TOKEN)
        self._prefix = [self._boi, *self._text_ids(f"{height}*{width}"), self._token_id(IMAGE_WRAPPER_TOKEN)]

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
        return self._eol

    @property
    def eof_token_id(self) -> int:
        """End-of-frame token (``<|extra_201|>``) after the last row."""
        return self._eof

    # ----------------------------------------------------------------------------------------------------------
    # Image block layout
    # ----------------------------------------------------------------------------------------------------------
    def image_prefix_ids(self) -> list[int]:
        """``<|image start|>``, the grid size as text (``"{h}*{w}"``) and ``<|image token|>``."""
        return list(self._prefix)

    def image_body_ids(self, image_ids: Sequence[int]) -> list[int]:
        """The ``h * w`` codes row by row, each row followed by the end-of-line token.

        Args:
            image_ids: ``image_seq_len`` ids (any values, e.g. ``-1`` placeholders for the generation layout).
        """
        image_ids = list(image_ids)
        height, width = self.image_grid
        if len(image_ids) != height * width:
            raise ValueError(f"expected {height * width} image token ids, got {len(image_ids)}")
        body: list[int] = []
        for row in range(height):
            body += image_ids[row * width : (row + 1) * width] + [self._eol]
        return body

    def image_suffix_ids(self) -> list[int]:
        """End-of-frame then ``<|image end|>``."""
        return [self._eof, self._eoi]

    # ----------------------------------------------------------------------------------------------------------
    # Image tokenizer
    # ----------------------------------------------------------------------------------------------------------
    def codes_to_ids(self, codes: torch.Tensor) -> torch.Tensor:
        return self._code_to_id.to(codes.device)[codes.long()]

    def ids_to_codes(self, ids: torch.Tensor) -> torch.Tensor:
        return self._id_to_code.to(ids.device)[ids.long()]

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        size = self.config.image_size
        arrays = [np.asarray(square_rgb(image, size), dtype=np.float32) for image in images]
        pixels = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
        return pixels / 127.5 - 1.0  # Emu3: rescale 1/255, mean 0.5, std 0.5

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
        """Nothing to write: the VQ is saved with the LM, the preprocessing settings with the wm-hub config."""

    @classmethod
    def from_pretrained(cls, path: str, config: BackboneConfig, **model_kwargs: Any) -> Emu3Backbone:
        """Load an Emu3 checkpoint in HF layout (e.g. ``BAAI/Emu3-Gen-hf``) or a folder saved by wm-hub.

        Args:
            path: Folder or Hub id.
            config: wm-hub settings.
            **model_kwargs: For ``Emu3ForConditionalGeneration.from_pretrained`` (``dtype``, ``device_map``,
                ``attn_implementation``...).
        """
        model = Emu3ForConditionalGeneration.from_pretrained(path, **model_kwargs)
        tokenizer = AutoTokenizer.from_pretrained(path)
        return cls(model, tokenizer, config)
