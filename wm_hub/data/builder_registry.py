"""The dataset builders wm-hub knows by name: the ``wm_hub.dataset_builders`` entry points.

wm-hub's own builders (``dataset_builders/``: aurora, epic_kitchens, video_keyframes, synthetic_triplets,
shapes_world) are registered in ``setup.cfg``; a third-party package adds one by declaring an entry point in the same
group (``my_data = my_package.builders:MyBuilder``), and recipes, ``wm-hub data build`` and the evaluation sources
then accept ``builder: my_data``. Looking builders up by name keeps ``wm_hub.data`` free of imports of the builders,
which themselves build on ``wm_hub.data`` (and on ``wm_hub.bootstrap`` for key frames).
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

import datasets

ENTRY_POINT_GROUP = "wm_hub.dataset_builders"


def _registered() -> dict[str, EntryPoint]:
    return {point.name: point for point in entry_points(group=ENTRY_POINT_GROUP)}


def builder_names() -> list[str]:
    """Names of the registered dataset builders, sorted."""
    return sorted(_registered())


def check_builder_name(name: str) -> None:
    """Raise a ``ValueError`` naming the registered builders when ``name`` is not one of them."""
    _entry_point(name)


def _entry_point(name: str) -> EntryPoint:
    registered = _registered()
    if name in registered:
        return registered[name]
    if not registered:
        raise ValueError(
            f"Unknown dataset builder {name!r}: no builder is registered under the {ENTRY_POINT_GROUP!r} entry "
            "points. Install wm-hub as a package (`pip install -e .` in a checkout) so its builders are registered."
        )
    raise ValueError(f"Unknown dataset builder {name!r}; choose one of {sorted(registered)}")


def builder_class(name: str) -> type[datasets.GeneratorBasedBuilder]:
    """The builder class registered as ``name`` (imported on first use: one builder's optional dependency never
    blocks the others).

    Raises:
        ValueError: ``name`` is not registered (the message lists the registered names).
    """
    return _entry_point(name).load()
