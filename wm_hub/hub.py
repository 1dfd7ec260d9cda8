"""Publishing world models and synthetic trajectories to the Hugging Face Hub, and loading them back.

Pushes go through ``huggingface_hub.HfApi`` (``create_repo``, ``create_branch``, ``list_repo_tree``,
``create_commit``) and follow three rules:

- **one commit per push**: everything a push publishes (weights, card, metadata) is staged in a temporary folder and
  sent in a single ``create_commit``, whose ``parent_commit`` is the head the comparison was made against, so the
  remote moves from one complete state to the next; an interrupted push leaves it where it was and a rerun completes
  it;
- **idempotent**: the staged files are compared with the remote's (git blob ids for regular files, sha256 for LFS
  files) first; identical content makes no commit at all;
- **no secrets**: the token comes from ``HF_TOKEN`` or the login cache and is never printed or written; what is
  published is a curated list of files (no pickled training arguments, no checkpoints).

Model repositories (:func:`push_model`) come in two layouts:

- ``merged``: the whole backbone as :meth:`~wm_hub.models.base.Backbone.save_pretrained` writes it (``config.json``
  with the ``wm_hub`` settings, weights, tokenizer, image processor, ``vqgan/``), plus ``adapter/`` when the run
  used LoRA. It loads without the base model.
- ``adapter``: the LoRA adapter only (``adapter_config.json`` naming the base model on the Hub, pinned to a
  commit, and ``adapter_model.safetensors``), the tokenizer, and ``wm_hub.json`` with the wm-hub settings;
  :func:`wm_hub.load_backbone` loads the base model (its image tokenizer included) and merges the adapter.

Both hold ``wm_hub.json`` (task, layout, backbone settings, base model), ``training_run.json`` when the folder has
one and ``README.md``, the model card (:mod:`wm_hub.training.model_card`).

Dataset repositories (:func:`push_dataset`) hold one config per origin (``mit``, ``kinetics``, ``ucf``,
``shapes_world``...): ``<config>/<split>-0000i-of-0000n.parquet`` (triplets with embedded ``Image`` columns, as
``wm-hub data build`` writes them), ``<config>/provenance.json`` and ``<config>/build_report.json``, and a
``README.md`` whose YAML declares every config (``configs``, ``dataset_info``), so
``datasets.load_dataset(repo_id, config)`` reads it without wm-hub code, streaming included. A push replaces one
config and keeps the others.

Loading (:func:`resolve_model_folder`): a Hub id is downloaded once with ``snapshot_download`` at the requested
revision, so the language model, tokenizer and image tokenizer come from the same commit; ``HF_HUB_OFFLINE=1`` reads
the cached snapshot.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.resources import as_file, files
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

MANIFEST = "wm_hub.json"
RUN_SUMMARY = "training_run.json"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_SUBFOLDER = "adapter"
PROVENANCE = "provenance.json"
BUILD_REPORT = "build_report.json"
CARD = "README.md"
DEFAULT_MODEL_LICENSE = "cc-by-nc-4.0"  # paper Appendix J: research use only, no commercial use
# Never published from a model folder: checkpoints (optimizer states), private/temporary files, pickled
# TrainingArguments (they may hold hub_token), TensorBoard runs, and the card (re-rendered).
MODEL_IGNORE = ("_*", ".*", "checkpoint-*", "*training_args.bin", "runs", "README.md", "*.lock", "__pycache__")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model")
TOKENIZER_FILES += ("added_tokens.json", "chat_template.jinja", "vocab.json", "merges.txt")
# Downloaded by load_backbone for a Hub id: everything but checkpoints, original-format weights and data.
SNAPSHOT_IGNORE = ["checkpoint-*/*", "adapter/*", "original/*", "*.pth", "*.pt", "*.ckpt", "*.msgpack", "*.h5"]
SNAPSHOT_IGNORE += ["*.onnx", "*.gguf", "*.parquet", "*.arrow", "runs/*"]
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
class PushResult:
    """What a push did.

    Attributes:
        repo_id: The repository.
        repo_type: ``model`` or ``dataset``.
        revision: The branch pushed to.
        commit: The branch head after the push (the new commit, or the unchanged head).
        created_commit: ``False`` when the remote already held exactly this content.
        url: The commit's URL (``None`` when no commit was made).
        uploaded: Paths added or changed by the commit.
        deleted: Paths removed by the commit.
    """

    repo_id: str
    repo_type: str
    revision: str
    commit: str
    created_commit: bool
    url: str | None = None
    uploaded: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ----------------------------------------------------------------------------------------------------------------
# Staging and the single commit
# ----------------------------------------------------------------------------------------------------------------
def git_blob_oid(data: bytes) -> str:
    """git's object id of a file's content (what the Hub reports for regular, non-LFS files)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _unchanged(remote: Any, path: Path) -> bool:
    """Whether a remote ``RepoFile`` holds exactly the content of the local file ``path``."""
    if remote is None or remote.size != path.stat().st_size:
        return False
    if remote.lfs is not None:
        return remote.lfs.sha256 == _sha256(path)
    return remote.blob_id == git_blob_oid(path.read_bytes())


