"""What a dataset build checked, counted and skipped, and the builder base that keeps that report.

Builders of triplets from annotation files (AURORA, EPIC-KITCHENS) check every row before writing any: a row
whose images (or video) are missing or unreadable is an error that names every such row at once, or, with
``skip_missing=True``, a skip that is counted and listed in the :class:`BuildReport`. Rows that are not triplets
(no target image) are counted too, so every row of the annotation files is accounted for.

The report is saved as ``build_report.json`` beside the prepared data (so a cached build keeps it) and
``wm-hub data build`` copies it into the Hub-layout folder.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets

from wm_hub.atomic_io import write_json
from wm_hub.data.pictures import image_problem

REPORT_FILENAME = "build_report.json"


@dataclass
class BadFile:
    """A file that one annotation row references and that is missing or unreadable.

    Attributes:
        split: Split of the row.
        row: 0-based index of the row in its annotation file (JSON list index, CSV data row).
        id: Example id the row would have had.
        field: Annotation field that references the file (e.g. ``output``, ``stop_frame``).
        path: The file, relative to ``data_dir``.
        reason: What is wrong with it.
    """

    split: str
    row: int
    id: str
    field: str
    path: str
    reason: str

    def describe(self) -> str:
        """One line naming the row, field and file."""
        return f"{self.split} row {self.row} (id {self.id}), field {self.field!r}: {self.path}: {self.reason}"


@dataclass
class OriginCounts:
    """Row counts of one origin (``aurora/ag``, ``epic_kitchens``) in one split.

    Attributes:
        rows: Annotation rows of this origin.
        examples: Rows written as triplets.
        without_target: Rows with no target image (not triplets).
        skipped: Rows skipped for missing or unreadable files (``skip_missing=True``).
    """

    rows: int = 0
    examples: int = 0
    without_target: int = 0
    skipped: int = 0


@dataclass
class SplitReport:
    """What the build did with one split's annotation file.

    Attributes:
        annotation_file: The annotation file, relative to ``data_dir``.
        rows: Rows in the file.
        origins: Counts per origin of the selected rows.
        not_selected: Rows per subset that the config did not ask for.
        skipped: Every missing or unreadable file of the skipped rows.
    """

    annotation_file: str
    rows: int = 0
    origins: dict[str, OriginCounts] = field(default_factory=dict)
    not_selected: dict[str, int] = field(default_factory=dict)
    skipped: list[BadFile] = field(default_factory=list)

    @property
    def examples(self) -> int:
        """Triplets written for this split."""
        return sum(counts.examples for counts in self.origins.values())

    @property
    def skipped_rows(self) -> int:
        """Rows skipped for missing or unreadable files."""
        return sum(counts.skipped for counts in self.origins.values())

    def counts(self, origin: str) -> OriginCounts:
        """The counts of ``origin``, created on first use."""
        return self.origins.setdefault(origin, OriginCounts())

    def admit(self, origin: str, bad_files: list[BadFile]) -> bool:
        """Count one checked row of ``origin``: an example if ``bad_files`` is empty, else a skip listing them."""
        if bad_files:
            self.counts(origin).skipped += 1
            self.skipped.extend(bad_files)
            return False
        self.counts(origin).examples += 1
        return True


class MissingFilesError(ValueError):
    """Rows reference missing or unreadable files; the message names every one of them."""

    def __init__(self, bad_files: list[BadFile], data_dir: str | Path):
        self.bad_files = bad_files
        rows = len({(bad.split, bad.row) for bad in bad_files})
        lines = "\n".join(f"  {bad.describe()}" for bad in bad_files)
        super().__init__(
            f"{rows} row(s) reference missing or unreadable files (paths relative to {data_dir}); fix them, or skip "
            f"and report them with skip_missing=True (the command's --skip-missing):\n{lines}"
        )


@dataclass
class BuildReport:
    """Counts and skips of one build, per split.

    Attributes:
        builder: Registered builder name (``aurora``).
        config: Builder config name (``bench``).
        splits: Report of each split.
    """

    builder: str
    config: str
    splits: dict[str, SplitReport] = field(default_factory=dict)

    @property
    def bad_files(self) -> list[BadFile]:
        """Missing or unreadable files of every split."""
        return [bad for report in self.splits.values() for bad in report.skipped]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; each split also gets its total ``examples`` (after ``rows``)."""
        splits = {}
        for name, report in self.splits.items():
            fields = dataclasses.asdict(report)
            splits[name] = {
                "annotation_file": fields.pop("annotation_file"),
                "rows": fields.pop("rows"),
                "examples": report.examples,
                **fields,
            }
        return {"builder": self.builder, "config": self.config, "splits": splits}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BuildReport:
        """Inverse of :meth:`to_dict`."""
        splits = {
            name: SplitReport(
                annotation_file=split["annotation_file"],
                rows=split["rows"],
                origins={origin: OriginCounts(**counts) for origin, counts in split["origins"].items()},
                not_selected=split["not_selected"],
                skipped=[BadFile(**bad) for bad in split["skipped"]],
            )
            for name, split in data["splits"].items()
        }
        return cls(builder=data["builder"], config=data["config"], splits=splits)

    def write(self, path: str | Path) -> None:
        """Write the report as JSON (atomically: a temp file renamed into place)."""
        write_json(path, self.to_dict())


