"""The one triplet schema of wm-hub (design.md, "Data").

Every origin (AURORA, EPIC-KITCHENS, key-frame pairs of unlabelled video, IDM-annotated pairs, shapes-world)
comes out with exactly these columns, so recipes concatenate them freely and the same Parquet files can be
pushed to the Hub. Columns that an origin does not have hold ``None``.

``rationale`` is the text an IDM that reasons first writes before the action (``idm_rationale``,
docs/training.md): the shapes world's changed cells, or an annotating IDM's own. Datasets written before it existed
lack the column; :data:`OPTIONAL_COLUMNS` are added as ``None`` when such a dataset is read.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import datasets
from PIL import Image

TRIPLET_FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"),
        "source": datasets.Image(),
        "target": datasets.Image(),
        "action": datasets.Value("string"),
        "origin": datasets.Value("string"),
        "score": datasets.Value("float32"),
        "action_class": datasets.Value("string"),
        "video": datasets.Value("string"),
        "frames": datasets.List(datasets.Value("int32")),
        "rationale": datasets.Value("string"),
    }
)
# Columns a triplet dataset may lack (written before they existed): read as None.
OPTIONAL_COLUMNS = ("rationale",)


def add_optional_columns(dataset: datasets.Dataset) -> datasets.Dataset:
    """``dataset`` with each of :data:`OPTIONAL_COLUMNS` it lacks added as ``None`` (a dataset written before)."""
    for name in OPTIONAL_COLUMNS:
        if name not in dataset.column_names:
            dataset = dataset.add_column(name, [None] * len(dataset), feature=TRIPLET_FEATURES[name])
    return dataset


def image_bytes(image: Image.Image | bytes, format: str = "PNG") -> dict[str, Any]:
    """An ``Image`` feature value holding encoded bytes (so Parquet exports and pushes are self-contained).

    Args:
        image: A PIL image (encoded as ``format``) or already-encoded file bytes (kept as they are).
        format: Encoding for PIL images.
    """
    if isinstance(image, bytes):
        return {"bytes": image, "path": None}
    buffer = io.BytesIO()
    image.save(buffer, format=format)
    return {"bytes": buffer.getvalue(), "path": None}


def make_triplet(
    id: str,
    source: Image.Image | bytes,
    target: Image.Image | bytes,
    action: str,
    origin: str,
    *,
    score: float | None = None,
    action_class: str | None = None,
    video: str | None = None,
    frames: Sequence[int] | None = None,
    rationale: str | None = None,
) -> dict[str, Any]:
    """One row of :data:`TRIPLET_FEATURES`, images as bytes.

    Args:
        id: Unique id within the dataset.
        source: Source observation (PIL image or encoded file bytes).
        target: Next observation.
        action: Action text (empty for unlabelled pairs).
        origin: ``dataset/subset``, e.g. ``aurora/ag``.
        score: IDM log-likelihood of the action (annotated data).
        action_class: Coarse class (EPIC verb, video folder, annotation class).
        video: Source video of a key-frame pair.
        frames: Frame indices of source and target in ``video``.
        rationale: What an IDM that reasons first writes before the action (e.g. the changed cells).
    """
    return {
        "id": id,
        "source": image_bytes(source),
        "target": image_bytes(target),
        "action": action,
        "origin": origin,
        "score": score,
        "action_class": action_class,
        "video": video,
        "frames": list(frames) if frames is not None else None,
        "rationale": rationale,
    }
