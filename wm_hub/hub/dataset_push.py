"""Dataset repositories: ``push_dataset`` (one config per origin, provenance, dataset card); see :mod:`wm_hub.hub`."""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from importlib.resources import as_file, files
from pathlib import Path
from typing import Any

from wm_hub.atomic_io import read_json_object
from wm_hub.hub.commit import PushResult, commit_folder, require_online, stage_file, wm_hub_version, write_json
from wm_hub.hub.dataset_folder import build_hub_dataset
from wm_hub.training.model_card import PAPER_CITATION

PROVENANCE = "provenance.json"
BUILD_REPORT = "build_report.json"
CARD = "README.md"
CONFIG_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
SHARD = re.compile(r"^(?P<split>[A-Za-z0-9_.]+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.parquet$")

# Where the paper's unlabelled videos come from and under which licence (paper Appendix H.5), by config prefix.
SOURCES: dict[str, dict[str, str]] = {
    "mit": {
        "name": "Moments in Time",
        "url": "http://moments.csail.mit.edu/",
        "license": "BSD-2-Clause and the Moments in Time License for Non-Commercial Use",
        "license_id": "other",
    },
    "kinetics": {
        "name": "Kinetics-700",
        "url": "https://research.google/pubs/the-kinetics-human-action-video-dataset/",
        "license": "Creative Commons Attribution 4.0 International",
        "license_id": "cc-by-4.0",
    },
    "ucf": {
        "name": "UCF-101",
        "url": "https://huggingface.co/datasets/flwrlabs/ucf101",
        "license": "unknown",
        "license_id": "unknown",
    },
    "epic": {
        "name": "EPIC-KITCHENS",
        "url": "https://epic-kitchens.github.io/",
        "license": "Creative Commons Attribution-NonCommercial 4.0 International",
        "license_id": "cc-by-nc-4.0",
    },
    "aurora": {
        "name": "AURORA",
        "url": "https://github.com/McGill-NLP/AURORA",
        "license": "MIT",
        "license_id": "mit",
    },
    "shapes_world": {
        "name": "wm-hub shapes world (procedurally generated)",
        "url": "https://github.com/yfqiunlp/vlm-world-model",
        "license": "Apache-2.0",
        "license_id": "apache-2.0",
    },
}


@dataclass
class DatasetPushConfig:
    """What :func:`push_dataset` publishes and how (the options of ``wm-hub push dataset``).

    Args:
        repo_id: The dataset repository, ``org/name`` (created if missing).
        folder: The triplets: a Hub-layout folder written by ``wm-hub data build`` (``data/*.parquet`` +
            ``README.md``), or an IDM annotation folder (``annotations*.jsonl`` + images), which is built with the
            ``synthetic_triplets`` builder first.
        config_name: The dataset config (origin) this folder becomes, e.g. ``ucf``; default: the origin the rows
            share (``synthetic/ucf101/...`` -> ``ucf101``, ``shapes_world/triplets`` -> ``shapes_world``).
        revision: Branch to push to; created from ``main`` if missing.
        private: Create the repository private.
        provenance: A JSON file of provenance to record (``idm``, ``keyframes``, ``sampling``, ``source``...); it
            completes and overrides what is read from the folder (``annotation_config.json``,
            ``annotation_run.json``, ``*.report.json`` of ``wm-hub sample``).
        commit_message: The commit's title.
    """

    repo_id: str
    folder: str | Path | None = None
    config_name: str | None = None
    revision: str | None = None
    private: bool = False
    provenance: str | Path | None = None
    commit_message: str | None = field(default=None, metadata={"aliases": ["--message"]})

    def __post_init__(self) -> None:
        if not self.folder:
            raise ValueError("DatasetPushConfig: folder is required (the folder of triplets to publish)")


