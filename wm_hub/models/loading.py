"""``load_backbone``: one entry point for wm-hub checkpoints, stock Hub checkpoints and tiny presets."""

from __future__ import annotations

import importlib
import json
import os
from typing import Any

import torch
from transformers import PretrainedConfig

from wm_hub.models.base import Backbone, BackboneConfig, read_backbone_config

# arch -> (module, class); imported lazily so that one family's optional pieces never block another.
BACKBONES: dict[str, tuple[str, str]] = {
    "chameleon": ("wm_hub.models.chameleon", "ChameleonBackbone"),
    "liquid": ("wm_hub.models.liquid", "LiquidBackbone"),
    "emu3": ("wm_hub.models.emu3", "Emu3Backbone"),
}

# model_type of a stock checkpoint (no wm_hub settings in config.json) -> arch.
MODEL_TYPE_TO_ARCH = {"chameleon": "chameleon", "emu3": "emu3", "gemma": "liquid"}


RUN_SUMMARY = "training_run.json"  # what wm-hub's trainers write beside a fine-tuned model


def trained_task(name_or_path: str | os.PathLike) -> str | None:
    """``"idm"`` or ``"fdm"``: what a local wm-hub checkpoint was fine-tuned as (``None``: unrecorded, or a Hub id)."""
    path = os.path.join(os.path.expanduser(os.fspath(name_or_path)), RUN_SUMMARY)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            task = json.load(handle).get("task")
    except (OSError, ValueError, AttributeError):
        return None
    return task if task in ("idm", "fdm") else None


def backbone_class(arch: str) -> type[Backbone]:
    """The :class:`Backbone` subclass registered for ``arch``."""
    if arch not in BACKBONES:
        raise ValueError(f"Unknown backbone arch {arch!r}; choose one of {sorted(BACKBONES)}")
    module, name = BACKBONES[arch]
    return getattr(importlib.import_module(module), name)


def _default_image_size(config_dict: dict[str, Any], arch: str) -> int:
    if arch == "chameleon":
        return config_dict.get("vq_config", {}).get("resolution", 512)
    return 512


def load_backbone(
    name_or_path: str,
    arch: str | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
    revision: str | None = None,
    **kwargs: Any,
) -> Backbone:
    """Load a unified VLM as a wm-hub backbone.

    The same code path serves a folder written by ``wm-hub tiny-model``, a checkpoint saved by wm-hub and a
    stock checkpoint from the Hub (Anole-7b in HF layout, Liquid-7B, Emu3). A Hub id is downloaded once, at one
    commit, and read from the cache afterwards, ``HF_HUB_OFFLINE=1`` included
    (:func:`wm_hub.hub.resolve_model_folder`); a model published as a LoRA adapter (``wm-hub push model``
    without ``--merge``) loads its base model and merges the adapter (:func:`wm_hub.hub.load_adapter_backbone`).

    Args:
        name_or_path: Local folder or Hub id.
        arch: ``chameleon``, ``liquid`` or ``emu3``. Read from the checkpoint's ``config.json`` (``wm_hub.arch``, else
            ``model_type``) when omitted.
        device: Where to put the LM and the image tokenizer.
        dtype: LM dtype (e.g. ``torch.bfloat16``). Chameleon's and Liquid's VQGAN stays in float32; Emu3's VQ lives
            inside the LM and follows this dtype, as in transformers (pre-tokenise Emu3 data with a float32 backbone
            for dtype-independent codes).
        **kwargs: Backend options, e.g. ``vqgan="vqgan.ckpt"``, ``vqgan_config="vqgan.yaml"`` for Chameleon and
            Liquid, ``image_size=`` or ``prompt=`` overrides, and LM ``from_pretrained`` options
            (``attn_implementation``...).
        revision: Branch, tag or commit of a Hub id (``token=`` in ``kwargs`` authenticates the download).

    Returns:
        The backbone, in eval mode.
    """
    from wm_hub.hub import is_adapter_folder, load_adapter_backbone, resolve_model_folder

    name_or_path = resolve_model_folder(name_or_path, revision, token=kwargs.pop("token", None))
    if is_adapter_folder(name_or_path):
        return load_adapter_backbone(name_or_path, arch=arch, device=device, dtype=dtype, **kwargs)
    config_dict, _ = PretrainedConfig.get_config_dict(name_or_path)
    config = read_backbone_config(config_dict)
    if config is None:
        model_type = config_dict.get("model_type")
        detected = arch or MODEL_TYPE_TO_ARCH.get(model_type)
        if detected is None:
            raise ValueError(
                f"{name_or_path}: cannot tell the backbone family of model_type={model_type!r}; "
                f"pass arch= one of {sorted(BACKBONES)}"
            )
        config = BackboneConfig(arch=detected, image_size=_default_image_size(config_dict, detected))
    elif arch is not None and arch != config.arch:
        raise ValueError(f"{name_or_path} is a {config.arch!r} checkpoint, not {arch!r}")
    for field_name in ("image_size", "prompt", "separator_token", "image_token_offset"):
        if field_name in kwargs:
            setattr(config, field_name, kwargs.pop(field_name))
    if dtype is not None:
        kwargs["dtype"] = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    backbone = backbone_class(config.arch).from_pretrained(name_or_path, config, **kwargs)
    backbone.model.eval()
    if device is not None:
        backbone.to(device)
    return backbone
