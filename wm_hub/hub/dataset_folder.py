"""Run a registered dataset builder and write its output as a folder laid out like a Hub dataset repository.

``OUT/data/{split}-{i:05d}-of-{n:05d}.parquet`` (images embedded), ``OUT/README.md`` whose YAML front matter
declares the ``configs`` (data files per split) and ``dataset_info`` (features, split sizes), and
``OUT/build_report.json`` (:class:`~wm_hub.data.reporting_builder.BuildReport`). ``datasets.load_dataset(OUT)`` reads
it without wm-hub, ``streaming=True`` included, and the folder can be uploaded to the Hub as it is.
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
from datasets.info import DatasetInfosDict
from datasets.utils.metadata import MetadataConfigs
from datasets.utils.py_utils import convert_file_size_to_int
from huggingface_hub import DatasetCard, DatasetCardData

from wm_hub.data.builder_registry import builder_class
from wm_hub.data.reporting_builder import REPORT_FILENAME, BuildReport, ReportingBuilder, prepare_builder

CONFIG_NAME = "default"


@dataclass
class DatasetBuildConfig:
    """What ``wm-hub data build`` builds: the arguments of :func:`build_hub_dataset` (:meth:`build_options`).

    Args:
        out: Output folder (must not exist, or be empty).
        builder: Registered builder, e.g. ``aurora`` or ``epic_kitchens`` (NAME, the first word after the task).
        config_name: Builder config, e.g. ``bench`` (default: the builder's only config); ``--config NAME`` on the
            command line, as ``datasets`` calls a dataset's configs.
        data_dir: Local data root (AURORA checkout, EPIC-KITCHENS folder); not needed by generated data.
        skip_missing: Skip rows with missing or unreadable files, and list them in ``build_report.json``.
        max_shard_size: Target size of a Parquet shard (uncompressed bytes, or a string like ``500MB``): ``datasets``
            cuts shards by its estimate of the rows' size, so a shard of embedded pictures can come out a few times
            larger, and a shard holds at least one row group.
        annotations: ``synthetic_triplets`` only: read only these JSONL files of ``data_dir``, e.g. the output of
            ``wm-hub sample`` written into the annotation folder (default: the ``annotations-*.jsonl`` shards of
            ``wm-hub annotate``).
    """

    out: str
    builder: str | None = None
    config_name: str | None = field(default=None, metadata={"aliases": ["--config"]})
    data_dir: str | None = None
    skip_missing: bool = False
    max_shard_size: str = "500MB"
    annotations: list[str] | None = field(default=None, metadata={"metavar": "FILE"})

    def __post_init__(self) -> None:
        if not self.builder:
            raise ValueError("DatasetBuildConfig: builder is required (NAME: a registered builder, e.g. aurora)")
        if self.annotations and self.builder != "synthetic_triplets":
            raise ValueError("--annotations is an option of the synthetic_triplets builder")
        text = str(self.max_shard_size).strip()
        try:  # plain bytes (the help's "uncompressed bytes") or a size with a unit
            size = int(text) if text.lstrip("-").isdigit() else convert_file_size_to_int(text)
        except ValueError:
            size = 0
        if size < 1:
            raise ValueError(
                f"--max-shard-size {self.max_shard_size!r}: give a positive size in bytes (1000000) or with a unit "
                "(500MB, 1GB)"
            )

    def build_options(self) -> dict[str, Any]:
        """The keyword arguments of :func:`build_hub_dataset` after the builder and ``out``."""
        size = str(self.max_shard_size).strip()
        options = {
            "data_dir": self.data_dir,
            "config_name": self.config_name,
            "max_shard_size": int(size) if size.isdigit() else size,
        }
        if self.skip_missing:  # a builder config option: only the builders that check files have it
            options["skip_missing"] = True
        if self.annotations:
            options["annotation_files"] = self.annotations
        return options


@dataclass
class HubBuild:
    """What :func:`build_hub_dataset` wrote.

    Attributes:
        out: The Hub-layout folder.
        num_examples: Examples per split.
        report: The build report (also in ``out/build_report.json``).
    """

    out: Path
    num_examples: dict[str, int]
    report: BuildReport

    def summary(self) -> dict[str, Any]:
        """The folder, the examples and the rows skipped per split, and the report's path."""
        skipped = {split: split_report.skipped_rows for split, split_report in self.report.splits.items()}
        report = str(self.out / REPORT_FILENAME)
        return {"out": str(self.out), "examples": self.num_examples, "skipped_rows": skipped, "report": report}


def build_hub_dataset(
    name: str,
    out: str | Path,
    *,
    data_dir: str | Path | None = None,
    config_name: str | None = None,
    max_shard_size: str = "500MB",
    **config_kwargs: Any,
) -> HubBuild:
    """Build dataset ``name`` from ``data_dir`` and write it to ``out`` in the Hub layout.

    Everything is written into a temporary folder beside ``out`` that is renamed to ``out`` at the end: a failed
    build leaves no ``out`` behind.

    Args:
        name: Registered builder (:mod:`wm_hub.data.builder_registry`), e.g. ``aurora``.
        out: Output folder; must not exist or be empty. The build goes to a hidden ``.<out name>.*.partial`` folder
            beside it, renamed into place when done; one that a killed build of the same ``out`` left is removed.
        data_dir: Local folder the builder reads (``None`` for builders that generate their data).
        config_name: Builder config, e.g. ``bench`` (default: the builder's default or only config).
        max_shard_size: Target size of a Parquet shard (see :class:`DatasetBuildConfig`).
        **config_kwargs: Builder config options, e.g. ``skip_missing=True``.

    Returns:
        The folder, split sizes and build report.

    Raises:
        ValueError: Unknown builder, config or option, or bad rows
            (:class:`~wm_hub.data.reporting_builder.MissingFilesError` names every one).
        FileNotFoundError: ``data_dir`` or an annotation file does not exist.
        FileExistsError: ``out`` exists and is not an empty folder.
    """
    out = Path(out)
    if out.is_symlink() and not out.exists():  # dangling or a loop: the build would fail only at its last step
        raise FileExistsError(f"out {out} is a symbolic link to nothing usable; choose a new folder")
    if out.exists() and not (out.is_dir() and not any(out.iterdir())):
        raise FileExistsError(f"out {out} exists and is not an empty folder; choose a new one or remove it")
    above = next((parent for parent in out.parents if parent.exists()), None)
    if above is not None and not above.is_dir():
        raise FileExistsError(f"out {out}: {above} is a file, so no folder can be made under it")
    if data_dir is not None and not Path(data_dir).is_dir():
        raise FileNotFoundError(f"data_dir {data_dir}: no such folder")
    max_shard_size = convert_file_size_to_int(max_shard_size)
    builder_cls = builder_class(name)
    configs = [config.name for config in builder_cls.BUILDER_CONFIGS]
    if config_name is None and len(configs) > 1 and builder_cls.DEFAULT_CONFIG_NAME is None:
        raise ValueError(f"builder {name!r} has configs {configs}: choose one (--config)")
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in out.parent.glob(f".{glob.escape(out.name)}.*.partial"):  # a build of ``out`` killed before cleanup
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        if data_dir is not None:
            config_kwargs["data_dir"] = str(data_dir)
        builder = builder_cls(config_name=config_name, cache_dir=str(staging / "cache"), **config_kwargs)
        prepared = staging / "prepared"
        prepare_builder(builder, output_dir=str(prepared), file_format="parquet", max_shard_size=max_shard_size)
        hub = staging / "hub"
        download_size = _move_shards(builder, prepared, hub / "data")
        if isinstance(builder, ReportingBuilder):
            report = builder.build_report
        else:  # a builder that checks nothing has nothing to report but its name
            report = BuildReport(builder=name, config=builder.config.name)
        report.write(hub / REPORT_FILENAME)
        _write_card(builder, name, download_size, hub / "README.md")
        os.replace(hub, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return HubBuild(out, {split: info.num_examples for split, info in builder.info.splits.items()}, report)


def _move_shards(builder: datasets.DatasetBuilder, prepared: Path, data: Path) -> int:
    """Move each split's Parquet shards to ``data/{split}-{i:05d}-of-{n:05d}.parquet``; returns their bytes."""
    data.mkdir(parents=True)
    size = 0
    for split in builder.info.splits:
        prefix = f"{builder.dataset_name}-{split}"
        shards = sorted(prepared.glob(f"{prefix}-[0-9][0-9][0-9][0-9][0-9]-of-[0-9][0-9][0-9][0-9][0-9].parquet"))
        shards = shards or [prepared / f"{prefix}.parquet"]
        for index, shard in enumerate(shards):
            target = data / f"{split}-{index:05d}-of-{len(shards):05d}.parquet"
            shard.rename(target)
            size += target.stat().st_size
    return size


def _write_card(builder: datasets.DatasetBuilder, name: str, download_size: int, path: Path) -> None:
    """README.md with the YAML that ``load_dataset`` reads (``configs``, ``dataset_info``) and a short body."""
    info = datasets.DatasetInfo(
        config_name=CONFIG_NAME,
        features=builder.info.features,
        splits=builder.info.splits,
        download_size=download_size,
        dataset_size=builder.info.dataset_size,
    )
    card_data = DatasetCardData(license=builder.info.license or None)
    DatasetInfosDict({CONFIG_NAME: info}).to_dataset_card_data(card_data)
    data_files = [{"split": split, "path": f"data/{split}-*"} for split in builder.info.splits]
    MetadataConfigs({CONFIG_NAME: {"data_files": data_files}}).to_dataset_card_data(card_data)
    sizes = ", ".join(f"{split}: {split_info.num_examples}" for split, split_info in builder.info.splits.items())
    body = (
        f"# {name} ({builder.config.name})\n\n"
        f"{builder.info.description}\n\n"
        f"Built with `wm-hub data build {name} --config {builder.config.name}` ({sizes} examples). Columns: id, "
        "source and target images, action text, origin, and the optional score, action_class, video and frames. "
        f"`{REPORT_FILENAME}` counts the rows of each annotation file and lists every skipped one.\n\n"
        "```python\nimport datasets\n\nds = datasets.load_dataset(PATH_OR_REPO_ID)\n```\n"
    )
    if builder.info.homepage:
        body += f"\nSource: {builder.info.homepage}\n"
    if builder.info.citation:
        body += f"\n```bibtex\n{builder.info.citation}\n```\n"
    DatasetCard(f"---\n{card_data.to_yaml()}\n---\n\n{body}").save(path)
