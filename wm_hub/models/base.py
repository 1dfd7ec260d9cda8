"""The interface every backbone implements.

Everything above ``wm_hub.models`` (data, training, bootstrapping, inference, evaluation) talks to a unified
vision-language model only through :class:`Backbone`, so Chameleon/Anole, Liquid and Emu3 are interchangeable.
A backbone owns three things: the language model (a ``transformers`` ``PreTrainedModel``), its text tokenizer and
its VQ image tokenizer. It turns images into LM token ids and back, and builds the exact IDM/FDM sequences.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import torch
from PIL import Image
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from wm_hub.models.logits_processors import ImageOnlyLogitsProcessor

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100
WM_HUB_CONFIG_KEY = "wm_hub"

ImageLike = Image.Image | torch.Tensor | Sequence[int]


@dataclass
class PromptFormat:
    """The instruction strings of the IDM/FDM training format.

    They are part of the recipe and are saved in the checkpoint's ``config.json`` (under ``wm_hub``) so that
    pipelines rebuild exactly the format the model was trained on.

    Args:
        fdm_instruction: Text before the source image of a forward-dynamics sequence.
        idm_instruction: Text after the two images of an inverse-dynamics sequence.
    """

    fdm_instruction: str = "Predict the next observation after the action."
    idm_instruction: str = "What action turns the first observation into the second?"


@dataclass
class BackboneConfig:
    """wm-hub settings stored in ``config.json`` under the ``wm_hub`` key of a saved backbone.

    Args:
        arch: Backbone family, one of ``chameleon``, ``liquid``, ``emu3``.
        image_size: Side of the square images the VQ tokenizer reads and writes.
        prompt: The IDM/FDM instruction strings.
        separator_token: Token between the conditioning part and the completion.
        image_token_offset: Liquid only: LM id of image code 0 (the text vocabulary size).
    """

    arch: str
    image_size: int = 512
    prompt: PromptFormat = field(default_factory=PromptFormat)
    separator_token: str | None = None
    image_token_offset: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> BackboneConfig:
        values = dict(values)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            logger.warning("Ignoring wm_hub config field(s) %s unknown to this wm-hub version", unknown)
            values = {key: value for key, value in values.items() if key in known}
        values["prompt"] = PromptFormat(**values.get("prompt", {}))
        return cls(**values)


@dataclass
class SequenceExample:
    """One training (or prompt) sequence.

    Attributes:
        input_ids: Token ids of the whole sequence.
        labels: ``input_ids`` with every position outside the completion set to ``-100``.
        source_image_positions: Indices in ``input_ids`` of the source image's code tokens (row-major).
        target_image_positions: Indices in ``input_ids`` of the target image's code tokens (row-major), empty for
            an FDM prompt without target.
    """

    input_ids: list[int]
    labels: list[int]
    source_image_positions: list[int]
    target_image_positions: list[int]


class Backbone(ABC):
    """A unified VLM seen as a world model: LM + text tokenizer + VQ image tokenizer.

    Subclasses implement the image tokenizer (``_encode``/``_decode``/``prequant_features``), the mapping between
    VQ codes and LM ids, and the image block layout, and call :meth:`_set_image_vocabulary` in ``__init__`` (the
    token grid, the image token ids, begin/end-of-image). Sequence building, saving and the generation layout are
    shared.

    Attributes:
        arch: The registry name of the backbone family.
        model: The causal language model (image tokens are ordinary vocabulary entries).
        tokenizer: The text tokenizer.
        config: wm-hub settings (image size, instruction strings...).
        trained_task: ``"idm"`` or ``"fdm"`` for a checkpoint wm-hub fine-tuned (its ``training_run.json``), set by
            :func:`~wm_hub.models.loading.load_backbone`; ``None`` for a base model or an unrecorded one.
    """

    arch: ClassVar[str]
    trained_task: str | None = None

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, config: BackboneConfig):
        self.model = model
        self.tokenizer = tokenizer
        self.config = config
        self.model.config.__dict__[WM_HUB_CONFIG_KEY] = config.to_dict()
        self.separator_token_id = self._token_id(config.separator_token)

    # ----------------------------------------------------------------------------------------------------------
    # Image tokenizer (per backend)
    # ----------------------------------------------------------------------------------------------------------
    def _set_image_vocabulary(self, grid: tuple[int, int], image_token_ids: torch.Tensor, boi: str, eoi: str) -> None:
        """Record the image side of the vocabulary (every subclass calls this once in ``__init__``).

        Args:
            grid: Height and width of the token grid of one image.
            image_token_ids: LM ids of all image code tokens.
            boi: The begin-of-image token (text form, looked up in the tokenizer).
            eoi: The end-of-image token.
        """
        self._grid = grid
        self._image_token_ids = image_token_ids.sort().values
        self._boi = self._token_id(boi)
        self._eoi = self._token_id(eoi)

    @property
    def image_grid(self) -> tuple[int, int]:
        """Height and width of the token grid of one image."""
        return self._grid

    @property
    def image_seq_len(self) -> int:
        """Number of image code tokens per image (excluding boi/eoi and layout tokens such as Emu3's EOL)."""
        height, width = self.image_grid
        return height * width

    @property
    def image_token_ids(self) -> torch.Tensor:
        """LM ids of all image code tokens, sorted ascending (LongTensor)."""
        return self._image_token_ids

    @cached_property
    def _image_token_id_set(self) -> frozenset[int]:
        return frozenset(self.image_token_ids.tolist())

    @abstractmethod
    def codes_to_ids(self, codes: torch.Tensor) -> torch.Tensor:
        """Map VQ codebook indices to LM token ids (same shape)."""

    @abstractmethod
    def ids_to_codes(self, ids: torch.Tensor) -> torch.Tensor:
        """Map LM image token ids to VQ codebook indices (same shape)."""

    @abstractmethod
    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Images -> pixel values ``(B, 3, S, S)`` in [-1, 1], as the backbone's own image processor does."""

    @abstractmethod
    def _encode_codes(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pixel values -> (codes ``(B, L)``, pre-quantisation features ``(B, L, D)``), both in token order."""

    @abstractmethod
    def _decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``(B, L)`` -> pixel values ``(B, 3, S, S)`` in [-1, 1]."""

    @property
    @abstractmethod
    def image_tokenizer(self) -> torch.nn.Module:
        """The frozen VQ model (encoder, quantizer and decoder)."""

    # ----------------------------------------------------------------------------------------------------------
    # Special tokens and the image block layout
    # ----------------------------------------------------------------------------------------------------------
    @property
    def bos_token_id(self) -> int:
        return self.tokenizer.bos_token_id

    @property
    def eos_token_id(self) -> int:
        return self.tokenizer.eos_token_id

    @property
    def pad_token_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return pad if pad is not None else self.eos_token_id

    @property
    def boi_token_id(self) -> int:
        """Begin-of-image token."""
        return self._boi

    @property
    def eoi_token_id(self) -> int:
        """End-of-image token."""
        return self._eoi

    def image_prefix_ids(self) -> list[int]:
        """Tokens that open an image block (a generation prompt for an image ends with them)."""
        return [self.boi_token_id]

    def image_body_ids(self, image_ids: Sequence[int]) -> list[int]:
        """The image's code tokens as laid out inside the block (Emu3 adds an end-of-line token per row)."""
        return list(image_ids)

    def image_suffix_ids(self) -> list[int]:
        """Tokens that close an image block."""
        return [self.eoi_token_id]

    def generation_layout(self) -> torch.Tensor:
        """What image generation must emit after :meth:`image_prefix_ids`, step by step.

        Returns:
            LongTensor of length ``len(body) + len(suffix)``: ``-1`` where an image code is sampled, otherwise the
            token id that is forced at that step.
        """
        free = -1
        body = self.image_body_ids([free] * self.image_seq_len)
        return torch.tensor(body + self.image_suffix_ids(), dtype=torch.long)

    # ----------------------------------------------------------------------------------------------------------
    # Public image API
    # ----------------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def encode_images(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Tokenize images into LM ids.

        Args:
            images: PIL images of any size and mode.

        Returns:
            LongTensor ``(B, image_seq_len)`` of LM token ids, row-major.
        """
        codes, _ = self._encode_codes(self._pixels(images))
        return self.codes_to_ids(codes).long().cpu()

    @torch.no_grad()
    def prequant_features(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Pre-quantisation VQ features ``(B, image_seq_len, D)`` in token order (recognition weights)."""
        _, features = self._encode_codes(self._pixels(images))
        return features.float().cpu()

    @torch.no_grad()
    def encode_images_with_features(self, images: Sequence[Image.Image]) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`encode_images` and :meth:`prequant_features` in one encoder pass."""
        codes, features = self._encode_codes(self._pixels(images))
        return self.codes_to_ids(codes).long().cpu(), features.float().cpu()

    def image_fingerprint(self) -> str:
        """A hash of everything that decides a picture's LM ids: VQ weights, preprocessing, vocabulary, image settings.

        Two backbones with equal fingerprints turn any picture into the same ids, so ids made by one are valid input
        of the other (a verifier scores an FDM's sampled ids as they are; an FDM reuses an IDM's encoded data). The
        prompts are left out: they decide sequences, not picture tokens. Computed once: the VQ model is frozen.
        """
        cached = getattr(self, "_image_fingerprint", None)
        if cached is not None:
            return cached
        digest = hashlib.sha256()
        settings = {key: value for key, value in self.config.to_dict().items() if key != "prompt"}
        digest.update(repr(sorted(settings.items())).encode())
        digest.update(repr(sorted(self.tokenizer.get_vocab().items())).encode())
        for name, tensor in sorted(self.image_tokenizer.state_dict().items()):
            digest.update(name.encode())
            digest.update(str(tensor.dtype).encode())
            digest.update(tensor.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
        processor = getattr(self, "image_processor", None)
        if processor is not None:
            digest.update(processor.to_json_string().encode())
        self._image_fingerprint = digest.hexdigest()
        return self._image_fingerprint

    @torch.no_grad()
    def decode_images(self, image_ids: torch.Tensor) -> list[Image.Image]:
        """Turn LM image token ids ``(B, image_seq_len)`` back into PIL images of ``config.image_size``."""
        image_ids = torch.as_tensor(image_ids).reshape(-1, self.image_seq_len)
        invalid = ~torch.isin(image_ids, self.image_token_ids.to(image_ids.device))
        if invalid.any():
            row = int(invalid.any(dim=1).nonzero()[0])
            raise ValueError(f"decode_images: row {row} holds ids outside the image vocabulary")
        codes = self.ids_to_codes(image_ids).to(self._vq_device)
        pixels = self._decode_codes(codes)
        return pixels_to_pil(pixels)

    @property
    def _vq_device(self) -> torch.device:
        return next(self.image_tokenizer.parameters()).device

    def _pixels(self, images: Sequence[Image.Image]) -> torch.Tensor:
        if isinstance(images, Image.Image):
            images = [images]
        for index, image in enumerate(images):
            if not isinstance(image, Image.Image):
                raise TypeError(f"encode_images: item {index} is {type(image).__name__}, expected a PIL image")
        vq_param = next(self.image_tokenizer.parameters())
        return self.preprocess(list(images)).to(device=vq_param.device, dtype=vq_param.dtype)

    def _as_ids(self, image: ImageLike) -> list[int]:
        if isinstance(image, Image.Image):
            return self.encode_images([image])[0].tolist()
        ids = torch.as_tensor(image).reshape(-1).tolist()
        if len(ids) != self.image_seq_len:
            raise ValueError(f"expected {self.image_seq_len} image token ids, got {len(ids)}")
        return ids

    def _text_ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"] if text else []

    def _token_id(self, token: str | None) -> int | None:
        if token is None:
            return None
        token_id = self.tokenizer.convert_tokens_to_ids(token)
        if token_id is None or token_id == self.tokenizer.unk_token_id:
            raise ValueError(f"token {token!r} is not in the tokenizer's vocabulary")
        return token_id

    # ----------------------------------------------------------------------------------------------------------
    # Sequences
    # ----------------------------------------------------------------------------------------------------------
    def _image_block(self, ids: list[int], offset: int) -> tuple[list[int], list[int]]:
        """An image block starting at ``offset`` and the positions of its code tokens."""
        prefix = self.image_prefix_ids()
        body = self.image_body_ids(ids)
        positions = [offset + len(prefix) + i for i, tok in enumerate(body) if tok in self._image_token_id_set]
        return prefix + body + self.image_suffix_ids(), positions

    def build_fdm_sequence(self, source: ImageLike, action: str, target: ImageLike | None = None) -> SequenceExample:
        """Forward-dynamics sequence ``[bos] instr [boi] source [eoi] action [sep] [boi] target [eoi] [eos]``.

        Args:
            source: Source observation (PIL image or its ``image_seq_len`` LM ids).
            action: Action text.
            target: Next observation; ``None`` builds the generation prompt, which ends with the image prefix.

        Returns:
            The sequence; labels cover the target's code tokens and the closing tokens only.
        """
        ids = [self.bos_token_id] + self._text_ids(self.config.prompt.fdm_instruction)
        block, source_pos = self._image_block(self._as_ids(source), len(ids))
        ids += block + self._text_ids(action) + [self.separator_token_id] + self.image_prefix_ids()
        prompt_len = len(ids)
        if target is None:
            return SequenceExample(ids, [IGNORE_INDEX] * prompt_len, source_pos, [])
        body = self.image_body_ids(self._as_ids(target))
        target_pos = [prompt_len + i for i, tok in enumerate(body) if tok in self._image_token_id_set]
        ids += body + self.image_suffix_ids() + [self.eos_token_id]
        labels = [IGNORE_INDEX] * prompt_len + ids[prompt_len:]
        return SequenceExample(ids, labels, source_pos, target_pos)

    def build_idm_sequence(self, source: ImageLike, target: ImageLike, action: str | None = None) -> SequenceExample:
        """Inverse-dynamics sequence ``[bos] [boi] source [eoi] [boi] target [eoi] instr [sep] action [eos]``.

        Args:
            source: Source observation (PIL image or LM ids).
            target: Next observation (PIL image or LM ids).
            action: Action text; ``None`` builds the generation prompt (ends with the separator).

        Returns:
            The sequence; labels cover the action tokens and ``eos`` only.
        """
        ids = [self.bos_token_id]
        block, source_pos = self._image_block(self._as_ids(source), len(ids))
        ids += block
        block, target_pos = self._image_block(self._as_ids(target), len(ids))
        ids += block + self._text_ids(self.config.prompt.idm_instruction) + [self.separator_token_id]
        prompt_len = len(ids)
        if action is not None:
            ids += self._text_ids(action) + [self.eos_token_id]
        labels = [IGNORE_INDEX] * prompt_len + ids[prompt_len:]
        return SequenceExample(ids, labels, source_pos, target_pos)

    # ----------------------------------------------------------------------------------------------------------
    # Generation
    # ----------------------------------------------------------------------------------------------------------
    def image_logits_processor(self, prompt_length: int):
        """An :class:`~wm_hub.models.logits_processors.ImageOnlyLogitsProcessor` for prompts of this length."""
        return ImageOnlyLogitsProcessor(
            prompt_length=prompt_length,
            layout=self.generation_layout(),
            allowed_ids=self.image_token_ids,
            fallback_token_id=self.eos_token_id,
        )

    # ----------------------------------------------------------------------------------------------------------
    # Persistence and placement
    # ----------------------------------------------------------------------------------------------------------
    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> Backbone:
        """Move the LM (and the VQ model, kept in float32 unless asked) to a device/dtype."""
        self.model.to(device=device, dtype=dtype)
        self.image_tokenizer.to(device=device)
        return self

    @property
    def device(self) -> torch.device:
        return self.model.device

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs: Any) -> None:
        """Save LM, tokenizer, image tokenizer and wm-hub settings so :func:`load_backbone` restores them."""
        save_directory = Path(save_directory)
        self.model.config.__dict__[WM_HUB_CONFIG_KEY] = self.config.to_dict()
        self.model.save_pretrained(save_directory, **kwargs)
        self.tokenizer.save_pretrained(save_directory)
        self._save_image_tokenizer(save_directory)

    @abstractmethod
    def _save_image_tokenizer(self, save_directory: Path) -> None:
        """Write the image tokenizer (and its preprocessing config) next to the LM."""

    @classmethod
    @abstractmethod
    def from_pretrained(cls, path: str, config: BackboneConfig, **kwargs: Any) -> Backbone:
        """Load a backbone of this family from a local folder or Hub id."""


def pixels_to_pil(pixels: torch.Tensor) -> list[Image.Image]:
    """Pixel values ``(B, 3, H, W)`` in [-1, 1] -> RGB PIL images."""
    array = ((pixels.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    array = array.permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(item) for item in array]


def read_backbone_config(config_dict: dict[str, Any]) -> BackboneConfig | None:
    """The wm-hub settings stored in a ``config.json`` dict, or ``None`` for a stock checkpoint."""
    values = config_dict.get(WM_HUB_CONFIG_KEY)
    return BackboneConfig.from_dict(values) if values else None
