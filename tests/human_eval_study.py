"""Test data of the human-evaluation tests: an AURORA-layout checkout and four models' prediction folders.

The checkout holds shapes-world triplets in AURORA-BENCH's format (``test.json`` rows ``instruction``, ``input``,
``output``, ``task`` with paths relative to the root), so studies are built through the real ``aurora`` builder;
each model's predictions are a different, recognisable image per row (``DIR/<subset>/<index>.png``).
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, ImageOps

from wm_hub.data.shapes_world import ShapesWorld, WorldConfig

SUBSETS = ("magicbrush", "ag", "something", "whatsup", "kubric")
MODELS = ("alpha", "beta", "gamma", "delta")

_TRANSFORMS = {
    "alpha": lambda source, target: target,
    "beta": lambda source, target: source,
    "gamma": lambda source, target: ImageOps.mirror(target),
    "delta": lambda source, target: ImageOps.invert(target.convert("RGB")),
}


def write_aurora_checkout(root: Path, rows_per_subset: int = 3) -> Path:
    """An AURORA-layout checkout of ``rows_per_subset`` shapes-world rows for each of the paper's subsets."""
    world = ShapesWorld(WorldConfig(seed=11))
    rows = []
    for subset in SUBSETS:
        for number in range(rows_per_subset):
            triplet = world.triplet("test", len(rows))
            folder = root / "data" / subset / "images" / str(number)
            folder.mkdir(parents=True, exist_ok=True)
            triplet.source.save(folder / "first.png")
            triplet.target.save(folder / "last.png")
            rows.append(
                {
                    "instruction": triplet.action.text,
                    "input": f"data/{subset}/images/{number}/first.png",
                    "output": f"data/{subset}/images/{number}/last.png",
                    "task": subset,
                }
            )
    (root / "test.json").write_text(json.dumps(rows))
    return root


def write_predictions(checkout: Path, out: Path) -> dict[str, Path]:
    """``{model: folder}`` with one prediction per row of the checkout, different for every model."""
    rows = json.loads((checkout / "test.json").read_text())
    folders = {}
    for model, transform in _TRANSFORMS.items():
        folder = out / f"predictions-{model}"
        for index, row in enumerate(rows):
            with Image.open(checkout / row["input"]) as source, Image.open(checkout / row["output"]) as target:
                prediction = transform(source.convert("RGB"), target.convert("RGB"))
            path = folder / row["task"] / f"{index}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            prediction.save(path)
        folders[model] = folder
    return folders


def build_args(checkout: Path, predictions: dict[str, Path], out: Path, per_subset: int = 2, seed: int = 3) -> list:
    """``wm-hub`` arguments of ``human-eval build`` for these predictions."""
    return [
        "human-eval",
        "build",
        "--predictions",
        *[f"{model}={folder}" for model, folder in predictions.items()],
        "--data-dir",
        str(checkout),
        "--per-subset",
        str(per_subset),
        "--seed",
        str(seed),
        "--out",
        str(out),
    ]
