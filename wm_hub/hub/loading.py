"""Loading by Hub id: one snapshot per revision (cache and ``HF_HUB_OFFLINE`` honoured), adapter-layout models."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from wm_hub.hub.commit import is_local, read_json
from wm_hub.hub.model_push import ADAPTER_CONFIG, MANIFEST

logger = logging.getLogger(__name__)

# Downloaded by load_backbone for a Hub id: everything but checkpoints, original-format weights and data.
SNAPSHOT_IGNORE = ["checkpoint-*/*", "adapter/*", "original/*", "*.pth", "*.pt", "*.ckpt", "*.msgpack", "*.h5"]
SNAPSHOT_IGNORE += ["*.onnx", "*.gguf", "*.parquet", "*.arrow", "runs/*"]


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
    if is_local(name_or_path):
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
    saved = BackboneConfig.from_dict(read_json(folder / MANIFEST)["backbone"])
    adapter = read_json(folder / ADAPTER_CONFIG)
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
