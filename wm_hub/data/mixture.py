"""Data mixtures: several triplet sources, each subsampled or repeated deterministically, as one training set.

A source is either a registered dataset builder (``dataset_builders``: ``aurora``, ``epic_kitchens``,
``synthetic_triplets``, ``shapes_world``...) run on a local folder, or a dataset that ``datasets.load_dataset``
reads (a Hub id, or a folder written by ``wm-hub data build``). Every source must hold triplets
(:data:`~wm_hub.data.schema.TRIPLET_FEATURES`). Recipes list them in YAML::

    sources:
      - builder: aurora
        config: kubric
        data_dir: AURORA          # relative data_dir values are resolved against data_root
        max_samples: 10000
      - path: my-org/ucf101-idm-annotated
        weight: 2.0

How many rows a source contributes: ``max_samples`` keeps a seeded random subset of at most that many rows, then
``weight`` scales that size: ``0.5`` keeps a seeded half, ``2.0`` repeats every row twice, ``1.5`` every row once
plus a seeded half. The rows chosen depend only on (seed, the source's label, its size), so adding, removing or
reordering other sources never changes them. An ``eval_size`` hold-out is drawn over the whole mixture (the same
recipe always holds out the same rows).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from wm_hub.data.builder_registry import builder_class, check_builder_name
from wm_hub.data.schema import TRIPLET_FEATURES, add_optional_columns


@dataclass
class SourceConfig:
    """One source of triplets in a mixture.

    Args:
        builder: A registered dataset builder (:mod:`wm_hub.data.builder_registry`), e.g. ``aurora``.
        path: A Hub dataset id or a local dataset folder for ``datasets.load_dataset`` (instead of ``builder``).
        config: The builder config (``ag``, ``kubric``, ``bench``...) or the ``load_dataset`` config name.
        data_dir: The folder the builder reads (``load_dataset``'s ``data_dir`` for ``path`` sources); a relative
            path is resolved against the mixture's ``data_root``.
        split: The split to use.
        revision: Branch, tag or commit of a Hub dataset (``path`` sources only), e.g. one bootstrap round.
        builder_kwargs: Builder config options, e.g. ``{"skip_missing": true}`` or ``{"min_score": -5.0}``.
        max_samples: Keep a seeded random subset of at most this many rows (the paper keeps 10K Kubric rows).
        weight: Multiplies the (capped) number of rows: below 1 subsamples, above 1 repeats rows.
        name: The source's label in reports and model cards, and the key of its random draws; defaults to
            ``builder/config`` or ``path``. Sources must have distinct labels.
        expect_rows: The rows the source's split must hold (before ``max_samples`` and ``weight``), checked when
            the mixture is built (``--dry_run`` included): the paper's synthetic sources are each the 7K top-K
            sample of ``wm-hub sample --k 7000``, and a folder of every annotation would silently train on more.
    """

    builder: str | None = None
    path: str | None = None
    config: str | None = None
    data_dir: str | None = None
    split: str = "train"
    revision: str | None = None
    builder_kwargs: dict[str, Any] = field(default_factory=dict)
    max_samples: int | None = None
    weight: float = 1.0
    name: str | None = None
    expect_rows: int | None = None

    def __post_init__(self) -> None:
        if (self.builder is None) == (self.path is None):
            raise ValueError(
                "a mixture source needs exactly one of 'builder' (a registered dataset builder) or 'path' (a Hub "
                f"id or a local dataset folder); got builder={self.builder!r}, path={self.path!r}"
            )
        if self.builder is not None:
            check_builder_name(self.builder)
        if self.path is not None and self.builder_kwargs:
            raise ValueError(f"source {self.label}: builder_kwargs apply to 'builder' sources only")
        if self.builder is not None and self.revision is not None:
            raise ValueError(f"source {self.label}: revision applies to 'path' sources (Hub datasets) only")
        if self.max_samples is not None and self.max_samples < 1:
            raise ValueError(f"source {self.label}: max_samples must be at least 1, got {self.max_samples}")
        if not self.weight > 0:
            raise ValueError(f"source {self.label}: weight must be positive, got {self.weight}")
        if self.expect_rows is not None and self.expect_rows < 1:
            raise ValueError(f"source {self.label}: expect_rows must be at least 1, got {self.expect_rows}")

    @property
    def label(self) -> str:
        """The source's name in reports, e.g. ``aurora/kubric``."""
        return self.name or "/".join(part for part in (self.builder or self.path, self.config) if part)


@dataclass
class SourceReport:
    """What one source contributed.

    Attributes:
        label: The source's label.
        available: Rows in the source's split.
        train: Rows it contributes to the training set (repeats counted).
        eval: Rows of it held out for evaluation (``eval_size``), or its rows in the evaluation set.
    """

    label: str
    available: int
    train: int
    eval: int = 0


@dataclass
class Mixture:
    """The datasets a recipe trains and evaluates on, and where their rows came from.

    Attributes:
        train: The training triplets (sources concatenated in order; the trainer shuffles).
        eval: The evaluation triplets, or ``None``.
        sources: One report per training source.
        eval_sources: One report per evaluation source.
    """

    train: datasets.Dataset
    eval: datasets.Dataset | None
    sources: list[SourceReport]
    eval_sources: list[SourceReport]

    def summary(self) -> dict[str, Any]:
        """Sizes per source and in total, as JSON-ready data."""
        return {
            "train_rows": len(self.train),
            "eval_rows": len(self.eval) if self.eval is not None else 0,
            "sources": [asdict(report) for report in self.sources],
            "eval_sources": [asdict(report) for report in self.eval_sources],
        }


def build_mixture(
    sources: Sequence[SourceConfig],
    *,
    eval_sources: Sequence[SourceConfig] = (),
    eval_size: float | None = None,
    seed: int = 0,
    data_root: str | Path | None = None,
    cache_dir: str | None = None,
    prepare: Callable[[datasets.Dataset], datasets.Dataset] | None = None,
) -> Mixture:
    """Load every source as triplets, pick its rows deterministically and concatenate them.

    Args:
        sources: The training sources.
        eval_sources: Sources of a separate evaluation set (e.g. AURORA-BENCH), sized the same way.
        eval_size: Rows held out of the training sources for evaluation: a count (>= 1) or a fraction (< 1).
            Repeated rows are held out with all their copies, so no row is in both sets. Exclusive with
            ``eval_sources``.
        seed: Seed of every random draw.
        data_root: Folder that relative ``data_dir`` values are resolved against (default: the working directory).
        cache_dir: ``datasets`` cache folder for builders and ``load_dataset`` (default: the ``datasets`` one).
        prepare: Applied to each source's whole split before its rows are picked (training passes
            ``encode_triplets`` here: a source is encoded once, whatever it is mixed with, and a row repeated by
            ``weight`` is encoded once).

    Returns:
        The mixture with a report per source.

    Raises:
        ValueError: No sources, duplicate labels, a dataset that is not triplets, a source left empty, or both
            ``eval_sources`` and ``eval_size``.
        FileNotFoundError: A ``data_dir`` that is not a folder.
    """
    if not sources:
        raise ValueError("the data mixture has no sources: list them under 'sources' in the recipe")
    if eval_sources and eval_size is not None:
        raise ValueError("give either eval_sources (a separate evaluation set) or eval_size (a hold-out), not both")
    if eval_size is not None and not eval_size > 0:
        raise ValueError(f"eval_size must be positive, got {eval_size}")
    labels = [source.label for source in [*sources, *eval_sources]]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise ValueError(f"mixture sources share the label(s) {duplicates}: give each a distinct 'name'")

    loaded = [_load_source(source, data_root, cache_dir, prepare) for source in sources]
    picks = [_pick_rows(len(ds), source, seed) for ds, source in zip(loaded, sources)]
    held_out = [np.zeros(0, dtype=np.int64) for _ in sources]
    if eval_size is not None:
        picks, held_out = _hold_out(picks, eval_size, seed)
    reports = [
        SourceReport(source.label, len(ds), len(rows), len(held))
        for source, ds, rows, held in zip(sources, loaded, picks, held_out)
    ]
    train = _concatenate([_select(ds, rows) for ds, rows in zip(loaded, picks) if len(rows)])
    if eval_size is not None:
        evaluation = _concatenate([_select(ds, rows) for ds, rows in zip(loaded, held_out) if len(rows)])
        return Mixture(train, evaluation, reports, [])
    if not eval_sources:
        return Mixture(train, None, reports, [])
    eval_loaded = [_load_source(source, data_root, cache_dir, prepare) for source in eval_sources]
    eval_picks = [_pick_rows(len(ds), source, seed) for ds, source in zip(eval_loaded, eval_sources)]
    eval_reports = [
        SourceReport(source.label, len(ds), 0, len(rows))
        for source, ds, rows in zip(eval_sources, eval_loaded, eval_picks)
    ]
    evaluation = _concatenate([_select(ds, rows) for ds, rows in zip(eval_loaded, eval_picks)])
    return Mixture(train, evaluation, reports, eval_reports)


def _load_source(
    source: SourceConfig,
    data_root: str | Path | None,
    cache_dir: str | None,
    prepare: Callable[[datasets.Dataset], datasets.Dataset] | None = None,
) -> datasets.Dataset:
    """The source's split as a dataset of exactly :data:`TRIPLET_FEATURES`, then through ``prepare``."""
    data_dir = None
    if source.data_dir is not None:
        data_dir = Path(data_root or ".") / Path(source.data_dir).expanduser()
        if not data_dir.is_dir():
            raise FileNotFoundError(
                f"source {source.label}: data_dir {data_dir} is not a folder (set data_root or the source's data_dir)"
            )
        data_dir = str(data_dir)
    if source.builder is not None:
        builder = builder_class(source.builder)(
            config_name=source.config,
            data_dir=data_dir,
            cache_dir=cache_dir,
            hash=None if data_dir is None else folder_fingerprint(data_dir),
            **source.builder_kwargs,
        )
        builder.download_and_prepare()
        dataset = builder.as_dataset(split=source.split)
    else:
        dataset = datasets.load_dataset(
            source.path,
            name=source.config,
            data_dir=data_dir,
            split=source.split,
            cache_dir=cache_dir,
            revision=source.revision,
        )
    dataset = add_optional_columns(dataset)
    missing = [name for name in TRIPLET_FEATURES if name not in dataset.column_names]
    if missing:
        raise ValueError(
            f"source {source.label}: not a triplet dataset (no column(s) {missing}); "
            "convert it with a dataset builder (`wm-hub data build`)"
        )
    if source.expect_rows is not None and len(dataset) != source.expect_rows:  # before any encoding
        raise ValueError(
            f"source {source.label}: {len(dataset)} rows, the recipe expects {source.expect_rows} (expect_rows); "
            "a synthetic source should be the top-K sample of `wm-hub sample --k K` (builder_kwargs: "
            "{annotation_files: [sampled.jsonl]}), not every annotation"
        )
    dataset = dataset.select_columns(list(TRIPLET_FEATURES))
    dataset = dataset if dataset.features == TRIPLET_FEATURES else dataset.cast(TRIPLET_FEATURES)
    return prepare(dataset) if prepare is not None else dataset


IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"})


def folder_fingerprint(folder: str | Path) -> str:
    """A hash of a builder's data folder: the path, size and modification time of every file but images.

    ``datasets`` keys a builder's cache by its config and the ``data_dir`` path only, so an annotation folder that
    grew (a resumed ``wm-hub annotate``), a ``sampled.jsonl`` drawn again with another K, or videos added to a class
    folder would be read from the stale cache. Passed as the builder's ``hash``, this puts each state of the folder
    in its own cache. Images are left out (AURORA holds tens of thousands; they are referenced by the index files,
    which are in).
    """
    digest = hashlib.sha256()
    root = Path(folder)
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() not in IMAGE_SUFFIXES and path.is_file():
            stat = path.stat()
            digest.update(f"{path.relative_to(root)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def _rng(seed: int, key: str) -> np.random.Generator:
    """A generator that depends only on ``seed`` and ``key`` (stable across processes and Python versions)."""
    digest = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")
    return np.random.default_rng([seed, digest])


def _pick_rows(size: int, source: SourceConfig, seed: int) -> np.ndarray:
    """Sorted row indices (with repeats for ``weight`` > 1) that ``source`` contributes."""
    if size == 0:
        raise ValueError(f"source {source.label}: split {source.split!r} has no rows")
    rng = _rng(seed, source.label)
    kept = rng.permutation(size)[: min(size, source.max_samples or size)]
    target = round(source.weight * len(kept))
    if target == 0:
        raise ValueError(f"source {source.label}: weight {source.weight} keeps none of its {len(kept)} rows")
    copies, remainder = divmod(target, len(kept))
    return np.sort(np.concatenate([np.tile(kept, copies), rng.choice(kept, remainder, replace=False)]))


def _hold_out(picks: list[np.ndarray], eval_size: float, seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Move ``eval_size`` distinct (source, row) pairs, with all their copies, from training to evaluation."""
    pairs = np.unique(
        np.concatenate([np.stack([np.full(len(rows), i), rows], 1) for i, rows in enumerate(picks)]), axis=0
    )
    count = int(eval_size) if eval_size >= 1 else round(eval_size * len(pairs))
    if not 0 < count < len(pairs):
        raise ValueError(f"eval_size {eval_size} holds out {count} of the mixture's {len(pairs)} distinct rows")
    chosen = pairs[_rng(seed, "eval hold-out").choice(len(pairs), count, replace=False)]
    train, held_out = [], []
    for index, rows in enumerate(picks):
        held = np.sort(chosen[chosen[:, 0] == index, 1])
        train.append(rows[~np.isin(rows, held)])
        held_out.append(held)
    return train, held_out


def _select(dataset: datasets.Dataset, rows: np.ndarray) -> datasets.Dataset:
    if len(rows) == len(dataset) and np.array_equal(rows, np.arange(len(dataset))):
        return dataset
    return dataset.select(rows)


def _concatenate(parts: list[datasets.Dataset]) -> datasets.Dataset:
    return parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)