def commit_folder(
    staging: Path,
    repo_id: str,
    *,
    repo_type: str,
    revision: str | None = None,
    private: bool = False,
    commit_message: str,
    owns: Callable[[str], bool] = lambda path: path != ".gitattributes",
    token: str | None = None,
) -> PushResult:
    """Make the remote branch hold ``staging``'s files, in one commit, or in none if it already does.

    Args:
        staging: The files to publish, laid out as in the repository.
        repo_id: ``org/name``; created (``private`` as asked) if missing.
        repo_type: ``model`` or ``dataset``.
        revision: Branch to push to (created from ``main`` if missing); ``None`` is ``main``.
        private: Visibility of a repository this push creates (an existing one keeps its visibility).
        commit_message: The commit's title.
        owns: Which remote paths this push is responsible for: those missing from ``staging`` are deleted.
        token: A token; ``None`` uses ``HF_TOKEN`` or the login cache.

    Returns:
        The push's outcome.
    """
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi
    from huggingface_hub.hf_api import RepoFile

    api = HfApi(token=token)
    branch = revision or "main"
    api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
    if branch != "main":
        api.create_branch(repo_id, repo_type=repo_type, branch=branch, exist_ok=True)
    head = api.repo_info(repo_id, repo_type=repo_type, revision=branch).sha
    remote = {
        item.path: item
        for item in api.list_repo_tree(repo_id, repo_type=repo_type, revision=head, recursive=True)
        if isinstance(item, RepoFile)
    }
    local = {path.relative_to(staging).as_posix(): path for path in sorted(staging.rglob("*")) if path.is_file()}
    additions = [name for name, path in local.items() if not _unchanged(remote.get(name), path)]
    deletions = [name for name in remote if name not in local and owns(name)]
    result = PushResult(repo_id, repo_type, branch, head, created_commit=False)
    if not additions and not deletions:
        logger.info("%s@%s already holds this content: no commit", repo_id, branch)
        return result
    operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(local[name])) for name in additions]
    operations += [CommitOperationDelete(path_in_repo=name) for name in deletions]
    info = api.create_commit(
        repo_id,
        operations,
        commit_message=commit_message,
        repo_type=repo_type,
        revision=branch,
        parent_commit=head,
    )
    return dataclasses.replace(
        result, commit=info.oid, created_commit=True, url=info.commit_url, uploaded=additions, deleted=deletions
    )


def _stage_file(source: str | Path, target: str | Path) -> None:
    """Put ``source`` at ``target`` in a staging folder without copying its bytes (weights can be many GB): a hard
    link, or a symlink across file systems. The upload reads the original file."""
    try:
        os.link(source, target)
    except OSError:
        os.symlink(Path(source).resolve(), target)