def push_dataset(config: DatasetPushConfig, token: str | None = None) -> PushResult:
    """Publish triplets as one config of a Hub dataset, with its provenance, in one commit.

    Args:
        config: The folder, the repository and the push options.
        token: A token; ``None`` uses ``HF_TOKEN`` or the login cache.

    Returns:
        :class:`PushResult`.

    Raises:
        FileNotFoundError: ``config.folder`` is neither layout.
        ValueError: Bad config name, rows of several origins without ``config_name``, unreadable metadata.
        huggingface_hub.errors.OfflineModeIsEnabled: ``HF_HUB_OFFLINE`` is set.
    """
    folder, repo_id = Path(config.folder).expanduser(), config.repo_id
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: {'a file, not a folder' if folder.exists() else 'no such folder'}")
    require_online()
    with tempfile.TemporaryDirectory(prefix=".wm-hub-push-") as tmp:
        tmp = Path(tmp)
        provenance: dict[str, Any] = {}
        if (folder / "annotations.jsonl").is_file() or any(folder.glob("annotations-*.jsonl")):
            built = build_hub_dataset("synthetic_triplets", tmp / "built", data_dir=folder).out
            provenance.update(_annotation_provenance(folder))
        elif (folder / CARD).is_file() and (folder / "data").is_dir():
            built = folder
        else:
            raise FileNotFoundError(
                f"{folder}: expected a folder written by `wm-hub data build` (README.md + data/*.parquet) or an IDM "
                "annotation folder (annotations*.jsonl + images)"
            )
        shards = _shards(built)
        name = config.config_name or _default_config_name(shards)
        if not CONFIG_NAME.match(name) or name in ("data", "default"):
            raise ValueError(f"config name {name!r}: use letters, digits, '_', '-' or '.', not 'data' or 'default'")
        if config.provenance:
            provenance.update(read_json_object(Path(config.provenance)))
        staging = tmp / "repo"
        (staging / name).mkdir(parents=True)
        for split, paths in shards.items():
            for index, path in enumerate(paths):
                stage_file(path, staging / name / f"{split}-{index:05d}-of-{len(paths):05d}.parquet")
        if (built / BUILD_REPORT).is_file():
            stage_file(built / BUILD_REPORT, staging / name / BUILD_REPORT)
        provenance = _complete_provenance(name, provenance, shards)
        write_json(staging / name / PROVENANCE, provenance)
        _write_dataset_card(built, staging, repo_id, name, config, token)
        return commit_folder(
            staging,
            repo_id,
            repo_type="dataset",
            revision=config.revision,
            private=config.private,
            commit_message=config.commit_message or f"wm-hub push: config {name}",
            owns=lambda path: path.startswith(f"{name}/"),
            token=token,
        )


def _shards(built: Path) -> dict[str, list[Path]]:
    """``split -> parquet shards`` of a Hub-layout folder's ``data/``."""
    shards: dict[str, list[Path]] = {}
    for path in sorted((built / "data").glob("*.parquet")):
        match = SHARD.match(path.name)
        if match is None:
            raise ValueError(f"{path}: expected data/<split>-0000i-of-0000n.parquet (as `wm-hub data build` writes)")
        shards.setdefault(match["split"], []).append(path)
    if not shards:
        raise FileNotFoundError(f"{built}/data: no parquet shards")
    return shards


def _column(shards: dict[str, list[Path]], name: str) -> list[Any]:
    import pyarrow.parquet as pq

    values: list[Any] = []
    for paths in shards.values():
        for path in paths:
            table = pq.read_table(path, columns=[name]) if name in pq.read_schema(path).names else None
            values += table.column(name).to_pylist() if table is not None else []
    return values


def _default_config_name(shards: dict[str, list[Path]]) -> str:
    origins = {origin for origin in _column(shards, "origin") if origin}
    names = {origin.removeprefix("synthetic/").split("/")[0] for origin in origins}
    names.discard("synthetic")
    if len(names) != 1:
        raise ValueError(f"rows come from origins {sorted(origins)}: choose the config with --config-name")
    return names.pop()


def _annotation_provenance(folder: Path) -> dict[str, Any]:
    """What an annotation folder records about its run (``wm-hub annotate`` / ``wm-hub sample`` outputs)."""
    provenance: dict[str, Any] = {}
    if (folder / "annotation_config.json").is_file():
        saved = read_json_object(folder / "annotation_config.json")
        settings = saved.get("settings", {})
        provenance["idm"] = settings.get("idm")
        provenance["annotation"] = {key: value for key, value in settings.items() if key not in ("idm", "data")}
        provenance["annotation"]["score_field"] = saved.get("score_field")
    if (folder / "annotation_run.json").is_file():
        run = read_json_object(folder / "annotation_run.json")
        provenance.setdefault("annotation", {})["pairs"] = run.get("pairs")
    for report in sorted(folder.glob("*.report.json")):
        saved = read_json_object(report)
        provenance["sampling"] = {key: saved[key] for key in ("k", "score_field", "rows_selected") if key in saved}
    return provenance


