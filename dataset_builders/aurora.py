"""AURORA training triplets and AURORA-BENCH as wm-hub triplets.

AURORA (McGill-NLP/AURORA, MIT licence) pairs a source image, an edit instruction and a target image. ``data_dir``
is a local checkout of the AURORA repository (with the images downloaded); every path in its JSON files is
relative to that root.

- ``ag``, ``magicbrush``, ``something``, ``kubric``: training annotations ``data/<name>/train.json``, a list of
  ``{"instruction", "input", "output"}`` rows (MagicBrush rows also carry ``mask`` and ``img_id``, unused here).
  The ag and magicbrush files were checked against the upstream ones. No copy of the something and kubric
  training files was at hand: their configs assume the same layout (``data/<name>/train.json``) and the row
  format that the upstream README gives for every AURORA sub-dataset.
- ``bench``: AURORA-BENCH ``test.json`` at the root, rows ``{"instruction", "input", "output", "task", ...}``,
  filtered to ``subsets`` (default: the paper's five, magicbrush, ag, something, whatsup and kubric).

Rows without ``output`` (clevr, emu and epic in the benchmark) are not triplets: they are counted in the build
report (``without_target``), never written. Ids are ``<subset>/<row index in the JSON file>``, origins
``aurora/<subset>``; image files are stored as they are (bytes, original format).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
from datasets.utils.tqdm import tqdm

from wm_hub.data.reporting_builder import (
    BuildReport,
    ReportingBuilder,
    SplitReport,
    TripletBuilderConfig,
    bad_image_files,
)
from wm_hub.data.schema import TRIPLET_FEATURES, make_triplet

PAPER_SUBSETS = ("magicbrush", "ag", "something", "whatsup", "kubric")
TRAINING_SUBSETS = ("ag", "magicbrush", "something", "kubric")
IMAGE_FIELDS = ("input", "output")
REQUIRED_FIELDS = ("instruction", "input")

_CITATION = """@inproceedings{krojer2024aurora,
  title={Learning Action and Reasoning-Centric Image Editing from Videos and Simulations},
  author={Krojer, Benno and Vattikonda, Dheeraj and Lara, Luis and Jampani, Varun and Portelance, Eva and
          Pal, Christopher and Reddy, Siva},
  booktitle={NeurIPS Datasets and Benchmarks Track},
  year={2024}
}"""


@dataclass
class AuroraConfig(TripletBuilderConfig):
    """One AURORA annotation file.

    Attributes:
        annotation_file: The JSON file, relative to ``data_dir``.
        split: Split its rows go to.
        subsets: Subsets to keep: rows' ``task`` (benchmark) or the config name (training files have no ``task``).
    """

    annotation_file: str = "test.json"
    split: str = "test"
    subsets: Sequence[str] = PAPER_SUBSETS


class AuroraBuilder(ReportingBuilder):
    """AURORA / AURORA-BENCH triplets from a local AURORA checkout (see the module docstring)."""

    BUILDER_CONFIG_CLASS = AuroraConfig
    BUILDER_CONFIGS = [
        AuroraConfig(
            name=name,
            annotation_file=f"data/{name}/train.json",
            split="train",
            subsets=(name,),
            description=f"AURORA training triplets of {name} (data/{name}/train.json)",
        )
        for name in TRAINING_SUBSETS
    ] + [
        AuroraConfig(
            name="bench",
            description="AURORA-BENCH (test.json), the paper's five subsets by default",
        )
    ]

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description="AURORA action- and reasoning-centric image edits as (source, action, target) triplets.",
            features=TRIPLET_FEATURES,
            homepage="https://github.com/McGill-NLP/AURORA",
            license="mit",
            citation=_CITATION,
        )

    def _split_generators(self, dl_manager) -> list[datasets.SplitGenerator]:
        data_dir = self._data_dir()
        config: AuroraConfig = self.config
        rows = _read_rows(data_dir, config.annotation_file)
        subsets = _checked_subsets(rows, config)
        report = SplitReport(annotation_file=config.annotation_file, rows=len(rows))
        triplets = []
        for index, row in enumerate(tqdm(rows, desc=f"Checking {config.annotation_file}", unit=" rows")):
            subset = row.get("task", config.name)
            if subset not in subsets:
                report.not_selected[subset] = report.not_selected.get(subset, 0) + 1
                continue
            origin = f"aurora/{subset}"
            counts = report.counts(origin)
            counts.rows += 1
            if not row.get("output"):
                counts.without_target += 1
                continue
            bad_files = bad_image_files(data_dir, config.split, index, f"{subset}/{index}", row, IMAGE_FIELDS)
            if report.admit(origin, bad_files):
                triplets.append((index, subset, row))
        self._accept_report(BuildReport(builder="aurora", config=config.name, splits={config.split: report}))
        return [datasets.SplitGenerator(name=config.split, gen_kwargs={"data_dir": data_dir, "triplets": triplets})]

    def _generate_examples(
        self, data_dir: Path, triplets: list[tuple[int, str, dict[str, Any]]]
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        for index, subset, row in triplets:
            id = f"{subset}/{index}"
            source = (data_dir / row["input"]).read_bytes()
            target = (data_dir / row["output"]).read_bytes()
            yield id, make_triplet(id, source, target, row["instruction"], f"aurora/{subset}")


def _read_rows(data_dir: Path, annotation_file: str) -> list[dict[str, Any]]:
    """The rows of an AURORA JSON file; every row must be an object with ``instruction`` and ``input``."""
    path = data_dir / annotation_file
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such annotation file (data_dir must be the AURORA checkout root)")
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    if not isinstance(rows, list):
        raise ValueError(f"{path}: expected a JSON list of rows, got {type(rows).__name__}")
    bad = [
        f"row {index}: {json.dumps(row)[:200]}"
        for index, row in enumerate(rows)
        if not isinstance(row, dict) or not all(isinstance(row.get(name), str) for name in REQUIRED_FIELDS)
    ]
    if bad:
        raise ValueError(f"{path}: rows without a string 'instruction' and 'input':\n  " + "\n  ".join(bad))
    blank = [
        f"row {index}: {json.dumps(row)[:200]}"
        for index, row in enumerate(rows)
        if not all(row[name].strip() for name in REQUIRED_FIELDS)
    ]
    wrong = [
        f"row {index}: {json.dumps(row)[:200]}"
        for index, row in enumerate(rows)
        if row.get("output") is not None and not isinstance(row["output"], str)
    ]
    if wrong:  # a number or a list where the target's path goes
        raise ValueError(f"{path}: rows whose 'output' is not a string path:\n  " + "\n  ".join(wrong))
    if blank:  # a blank instruction would be a triplet whose action is empty
        raise ValueError(f"{path}: rows with a blank 'instruction' or 'input':\n  " + "\n  ".join(blank))
    if any("task" in row for row in rows):  # a benchmark file: a row without its subset would vanish from every one
        untasked = [
            f"row {index}: {json.dumps(row)[:200]}"
            for index, row in enumerate(rows)
            if not isinstance(row.get("task"), str) or not row["task"].strip()
        ]
        if untasked:
            raise ValueError(f"{path}: rows without a 'task' (their subset):\n  " + "\n  ".join(untasked))
    return rows


def _checked_subsets(rows: list[dict[str, Any]], config: AuroraConfig) -> set[str]:
    """``config.subsets`` (a sequence, or one comma-separated string) after checking that the file holds each."""
    subsets = set(config.subsets.split(",") if isinstance(config.subsets, str) else config.subsets)
    available = {row.get("task", config.name) for row in rows}
    unknown = sorted(subsets - available)
    if unknown:
        raise ValueError(
            f"Unknown AURORA subset(s) {unknown} for config {config.name!r}; {config.annotation_file} holds "
            f"{sorted(available)}"
        )
    return subsets
