"""``synthetic_triplets``: IDM-annotated frame pairs (the output of bootstrap annotation) as triplets.

Input: a folder (``data_dir``) holding ``annotations.jsonl`` and/or shards ``annotations-*.jsonl`` (read in that
order, shards by name; other files, such as a shard still being written under a temporary name, are ignored), one
JSON object per line, blank lines allowed::

    {"id": "train-video-00003-010-013",               # unique over all files             (required)
     "source": "frames/00003-010.png",                # image paths relative to the folder (required)
     "target": "frames/00003-013.png",                #                                    (required)
     "action": "move the red square left by 2 cells", # the IDM's label                    (required)
     "score": -3.21,                                  # IDM log-likelihood of the action   (optional)
     "action_class": "move",                          # class for stratified sampling      (optional)
     "video": "train-video-00003",                    # where the pair was cut from        (optional)
     "frames": [10, 13],                              #                                    (optional)
     "rationale": "row 2, column 3: ...",             # what a reasoning IDM wrote first   (optional)
     "origin": "shapes_world/videos"}                 # origin of the pair                 (optional)

Output: one ``train`` split of ``TRIPLET_FEATURES``, images embedded as they are (bytes), ``score``,
``action_class``, ``video``, ``frames`` and ``rationale`` kept, origin ``synthetic/<origin of the pair>``
(``synthetic`` when the row has none).

Config: ``min_score`` keeps only rows scored at least that much (unscored rows are dropped too; counted per origin
as ``not_selected`` in the build report); ``skip_missing=True`` skips rows whose source or target image is missing
or unreadable, counted and listed in the build report and logged, instead of one error naming every such row.

Everything is checked before anything is written. A line that is not a JSON object with string ``id``, ``source``,
``target`` (none of them blank) and ``action`` (a finite number within float32's range or null ``score``, a list of
frame numbers or null ``frames``, a string or null ``rationale``, ``action_class``, ``video`` and ``origin``), or
that repeats an id, is a ``ValueError`` naming ``file:line``. In
the build report, ``row`` counts over the annotation files in reading order (the id names the row too).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from numbers import Real
from pathlib import Path
from typing import Any

import datasets

from wm_hub.atomic_io import utf8_lines
from wm_hub.data.reporting_builder import (
    BuildReport,
    ReportingBuilder,
    SplitReport,
    TripletBuilderConfig,
    bad_image_files,
)
from wm_hub.data.schema import TRIPLET_FEATURES, make_triplet

logger = datasets.logging.get_logger(__name__)

VERSION = datasets.Version("1.0.0")
FLOAT32_MAX = 3.4028234663852886e38  # the largest float32: the schema stores score as float32
INT32_MAX = 2**31 - 1
REQUIRED_FIELDS = ("id", "source", "target", "action")
IMAGE_FIELDS = ("source", "target")
SPLIT = "train"


@dataclass
class SyntheticTripletsConfig(TripletBuilderConfig):
    """How to read an annotation folder.

    Attributes:
        min_score: Keep only rows with a ``score`` >= it (unscored rows are dropped too); ``None`` keeps every row.
        annotation_files: Read only these JSONL files (names relative to the data folder), e.g. the output of
            ``wm-hub sample --out annotated/sampled.jsonl``; ``None`` reads ``annotations.jsonl`` and the
            ``annotations-*.jsonl`` shards that ``wm-hub annotate`` writes.
    """

    min_score: float | None = None
    annotation_files: list[str] | None = None


class SyntheticTripletsBuilder(ReportingBuilder):
    """Triplets from a folder of IDM annotations (``annotations*.jsonl`` + images); see the module docstring."""

    BUILDER_CONFIG_CLASS = SyntheticTripletsConfig
    BUILDER_CONFIGS = [SyntheticTripletsConfig(name="default", version=VERSION)]

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(description="IDM-annotated (synthetic) triplets.", features=TRIPLET_FEATURES)

    def _split_generators(self, dl_manager) -> list[datasets.SplitGenerator]:
        data_dir = self._data_dir()
        config: SyntheticTripletsConfig = self.config
        paths = _annotation_files(data_dir, config.annotation_files)
        rows = _read_rows(paths)
        report = SplitReport(annotation_file=", ".join(path.name for path in paths), rows=len(rows))
        kept = []
        for index, row in enumerate(rows):
            origin = _origin(row)
            if config.min_score is not None and (row.get("score") is None or row["score"] < config.min_score):
                report.not_selected[origin] = report.not_selected.get(origin, 0) + 1
                continue
            counts = report.counts(origin)
            counts.rows += 1
            if report.admit(origin, bad_image_files(data_dir, SPLIT, index, row["id"], row, IMAGE_FIELDS)):
                kept.append(row)
        self._accept_report(BuildReport(builder="synthetic_triplets", config=config.name, splits={SPLIT: report}))
        if report.skipped:
            logger.warning(
                f"Skipped {report.skipped_rows} of {len(rows)} annotated pairs with bad images in {data_dir}"
            )
        return [datasets.SplitGenerator(name=SPLIT, gen_kwargs={"data_dir": data_dir, "rows": kept})]

    def _generate_examples(self, data_dir: Path, rows: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
        for row in rows:
            yield (
                row["id"],
                make_triplet(
                    row["id"],
                    (data_dir / row["source"]).read_bytes(),
                    (data_dir / row["target"]).read_bytes(),
                    row["action"],
                    _origin(row),
                    score=row.get("score"),
                    action_class=row.get("action_class"),
                    video=row.get("video"),
                    frames=row.get("frames"),
                    rationale=row.get("rationale"),
                ),
            )


def _annotation_files(data_dir: Path, names: list[str] | None = None) -> list[Path]:
    """``names`` if given, else ``annotations.jsonl`` (if present) then the ``annotations-*.jsonl`` shards by name."""
    if names is not None:
        missing = [name for name in names if not (data_dir / name).is_file()]
        if missing or not names:
            raise FileNotFoundError(f"{data_dir}: annotation files not found: {missing or 'none given'}")
        return [data_dir / name for name in names]
    paths = [data_dir / "annotations.jsonl"] if (data_dir / "annotations.jsonl").is_file() else []
    paths += sorted(data_dir.glob("annotations-*.jsonl"))
    if not paths:
        raise FileNotFoundError(f"{data_dir}: no annotations.jsonl or annotations-*.jsonl")
    return paths


def _read_rows(paths: list[Path]) -> list[dict[str, Any]]:
    """Every annotation line of ``paths``, checked; errors name ``file:line``."""
    rows, seen = [], {}
    for path in paths:
        for number, line in utf8_lines(path):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: not valid JSON ({error})") from None
            problem = _row_problem(row)
            if problem:
                raise ValueError(f"{path}:{number}: {problem}")
            if row["id"] in seen:
                raise ValueError(f"{path}:{number}: id {row['id']!r} already used at {seen[row['id']]}")
            seen[row["id"]] = f"{path.name}:{number}"
            rows.append(row)
    return rows


def _row_problem(row: Any) -> str | None:
    """What is wrong with one parsed line, or ``None``."""
    if not isinstance(row, dict):
        return f"expected a JSON object, got {type(row).__name__}"
    missing = [name for name in REQUIRED_FIELDS if not isinstance(row.get(name), str)]
    if missing:
        return f"missing or non-string field(s) {missing}"
    blank = [name for name in ("id", "source", "target") if not row[name].strip()]
    if blank:  # an empty path names no image (an empty action is what an IDM that wrote nothing labelled)
        return f"blank field(s) {blank}"
    score = row.get("score")
    if score is not None and (isinstance(score, bool) or not isinstance(score, Real)):
        return f"score must be a number, got {score!r}"
    # NaN has no place in the order stratified sampling ranks by; past float32's range a score is stored as inf
    if score is not None and not abs(score) <= FLOAT32_MAX:
        return f"score must be a finite number within float32's range, got {score!r}"
    frames = row.get("frames")
    if frames is not None and not (
        isinstance(frames, list) and all(type(frame) is int and 0 <= frame <= INT32_MAX for frame in frames)
    ):
        return f"frames must be a list of frame numbers (integers in 0..{INT32_MAX}), got {frames!r}"
    for name in ("rationale", "action_class", "video", "origin"):
        if not isinstance(row.get(name, ""), (str, type(None))):
            return f"{name} must be a string, got {row[name]!r}"
    return None


def _origin(row: dict[str, Any]) -> str:
    return f"synthetic/{row['origin']}" if row.get("origin") else "synthetic"
