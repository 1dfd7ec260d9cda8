"""Cell contents of shapes-world pictures: the patterns a cell can hold, the truth of a scene, and a cell reader.

A cell of the shapes world holds nothing or one object of a shape and colour, drawn the same way wherever it is:
:func:`cell_patterns` lists them (index 0 is the empty cell). :func:`scene_contents` gives the pattern index of
every cell of a scene (row-major), and :class:`CellReader` reads a picture back into pattern indices by comparing
each cell with the world's own renderings of every pattern (nearest in RGB). It judges a decoded image the way a
person would: a cell is right when it shows the right content, whatever the exact pixel values.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from wm_hub.data.shapes_world import Scene, ShapeObject, ShapesWorld, WorldConfig

Pattern = tuple[str, str] | None  # (shape, colour), or None for an empty cell


def cell_patterns(config: WorldConfig) -> list[Pattern]:
    """Every content a cell of ``config`` can hold: ``None`` (empty) first, then (shape, colour) pairs."""
    return [None] + [(shape, colour) for shape in config.shapes for colour in config.colours]


def scene_contents(scene: Scene, config: WorldConfig) -> torch.Tensor:
    """``(grid * grid,)`` pattern indices (:func:`cell_patterns`) of the scene's cells, row-major."""
    index = {pattern: i for i, pattern in enumerate(cell_patterns(config))}
    contents = torch.zeros(config.grid * config.grid, dtype=torch.long)
    for obj in scene.objects:
        x, y = obj.cell
        contents[y * config.grid + x] = index[(obj.shape, obj.colour)]
    return contents


class CellReader:
    """Reads shapes-world pictures back into cell pattern indices.

    Args:
        config: The world whose pictures are read.
    """

    def __init__(self, config: WorldConfig):
        self.config = config
        self.patterns = cell_patterns(config)
        world = ShapesWorld(config)
        size = config.cell_size
        renders = []
        for pattern in self.patterns:
            objects = () if pattern is None else (ShapeObject(pattern[0], pattern[1], (0, 0)),)
            image = np.asarray(world.render(Scene(objects)), dtype=np.float32)
            renders.append(image[:size, :size].reshape(-1))
        self._renders = torch.from_numpy(np.stack(renders))  # (patterns, size * size * 3)

    def read(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """``(N, grid * grid)`` pattern indices of the cells of ``images`` (resized to the world's size)."""
        config, size = self.config, self.config.cell_size
        arrays = [
            np.asarray(image.convert("RGB").resize((config.image_size,) * 2, Image.Resampling.NEAREST))
            for image in images
        ]
        pixels = torch.from_numpy(np.stack(arrays).astype(np.float32))  # (N, H, W, 3)
        cells = pixels.reshape(len(arrays), config.grid, size, config.grid, size, 3).permute(0, 1, 3, 2, 4, 5)
        flat = cells.reshape(len(arrays) * config.grid * config.grid, -1)
        return torch.cdist(flat, self._renders).argmin(dim=1).reshape(len(arrays), -1)

    def describe(self, index: int) -> str:
        """A pattern index as words: ``"empty"`` or ``"red square"``."""
        pattern = self.patterns[index]
        return "empty" if pattern is None else f"{pattern[1]} {pattern[0]}"
