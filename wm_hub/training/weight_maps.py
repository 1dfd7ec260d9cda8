"""Seeing the recognition weights (paper Figure 3): source | target | target with the token-weight heatmap."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from wm_hub.atomic_io import write_with
from wm_hub.data.pictures import PictureError, open_picture
from wm_hub.models.base import Backbone, pixels_to_pil
from wm_hub.training.recognition import recognition_weights


def heat_colors(values: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] to RGB (dark blue -> red -> yellow), ``(..., 3)`` uint8."""
    stops = np.array([[0, 0, 96], [0, 96, 255], [255, 32, 0], [255, 255, 0]], dtype=np.float32)
    position = np.clip(values, 0, 1) * (len(stops) - 1)
    low = np.floor(position).astype(int).clip(0, len(stops) - 2)
    fraction = (position - low)[..., None]
    return (stops[low] * (1 - fraction) + stops[low + 1] * fraction).astype(np.uint8)


def overlay_weights(image: Image.Image, weights: torch.Tensor, alpha: float = 0.45) -> Image.Image:
    """Blend a ``(h, w)`` weight grid (scaled to its max) over ``image`` as a heatmap, one block per token."""
    grid = weights.float().numpy()
    scaled = grid / grid.max() if grid.max() > 0 else grid
    heat = Image.fromarray(heat_colors(scaled)).resize(image.size, Image.Resampling.NEAREST)
    return Image.blend(image.convert("RGB"), heat, alpha)


def weight_panel(
    backbone: Backbone, source: Image.Image, target: Image.Image, display_size: int = 256
) -> tuple[Image.Image, torch.Tensor]:
    """Source | target | target with its recognition-weight heatmap, as the VQ encoder sees them.

    Args:
        backbone: Its VQ encoder is the recognition model.
        source: Source observation.
        target: Next observation.
        display_size: Side of each of the three tiles.

    Returns:
        The panel image and the ``(h, w)`` mean-normalised weight grid.
    """
    _, features = backbone.encode_images_with_features([source, target])
    weights = recognition_weights(features[0], features[1]).reshape(backbone.image_grid)
    seen = pixels_to_pil(backbone.preprocess([source, target]))  # resized/cropped exactly as tokenized
    tiles = [tile.resize((display_size, display_size), Image.Resampling.NEAREST) for tile in seen]
    tiles.append(overlay_weights(tiles[1], weights))
    panel = Image.new("RGB", (3 * display_size, display_size))
    for index, tile in enumerate(tiles):
        panel.paste(tile, (index * display_size, 0))
    return panel, weights


def write_weight_panels(
    backbone: Backbone, rows: Iterable[dict], out_dir: str | Path, limit: int | None = None, display_size: int = 256
) -> list[Path]:
    """Write ``<id>.png`` weight panels for triplet rows (``id``, ``source``, ``target``) into ``out_dir``.

    Returns:
        The written files, in row order.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for index, row in enumerate(tqdm(rows, total=limit, desc="Weight panels")):
        if limit is not None and index >= limit:
            break
        panel, _ = weight_panel(backbone, row["source"], row["target"], display_size)
        name = "".join(char if char.isalnum() or char in "-_." else "_" for char in str(row.get("id", index)))
        path = out_dir / f"{index:05d}-{name}.png"
        write_with(path, lambda tmp, panel=panel: panel.save(tmp, format="PNG"))
        written.append(path)
    return written


@dataclass
class WeightPanelsConfig:
    """Which triplets :func:`show_weights` draws with which recognizer (``wm-hub data show-weights``).

    Args:
        backbone: Backbone folder or Hub id (its VQ encoder is the recognizer).
        data: Triplets with ``source`` and ``target`` images: a Hub-layout folder, a Hub dataset id, or a
            ``.parquet`` file.
        out: Output folder for the PNG panels.
        split: Split to read (not for a ``.parquet`` file).
        limit: Triplets to draw (the first ones).
        display_size: Side of each panel tile, in pixels.
        device: Torch device (default: CPU).
    """

    backbone: str
    data: str
    out: str
    split: str = "train"
    limit: int = 16
    display_size: int = 256
    device: str | None = None

    def __post_init__(self) -> None:
        for name in ("limit", "display_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"WeightPanelsConfig: {name} must be >= 1, got {getattr(self, name)}")


def show_weights(config: WeightPanelsConfig) -> list[Path]:
    """Write the weight panels of the first ``config.limit`` triplets of ``config.data`` into ``config.out``.

    Returns:
        The written files, in row order.

    Raises:
        ValueError: ``config.data`` cannot be read (no such file, folder or Hub dataset, no such split...), or has
            no ``source``/``target`` column.
    """
    from wm_hub.data.dataset_input import load_dataset_input
    from wm_hub.models.loading import load_backbone

    triplets = load_dataset_input(config.data, config.split)
    missing = {"source", "target"} - set(triplets.column_names)
    if missing:
        raise ValueError(f"--data {config.data} has no {sorted(missing)} column(s): not a triplet dataset")
    rows = _pictures(triplets.select(range(min(config.limit, len(triplets)))), f"--data {config.data}")
    backbone = load_backbone(config.backbone, device=config.device)
    return write_weight_panels(backbone, rows, config.out, display_size=config.display_size)


def _pictures(rows, where: str):
    """``rows`` whose ``source`` and ``target`` are checked to decode as pictures (a plain Parquet's bytes/path
    structs become image columns), before any model loads; else a ``ValueError`` naming the row, id and field."""
    import datasets

    for side in ("source", "target"):
        if not isinstance(rows.features[side], datasets.Image):
            try:
                rows = rows.cast_column(side, datasets.Image())
            except (ValueError, TypeError) as error:
                raise ValueError(f"{where}: column {side!r} holds no images ({error})") from None
    raw = rows.cast_column("source", datasets.Image(decode=False)).cast_column("target", datasets.Image(decode=False))
    ids = rows["id"] if "id" in rows.column_names else [None] * len(rows)
    for index, (row, row_id) in enumerate(zip(raw, ids)):
        for side in ("source", "target"):
            value = row[side] or {}
            try:
                open_picture(value.get("bytes") or value.get("path") or b"")
            except PictureError as error:
                raise ValueError(f"{where}: row {index} (id {row_id!r}): field {side!r}: {error}") from None
    return rows