def bad_image_files(
    data_dir: Path, split: str, row: int, row_id: str, values: dict[str, Any], fields: tuple[str, ...]
) -> list[BadFile]:
    """The image files among ``values[field]`` (paths relative to ``data_dir``) that are missing or unreadable."""
    return [
        BadFile(split, row, row_id, name, values[name], problem)
        for name in fields
        if (problem := image_problem(data_dir / values[name]))
    ]


@dataclass
class TripletBuilderConfig(datasets.BuilderConfig):
    """Options every reporting builder has.

    Attributes:
        skip_missing: Skip (count and report) rows whose files are missing or unreadable instead of failing.
    """

    skip_missing: bool = False


class ReportingBuilder(datasets.GeneratorBasedBuilder):
    """A ``GeneratorBasedBuilder`` that checks all rows in ``_split_generators`` and keeps a :class:`BuildReport`.

    Subclasses build the report while checking rows and hand it to :meth:`_accept_report`, which raises
    :class:`MissingFilesError` (naming every bad row) unless the config has ``skip_missing=True``. After
    ``download_and_prepare`` the report is in :attr:`build_report` and in ``build_report.json`` beside the data.
    """

    BUILDER_CONFIG_CLASS = TripletBuilderConfig
    _report: BuildReport | None = None

    @property
    def build_report(self) -> BuildReport:
        """The report of the last build (read from beside the prepared data for a cached build)."""
        if self._report is None:
            path = Path(self._output_dir) / REPORT_FILENAME
            if not path.is_file():
                raise FileNotFoundError(f"No {REPORT_FILENAME} in {self._output_dir}: run download_and_prepare first")
            self._report = BuildReport.from_dict(json.loads(path.read_text()))
        return self._report

    def _data_dir(self) -> Path:
        """The config's ``data_dir``, which must be an existing folder."""
        if self.config.data_dir is None:
            raise ValueError(f"{type(self).__name__} needs data_dir= (the local folder holding the data)")
        data_dir = Path(self.config.data_dir)
        if not data_dir.is_dir():
            raise FileNotFoundError(f"data_dir {data_dir}: no such folder")
        return data_dir

    def _accept_report(self, report: BuildReport) -> None:
        """Keep ``report``; raise :class:`MissingFilesError` for its bad files unless skipping them.

        Raises:
            MissingFilesError: Rows reference missing or unreadable files and the config does not skip them.
            ValueError: A split has no triplet left (an empty split would not load).
        """
        if report.bad_files and not self.config.skip_missing:
            raise MissingFilesError(report.bad_files, self.config.data_dir)
        for split, split_report in report.splits.items():
            if split_report.examples == 0:
                without_target = sum(counts.without_target for counts in split_report.origins.values())
                example = f"; first skipped: {split_report.skipped[0].describe()}" if split_report.skipped else ""
                raise ValueError(
                    f"{split_report.annotation_file}: no triplet left for split {split!r} ({split_report.rows} rows: "
                    f"{split_report.skipped_rows} skipped for missing or unreadable files, {without_target} without a "
                    f"target, {sum(split_report.not_selected.values())} in subsets not selected){example}"
                )
        self._report = report

    def _download_and_prepare(self, dl_manager, verification_mode, **prepare_split_kwargs):
        super()._download_and_prepare(dl_manager, verification_mode, **prepare_split_kwargs)
        # _output_dir is the temporary folder here: the report moves into place with the data, or not at all.
        self.build_report.write(Path(self._output_dir) / REPORT_FILENAME)


def prepare_builder(builder: datasets.DatasetBuilder, **kwargs: Any) -> None:
    """``builder.download_and_prepare(**kwargs)``, with a builder's own error about one of its inputs (a
    ``ValueError`` or ``FileNotFoundError`` raised while generating, e.g. an undecodable video) raised as itself
    instead of inside ``datasets``' ``DatasetGenerationError``."""
    try:
        builder.download_and_prepare(**kwargs)
    except datasets.exceptions.DatasetGenerationError as error:
        if isinstance(error.__cause__, (ValueError, FileNotFoundError)):
            raise error.__cause__ from None
        raise