def _complete_provenance(name: str, provenance: dict[str, Any], shards: dict[str, list[Path]]) -> dict[str, Any]:
    """Add the config's rows, score statistics and source licence (by config-name prefix) to its provenance."""
    import numpy as np

    scores = np.array([score for score in _column(shards, "score") if score is not None], dtype=np.float64)
    stats = None
    if scores.size:
        quantiles = np.quantile(scores, [0.05, 0.5, 0.95])
        stats = {
            "count": int(scores.size),
            "min": round(float(scores.min()), 4),
            "mean": round(float(scores.mean()), 4),
            "max": round(float(scores.max()), 4),
            "q05": round(float(quantiles[0]), 4),
            "median": round(float(quantiles[1]), 4),
            "q95": round(float(quantiles[2]), 4),
        }
    source = next((dict(info) for prefix, info in SOURCES.items() if name.startswith(prefix)), None)
    result = {
        "config": name,
        "wm_hub_version": wm_hub_version(),
        "rows": {split: sum(_num_rows(path) for path in paths) for split, paths in shards.items()},
        "origins": sorted({origin for origin in _column(shards, "origin") if origin}),
        "scores": stats,
        "source": source or {"name": name, "url": None, "license": "unknown", "license_id": "unknown"},
        "idm": None,
        "keyframes": None,
        "sampling": None,
    }
    result.update(provenance)
    return result


def _num_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.read_metadata(path).num_rows


def _remote_file(repo_id: str, name: str, revision: str | None, token: str | None) -> Path | None:
    """A file of the dataset repository at ``revision`` (``None`` if the repository, branch or file is missing)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        return Path(hf_hub_download(repo_id, name, repo_type="dataset", revision=revision or "main", token=token))
    except (EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError):
        return None


def _write_dataset_card(
    built: Path, staging: Path, repo_id: str, name: str, config: DatasetPushConfig, token: str | None
) -> None:
    """README.md: the remote card's configs with this one replaced, and the body rendered from every provenance."""
    import datasets
    from datasets.info import DatasetInfosDict
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCard, DatasetCardData
    from huggingface_hub.errors import EntryNotFoundError, RevisionNotFoundError

    local_card = DatasetCard.load(built / CARD)
    local_infos = DatasetInfosDict.from_dataset_card_data(local_card.data)
    if len(local_infos) != 1:
        raise ValueError(f"{built / CARD}: expected one dataset_info, found {sorted(local_infos)}")
    info: datasets.DatasetInfo = next(iter(local_infos.values()))
    info.config_name = name

    branch = config.revision or "main"
    remote_card_path = _remote_file(repo_id, CARD, config.revision, token)
    if remote_card_path is None and config.revision:  # a new branch starts from main
        remote_card_path = _remote_file(repo_id, CARD, None, token)
        branch = "main"
    card_data = DatasetCard.load(remote_card_path).data if remote_card_path else DatasetCardData()
    configs = MetadataConfigs.from_dataset_card_data(card_data)
    infos = DatasetInfosDict.from_dataset_card_data(card_data)
    configs.pop("default", None)
    infos.pop("default", None)
    configs[name] = {"data_files": [{"split": split, "path": f"{name}/{split}-*"} for split in info.splits]}
    infos[name] = info
    configs = MetadataConfigs(sorted(configs.items()))
    infos = DatasetInfosDict(sorted(infos.items()))

    provenances = {name: read_json_object(staging / name / PROVENANCE)}
    for other in configs:
        if other != name:
            try:
                path = _remote_file(repo_id, f"{other}/{PROVENANCE}", branch, token)
            except (EntryNotFoundError, RevisionNotFoundError):
                path = None
            provenances[other] = read_json_object(path) if path else {"config": other}
    license_ids = {(p.get("source") or {}).get("license_id") or "unknown" for p in provenances.values()}
    data = DatasetCardData(
        license=license_ids.pop() if len(license_ids) == 1 else "other",
        task_categories=["image-to-image"],
        tags=["wm-hub", "world-model", "forward-dynamics", "inverse-dynamics", "synthetic"],
        pretty_name=repo_id.split("/")[-1],
        size_categories=[_size_category(sum(sum(p.get("rows", {}).values()) for p in provenances.values()))],
    )
    infos.to_dataset_card_data(data)
    configs.to_dataset_card_data(data)
    template = files("model_cards") / "dataset.md.j2"
    with as_file(template) as template_path:
        card = DatasetCard.from_template(
            data,
            template_path=str(template_path),
            repo_id=repo_id,
            configs=[provenances[other] for other in sorted(provenances)],
            citation=PAPER_CITATION,
        )
    card.save(staging / CARD)


def _size_category(rows: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if rows < limit:
            return label
    return "1M<n<10M"
