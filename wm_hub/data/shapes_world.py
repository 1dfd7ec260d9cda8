"""Shapes world: a procedurally generated grid world, the embedded default data of the demo and the tests.

Coloured shapes (square, circle, triangle, cross) sit on a plain background, one object per cell of a
``grid x grid`` board drawn at ``image_size`` pixels. A scene is a list of objects (shape, colour, cell); objects
are named by colour and shape ("the red square"), and a scene never holds two objects of the same name. Actions
follow templates, are only sampled where valid (nothing leaves the board or moves through or onto another object)
and produce:

- labelled triplets (:meth:`ShapesWorld.triplet`): source scene, action text, target scene, and the
  ``changed_cells`` whose content differs (every other cell is pixel-identical in source and target);
- videos (:meth:`ShapesWorld.video`): several actions in a row (``video_actions``, by default moves and swaps),
  objects sliding smoothly over ``frames_per_cell`` frames per cell, with pauses between actions. The actions are
  hidden ground truth: the video's rows (:meth:`ShapesWorld.video_rows`) have an empty action unless
  ``reveal_actions=True``, and :meth:`ShapesVideo.true_action` gives the truth of any frame pair.

Cells and VQ tokens: a cell is ``image_size // grid`` pixels wide and every object is drawn strictly inside its
cell, so a cell covers whole tokens when the cell width is a multiple of the image tokenizer's downsampling factor.
The tiny backbones tokenise 64 px into 8 x 8 tokens (8 px per token): the default ``grid=8`` makes one cell one
token, ``grid=4`` makes one cell 2 x 2 tokens. Chameleon and Liquid downsample by 16 (512 px -> 32 x 32 tokens), so
512 px with ``grid=8`` gives 4 x 4 tokens per cell. :func:`cell_token_indices` maps cells to token positions.

Everything is deterministic: example ``index`` of ``split`` is drawn from its own random generator seeded by
``(seed, split, index)``, so the same config renders byte-identical PNGs, examples can be drawn in any order, and
train and test differ. Cell ``(x, y)`` is column ``x`` (from the left), row ``y`` (from the top); action texts
count rows and columns from 1.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from itertools import combinations
from typing import Any, TypeVar

from PIL import Image, ImageDraw

from wm_hub.data.schema import make_triplet

SHAPES: tuple[str, ...] = ("square", "circle", "triangle", "cross")
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (50, 90, 230),
    "yellow": (240, 210, 40),
    "purple": (150, 60, 200),
    "orange": (245, 140, 30),
    "cyan": (40, 200, 210),
}
ACTION_KINDS: tuple[str, ...] = ("move", "add", "remove", "recolour", "reshape", "swap")
DIRECTIONS: dict[str, tuple[int, int]] = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
PAIR_MODES: tuple[str, ...] = ("keyframes", "consecutive")
EMPTY_SCENE = "nothing"  # an empty cell (and a scene without objects) in words
NO_CHANGE = "no change"  # the changed cells of two equal scenes

Cell = tuple[int, int]
T = TypeVar("T")
_MAX_TRIES = 100


@dataclass
class WorldConfig:
    """What a shapes world looks like and how its examples are drawn.

    Args:
        image_size: Image side in pixels.
        grid: Cells per side; must divide ``image_size``.
        shapes: Shapes objects may take (a subset of :data:`SHAPES`).
        colours: Colours objects may take (names in :data:`PALETTE`).
        background: RGB of the plain background.
        min_objects: Fewest objects in a scene (also after ``remove``).
        max_objects: Most objects in a scene (also after ``add``).
        max_move: Longest move, in cells.
        actions: Action kinds of labelled triplets (a subset of :data:`ACTION_KINDS`).
        video_actions: Action kinds of videos; by default the ones that slide (the others jump in one frame).
        seed: Seed of the whole world; splits and examples derive their own generators from it.
        actions_per_video: Actions in a row per video.
        frames_per_cell: Video frames a sliding object takes to cross one cell.
        hold_frames: Still frames before each action of a video.
        slide: Whether objects of ``move`` and ``swap`` slide over ``frames_per_cell`` frames per cell in videos;
            ``False``: every action happens in one frame (objects jump), so that every frame shows a scene of the
            world and each burst of motion is one action (the sandbox's videos).
    """

    image_size: int = 64
    grid: int = 8
    shapes: tuple[str, ...] = SHAPES
    colours: tuple[str, ...] = tuple(PALETTE)
    background: tuple[int, int, int] = (24, 24, 24)
    min_objects: int = 2
    max_objects: int = 5
    max_move: int = 3
    actions: tuple[str, ...] = ACTION_KINDS
    video_actions: tuple[str, ...] = ("move", "swap")
    seed: int = 0
    actions_per_video: int = 4
    frames_per_cell: int = 4
    hold_frames: int = 2
    slide: bool = True

    def __post_init__(self) -> None:
        self.shapes, self.colours, self.background = tuple(self.shapes), tuple(self.colours), tuple(self.background)
        self.actions, self.video_actions = tuple(self.actions), tuple(self.video_actions)
        for name, values, allowed in (
            ("shapes", self.shapes, SHAPES),
            ("colours", self.colours, tuple(PALETTE)),
            ("actions", self.actions, ACTION_KINDS),
            ("video_actions", self.video_actions, ACTION_KINDS),
        ):
            unknown = sorted(set(values) - set(allowed))
            if not values or unknown or len(set(values)) != len(values):
                raise ValueError(f"{name} must be distinct names from {allowed}, got {values}")
        if self.grid < 1 or self.image_size % self.grid:
            raise ValueError(f"grid ({self.grid}) must divide image_size ({self.image_size})")
        if self.cell_size < 6:
            raise ValueError(f"cells of {self.cell_size} px are too small to tell shapes apart (need >= 6 px)")
        capacity = min(self.grid * self.grid, len(self.shapes) * len(self.colours))
        if not 1 <= self.min_objects <= self.max_objects <= capacity:
            raise ValueError(
                f"need 1 <= min_objects ({self.min_objects}) <= max_objects ({self.max_objects}) <= {capacity} "
                "(cells, and distinct colour-shape names)"
            )
        if self.max_move < 1 or self.actions_per_video < 1 or self.hold_frames < 0:
            raise ValueError("max_move and actions_per_video must be >= 1, hold_frames >= 0")
        if not 1 <= self.frames_per_cell <= self.cell_size:
            raise ValueError(f"frames_per_cell must be in [1, {self.cell_size}] so every frame moves >= 1 px")

    @property
    def cell_size(self) -> int:
        """Cell side in pixels."""
        return self.image_size // self.grid


@dataclass(frozen=True)
class ShapeObject:
    """One object of a scene."""

    shape: str
    colour: str
    cell: Cell

    @property
    def name(self) -> str:
        """How actions refer to the object, e.g. ``"red square"``."""
        return f"{self.colour} {self.shape}"


@dataclass(frozen=True)
class Scene:
    """A board state: objects in distinct cells with distinct names."""

    objects: tuple[ShapeObject, ...]

    def at(self, cell: Cell) -> ShapeObject | None:
        """The object in ``cell``, if any."""
        return next((obj for obj in self.objects if obj.cell == cell), None)

    def has(self, colour: str, shape: str) -> bool:
        """Whether an object of that name exists."""
        return any(obj.colour == colour and obj.shape == shape for obj in self.objects)

    def with_object(self, old: ShapeObject, new: ShapeObject | None) -> Scene:
        """The scene with ``old`` replaced by ``new`` (removed when ``None``)."""
        return Scene(tuple(new if obj == old else obj for obj in self.objects if new is not None or obj != old))


@dataclass(frozen=True)
class Action:
    """A template action, valid for the scene it was sampled for.

    Attributes:
        kind: One of :data:`ACTION_KINDS`.
        subject: The object acted on, as it is in the source scene (for ``add``: the new object).
        direction: ``move`` only: a key of :data:`DIRECTIONS`.
        distance: ``move`` only: cells moved.
        colour: ``recolour`` only: the new colour.
        shape: ``reshape`` only: the new shape.
        other: ``swap`` only: the object trading places with ``subject``.
    """

    kind: str
    subject: ShapeObject
    direction: str | None = None
    distance: int = 0
    colour: str | None = None
    shape: str | None = None
    other: ShapeObject | None = None

    @property
    def text(self) -> str:
        """The action as an instruction, e.g. ``"move the red square left by 2 cells"``."""
        name = self.subject.name
        if self.kind == "move":
            return f"move the {name} {distance_phrase(self.direction, self.distance)}"
        if self.kind == "add":
            x, y = self.subject.cell
            return f"add {_article(name)} {name} at row {y + 1}, column {x + 1}"
        if self.kind == "remove":
            return f"remove the {name}"
        if self.kind == "recolour":
            return f"paint the {name} {self.colour}"
        if self.kind == "reshape":
            return f"turn the {name} into {_article(self.shape)} {self.shape}"
        return f"swap the {name} and the {self.other.name}"

    def destinations(self) -> dict[ShapeObject, Cell]:
        """Objects that slide (``move`` and ``swap``) and the cells they end in."""
        if self.kind == "move":
            dx, dy = DIRECTIONS[self.direction]
            x, y = self.subject.cell
            return {self.subject: (x + dx * self.distance, y + dy * self.distance)}
        if self.kind == "swap":
            return {self.subject: self.other.cell, self.other: self.subject.cell}
        return {}

    def apply(self, scene: Scene) -> Scene:
        """The scene after the action."""
        if self.kind in ("move", "swap"):
            for obj, cell in self.destinations().items():
                scene = scene.with_object(obj, replace(obj, cell=cell))
            return scene
        if self.kind == "add":
            return Scene((*scene.objects, self.subject))
        if self.kind == "remove":
            return scene.with_object(self.subject, None)
        if self.kind == "recolour":
            return scene.with_object(self.subject, replace(self.subject, colour=self.colour))
        return scene.with_object(self.subject, replace(self.subject, shape=self.shape))


def changed_cells(source: Scene, target: Scene) -> frozenset[Cell]:
    """Cells whose content (empty, or an object's shape and colour) differs between two scenes."""
    cells = {obj.cell for obj in source.objects + target.objects}
    return frozenset(cell for cell in cells if _content(source.at(cell)) != _content(target.at(cell)))


def cell_token_indices(cells: Iterable[Cell], grid: int, token_grid: int) -> list[int]:
    """Row-major positions, in a ``token_grid x token_grid`` image-token map, of the tokens covering ``cells``.

    Args:
        cells: ``(x, y)`` cells of a ``grid x grid`` board.
        grid: Cells per side.
        token_grid: Image tokens per side (8 for the tiny backbones at 64 px); must be a multiple of ``grid``.
    """
    if token_grid % grid:
        raise ValueError(f"{token_grid} tokens per side do not split into {grid} whole cells")
    per_cell = token_grid // grid
    return sorted(
        (y * per_cell + dy) * token_grid + x * per_cell + dx
        for x, y in cells
        for dy in range(per_cell)
        for dx in range(per_cell)
    )


@dataclass(frozen=True)
class ShapesTriplet:
    """A labelled example: ``source`` and ``target`` images of two scenes one ``action`` apart."""

    id: str
    source: Image.Image
    target: Image.Image
    action: Action
    source_scene: Scene
    target_scene: Scene

    @property
    def changed_cells(self) -> frozenset[Cell]:
        """The cells whose pixels differ between ``source`` and ``target``."""
        return changed_cells(self.source_scene, self.target_scene)


@dataclass(frozen=True)
class TimedAction:
    """An action of a video, played from frame ``start`` (the scene before) to frame ``end`` (the scene after)."""

    action: Action
    start: int
    end: int


@dataclass(frozen=True)
class ShapesVideo:
    """An unlabelled video: its frames, and the actions played in it (hidden ground truth)."""

    id: str
    frames: list[Image.Image]
    actions: list[TimedAction]
    scenes: list[Scene] = field(repr=False)  # scenes[k] is shown at key_frames[k]

    @property
    def key_frames(self) -> list[int]:
        """Frames where no action is in progress: the first frame and the end of every action."""
        return [0] + [timed.end for timed in self.actions]

    def pairs(self, mode: str = "keyframes") -> list[tuple[int, int]]:
        """Frame pairs to annotate.

        Args:
            mode: ``"keyframes"``: consecutive key frames (one whole action each); ``"consecutive"``: every pair of
                neighbouring frames inside an action (the pauses, whose frames are identical, are left out).
        """
        if mode == "keyframes":
            return list(zip(self.key_frames, self.key_frames[1:]))
        if mode == "consecutive":
            return [(t, t + 1) for timed in self.actions for t in range(timed.start, timed.end)]
        raise ValueError(f"unknown pair mode {mode!r}; choose one of {PAIR_MODES}")

    def actions_between(self, i: int, j: int) -> list[Action]:
        """The actions in progress anywhere between frames ``i < j``, in order (the ground truth of that pair)."""
        return [timed.action for timed in self.actions if timed.start < j and timed.end > i]

    def true_action(self, i: int, j: int) -> str:
        """Ground-truth action text of the pair ``(i, j)``: several are joined by ``"; "``, none gives ``""``."""
        return "; ".join(action.text for action in self.actions_between(i, j))

    def true_action_class(self, i: int, j: int) -> str:
        """Ground-truth action kind(s) of the pair ``(i, j)``, joined by ``"+"``."""
        return "+".join(action.kind for action in self.actions_between(i, j))


class ShapesWorld:
    """Draws scenes, actions, labelled triplets and videos of one :class:`WorldConfig`."""

    def __init__(self, config: WorldConfig | None = None):
        self.config = config or WorldConfig()
        self._masks = {shape: _shape_mask(shape, self.config.cell_size) for shape in self.config.shapes}

    # Rendering

    def render(self, scene: Scene) -> Image.Image:
        """The scene as an RGB image; each object is drawn strictly inside its cell."""
        size = self.config.cell_size
        return self._draw([(obj, (obj.cell[0] * size, obj.cell[1] * size)) for obj in scene.objects])

    def _draw(self, placements: Iterable[tuple[ShapeObject, tuple[int, int]]]) -> Image.Image:
        image = Image.new("RGB", (self.config.image_size,) * 2, self.config.background)
        for obj, corner in placements:
            image.paste(PALETTE[obj.colour], corner, self._masks[obj.shape])
        return image

    # Sampling

    def random_scene(self, rng: random.Random) -> Scene:
        """A scene of ``min_objects`` to ``max_objects`` (uniformly) random objects in random cells."""
        config = self.config
        count = rng.randint(config.min_objects, config.max_objects)
        cells = rng.sample([(x, y) for y in range(config.grid) for x in range(config.grid)], count)
        names = rng.sample([(c, s) for c in config.colours for s in config.shapes], count)
        return Scene(tuple(ShapeObject(shape, colour, cell) for (colour, shape), cell in zip(names, cells)))

    def valid_actions(self, scene: Scene, kind: str, rng: random.Random) -> list[Action]:
        """Every valid action of ``kind`` on ``scene`` (for ``add``: one random valid addition, if any)."""
        config, objects = self.config, scene.objects
        if kind == "move":
            return [
                Action("move", obj, direction=direction, distance=distance)
                for obj in objects
                for direction in DIRECTIONS
                for distance in range(1, config.max_move + 1)
                if self._path_is_free(scene, obj.cell, direction, distance)
            ]
        if kind == "add":
            free = [(x, y) for y in range(config.grid) for x in range(config.grid) if scene.at((x, y)) is None]
            names = [(c, s) for c in config.colours for s in config.shapes if not scene.has(c, s)]
            if len(objects) >= config.max_objects or not free or not names:
                return []
            colour, shape = rng.choice(names)
            return [Action("add", ShapeObject(shape, colour, rng.choice(free)))]
        if kind == "remove":
            return [Action("remove", obj) for obj in objects] if len(objects) > config.min_objects else []
        if kind == "recolour":
            return [
                Action("recolour", obj, colour=colour)
                for obj in objects
                for colour in config.colours
                if not scene.has(colour, obj.shape)
            ]
        if kind == "reshape":
            return [
                Action("reshape", obj, shape=shape)
                for obj in objects
                for shape in config.shapes
                if not scene.has(obj.colour, shape)
            ]
        if kind == "swap":
            # The object first in reading order is named first, so the text is a function of the two pictures.
            in_reading_order = sorted(objects, key=lambda obj: (obj.cell[1], obj.cell[0]))
            return [Action("swap", a, other=b) for a, b in combinations(in_reading_order, 2)]
        raise ValueError(f"unknown action kind {kind!r}; choose from {ACTION_KINDS}")

    def random_action(self, scene: Scene, rng: random.Random, kinds: Iterable[str]) -> Action | None:
        """A valid action: one of ``kinds`` drawn uniformly among those valid here, then one of its actions."""
        options = {kind: self.valid_actions(scene, kind, rng) for kind in kinds}
        kinds = [kind for kind, actions in options.items() if actions]
        return rng.choice(options[rng.choice(kinds)]) if kinds else None

    def _path_is_free(self, scene: Scene, cell: Cell, direction: str, distance: int) -> bool:
        dx, dy = DIRECTIONS[direction]
        path = [(cell[0] + dx * step, cell[1] + dy * step) for step in range(1, distance + 1)]
        grid = self.config.grid
        return all(0 <= x < grid and 0 <= y < grid and scene.at((x, y)) is None for x, y in path)

    def _rng(self, split: str, kind: str, index: int) -> random.Random:
        # A string seed is hashed with SHA-512 by `random`: stable across runs, platforms and PYTHONHASHSEED.
        return random.Random(f"shapes_world/{self.config.seed}/{split}/{kind}/{index}")

    # Examples

    def triplet(self, split: str, index: int) -> ShapesTriplet:
        """Labelled example ``index`` of ``split``: a random scene and one random valid action."""
        rng = self._rng(split, "triplet", index)

        def attempt() -> tuple[Scene, Action] | None:
            scene = self.random_scene(rng)
            action = self.random_action(scene, rng, self.config.actions)
            return (scene, action) if action else None

        source, action = self._first_valid(attempt, self.config.actions)
        target = action.apply(source)
        return ShapesTriplet(f"{split}-{index:06d}", self.render(source), self.render(target), action, source, target)

    def video(self, split: str, index: int) -> ShapesVideo:
        """Video ``index`` of ``split``: ``actions_per_video`` random actions in a row, played smoothly."""
        rng = self._rng(split, "video", index)

        def attempt() -> list[Scene | Action] | None:
            plan: list[Scene | Action] = [self.random_scene(rng)]
            for _ in range(self.config.actions_per_video):
                action = self.random_action(plan[-1], rng, self.config.video_actions)
                if action is None:
                    return None
                plan += [action, action.apply(plan[-1])]
            return plan

        plan = self._first_valid(attempt, self.config.video_actions)
        scenes, actions = plan[::2], plan[1::2]
        frames = [self.render(scenes[0])]
        timed = []
        for before, action, after in zip(scenes, actions, scenes[1:]):
            frames += [frames[-1]] * self.config.hold_frames
            start = len(frames) - 1
            frames += self._play(before, action, after)
            timed.append(TimedAction(action, start, len(frames) - 1))
        return ShapesVideo(f"{split}-video-{index:05d}", frames, timed, scenes)

    def _play(self, before: Scene, action: Action, after: Scene) -> list[Image.Image]:
        """Frames after ``before`` up to ``after``: sliding objects move in straight lines, other changes jump."""
        destinations = action.destinations()
        if not destinations or not self.config.slide:
            return [self.render(after)]
        size = self.config.cell_size
        span = max(max(abs(a - b) for a, b in zip(obj.cell, cell)) for obj, cell in destinations.items())
        steps = span * self.config.frames_per_cell
        still = [(obj, (obj.cell[0] * size, obj.cell[1] * size)) for obj in before.objects if obj not in destinations]
        frames = []
        for step in range(1, steps + 1):
            moving = [
                (obj, tuple(round((a + (b - a) * step / steps) * size) for a, b in zip(obj.cell, cell)))
                for obj, cell in destinations.items()
            ]
            frames.append(self._draw(still + moving))
        return frames

    def _first_valid(self, attempt: Callable[[], T | None], kinds: tuple[str, ...]) -> T:
        for _ in range(_MAX_TRIES):
            result = attempt()
            if result is not None:
                return result
        config = self.config
        raise ValueError(
            f"no valid action sequence in {_MAX_TRIES} random scenes: actions {kinds} cannot be applied "
            f"with {config.min_objects}..{config.max_objects} objects"
        )

    # Rows of the triplet schema

    def triplet_rows(self, split: str, num_examples: int) -> Iterator[dict[str, Any]]:
        """``num_examples`` labelled triplets of ``split`` as rows of ``TRIPLET_FEATURES``.

        ``action_class`` is the action kind (``move``, ``add``, ...); ``rationale`` the changed cells
        (:func:`describe_changes`); origin ``shapes_world/triplets``.
        """
        for index in range(num_examples):
            example = self.triplet(split, index)
            yield make_triplet(
                example.id,
                example.source,
                example.target,
                example.action.text,
                "shapes_world/triplets",
                action_class=example.action.kind,
                rationale=describe_changes(example.source_scene, example.target_scene),
            )

    def video_rows(
        self, split: str, num_videos: int, pairs: str = "keyframes", reveal_actions: bool = False
    ) -> Iterator[dict[str, Any]]:
        """Frame pairs of ``num_videos`` videos of ``split`` as rows of ``TRIPLET_FEATURES``.

        Args:
            split: Split name (seeds the videos).
            num_videos: Videos to cut into pairs.
            pairs: ``"keyframes"`` or ``"consecutive"`` (see :meth:`ShapesVideo.pairs`).
            reveal_actions: ``False`` (unlabelled, for annotation): empty ``action`` and no ``action_class``.
                ``True`` (ground truth, for evaluation or an oracle baseline): the same rows, ids and images with
                :meth:`ShapesVideo.true_action` and :meth:`ShapesVideo.true_action_class`.
        """
        for index in range(num_videos):
            video = self.video(split, index)
            for i, j in video.pairs(pairs):
                yield make_triplet(
                    f"{video.id}-{i:03d}-{j:03d}",
                    video.frames[i],
                    video.frames[j],
                    video.true_action(i, j) if reveal_actions else "",
                    "shapes_world/videos",
                    action_class=video.true_action_class(i, j) if reveal_actions else None,
                    video=video.id,
                    frames=(i, j),
                )


def content_name(obj: ShapeObject | None) -> str:
    """A cell's content in words: ``"red square"``, or :data:`EMPTY_SCENE` for an empty cell."""
    return EMPTY_SCENE if obj is None else f"{obj.colour} {obj.shape}"


def describe_changes(before: Scene, after: Scene) -> str:
    """The cells whose content differs, in reading order, as ``"row R, column C: <before> -> <after>"``.

    A comparison of two pictures, not an action: ``"row 1, column 1: nothing -> red square; row 1, column 2:
    red square -> nothing"`` whatever moved the square; :data:`NO_CHANGE` for identical scenes. The base model
    pretrains on it (``wm_hub.sandbox``), and a triplet's ``rationale`` holds it.
    """
    cells = {obj.cell for obj in before.objects + after.objects}
    parts = [
        f"row {y + 1}, column {x + 1}: {content_name(before.at((x, y)))} -> {content_name(after.at((x, y)))}"
        for x, y in sorted(cells, key=lambda cell: (cell[1], cell[0]))
        if content_name(before.at((x, y))) != content_name(after.at((x, y)))
    ]
    return "; ".join(parts) or NO_CHANGE


def _content(obj: ShapeObject | None) -> tuple[str, str] | None:
    return None if obj is None else (obj.shape, obj.colour)


def distance_phrase(direction: str, distance: int) -> str:
    """A move's displacement as its action text says it: ``"left by 1 cell"``, ``"down by 3 cells"``."""
    return f"{direction} by {distance} cell{'s' if distance > 1 else ''}"


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _shape_mask(shape: str, size: int) -> Image.Image:
    """A binary ("L", 0 or 255, no anti-aliasing) mask of ``shape`` inside a ``size`` px cell with a margin."""
    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    lo, hi = max(1, size // 8), size - 1 - max(1, size // 8)
    left, right = (lo + hi) // 2, (lo + hi + 1) // 2  # the middle pixel(s): 2 when the drawing box is even
    if shape == "square":
        draw.rectangle((lo, lo, hi, hi), fill=255)
    elif shape == "circle":
        draw.ellipse((lo, lo, hi, hi), fill=255)
    elif shape == "triangle":
        draw.polygon([(left, lo), (right, lo), (hi, hi), (lo, hi)], fill=255)
    elif shape == "cross":
        width = max(1, (hi - lo + 1) // 3)
        start = lo + (hi - lo + 1 - width) // 2
        draw.rectangle((start, lo, start + width - 1, hi), fill=255)
        draw.rectangle((lo, start, hi, start + width - 1), fill=255)
    return mask
