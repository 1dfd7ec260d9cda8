"""``shapes_world``: the procedurally generated grid world of :mod:`wm_hub.data.shapes_world` as triplets.

Configs (every one takes the fields of :class:`wm_hub.data.shapes_world.WorldConfig` plus ``num_train``,
``num_test`` and ``pairs``; train and test are drawn from different seeds derived from ``seed``):

- ``triplets``: labelled triplets; ``action_class`` is the action kind (``move``, ``add``, ``remove``,
  ``recolour``, ``reshape``, ``swap``). ``num_train``/``num_test`` count triplets.
- ``videos``: unlabelled frame pairs cut from generated videos (``pairs="keyframes"``: one whole action per pair;
  ``"consecutive"``: neighbouring frames in motion), with an empty ``action``, no ``action_class``, and ``video``
  and ``frames`` set: what IDM annotation reads. ``num_train``/``num_test`` count videos.
- ``videos_truth``: the same rows as ``videos`` with equal settings (same ids, images, ``video``, ``frames``), with
  the generator's hidden action as ``action`` and its kind as ``action_class``. Join it with IDM labels on ``id``
  to score annotation, or train on it as an oracle-labelled upper bound; a bootstrapping run measuring the IDM
  must train on ``videos`` + IDM labels only.

Example::

    builder = ShapesWorldBuilder(cache_dir=tmp, config_name="triplets", grid=4, num_train=500)
    builder.download_and_prepare()
    train = builder.as_dataset("train")
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import datasets

from wm_hub.data.schema import TRIPLET_FEATURES
from wm_hub.data.shapes_world import PAIR_MODES, ShapesWorld, WorldConfig

VERSION = datasets.Version("1.0.0")


@dataclass
class ShapesWorldConfig(datasets.BuilderConfig, WorldConfig):
    """A shapes-world config: the world's fields (see ``WorldConfig``) and how many examples to draw.

    Args:
        num_train: Triplets (``triplets``) or videos (``videos``, ``videos_truth``) in the train split.
        num_test: The same for the test split.
        pairs: Video pairs, ``"keyframes"`` or ``"consecutive"`` (video configs only).
    """

    num_train: int = 2000
    num_test: int = 200
    pairs: str = "keyframes"

    def world(self) -> WorldConfig:
        """The (validated) world settings; builder kwargs are set after ``__init__``, so validate here."""
        if self.pairs not in PAIR_MODES:
            raise ValueError(f"unknown pairs {self.pairs!r}; choose one of {PAIR_MODES}")
        return WorldConfig(**{f.name: getattr(self, f.name) for f in fields(WorldConfig)})


class ShapesWorldBuilder(datasets.GeneratorBasedBuilder):
    """Labelled triplets and unlabelled video pairs of a generated shapes world (no download, no data_dir)."""

    BUILDER_CONFIG_CLASS = ShapesWorldConfig
    BUILDER_CONFIGS = [
        ShapesWorldConfig(name="triplets", version=VERSION, description="Labelled shapes-world triplets."),
        ShapesWorldConfig(
            name="videos",
            version=VERSION,
            num_train=200,
            num_test=20,
            description="Unlabelled frame pairs of shapes-world videos (empty action).",
        ),
        ShapesWorldConfig(
            name="videos_truth",
            version=VERSION,
            num_train=200,
            num_test=20,
            description="The rows of 'videos' with their hidden ground-truth actions, for evaluation.",
        ),
    ]
    DEFAULT_CONFIG_NAME = "triplets"

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(description=self.config.description, features=TRIPLET_FEATURES)

    def _split_generators(self, dl_manager: datasets.DownloadManager) -> list[datasets.SplitGenerator]:
        world = self.config.world()
        counts = {datasets.Split.TRAIN: self.config.num_train, datasets.Split.TEST: self.config.num_test}
        return [
            datasets.SplitGenerator(name=split, gen_kwargs={"world": world, "split": str(split), "count": count})
            for split, count in counts.items()
        ]

    def _generate_examples(self, world: WorldConfig, split: str, count: int):
        generator = ShapesWorld(world)
        if self.config.name == "triplets":
            rows = generator.triplet_rows(split, count)
        else:
            rows = generator.video_rows(
                split, count, pairs=self.config.pairs, reveal_actions=self.config.name == "videos_truth"
            )
        for row in rows:
            yield row["id"], row
