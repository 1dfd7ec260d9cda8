"""``WorldModelProcessor``: the IDM/FDM sequence format of a checkpoint, saved with it as ``processor_config.json``.

A ``transformers`` ``ProcessorMixin`` that holds the text tokenizer, the image processor (how pictures are read
before VQ tokenisation) and everything else that decides a sequence: the instruction strings, the separator
between the conditioning part and the completion, and the layout of an image block (the tokens that open and close
it, Emu3's end-of-line token after each row of codes). ``save_pretrained`` writes it beside the weights, and
``WorldModelProcessor.from_pretrained(checkpoint)`` reads it back without the model, so sequences can be built (or
checked) from pre-tokenized image ids alone. The backbone owns the VQ tokenizer and sets the layout its vocabulary
implies (:meth:`~wm_hub.models.base.Backbone.__init__`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoImageProcessor, AutoTokenizer, ProcessorMixin

from wm_hub.models.image_processing import SquareImageProcessor
from wm_hub.models.model_folder import PROCESSOR_CONFIG

IGNORE_INDEX = -100
FREE = -1  # a step of the generation layout where an image code is sampled
# Between the rationale and the action of an IDM that reasons first (``idm_rationale``).
RATIONALE_SEPARATOR = " => "


@dataclass
class PromptFormat:
    """The instruction strings of the IDM/FDM training format (saved in ``processor_config.json``).

    Args:
        fdm_instruction: Text before the source image of a forward-dynamics sequence.
        idm_instruction: Text after the two images of an inverse-dynamics sequence.
        idm_rationale: The IDM writes a rationale before the action (``"<rationale> => <action>"``), e.g. the
            changed cells of the sandbox; ``False`` (the paper): the action alone.
    """

    fdm_instruction: str = "Predict the next observation after the action."
    idm_instruction: str = "What action turns the first observation into the second?"
    idm_rationale: bool = False


def idm_completion(action: str, rationale: str | None, with_rationale: bool) -> str:
    """The text an IDM is trained to write: the action, or ``"<rationale> => <action>"`` with ``with_rationale``.

    Raises:
        ValueError: ``with_rationale`` and no rationale.
    """
    if not with_rationale:
        return action
    if rationale is None:
        raise ValueError(
            "this IDM writes a rationale before the action (idm_rationale: true), but the row has none: train it "
            "on triplets with a `rationale` column (the shapes_world builder writes the changed cells)"
        )
    return f"{rationale}{RATIONALE_SEPARATOR}{action}"


def split_idm_completion(text: str, with_rationale: bool) -> tuple[str | None, str]:
    """``(rationale, action)`` of an IDM's generated text (stripped); ``(None, text)`` without ``with_rationale``.

    The action is what follows the last separator; a text without one (cut short) has the empty action.
    """
    if not with_rationale:
        return None, text.strip()
    rationale, separator, action = text.rpartition(RATIONALE_SEPARATOR.strip())
    if not separator:
        return text.strip(), ""
    return rationale.strip(), action.strip()


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


class WorldModelProcessor(ProcessorMixin):
    """Tokenizer, image processor and the IDM/FDM sequence format of one checkpoint.

    Args:
        image_processor: How pictures are read (``ChameleonImageProcessor``, or :class:`SquareImageProcessor` for
            Liquid and Emu3).
        tokenizer: The text tokenizer.
        fdm_instruction: Text before the source image of a forward-dynamics sequence.
        idm_instruction: Text after the two images of an inverse-dynamics sequence.
        idm_rationale: The IDM writes a rationale before the action (:class:`PromptFormat`).
        separator_token: Token between the conditioning part and the completion.
        image_grid: Height and width of the token grid of one image.
        image_start: Tokens that open an image block (a generation prompt for an image ends with them).
        image_row_end: Token after every row of codes (Emu3), or ``None``.
        image_end: Tokens that close an image block.
    """

    def __init__(
        self,
        image_processor: Any = None,
        tokenizer: Any = None,
        fdm_instruction: str = PromptFormat.fdm_instruction,
        idm_instruction: str = PromptFormat.idm_instruction,
        idm_rationale: bool = False,
        separator_token: str | None = None,
        image_grid: Sequence[int] | None = None,
        image_start: Sequence[str] | None = None,
        image_row_end: str | None = None,
        image_end: Sequence[str] | None = None,
        **kwargs: Any,
    ):
        self.fdm_instruction = fdm_instruction
        self.idm_instruction = idm_instruction
        self.idm_rationale = idm_rationale
        self.separator_token = separator_token
        self.image_grid = list(image_grid) if image_grid is not None else None
        self.image_start = list(image_start) if image_start is not None else None
        self.image_row_end = image_row_end
        self.image_end = list(image_end) if image_end is not None else None
        super().__init__(image_processor, tokenizer, **kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any) -> WorldModelProcessor:
        """Load a saved processor; its image processor may be :class:`SquareImageProcessor` (not a transformers class).

        Args:
            pretrained_model_name_or_path: A local folder holding ``processor_config.json``.
            **kwargs: ``ProcessorMixin.from_pretrained`` options; ``image_processor=`` or setting overrides.
        """
        if "image_processor" not in kwargs:
            saved = json.loads((Path(pretrained_model_name_or_path) / PROCESSOR_CONFIG).read_text(encoding="utf-8"))
            kwargs["image_processor"] = image_processor_from_dict(pretrained_model_name_or_path, saved)
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    # ----------------------------------------------------------------------------------------------------------
    # Settings
    # ----------------------------------------------------------------------------------------------------------
    @property
    def prompt(self) -> PromptFormat:
        """The instruction strings and whether the IDM reasons first."""
        return PromptFormat(self.fdm_instruction, self.idm_instruction, self.idm_rationale)

    @prompt.setter
    def prompt(self, value: PromptFormat) -> None:
        self.fdm_instruction, self.idm_instruction = value.fdm_instruction, value.idm_instruction
        self.idm_rationale = value.idm_rationale

    def settings(self) -> dict[str, Any]:
        """The sequence-format settings as saved (``processor_config.json`` without its tokenizer/image processor)."""
        return {
            "fdm_instruction": self.fdm_instruction,
            "idm_instruction": self.idm_instruction,
            "idm_rationale": self.idm_rationale,
            "separator_token": self.separator_token,
            "image_grid": self.image_grid,
            "image_start": self.image_start,
            "image_row_end": self.image_row_end,
            "image_end": self.image_end,
        }

    def resize(self, image_size: int) -> None:
        """Read pictures at another size: forget the image layout (the backbone sets the new grid's) and resize a
        :class:`SquareImageProcessor`'s square (another image processor keeps its own settings)."""
        self.image_grid = self.image_start = self.image_end = self.image_row_end = None
        if isinstance(self.image_processor, SquareImageProcessor):
            self.image_processor.size = int(image_size)

    def set_layout(self, grid: Sequence[int], start: Sequence[str], end: Sequence[str], row_end: str | None) -> None:
        """Record the image block layout a backbone's vocabulary implies, or check it against the saved one.

        Raises:
            ValueError: The saved layout disagrees (a ``processor_config.json`` from another model).
        """
        layout = {"image_grid": list(grid), "image_start": list(start), "image_end": list(end)}
        layout["image_row_end"] = row_end
        for name, value in layout.items():
            saved = getattr(self, name)
            if saved is not None and saved != value:
                raise ValueError(
                    f"{PROCESSOR_CONFIG}: {name} is {saved!r} but this model's vocabulary gives {value!r}"
                )
            setattr(self, name, value)

    # ----------------------------------------------------------------------------------------------------------
    # Tokens
    # ----------------------------------------------------------------------------------------------------------
    def token_id(self, token: str) -> int:
        """The id of one vocabulary entry.

        Raises:
            ValueError: ``token`` is not in the tokenizer's vocabulary.
        """
        token_id = self.tokenizer.convert_tokens_to_ids(token)
        if token_id is None or token_id == self.tokenizer.unk_token_id:
            raise ValueError(f"token {token!r} is not in the tokenizer's vocabulary")
        return token_id

    def text_ids(self, text: str) -> list[int]:
        """``text`` as token ids, without special tokens: plain text, so an action that spells one (``</s>``,
        ``<image>``, an image code's name) is written out in ordinary tokens, never read as the control token."""
        return self.tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"] if text else []

    @property
    def separator_token_id(self) -> int | None:
        return None if self.separator_token is None else self.token_id(self.separator_token)

    def image_prefix_ids(self) -> list[int]:
        """Tokens that open an image block (a generation prompt for an image ends with them)."""
        return [self.token_id(token) for token in self.image_start]

    def image_suffix_ids(self) -> list[int]:
        """Tokens that close an image block."""
        return [self.token_id(token) for token in self.image_end]

    def image_body_ids(self, image_ids: Sequence[int]) -> list[int]:
        """An image's code tokens as laid out inside the block (Emu3: the row-end token after each row).

        Args:
            image_ids: ``height * width`` ids (any values, e.g. ``-1`` placeholders for the generation layout).

        Raises:
            ValueError: Not one id per cell of the token grid.
        """
        height, width = self.image_grid
        image_ids = list(image_ids)
        if len(image_ids) != height * width:
            raise ValueError(f"expected {height * width} image token ids, got {len(image_ids)}")
        if self.image_row_end is None:
            return image_ids
        row_end = self.token_id(self.image_row_end)
        return [token for row in range(height) for token in (*image_ids[row * width : (row + 1) * width], row_end)]

    def generation_layout(self) -> torch.Tensor:
        """What image generation must emit after :meth:`image_prefix_ids`, step by step.

        Returns:
            LongTensor of length ``len(body) + len(suffix)``: ``-1`` where an image code is sampled, otherwise the
            token id that is forced at that step.
        """
        height, width = self.image_grid
        return torch.tensor(self.image_body_ids([FREE] * (height * width)) + self.image_suffix_ids(), dtype=torch.long)

    def _code_offsets(self) -> list[int]:
        """Offsets of the code tokens inside :meth:`image_body_ids`."""
        height, width = self.image_grid
        stride = width + (self.image_row_end is not None)
        return [row * stride + column for row in range(height) for column in range(width)]

    def image_block(self, image_ids: Sequence[int], offset: int) -> tuple[list[int], list[int]]:
        """An image block starting at ``offset`` and the positions of its code tokens."""
        prefix = self.image_prefix_ids()
        start = offset + len(prefix)
        return prefix + self.image_body_ids(image_ids) + self.image_suffix_ids(), [
            start + index for index in self._code_offsets()
        ]

    # ----------------------------------------------------------------------------------------------------------
    # Sequences
    # ----------------------------------------------------------------------------------------------------------
    def build_fdm_sequence(
        self, source_ids: Sequence[int], action: str, target_ids: Sequence[int] | None = None
    ) -> SequenceExample:
        """Forward-dynamics sequence ``[bos] instr [boi] source [eoi] action [sep] [boi] target [eoi] [eos]``.

        Args:
            source_ids: The source picture's image token ids.
            action: Action text.
            target_ids: The next picture's ids; ``None`` builds the generation prompt (ends with the image prefix).

        Returns:
            The sequence; labels cover the target's code tokens and the closing tokens only.
        """
        ids = [self.tokenizer.bos_token_id] + self.text_ids(self.fdm_instruction)
        block, source_positions = self.image_block(source_ids, len(ids))
        ids += block + self.text_ids(action) + [self.separator_token_id] + self.image_prefix_ids()
        prompt_len = len(ids)
        if target_ids is None:
            return SequenceExample(ids, [IGNORE_INDEX] * prompt_len, source_positions, [])
        target_positions = [prompt_len + index for index in self._code_offsets()]
        ids += self.image_body_ids(target_ids) + self.image_suffix_ids() + [self.tokenizer.eos_token_id]
        labels = [IGNORE_INDEX] * prompt_len + ids[prompt_len:]
        return SequenceExample(ids, labels, source_positions, target_positions)

    def build_idm_sequence(
        self,
        source_ids: Sequence[int],
        target_ids: Sequence[int],
        action: str | None = None,
        rationale: str | None = None,
    ) -> SequenceExample:
        """Inverse-dynamics sequence ``[bos] [boi] source [eoi] [boi] target [eoi] instr [sep] action [eos]``.

        With ``idm_rationale`` the completion is ``"<rationale> => <action>"`` (:func:`idm_completion`).

        Args:
            source_ids: The source picture's image token ids.
            target_ids: The next picture's ids.
            action: Action text; ``None`` builds the generation prompt (ends with the separator).
            rationale: What the IDM writes before the action (needed with ``idm_rationale``, ignored without).

        Returns:
            The sequence; labels cover the completion's tokens and ``eos`` only.
        """
        ids = [self.tokenizer.bos_token_id]
        block, source_positions = self.image_block(source_ids, len(ids))
        ids += block
        block, target_positions = self.image_block(target_ids, len(ids))
        ids += block + self.text_ids(self.idm_instruction) + [self.separator_token_id]
        prompt_len = len(ids)
        if action is not None:
            completion = idm_completion(action, rationale, self.idm_rationale)
            ids += self.text_ids(completion) + [self.tokenizer.eos_token_id]
        labels = [IGNORE_INDEX] * prompt_len + ids[prompt_len:]
        return SequenceExample(ids, labels, source_positions, target_positions)


def image_processor_from_dict(folder: str | os.PathLike, saved: dict[str, Any]) -> Any:
    """The image processor nested in a saved ``processor_config.json`` (``image_processor`` key)."""
    values = dict(saved.get("image_processor") or {})
    kind = values.pop("image_processor_type", None)
    if kind == SquareImageProcessor.__name__:
        return SquareImageProcessor(**values)
    if kind is None:
        raise ValueError(f"{Path(folder) / PROCESSOR_CONFIG}: no image_processor settings")
    return AutoImageProcessor.from_pretrained(folder, processor_config={**values, "image_processor_type": kind})


def is_world_model_processor(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds a ``processor_config.json`` of a :class:`WorldModelProcessor` (not a stock one)."""
    path = Path(folder) / PROCESSOR_CONFIG
    if not path.is_file():
        return False
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from error
    return isinstance(saved, dict) and saved.get("processor_class") == WorldModelProcessor.__name__


def load_processor(
    folder: str | os.PathLike, default_image_processor: Callable[[], Any], settings: dict[str, Any] | None = None
) -> WorldModelProcessor:
    """The processor of a checkpoint folder: the saved one, or one built for a stock checkpoint.

    Args:
        folder: A local checkpoint folder.
        default_image_processor: Builds the image processor of a checkpoint without a saved processor.
        settings: :class:`WorldModelProcessor` arguments for a checkpoint without a saved processor (an older
            wm-hub checkpoint's instructions and separator).

    Returns:
        The processor; a stock checkpoint's image layout is set by the backbone that reads it.
    """
    if is_world_model_processor(folder):
        return WorldModelProcessor.from_pretrained(folder)
    return WorldModelProcessor(default_image_processor(), AutoTokenizer.from_pretrained(folder), **(settings or {}))
