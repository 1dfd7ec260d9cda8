"""The sandbox's text: scene descriptions, the pretraining instructions and a byte-level BPE fitted to them.

A scene is described object by object in reading order (rows from the top, then columns from the left), e.g.
``"red square at row 2, column 3; blue circle at row 5, column 1"``: the caption the base model learns to read and
write. The text tokenizer is the tiny Chameleon layout (special and image tokens first, then the 256 byte symbols)
plus byte-level BPE merges learnt from the sandbox's own texts, so that a world word (``" square"``) is one token
and an action is about 8 tokens instead of 35 bytes; any other text still encodes byte by byte.
"""

from __future__ import annotations

import random

from transformers import PreTrainedTokenizerFast

from wm_hub.data.shapes_world import (
    ACTION_KINDS,
    EMPTY_SCENE,
    NO_CHANGE,
    Scene,
    ShapeObject,
    ShapesWorld,
    WorldConfig,
    content_name,
    describe_changes,
    distance_phrase,
)
from wm_hub.models.base import PromptFormat
from wm_hub.models.chameleon import BOI_TOKEN, END_OF_TURN_TOKEN, EOI_TOKEN
from wm_hub.models.tiny import build_byte_tokenizer, chameleon_image_token, fit_byte_merges

CAPTION_INSTRUCTION = "Describe the picture."
SECOND_CAPTION_INSTRUCTION = "Describe the second picture."
DRAW_INSTRUCTION = "Draw the picture:"
DIFFERENCES_INSTRUCTION = "What differs between the pictures?"
REDRAW_INSTRUCTION = "Redraw the picture with these changes:"
OUTSIDE = "outside the picture"
SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>", EOI_TOKEN, BOI_TOKEN, END_OF_TURN_TOKEN, "<image>"]


def describe_scene(scene: Scene) -> str:
    """The scene's caption: objects in reading order as ``"<colour> <shape> at row R, column C"``, ``"; "`` apart."""
    objects = sorted(scene.objects, key=lambda obj: (obj.cell[1], obj.cell[0]))
    parts = [f"{obj.colour} {obj.shape} at row {obj.cell[1] + 1}, column {obj.cell[0] + 1}" for obj in objects]
    return "; ".join(parts) or EMPTY_SCENE


def offset_phrase(dx: int, dy: int) -> str:
    """A displacement in cells as words, horizontal first: ``"right by 2 cells and up by 1 cell"``.

    The phrase of a displacement the way an action names one (``"... right by 2 cells"``), so that spatial language
    can be pretrained without any action. ``(0, 0)`` is ``"here"``.
    """

    parts = [distance_phrase("right" if dx > 0 else "left", abs(dx))] if dx else []
    parts += [distance_phrase("down" if dy > 0 else "up", abs(dy))] if dy else []
    return " and ".join(parts) or "here"


def relation_answer(anchor: ShapeObject, other: ShapeObject) -> str:
    """Where ``other`` is from ``anchor``: the :func:`offset_phrase` of their cells."""
    return offset_phrase(other.cell[0] - anchor.cell[0], other.cell[1] - anchor.cell[1])


def relation_question(anchor: str, other: str) -> str:
    """Where one object of a picture is from another: answered by :func:`relation_answer`."""
    return f"Where is the {other} from the {anchor}?"


def lookup_question(anchor: str, dx: int, dy: int) -> str:
    """What is at a displacement from an object: answered by a content (``"blue circle"``, ``"nothing"``) or
    :data:`OUTSIDE`."""
    return f"What is {offset_phrase(dx, dy)} from the {anchor}?"


def spatial_offset(rng: random.Random, scene: Scene, anchor: ShapeObject, grid: int, max_move: int) -> tuple[int, int]:
    """A ``lookup`` displacement from ``anchor``: along one axis (as moves go) two times in three, else along both;
    onto another object about a third of the time, outside the picture about one time in six."""
    steps = [step for step in range(-max_move, max_move + 1) if step]
    one_axis = [(step, 0) for step in steps] + [(0, step) for step in steps]
    offsets = one_axis if rng.random() < 2 / 3 else [(dx, dy) for dx in steps for dy in steps]
    (x, y), draw = anchor.cell, rng.random()
    inside = [(dx, dy) for dx, dy in offsets if 0 <= x + dx < grid and 0 <= y + dy < grid]
    on_object = [(dx, dy) for dx, dy in inside if scene.at((x + dx, y + dy)) is not None]
    if on_object and draw < 0.35:
        return rng.choice(on_object)
    return rng.choice(inside if inside and draw < 0.85 else offsets)


def lookup_answer(scene: Scene, anchor: ShapeObject, offset: tuple[int, int], world: WorldConfig) -> str:
    """What is at ``offset`` from ``anchor`` in ``scene``: an object's name, ``"nothing"`` or :data:`OUTSIDE`."""
    x, y = anchor.cell[0] + offset[0], anchor.cell[1] + offset[1]
    if not (0 <= x < world.grid and 0 <= y < world.grid):
        return OUTSIDE
    return content_name(scene.at((x, y)))


def sandbox_corpus(world: WorldConfig, num_scenes: int = 2000, seed: int = 0) -> list[str]:
    """Texts the BPE is fitted on: captions, actions and changes of random scenes, and every instruction."""
    painter, rng = ShapesWorld(world), random.Random(f"sandbox_corpus/{seed}")
    prompt = PromptFormat()
    texts = [
        CAPTION_INSTRUCTION,
        SECOND_CAPTION_INSTRUCTION,
        DRAW_INSTRUCTION,
        DIFFERENCES_INSTRUCTION,
        REDRAW_INSTRUCTION,
        EMPTY_SCENE,
        NO_CHANGE,
        prompt.fdm_instruction,
        prompt.idm_instruction,
    ]
    for _ in range(num_scenes):
        scene = painter.random_scene(rng)
        texts.append(describe_scene(scene))
        action = painter.random_action(scene, rng, ACTION_KINDS)
        if action is not None:
            texts += [action.text, describe_changes(scene, action.apply(scene))]
    return texts


def build_sandbox_text_tokenizer(
    world: WorldConfig, num_image_codes: int, vocab_size: int = 512
) -> PreTrainedTokenizerFast:
    """The tiny Chameleon tokenizer layout with byte-level BPE merges fitted on :func:`sandbox_corpus`.

    Args:
        world: The world whose texts are fitted.
        num_image_codes: Image tokens (``IMGIMG...Z``), one per VQ code.
        vocab_size: Size of the fitted byte-level BPE (256 byte symbols plus merges).
    """
    merges = fit_byte_merges(sandbox_corpus(world), vocab_size)
    image_tokens = [chameleon_image_token(code) for code in range(num_image_codes)]
    leading = [*SPECIAL_TOKENS[:4], *image_tokens, *SPECIAL_TOKENS[4:]]
    return build_byte_tokenizer(
        leading, SPECIAL_TOKENS, bos="<s>", eos="</s>", pad="<pad>", unk="<unk>", merges=merges
    )
