"""What a wm-hub model folder holds, and where one comes from: a local folder, or a Hub id's snapshot.

The file names here are the layout every layer shares: the trainers write :data:`RUN_SUMMARY`, ``wm-hub push model``
writes :data:`MANIFEST` and, for the adapter layout, PEFT's :data:`ADAPTER_CONFIG`; :func:`wm_hub.load_backbone`
reads them back through :func:`resolve_model_folder` and :func:`is_adapter_folder`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from wm_hub.atomic_io import read_json_object

logger = logging.getLogger(__name__)

RUN_SUMMARY = "training_run.json"  # what wm-hub's trainers write beside a fine-tuned model
MANIFEST = "wm_hub.json"  # the wm-hub settings of a published model (task, layout, backbone settings, base model)
ADAPTER_CONFIG = "adapter_config.json"  # PEFT's: an adapter-layout folder names its base model here
PROCESSOR_CONFIG = "processor_config.json"  # transformers': the WorldModelProcessor (sequence format, preprocessing)

# Downloaded by load_backbone for a Hub id: everything but checkpoints, original-format weights and data.
SNAPSHOT_IGNORE = ["checkpoint-*/*", "adapter/*", "original/*", "*.pth", "*.pt", "*.ckpt", "*.msgpack", "*.h5"]
SNAPSHOT_IGNORE += ["*.onnx", "*.gguf", "*.parquet", "*.arrow", "runs/*"]


def is_local(name_or_path: str | os.PathLike) -> bool:
    """Whether ``name_or_path`` names something on this machine (else it is read as a Hub id)."""
    return Path(name_or_path).expanduser().exists()


def trained_task(name_or_path: str | os.PathLike) -> str | None:
    """``"idm"`` or ``"fdm"``: what a local wm-hub checkpoint was fine-tuned as (``None``: unrecorded, or a Hub id).

    Raises:
        ValueError: The checkpoint's run summary is not a JSON object (a corrupt one would hide what it was
            trained as, e.g. an FDM given as an IDM).
    """
    path = os.path.join(os.path.expanduser(os.fspath(name_or_path)), RUN_SUMMARY)
    if not os.path.isfile(path):
        return None
    task = read_json_object(path).get("task")
    return task if task in ("idm", "fdm") else None


def is_adapter_folder(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` is an adapter-layout model (``adapter_config.json`` and no ``config.json``)."""
    folder = Path(folder)
    return (folder / ADAPTER_CONFIG).is_file() and not (folder / "config.json").is_file()


def resolve_model_folder(
    name_or_path: str | os.PathLike, revision: str | None = None, token: str | None = None
) -> str:
    """A local folder for a model folder or Hub id (downloaded once, at one commit, then read from the cache).

    Args:
        name_or_path: A local folder (returned as is) or a Hub model id.
        revision: Branch, tag or commit of a Hub id.
        token: A token; ``None`` uses ``HF_TOKEN`` or the login cache.

    Returns:
        The folder.

    Raises:
        FileNotFoundError: Neither a local folder nor a model on the Hub (or, offline, in the cache).
        ValueError: A local file, not a folder.
    """
    if is_local(name_or_path):
        if not Path(name_or_path).expanduser().is_dir():
            raise ValueError(f"{name_or_path} is a file, not a model folder (config.json, weights, tokenizer)")
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