def _copy_tree(source: Path, target: Path, ignore: Sequence[str] = ()) -> None:
    shutil.copytree(
        source, target, ignore=shutil.ignore_patterns(*ignore), dirs_exist_ok=True, copy_function=_stage_file
    )


def _write_json(path: Path, value: Any) -> None:
    """Write a staged JSON file; a staged link to the user's file is replaced, never written through."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    path.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value


def _wm_hub_version() -> str:
    from importlib.metadata import version

    return version("wm-hub")


def _require_online() -> None:
    """A push needs the Hub: fail before any work when ``HF_HUB_OFFLINE`` is set."""
    from huggingface_hub import constants
    from huggingface_hub.errors import OfflineModeIsEnabled

    if constants.HF_HUB_OFFLINE:
        raise OfflineModeIsEnabled("HF_HUB_OFFLINE is set: a push needs the Hub (unset HF_HUB_OFFLINE to push)")


def _is_local(name_or_path: str | Path) -> bool:
    return Path(name_or_path).expanduser().exists()


# ----------------------------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class ModelPushConfig:
    """Options of :func:`push_model` (the flags of ``wm-hub push model``).

    Attributes:
        revision: Branch to push to (e.g. one per bootstrap round); created from ``main`` if missing.
        private: Create the repository private.
        merge: Publish merged weights. Without it, a folder with a LoRA adapter publishes the adapter only.
        base_model: Hub id of the adapter's base model, when the adapter names a local folder (push the base first).
        results: An evaluation results JSON (``{benchmark: {metric: value}}`` or ``{metric: value}``) for the card.
        datasets: Hub ids of the training datasets, for the card's metadata.
        license: The model's licence identifier (the paper releases models for research use only).
        commit_message: The commit's title (default: says what is pushed).
    """

    revision: str | None = None
    private: bool = False
    merge: bool = False
    base_model: str | None = None
    results: str | Path | None = None
    datasets: Sequence[str] = ()
    license: str = DEFAULT_MODEL_LICENSE
    commit_message: str | None = None


def push_model(folder: str | Path, repo_id: str, config: ModelPushConfig | None = None, token: str | None = None):
    """Publish a wm-hub model folder (a training output, a saved backbone or a LoRA adapter) to ``repo_id``.

    Args:
        folder: What ``recipes/{idm,fdm}.py`` or :meth:`Backbone.save_pretrained` wrote, or an adapter folder
            (``adapter_config.json`` + ``wm_hub.json``, e.g. a downloaded adapter repository).
        repo_id: ``org/name``.
        config: Push options.
        token: A token; ``None`` uses ``HF_TOKEN`` or the login cache.

    Returns:
        :class:`PushResult`.

    Raises:
        FileNotFoundError: ``folder`` is not a model folder.
        ValueError: An adapter whose base model is only a local folder, or unreadable metadata.
        huggingface_hub.errors.OfflineModeIsEnabled: ``HF_HUB_OFFLINE`` is set.
    """
    config = config or ModelPushConfig()
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    _require_online()
    adapter_only = (folder / ADAPTER_CONFIG).is_file() and not (folder / "config.json").is_file()
    if not adapter_only and not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"{folder}: not a model folder (no config.json, and no {ADAPTER_CONFIG} for an adapter folder)"
        )
    has_adapter = (folder / ADAPTER_SUBFOLDER / ADAPTER_CONFIG).is_file()
    run = _read_json(folder / RUN_SUMMARY) if (folder / RUN_SUMMARY).is_file() else None
    results = _read_json(Path(config.results)) if config.results else None
    with tempfile.TemporaryDirectory(prefix=".wm-hub-push-") as tmp:
        staging = Path(tmp) / "repo"
        if adapter_only and config.merge:
            layout, manifest = "merged", _stage_merged_adapter(folder, staging)
        elif adapter_only or (has_adapter and not config.merge):
            layout, manifest = "adapter", _stage_adapter(folder, staging, config.base_model, adapter_only)
        else:
            layout, manifest = "merged", _stage_merged(folder, staging, config.base_model)
        manifest["task"] = manifest.get("task") or (run or {}).get("task")
        _write_json(staging / MANIFEST, manifest)
        if run is not None:
            _write_json(staging / RUN_SUMMARY, run)
        card = _model_card(run, manifest, repo_id, results, config)
        (staging / CARD).unlink(missing_ok=True)
        card.save(staging / CARD)
        message = config.commit_message or f"wm-hub push: {manifest.get('task') or 'backbone'} ({layout})"
        return commit_folder(
            staging,
            repo_id,
            repo_type="model",
            revision=config.revision,
            private=config.private,
            commit_message=message,
            token=token,
        )


def _backbone_settings(folder: Path) -> dict[str, Any] | None:
    """The ``wm_hub`` settings of a saved backbone's ``config.json`` (``wm_hub.models.base.WM_HUB_CONFIG_KEY``; not
    imported from there, which would import torch into a push that needs none)."""
    path = folder / "config.json"
    return _read_json(path).get("wm_hub") if path.is_file() else None


def _stage_merged(folder: Path, staging: Path, base_model: str | None = None) -> dict[str, Any]:
    """The whole backbone (and ``adapter/`` for reference), without checkpoints, pickles or the old card."""
    _copy_tree(folder, staging, MODEL_IGNORE)
    settings = _backbone_settings(folder)
    if settings is None:
        raise ValueError(
            f"{folder}/config.json has no 'wm_hub' settings: save the model with Backbone.save_pretrained "
            "(or load_backbone(...).save_pretrained) first, so that the instruction format travels with it"
        )
    base = base_model
    if base is None and (folder / ADAPTER_SUBFOLDER / ADAPTER_CONFIG).is_file():
        base = _read_json(folder / ADAPTER_SUBFOLDER / ADAPTER_CONFIG).get("base_model_name_or_path")
    return {
        "wm_hub_version": _wm_hub_version(),
        "layout": "merged",
        "backbone": settings,
        "base_model": base if base and not _is_local(base) else None,
        "base_revision": None,
        "image_tokenizer": "included",
    }


def _stage_merged_adapter(folder: Path, staging: Path) -> dict[str, Any]:
    """Merge an adapter folder into its base model and stage the merged backbone."""
    from wm_hub import load_backbone

    built = Path(staging.parent) / "merged"
    load_backbone(str(folder)).save_pretrained(built)
    manifest = _stage_merged(built, staging)
    saved = _read_json(folder / MANIFEST) if (folder / MANIFEST).is_file() else {}
    adapter = _read_json(folder / ADAPTER_CONFIG)
    manifest.update(task=saved.get("task"), base_model=adapter.get("base_model_name_or_path"))
    manifest["base_revision"] = adapter.get("revision")
    return manifest


def _stage_adapter(folder: Path, staging: Path, base_model: str | None, adapter_only: bool) -> dict[str, Any]:
    """The LoRA adapter with its base model as a pinned Hub reference, the tokenizer and the wm-hub settings."""
    from huggingface_hub import HfApi

    adapter_dir = folder if adapter_only else folder / ADAPTER_SUBFOLDER
    adapter = _read_json(adapter_dir / ADAPTER_CONFIG)
    saved = _read_json(folder / MANIFEST) if (folder / MANIFEST).is_file() else {}
    settings = saved.get("backbone") if adapter_only else _backbone_settings(folder)
    if not settings:
        raise ValueError(f"{folder}: no wm-hub settings (config.json 'wm_hub' key or {MANIFEST}) for the adapter")
    base = base_model or adapter.get("base_model_name_or_path")
    if not base or _is_local(base):
        raise ValueError(
            f"the adapter in {adapter_dir} names the local base model {base!r}, which others cannot load: push it "
            "first (wm-hub push model BASE_DIR --repo-id ORG/BASE) and pass --base-model ORG/BASE, or publish "
            "merged weights with --merge"
        )
    base_revision = None if base_model else adapter.get("revision")
    base_revision = HfApi().model_info(base, revision=base_revision).sha  # pin the base: the adapter fits this one
    adapter.update(base_model_name_or_path=base, revision=base_revision)
    staging.mkdir(parents=True)
    for path in adapter_dir.iterdir():
        if path.is_file() and path.name.startswith("adapter_model"):
            _stage_file(path, staging / path.name)
    if not any(staging.glob("adapter_model*")):
        raise FileNotFoundError(f"{adapter_dir}: no adapter_model.safetensors")
    _write_json(staging / ADAPTER_CONFIG, adapter)
    for name in TOKENIZER_FILES:
        if (folder / name).is_file():
            _stage_file(folder / name, staging / name)
    return {
        "wm_hub_version": _wm_hub_version(),
        "layout": "adapter",
        "task": saved.get("task"),
        "backbone": settings,
        "base_model": base,
        "base_revision": base_revision,
        "image_tokenizer": f"the base model's ({base}@{base_revision})",
    }


def _model_card(run: dict[str, Any] | None, manifest: dict[str, Any], repo_id: str, results, config: ModelPushConfig):
    """The model card: the training card when the folder has a run summary, else a short backbone card."""
    from huggingface_hub import ModelCard, ModelCardData

    if run is not None:
        from wm_hub.training.model_card import render_model_card

        if manifest.get("base_model") and _is_local(run["base_model"]):  # the card names the base others can load
            run = {**run, "base_model": manifest["base_model"]}
        return render_model_card(
            run,
            repo_id,
            results=results,
            datasets=list(config.datasets),
            license=config.license,
            adapter_only=manifest["layout"] == "adapter",
        )
    settings = manifest["backbone"]
    data = ModelCardData(
        library_name="transformers",
        license=config.license,
        datasets=list(config.datasets) or None,
        tags=["wm-hub", "world-model"],
    )
    body = (
        f"# {repo_id.split('/')[-1]}\n\nA wm-hub backbone ({settings['arch']}, {settings['image_size']} px images): a "
        "unified vision-language model that reads and writes text and VQ image tokens, ready to be fine-tuned into "
        "an inverse or forward dynamics model.\n\n```python\nfrom wm_hub import load_backbone\n\n"
        f'backbone = load_backbone("{repo_id}")\n```\n'
    )
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}")


# ----------------------------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------------------------
def resolve_model_folder(name_or_path: str | Path, revision: str | None = None, token: str | None = None) -> str:
    """A local folder for a model folder or Hub id (downloaded once, at one commit, then read from the cache).

    Args:
        name_or_path: A local folder (returned as is) or a Hub model id.
        revision: Branch, tag or commit of a Hub id.
        token: A token; ``None`` uses ``HF_TOKEN`` or the login cache.

    Returns:
        The folder.

    Raises:
        FileNotFoundError: Neither a local folder nor a model on the Hub (or, offline, in the cache).
    """
    if _is_local(name_or_path):
        if revision is not None:
            logger.warning("revision=%r is ignored for the local folder %s", revision, name_or_path)
        return str(name_or_path)
    from huggingface_hub import ResolvedRevision, snapshot_download
    from huggingface_hub.errors import (
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if isinstance(revision, ResolvedRevision) and getattr(revision, "_repo_id", None) not in (None, name_or_path):
        # A commit resolved for another repository (transformers' pipeline() resolves an adapter's base model and
        # passes that revision on): only the revision asked for means something here.
        revision = revision.initial
    try:
        return snapshot_download(str(name_or_path), revision=revision, token=token, ignore_patterns=SNAPSHOT_IGNORE)
    except RevisionNotFoundError as error:
        raise FileNotFoundError(f"{name_or_path}: no revision {revision!r} on the Hub") from error
    except (HFValidationError, RepositoryNotFoundError) as error:
        raise FileNotFoundError(f"{name_or_path} is neither a local folder nor a model on the Hub") from error
    except LocalEntryNotFoundError as error:
        raise FileNotFoundError(
            f"{name_or_path}@{revision or 'main'} is not in the Hugging Face cache and the Hub cannot be reached "
            "(HF_HUB_OFFLINE=1 or no network): download it once online"
        ) from error


def is_adapter_folder(folder: str | Path) -> bool:
    """Whether ``folder`` is an adapter-layout model (``adapter_config.json`` and no ``config.json``)."""
    folder = Path(folder)
    return (folder / ADAPTER_CONFIG).is_file() and not (folder / "config.json").is_file()


def load_adapter_backbone(folder: str | Path, **kwargs: Any):
    """Load an adapter-layout model: its base backbone with the saved wm-hub settings, and the adapter merged in.

    Args:
        folder: The adapter folder (``adapter_config.json``, ``adapter_model.safetensors``, ``wm_hub.json``).
        **kwargs: For :func:`wm_hub.load_backbone` of the base model (``device``, ``dtype``...); ``arch`` must
            match the saved one.

    Returns:
        The backbone with the merged LM, in eval mode.
    """
    from peft import PeftModel
    from transformers import AutoTokenizer

    from wm_hub import load_backbone
    from wm_hub.models.base import BackboneConfig

    folder = Path(folder)
    if not (folder / MANIFEST).is_file():
        raise FileNotFoundError(f"{folder}: an adapter without {MANIFEST} (the wm-hub settings it was trained with)")
    saved = BackboneConfig.from_dict(_read_json(folder / MANIFEST)["backbone"])
    adapter = _read_json(folder / ADAPTER_CONFIG)
    if kwargs.get("arch") not in (None, saved.arch):
        raise ValueError(f"{folder} is a {saved.arch!r} adapter, not {kwargs['arch']!r}")
    overrides = {name: getattr(saved, name) for name in ("image_size", "prompt", "separator_token")}
    overrides["image_token_offset"] = saved.image_token_offset
    overrides.update({key: kwargs.pop(key) for key in list(overrides) if key in kwargs})
    device = kwargs.pop("device", None)
    backbone = load_backbone(
        adapter["base_model_name_or_path"], revision=adapter.get("revision"), **overrides, **kwargs
    )
    backbone.model = PeftModel.from_pretrained(backbone.model, str(folder)).merge_and_unload().eval()
    if (folder / "tokenizer_config.json").is_file():
        backbone.tokenizer = AutoTokenizer.from_pretrained(str(folder))
    if device is not None:
        backbone.to(device)
    return backbone


# ----------------------------------------------------------------------------------------------------------------
# Datasets
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class DatasetPushConfig:
    """Options of :func:`push_dataset` (the flags of ``wm-hub push dataset``).

    Attributes:
        config_name: The dataset config (origin) this folder becomes, e.g. ``ucf``; default: the origin the rows
            share (``synthetic/ucf101/...`` -> ``ucf101``, ``shapes_world/triplets`` -> ``shapes_world``).
        revision: Branch to push to; created from ``main`` if missing.
        private: Create the repository private.
        provenance: A JSON file of provenance to record (``idm``, ``keyframes``, ``sampling``, ``source``...); it
            completes and overrides what is read from the folder (``annotation_config.json``,
            ``annotation_run.json``, ``*.report.json`` of ``wm-hub sample``).
        commit_message: The commit's title.
    """

    config_name: str | None = None
    revision: str | None = None
    private: bool = False
    provenance: str | Path | None = None
    commit_message: str | None = None


def push_dataset(folder: str | Path, repo_id: str, config: DatasetPushConfig | None = None, token: str | None = None):
    """Publish triplets as one config of a Hub dataset, with its provenance, in one commit.

    Args:
        folder: A Hub-layout folder written by ``wm-hub data build`` (``data/*.parquet`` + ``README.md``), or an
            IDM annotation folder (``annotations*.jsonl`` + images), which is built with the
            ``synthetic_triplets`` builder first.
        repo_id: ``org/name`` of the dataset repository.
        config: Push options.
        token: A token; ``None`` uses ``HF_TOKEN`` or the login cache.

    Returns:
        :class:`PushResult`.

    Raises:
        FileNotFoundError: ``folder`` is neither layout.
        ValueError: Bad config name, rows of several origins without ``config_name``, unreadable metadata.
        huggingface_hub.errors.OfflineModeIsEnabled: ``HF_HUB_OFFLINE`` is set.
    """
    config = config or DatasetPushConfig()
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    _require_online()
    with tempfile.TemporaryDirectory(prefix=".wm-hub-push-") as tmp:
        tmp = Path(tmp)
        provenance: dict[str, Any] = {}
        if (folder / "annotations.jsonl").is_file() or any(folder.glob("annotations-*.jsonl")):
            from wm_hub.data.hub_layout import build_hub_dataset

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
            provenance.update(_read_json(Path(config.provenance)))
        staging = tmp / "repo"
        (staging / name).mkdir(parents=True)
        for split, paths in shards.items():
            for index, path in enumerate(paths):
                _stage_file(path, staging / name / f"{split}-{index:05d}-of-{len(paths):05d}.parquet")
        if (built / BUILD_REPORT).is_file():
            _stage_file(built / BUILD_REPORT, staging / name / BUILD_REPORT)
        provenance = _complete_provenance(name, provenance, shards)
        _write_json(staging / name / PROVENANCE, provenance)
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
        saved = _read_json(folder / "annotation_config.json")
        settings = saved.get("settings", {})
        provenance["idm"] = settings.get("idm")
        provenance["annotation"] = {key: value for key, value in settings.items() if key not in ("idm", "data")}
        provenance["annotation"]["score_field"] = saved.get("score_field")
    if (folder / "annotation_run.json").is_file():
        run = _read_json(folder / "annotation_run.json")
        provenance.setdefault("annotation", {})["pairs"] = run.get("pairs")
    for report in sorted(folder.glob("*.report.json")):
        saved = _read_json(report)
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
        "wm_hub_version": _wm_hub_version(),
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

    provenances = {name: _read_json(staging / name / PROVENANCE)}
    for other in configs:
        if other != name:
            try:
                path = _remote_file(repo_id, f"{other}/{PROVENANCE}", branch, token)
            except (EntryNotFoundError, RevisionNotFoundError):
                path = None
            provenances[other] = _read_json(path) if path else {"config": other}
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
            citation=_paper_citation(),
        )
    card.save(staging / CARD)


def _size_category(rows: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if rows < limit:
            return label
    return "1M<n<10M"


def _paper_citation() -> str:
    from wm_hub.training.model_card import PAPER_CITATION

    return PAPER_CITATION


def results_rows(results: dict[str, Any]) -> list[tuple[str, str, float]]:
    """``(benchmark, metric, value)`` rows of a results JSON: nested objects give ``a/b`` names, non-numbers are
    skipped (``{"aurora": {"magicbrush": {"judge": 1.2}}}`` -> ``("aurora/magicbrush", "judge", 1.2)``)."""
    rows: list[tuple[str, str, float]] = []

    def visit(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if isinstance(item, (int, float)) and not isinstance(item, bool):
                    rows.append((prefix or "-", str(key), float(item)))
                else:
                    visit(f"{prefix}/{key}" if prefix else str(key), item)

    visit("", results)
    return rows
