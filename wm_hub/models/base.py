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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from PIL import Image
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from wm_hub.models.image_processing import eight_bit
from wm_hub.models.logits_processors import ImageOnlyLogitsProcessor
from wm_hub.models.processing import IGNORE_INDEX, PromptFormat, SequenceExample, WorldModelProcessor

__all__ = ["IGNORE_INDEX", "Backbone", "BackboneConfig", "ImageLike", "PromptFormat", "SequenceExample"]

logger = logging.getLogger(__name__)

WM_HUB_CONFIG_KEY = "wm_hub"

ImageLike = Image.Image | torch.Tensor | Sequence[int]


# Settings wm-hub once kept in config.json and now saves with the processor (processor_config.json): read from an
# older checkpoint's config.json, they become the processor's settings.
PROCESSOR_SETTINGS_IN_OLD_CONFIGS = ("prompt", "separator_token")


@dataclass
class BackboneConfig:
    """wm-hub settings of the model itself, stored in ``config.json`` under the ``wm_hub`` key of a saved backbone.

    The sequence format (instructions, separator, image block layout) is the processor's
    (:class:`~wm_hub.models.processing.WorldModelProcessor`, ``processor_config.json``).

    Args:
        arch: Backbone family, one of ``chameleon``, ``liquid``, ``emu3``.
        image_size: Side of the square images the VQ tokenizer reads and writes.
        image_token_offset: Liquid only: LM id of image code 0 (the text vocabulary size).
    """

    arch: str
    image_size: int = 512
    image_token_offset: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> BackboneConfig:
        """Read saved settings (an older checkpoint's processor settings are :func:`read_backbone_config`'s)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known - set(PROCESSOR_SETTINGS_IN_OLD_CONFIGS))
        if unknown:
            logger.warning("Ignoring wm_hub config field(s) %s unknown to this wm-hub version", unknown)
        return cls(**{key: value for key, value in values.items() if key in known})


class Backbone(ABC):
    """A unified VLM seen as a world model: LM + processor (text tokenizer, image processor, sequence format) + VQ.

    Subclasses implement the VQ image tokenizer (``_encode_codes``/``_decode_codes``, :attr:`image_tokenizer`) and
    call :meth:`_set_image_vocabulary` in ``__init__`` (the token grid, the code -> LM id table, the tokens around
    an image block). Code/id mapping, preprocessing, sequence building (delegated to the processor), saving and
    the generation layout are shared.

    Attributes:
        arch: The registry name of the backbone family.
        separator_token: The family's default separator between the conditioning part and the completion.
        model: The causal language model (image tokens are ordinary vocabulary entries).
        processor: The :class:`~wm_hub.models.processing.WorldModelProcessor` saved with the checkpoint.
        config: wm-hub settings of the model (family, image size...).
        trained_task: ``"idm"`` or ``"fdm"`` for a checkpoint wm-hub fine-tuned (its ``training_run.json``), set by
            :func:`~wm_hub.models.loading.load_backbone`; ``None`` for a base model or an unrecorded one.
    """

    arch: ClassVar[str]
    separator_token: ClassVar[str]
    trained_task: str | None = None

    def __init__(self, model: PreTrainedModel, processor: WorldModelProcessor, config: BackboneConfig):
        self.model = model
        self.processor = processor
        self.config = config
        self.model.config.__dict__[WM_HUB_CONFIG_KEY] = config.to_dict()
        if processor.separator_token is None:
            processor.separator_token = self.separator_token
        processor.token_id(processor.separator_token)  # an unknown separator fails here, not in the first sequence

    @classmethod
    @abstractmethod
    def default_image_processor(cls, path: str, config: BackboneConfig) -> Any:
        """The image processor of a checkpoint that was not saved by wm-hub (a stock one)."""

    # ----------------------------------------------------------------------------------------------------------
    # Vocabulary
    # ----------------------------------------------------------------------------------------------------------
    def _set_image_vocabulary(
        self,
        grid: tuple[int, int],
        code_to_id: torch.Tensor,
        start: Sequence[str],
        end: Sequence[str],
        row_end: str | None = None,
    ) -> None:
        """Record the image side of the vocabulary (every subclass calls this once in ``__init__``).

        Args:
            grid: Height and width of the token grid of one image.
            code_to_id: LM id of each VQ code (index = code).
            start: Tokens that open an image block.
            end: Tokens that close an image block.
            row_end: Token after every row of codes (Emu3), or ``None``.
        """
        self.processor.set_layout(grid, start, end, row_end)
        self._grid = tuple(grid)
        self._code_to_id = code_to_id.long()
        self._id_to_code = torch.full((int(code_to_id.max()) + 1,), -1, dtype=torch.long)
        self._id_to_code[self._code_to_id] = torch.arange(len(code_to_id))
        self._image_token_ids = self._code_to_id.sort().values

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        """The text tokenizer (the processor's)."""
        return self.processor.tokenizer

    @tokenizer.setter
    def tokenizer(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self.processor.tokenizer = tokenizer

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

    def codes_to_ids(self, codes: torch.Tensor) -> torch.Tensor:
        """Map VQ codebook indices to LM token ids (same shape)."""
        return self._code_to_id.to(codes.device)[codes.long()]

    def ids_to_codes(self, ids: torch.Tensor) -> torch.Tensor:
        """Map LM image token ids to VQ codebook indices (same shape; ``-1`` for an id that is no image code)."""
        ids = ids.long()
        table = self._id_to_code.to(ids.device)
        inside = (ids >= 0) & (ids < len(table))
        return torch.where(inside, table[ids.clamp(max=len(table) - 1)], -1)

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Images -> pixel values ``(B, 3, S, S)`` in [-1, 1], through the processor's image processor (16-bit
        pictures scaled to 8 bits first, see :func:`~wm_hub.models.image_processing.eight_bit`)."""
        images = [eight_bit(image) for image in images]
        return self.processor.image_processor(images=images, return_tensors="pt")["pixel_values"]

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
    # Special tokens and the image block layout (the processor's)
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
    def separator_token_id(self) -> int:
        """Token between the conditioning part and the completion."""
        return self.processor.separator_token_id

    @property
    def boi_token_id(self) -> int:
        """Begin-of-image token."""
        return self.processor.token_id(self.processor.image_start[0])

    @property
    def eoi_token_id(self) -> int:
        """End-of-image token."""
        return self.processor.token_id(self.processor.image_end[-1])

    def image_prefix_ids(self) -> list[int]:
        """Tokens that open an image block (a generation prompt for an image ends with them)."""
        return self.processor.image_prefix_ids()

    def image_body_ids(self, image_ids: Sequence[int]) -> list[int]:
        """The image's code tokens as laid out inside the block (Emu3 adds an end-of-line token per row)."""
        return self.processor.image_body_ids(image_ids)

    def image_suffix_ids(self) -> list[int]:
        """Tokens that close an image block."""
        return self.processor.image_suffix_ids()

    def generation_layout(self) -> torch.Tensor:
        """What image generation must emit after :meth:`image_prefix_ids`, step by step.

        Returns:
            LongTensor of length ``len(body) + len(suffix)``: ``-1`` where an image code is sampled, otherwise the
            token id that is forced at that step.
        """
        return self.processor.generation_layout()

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
        digest.update(repr(sorted(self.config.to_dict().items())).encode())
        digest.update(repr(sorted(self.tokenizer.get_vocab().items())).encode())
        for name, tensor in sorted(self.image_tokenizer.state_dict().items()):
            digest.update(name.encode())
            digest.update(str(tensor.dtype).encode())
            digest.update(tensor.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
        digest.update(self.processor.image_processor.to_json_string().encode())
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
        return self.check_image_ids(image).tolist()

    def check_image_ids(self, ids: Any, what: str = "image ids") -> torch.Tensor:
        """``ids`` as a flat CPU LongTensor of this model's ``image_seq_len`` LM image ids (an observation as ids).

        Raises:
            ValueError: Not integers, not ``image_seq_len`` of them, or an id that is no image code of this model
                (text ids, another model's codes, VQ codebook indices instead of LM ids), named with ``what``.
        """
        ids = torch.as_tensor(ids).reshape(-1).cpu()
        if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
            raise ValueError(f"{what}: LM image ids are integers, got a {ids.dtype} tensor")
        if ids.numel() != self.image_seq_len:
            raise ValueError(f"{what}: expected {self.image_seq_len} image token ids, got {ids.numel()}")
        ids = ids.long()
        foreign = ~torch.isin(ids, self.image_token_ids)
        if foreign.any():
            first = int(foreign.nonzero()[0])
            raise ValueError(
                f"{what}: id {int(ids[first])} at position {first} is no image code of this model (its image ids run "
                f"{int(self.image_token_ids[0])}..{int(self.image_token_ids[-1])}; codes_to_ids maps VQ codebook "
                "indices to them)"
            )
        return ids

    @property
    def max_sequence_length(self) -> int | None:
        """The LM's context, ``max_position_embeddings`` of its (text) config; ``None`` where the config has none."""
        return getattr(self.model.config.get_text_config(), "max_position_embeddings", None)

    def check_sequence_length(self, length: int, what: str) -> None:
        """Refuse a sequence longer than :attr:`max_sequence_length` (positions past it were never trained, and
        models with learned positions cannot embed them at all).

        Raises:
            ValueError: Naming ``what``, the length and the limit.
        """
        limit = self.max_sequence_length
        if limit is not None and length > limit:
            raise ValueError(f"{what}: {length} tokens, longer than the model's context of {limit} positions")

    def images_as_ids(self, images: Sequence[ImageLike]) -> list[ImageLike]:
        """``images`` with every PIL picture replaced by its LM ids, all encoded in one VQ encoder batch (ids given
        are kept as they are): what batched callers hand to ``build_*_sequence`` instead of encoding row by row."""
        pictures = [index for index, image in enumerate(images) if isinstance(image, Image.Image)]
        result = list(images)
        if pictures:
            for index, ids in zip(pictures, self.encode_images([images[index] for index in pictures])):
                result[index] = ids
        return result

    def _text_ids(self, text: str) -> list[int]:
        return self.processor.text_ids(text)

    # ----------------------------------------------------------------------------------------------------------
    # Sequences (built by the processor from the pictures' ids)
    # ----------------------------------------------------------------------------------------------------------
    def build_fdm_sequence(self, source: ImageLike, action: str, target: ImageLike | None = None) -> SequenceExample:
        """Forward-dynamics sequence ``[bos] instr [boi] source [eoi] action [sep] [boi] target [eoi] [eos]``.

        Args:
            source: Source observation (PIL image or its ``image_seq_len`` LM ids).
            action: Action text.
            target: Next observation; ``None`` builds the generation prompt, which ends with the image prefix.

        Returns:
            The sequence; labels cover the target's code tokens and the closing tokens only.
        """
        target_ids = None if target is None else self._as_ids(target)
        return self.processor.build_fdm_sequence(self._as_ids(source), action, target_ids)

    def build_idm_sequence(
        self, source: ImageLike, target: ImageLike, action: str | None = None, rationale: str | None = None
    ) -> SequenceExample:
        """Inverse-dynamics sequence ``[bos] [boi] source [eoi] [boi] target [eoi] instr [sep] action [eos]``.

        Args:
            source: Source observation (PIL image or LM ids).
            target: Next observation (PIL image or LM ids).
            action: Action text; ``None`` builds the generation prompt (ends with the separator).
            rationale: What an IDM that reasons first (``idm_rationale``) writes before the action.

        Returns:
            The sequence; labels cover the completion's tokens (rationale, action) and ``eos`` only.
        """
        return self.processor.build_idm_sequence(self._as_ids(source), self._as_ids(target), action, rationale)

    @property
    def writes_rationale(self) -> bool:
        """Whether this IDM writes a rationale before the action (``idm_rationale`` in its processor)."""
        return self.processor.idm_rationale

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
        """Save LM, processor (``processor_config.json``, tokenizer) and image tokenizer for :func:`load_backbone`."""
        save_directory = Path(save_directory)
        self.model.config.__dict__[WM_HUB_CONFIG_KEY] = self.config.to_dict()
        self.model.save_pretrained(save_directory, **kwargs)
        self.processor.save_pretrained(save_directory)
        self._save_image_tokenizer(save_directory)

    @abstractmethod
    def _save_image_tokenizer(self, save_directory: Path) -> None:
        """Write an image tokenizer kept outside the LM's weights (the VQGAN of Chameleon and Liquid)."""

    @classmethod
    @abstractmethod
    def from_pretrained(
        cls, path: str, config: BackboneConfig, processor: WorldModelProcessor, **kwargs: Any
    ) -> Backbone:
        """Load a backbone of this family from a local folder (its processor already loaded)."""


def pixels_to_pil(pixels: torch.Tensor) -> list[Image.Image]:
    """Pixel values ``(B, 3, H, W)`` in [-1, 1] -> RGB PIL images."""
    array = ((pixels.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    array = array.permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(item) for item in array]


def read_backbone_config(config_dict: dict[str, Any]) -> tuple[BackboneConfig | None, dict[str, Any]]:
    """The wm-hub settings stored in a ``config.json`` dict (``None`` for a stock checkpoint), and the processor
    settings an older wm-hub checkpoint kept there (instructions, separator) as ``WorldModelProcessor`` arguments."""
    values = config_dict.get(WM_HUB_CONFIG_KEY)
    if not values:
        return None, {}
    return BackboneConfig.from_dict(values), old_processor_settings(values)


def old_processor_settings(values: dict[str, Any]) -> dict[str, Any]:
    """``WorldModelProcessor`` arguments from settings saved before the processor existed (``prompt``...)."""
    settings = dict(values.get("prompt") or {})
    if values.get("separator_token") is not None:
        settings["separator_token"] = values["separator_token"]
    return settings
