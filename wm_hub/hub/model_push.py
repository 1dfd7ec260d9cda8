"""Model repositories: ``push_model`` (adapter or merged layout, manifest, model card); see :mod:`wm_hub.hub`."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wm_hub.atomic_io import read_json_object
from wm_hub.hub.commit import (
    PushResult,
    commit_folder,
    copy_tree,
    require_online,
    stage_file,
    wm_hub_version,
    write_json,
)
from wm_hub.models.model_folder import ADAPTER_CONFIG, MANIFEST, PROCESSOR_CONFIG, RUN_SUMMARY, is_local
from wm_hub.training.model_card import render_model_card

logger = logging.getLogger(__name__)

ADAPTER_SUBFOLDER = "adapter"
CARD = "README.md"
DEFAULT_MODEL_LICENSE = "cc-by-nc-4.0"  # paper Appendix J: research use only, no commercial use
# Never published from a model folder: checkpoints (optimizer states), private/temporary files, pickled
# TrainingArguments (they may hold hub_token), TensorBoard runs, and the card (re-rendered).
MODEL_IGNORE = ("_*", ".*", "checkpoint-*", "*training_args.bin", "runs", "README.md", "*.lock", "__pycache__")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model")
TOKENIZER_FILES += ("added_tokens.json", "chat_template.jinja", "vocab.json", "merges.txt")


@dataclass
class ModelPushConfig:
    """What :func:`push_model` publishes and how (the options of ``wm-hub push model``).

    Args:
        repo_id: The repository, ``org/name`` (created if missing).
        folder: The model folder: what ``recipes/{idm,fdm}.py`` or :meth:`Backbone.save_pretrained` wrote, or an
            adapter folder (``adapter_config.json`` + ``wm_hub.json``, e.g. a downloaded adapter repository).
        revision: Branch to push to (e.g. one per bootstrap round); created from ``main`` if missing.
        private: Create the repository private.
        merge: Publish merged weights. Without it, a folder with a LoRA adapter publishes the adapter only.
        base_model: Hub id of the adapter's base model, when the adapter names a local folder (push the base first).
        results: An evaluation results JSON (``{benchmark: {metric: value}}`` or ``{metric: value}``) for the card.
        datasets: Hub ids of the training datasets, for the card's metadata.
        license: The model's licence identifier (the paper releases models for research use only).
        commit_message: The commit's title (default: says what is pushed).
    """

    repo_id: str
    folder: str | Path | None = None
    revision: str | None = None
    private: bool = False
    merge: bool = False
    base_model: str | None = None
    results: str | Path | None = None
    datasets: list[str] = field(
        default_factory=list, metadata={"aliases": ["--dataset"], "action": "extend", "metavar": "ID"}
    )
    license: str = DEFAULT_MODEL_LICENSE
    commit_message: str | None = field(default=None, metadata={"aliases": ["--message"]})

    def __post_init__(self) -> None:
        if not self.folder:
            raise ValueError("ModelPushConfig: folder is required (the model folder to publish)")


def push_model(config: ModelPushConfig, token: str | None = None) -> PushResult:
    """Publish a wm-hub model folder (a training output, a saved backbone or a LoRA adapter) to the Hub.

    Args:
        config: The folder, the repository and the push options.
        token: A token; ``None`` uses ``HF_TOKEN`` or the login cache.

    Returns:
        :class:`PushResult`.

    Raises:
        FileNotFoundError: ``config.folder`` is not a model folder.
        ValueError: An adapter whose base model is only a local folder, or unreadable metadata.
        huggingface_hub.errors.OfflineModeIsEnabled: ``HF_HUB_OFFLINE`` is set.
    """
    folder, repo_id = Path(config.folder).expanduser(), config.repo_id
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: {'a file, not a folder' if folder.exists() else 'no such folder'}")
    require_online()
    adapter_only = (folder / ADAPTER_CONFIG).is_file() and not (folder / "config.json").is_file()
    if not adapter_only and not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"{folder}: not a model folder (no config.json, and no {ADAPTER_CONFIG} for an adapter folder)"
        )
    has_adapter = (folder / ADAPTER_SUBFOLDER / ADAPTER_CONFIG).is_file()
    run = read_json_object(folder / RUN_SUMMARY) if (folder / RUN_SUMMARY).is_file() else None
    results = read_json_object(Path(config.results)) if config.results else None
    with tempfile.TemporaryDirectory(prefix=".wm-hub-push-") as tmp:
        staging = Path(tmp) / "repo"
        if adapter_only and config.merge:
            layout, manifest = "merged", _stage_merged_adapter(folder, staging)
        elif adapter_only or (has_adapter and not config.merge):
            layout, manifest = "adapter", _stage_adapter(folder, staging, config.base_model, adapter_only)
        else:
            layout, manifest = "merged", _stage_merged(folder, staging, config.base_model)
        manifest["task"] = manifest.get("task") or (run or {}).get("task")
        write_json(staging / MANIFEST, manifest)
        if run is not None:
            write_json(staging / RUN_SUMMARY, run)
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


def push_trained_model(training_args: Any) -> PushResult:
    """Publish a finished ``recipes/{idm,fdm}.py`` run as its ``push_to_hub`` settings say, like ``wm-hub push``.

    The repository is ``hub_model_id`` (default: the name of ``output_dir``, in the token owner's namespace), the
    branch ``hub_revision``, the visibility ``hub_private_repo``; the merged layout is published (the run's
    weights load without the base model, ``adapter/`` beside them for a LoRA run).

    Args:
        training_args: The run's ``WorldModelSFTConfig`` (``transformers.TrainingArguments`` fields).

    Returns:
        :class:`PushResult`.
    """
    config = ModelPushConfig(
        repo_id=training_args.hub_model_id or Path(training_args.output_dir).name,
        folder=training_args.output_dir,
        revision=training_args.hub_revision,
        private=bool(training_args.hub_private_repo),
        merge=True,
        commit_message="End of training",
    )
    result = push_model(config, token=training_args.hub_token)
    logger.info("Pushed %s to %s", training_args.output_dir, result.url or f"{result.repo_id} (unchanged)")
    return result


def _backbone_settings(folder: Path) -> dict[str, Any] | None:
    """The ``wm_hub`` settings of a saved backbone's ``config.json`` (``wm_hub.models.base.WM_HUB_CONFIG_KEY``; not
    imported from there, which would import torch into a push that needs none)."""
    path = folder / "config.json"
    return read_json_object(path).get("wm_hub") if path.is_file() else None


def _stage_merged(folder: Path, staging: Path, base_model: str | None = None) -> dict[str, Any]:
    """The whole backbone (and ``adapter/`` for reference), without checkpoints, pickles or the old card."""
    copy_tree(folder, staging, MODEL_IGNORE)
    settings = _backbone_settings(folder)
    if settings is None:
        raise ValueError(
            f"{folder}/config.json has no 'wm_hub' settings: save the model with Backbone.save_pretrained "
            "(or load_backbone(...).save_pretrained) first, so that the instruction format travels with it"
        )
    base = base_model
    if base is None and (folder / ADAPTER_SUBFOLDER / ADAPTER_CONFIG).is_file():
        base = read_json_object(folder / ADAPTER_SUBFOLDER / ADAPTER_CONFIG).get("base_model_name_or_path")
    return {
        "wm_hub_version": wm_hub_version(),
        "layout": "merged",
        "backbone": settings,
        "base_model": base if base and not is_local(base) else None,
        "base_revision": None,
        "image_tokenizer": "included",
    }


def _stage_merged_adapter(folder: Path, staging: Path) -> dict[str, Any]:
    """Merge an adapter folder into its base model and stage the merged backbone."""
    from wm_hub.models.loading import load_backbone

    built = Path(staging.parent) / "merged"
    load_backbone(str(folder)).save_pretrained(built)
    manifest = _stage_merged(built, staging)
    saved = read_json_object(folder / MANIFEST) if (folder / MANIFEST).is_file() else {}
    adapter = read_json_object(folder / ADAPTER_CONFIG)
    manifest.update(task=saved.get("task"), base_model=adapter.get("base_model_name_or_path"))
    manifest["base_revision"] = adapter.get("revision")
    return manifest


def _stage_adapter(folder: Path, staging: Path, base_model: str | None, adapter_only: bool) -> dict[str, Any]:
    """The LoRA adapter with its base model as a pinned Hub reference, the tokenizer and the wm-hub settings."""
    from huggingface_hub import HfApi

    adapter_dir = folder if adapter_only else folder / ADAPTER_SUBFOLDER
    adapter = read_json_object(adapter_dir / ADAPTER_CONFIG)
    saved = read_json_object(folder / MANIFEST) if (folder / MANIFEST).is_file() else {}
    settings = saved.get("backbone") if adapter_only else _backbone_settings(folder)
    if not settings:
        raise ValueError(f"{folder}: no wm-hub settings (config.json 'wm_hub' key or {MANIFEST}) for the adapter")
    base = base_model or adapter.get("base_model_name_or_path")
    if not base or is_local(base):
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
            stage_file(path, staging / path.name)
    if not any(staging.glob("adapter_model*")):
        raise FileNotFoundError(f"{adapter_dir}: no adapter_model.safetensors")
    write_json(staging / ADAPTER_CONFIG, adapter)
    for name in (*TOKENIZER_FILES, PROCESSOR_CONFIG):
        if (folder / name).is_file():
            stage_file(folder / name, staging / name)
    return {
        "wm_hub_version": wm_hub_version(),
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
        if manifest.get("base_model") and is_local(run["base_model"]):  # the card names the base others can load
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
