"""``datasets.GeneratorBasedBuilder`` classes that turn each data origin into wm-hub triplets.

Use them from Python (``AuroraBuilder(data_dir=..., config_name="ag").download_and_prepare()``) or through
``wm-hub data build NAME --config C --data-dir DIR --out OUT``, which writes a Hub-layout folder that
``datasets.load_dataset(OUT)`` reads without wm-hub.
"""

from __future__ import annotations

import importlib

import datasets

# name -> "module:Class"; imported lazily so one builder's optional dependency never blocks the others.
BUILDERS: dict[str, str] = {
    "aurora": "dataset_builders.aurora:AuroraBuilder",
    "epic_kitchens": "dataset_builders.epic_kitchens:EpicKitchensBuilder",
    "video_keyframes": "dataset_builders.video_keyframes:VideoKeyframesBuilder",
    "synthetic_triplets": "dataset_builders.synthetic_triplets:SyntheticTripletsBuilder",
    "shapes_world": "dataset_builders.shapes_world:ShapesWorldBuilder",
}


def builder_class(name: str) -> type[datasets.GeneratorBasedBuilder]:
    """The builder class registered as ``name``."""
    if name not in BUILDERS:
        raise ValueError(f"Unknown dataset builder {name!r}; choose one of {sorted(BUILDERS)}")
    module, cls = BUILDERS[name].split(":")
    return getattr(importlib.import_module(module), cls)
