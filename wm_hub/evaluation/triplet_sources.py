"""Evaluation triplets from any data wm-hub builds: an AURORA checkout, a dataset builder, a Hub-layout folder.

- an AURORA checkout (a folder with ``test.json``): AURORA-BENCH through the ``aurora`` builder's ``bench`` config
  (the paper's five subsets by default), with its missing-file rules: rows whose images are missing stop the run
  with one error naming them, unless ``skip_missing``, which skips, counts and lists them;
- ``builder=NAME``: any registered builder (``dataset_builders``) run on ``data`` as its ``data_dir``;
- anything else: ``datasets.load_dataset(data)``, a Hub id or a folder written by ``wm-hub data build``.

Builders always build fresh (in a temporary cache) so edited annotation files are never served stale. A row's
subset is the last part of its ``origin`` (``aurora/ag`` -> ``ag``).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets

from wm_hub.data.builder_registry import builder_class
from wm_hub.data.dataset_input import load_dataset_input
from wm_hub.data.reporting_builder import prepare_builder
from wm_hub.data.schema import TRIPLET_FEATURES, add_optional_columns
from wm_hub.evaluation import split_names

AURORA_BENCH_FILE = "test.json"


@dataclass
class EvalTriplets:
    """Triplets to evaluate on, and what was left out.

    Attributes:
        dataset: Rows with the triplet columns (:data:`~wm_hub.data.schema.TRIPLET_FEATURES`).
        description: Where they came from (for results files).
        skipped: Rows skipped for missing or unreadable files (``BadFile`` dicts: split, row, id, field, path,
            reason).
        without_target: Rows per subset that have no target image (not triplets).
        image_paths: AURORA only: ``id -> (source path, target path)`` relative to the checkout.
    """

    dataset: datasets.Dataset
    description: str
    skipped: list[dict[str, Any]] = field(default_factory=list)
    without_target: dict[str, int] = field(default_factory=dict)
    image_paths: dict[str, tuple[str, str]] = field(default_factory=dict)

    def subsets(self) -> list[str]:
        """Subset of each row, in order."""
        return [subset_of(origin) for origin in self.dataset["origin"]]


@dataclass
class EvalTripletsConfig:
    """Which triplets to evaluate on (:func:`load_eval_triplets`; ``wm-hub eval idm`` and ``wm-hub probe``).

    Args:
        data: An AURORA checkout (``test.json``: AURORA-BENCH), a folder written by ``wm-hub data build``, a Hub
            dataset id, or a builder's data folder (with ``builder``).
        split: Split of a dataset (default: ``test``; a builder's only split).
        builder: Run this registered dataset builder on ``data``.
        data_config: The builder's config (AURORA: ``bench``) or the dataset's config name (``--config`` reads a
            YAML file of these options).
        subsets: Subsets to keep, as a list or comma-separated (default: AURORA-BENCH's five, or all).
        skip_missing: Skip rows whose images are missing (counted and listed) instead of failing.
    """

    data: str
    split: str | None = None
    builder: str | None = None
    data_config: str | None = None
    subsets: list[str] | None = None
    skip_missing: bool = False

    def __post_init__(self) -> None:
        self.subsets = split_names(self.subsets or []) or None

    def load(self) -> EvalTriplets:
        """The triplets (see :func:`load_eval_triplets` for what may be raised)."""
        return load_eval_triplets(
            self.data,
            split=self.split,
            builder=self.builder,
            config=self.data_config,
            subsets=self.subsets,
            skip_missing=self.skip_missing,
        )


def subset_of(origin: str | None) -> str:
    """The subset named by a row's ``origin`` (its last ``/`` part), ``all`` when it has none."""
    return origin.rstrip("/").rsplit("/", 1)[-1] if origin else "all"


def is_aurora_checkout(path: str | Path) -> bool:
    """Whether ``path`` is a folder holding AURORA-BENCH's ``test.json``."""
    return (Path(path) / AURORA_BENCH_FILE).is_file()


def load_eval_triplets(
    data: str,
    *,
    split: str | None = None,
    builder: str | None = None,
    config: str | None = None,
    subsets: list[str] | None = None,
    skip_missing: bool = False,
) -> EvalTriplets:
    """Load evaluation triplets (see the module docstring for what ``data`` may be).

    Args:
        data: An AURORA checkout, a builder's data folder (with ``builder``), a Hub id or a dataset folder.
        split: Split to read (default: ``test`` for datasets, the builder's only split otherwise).
        builder: A registered dataset builder run on ``data``.
        config: The builder's config (AURORA: ``bench`` by default) or the dataset's config name.
        subsets: AURORA-BENCH subsets to keep (default: the paper's five); for other data, origins' subsets.
        skip_missing: Skip rows whose images are missing instead of failing (builders' rule).

    Returns:
        The triplets, with skipped rows and, for AURORA, the image paths of each id.

    Raises:
        ValueError: Not a triplet dataset, an unknown subset, or (without ``skip_missing``) rows with missing files
            (``MissingFilesError``, naming every one).
        FileNotFoundError: ``builder`` with a ``data`` folder that does not exist.
    """
    if builder is None and Path(data).is_dir() and is_aurora_checkout(data):
        builder, config = "aurora", config or "bench"
    if builder is not None:
        triplets = _from_builder(data, builder, config, split, subsets, skip_missing)
    else:
        split = split or "test"
        dataset = load_dataset_input(data, split, name=config)
        dataset = add_optional_columns(dataset)
        missing = [name for name in TRIPLET_FEATURES if name not in dataset.column_names]
        if missing:
            raise ValueError(
                f"{data}: not a triplet dataset (no column(s) {missing}); build it with `wm-hub data build`"
            )
        triplets = EvalTriplets(dataset.select_columns(list(TRIPLET_FEATURES)), f"dataset {data} split {split}")
        _drop_unusable_rows(triplets, data, split, skip_missing)
        if subsets:
            available = set(triplets.subsets())
            unknown = sorted(set(subsets) - available)
            if unknown:
                raise ValueError(f"{data}: no subset(s) {unknown}; it holds {sorted(available)}")
            keep = [index for index, subset in enumerate(triplets.subsets()) if subset in subsets]
            triplets.dataset = triplets.dataset.select(keep)
    return triplets


def _drop_unusable_rows(triplets: EvalTriplets, data: str, split: str, skip_missing: bool) -> None:
    """Check every row of a dataset before any model work: a blank or missing action is an error naming the rows; a
    missing source or target picture too, unless ``skip_missing``, which leaves the rows out and lists them in
    ``triplets.skipped`` (as the builders do for missing files)."""
    dataset = triplets.dataset
    raw = dataset.select_columns(["id", "source", "target", "action"])
    for side in ("source", "target"):  # look at the stored values without decoding every picture
        if isinstance(raw.features[side], datasets.Image):
            raw = raw.cast_column(side, datasets.Image(decode=False))
    pictures, actions = [], []
    for index, row in enumerate(raw):
        for side in ("source", "target"):
            value = row[side]
            if value is None or (isinstance(value, dict) and not (value.get("bytes") or value.get("path"))):
                pictures.append(
                    {"split": split, "row": index, "id": row["id"], "field": side, "path": None, "reason": "no image"}
                )
        if not isinstance(row["action"], str) or not row["action"].strip():
            actions.append(f"row {index} (id {row['id']!r})")
    if actions:
        shown = ", ".join(actions[:5]) + (f" and {len(actions) - 5} more" if len(actions) > 5 else "")
        raise ValueError(f"{data} split {split}: {len(actions)} row(s) with a blank or missing action: {shown}")
    if not pictures:
        return
    if not skip_missing:
        named = [f"row {bad['row']} (id {bad['id']!r}) field {bad['field']!r}" for bad in pictures]
        shown = ", ".join(named[:5]) + (f" and {len(named) - 5} more" if len(named) > 5 else "")
        raise ValueError(
            f"{data} split {split}: {len(pictures)} missing picture(s): {shown}; --skip-missing leaves those rows out"
        )
    dropped = {bad["row"] for bad in pictures}
    triplets.dataset = dataset.select([index for index in range(len(dataset)) if index not in dropped])
    triplets.skipped += pictures


def _from_builder(
    data: str, name: str, config: str | None, split: str | None, subsets: list[str] | None, skip_missing: bool
) -> EvalTriplets:
    kwargs: dict[str, Any] = {"skip_missing": skip_missing}
    if subsets:
        if name != "aurora":
            raise ValueError(f"subsets apply to AURORA-BENCH (builder aurora), not builder {name!r}")
        kwargs["subsets"] = tuple(subsets)
    if not Path(data).is_dir():
        raise FileNotFoundError(f"{data}: no such folder (the data folder of builder {name!r})")
    with tempfile.TemporaryDirectory(prefix="wm-hub-eval-") as cache:
        instance = builder_class(name)(config_name=config, data_dir=str(data), cache_dir=cache, **kwargs)
        prepare_builder(instance)
        splits = list(instance.info.splits)
        split = split or (splits[0] if len(splits) == 1 else "test")
        if split not in splits:
            raise ValueError(f"builder {name} config {instance.config.name}: no split {split!r}; it has {splits}")
        dataset = instance.as_dataset(split=split, in_memory=True)
        report = instance.build_report
    split_report = report.splits[split]
    triplets = EvalTriplets(
        dataset=dataset,
        description=f"builder {name} config {instance.config.name} on {data} split {split}",
        skipped=[vars(bad) for bad in split_report.skipped],
        without_target={
            subset_of(origin): counts.without_target
            for origin, counts in split_report.origins.items()
            if counts.without_target
        },
    )
    if name == "aurora":
        rows = json.loads((Path(data) / split_report.annotation_file).read_text())
        for id in dataset["id"]:
            row = rows[int(id.rsplit("/", 1)[1])]
            triplets.image_paths[id] = (row["input"], row["output"])
    return triplets
