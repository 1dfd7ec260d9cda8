"""``load_backbone``: one entry point for wm-hub checkpoints, stock Hub checkpoints and tiny presets."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from transformers import PretrainedConfig

from wm_hub.atomic_io import read_json_object
from wm_hub.models.base import Backbone, BackboneConfig, old_processor_settings, read_backbone_config
from wm_hub.models.model_folder import (
    ADAPTER_CONFIG,
    MANIFEST,
    is_adapter_folder,
    resolve_model_folder,
    trained_task,
)
from wm_hub.models.processing import WorldModelProcessor, is_world_model_processor, load_processor

# arch -> (module, class); imported lazily so that one family's optional pieces never block another.
BACKBONES: dict[str, tuple[str, str]] = {
    "chameleon": ("wm_hub.models.chameleon", "ChameleonBackbone"),
    "liquid": ("wm_hub.models.liquid", "LiquidBackbone"),
    "emu3": ("wm_hub.models.emu3", "Emu3Backbone"),
}

# model_type of a stock checkpoint (no wm_hub settings in config.json) -> arch.
MODEL_TYPE_TO_ARCH = {"chameleon": "chameleon", "emu3": "emu3", "gemma": "liquid"}


def backbone_class(arch: str) -> type[Backbone]:
    """The :class:`Backbone` subclass registered for ``arch``."""
    if arch not in BACKBONES:
        raise ValueError(f"Unknown backbone arch {arch!r}; choose one of {sorted(BACKBONES)}")
    module, name = BACKBONES[arch]
    return getattr(importlib.import_module(module), name)


def torch_dtype(dtype: torch.dtype | str) -> torch.dtype | None:
    """``dtype`` as a ``torch.dtype``: a name such as ``"bfloat16"`` is looked up in ``torch``; ``"auto"``
    (transformers' spelling of "as saved") is ``None``.

    Raises:
        ValueError: The name is not a torch dtype.
    """
    if dtype == "auto":
        return None
    value = getattr(torch, dtype, None) if isinstance(dtype, str) else dtype
    if not isinstance(value, torch.dtype):
        raise ValueError(f"dtype {dtype!r} is not a torch dtype (float32, bfloat16, float16...)")
    return value


def torch_device(device: str | torch.device) -> torch.device:
    """``device`` as a ``torch.device`` that exists on this machine (checked before any weight is loaded).

    Raises:
        ValueError: The name is not a device, or names a CUDA device this machine does not have.
    """
    try:
        value = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device {device!r} is not a torch device (cpu, cuda, cuda:1, mps...)") from None
    if value.type == "cuda" and (value.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return value


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
    (:func:`~wm_hub.models.model_folder.resolve_model_folder`); a model published as a LoRA adapter (``wm-hub push
    model`` without ``--merge``) loads its base model and merges the adapter (:func:`load_adapter_backbone`).

    Args:
        name_or_path: Local folder or Hub id.
        arch: ``chameleon``, ``liquid`` or ``emu3``. Read from the checkpoint's ``config.json`` (``wm_hub.arch``, else
            ``model_type``) when omitted.
        device: Where to put the LM and the image tokenizer.
        dtype: LM dtype (e.g. ``torch.bfloat16``). Chameleon's and Liquid's VQGAN stays in float32; Emu3's VQ lives
            inside the LM and follows this dtype, as in transformers (pre-tokenise Emu3 data with a float32 backbone
            for dtype-independent codes).
        **kwargs: Backend options, e.g. ``vqgan="vqgan.ckpt"``, ``vqgan_config="vqgan.yaml"`` for Chameleon and
            Liquid, ``image_size=`` overrides, ``prompt=`` (a :class:`~wm_hub.models.processing.PromptFormat`) or
            ``separator_token=`` for the processor, and LM ``from_pretrained`` options (``attn_implementation``...).
        revision: Branch, tag or commit of a Hub id (``token=`` in ``kwargs`` authenticates the download).

    Returns:
        The backbone, in eval mode.

    Raises:
        ValueError: ``dtype`` or ``device`` names no torch dtype or no device of this machine, the checkpoint's
            family cannot be told, or its ``training_run.json`` is not JSON.
        OSError: A file of the checkpoint is missing or unreadable (e.g. truncated weights).
    """
    device = None if device is None else torch_device(device)
    dtype = None if dtype is None else torch_dtype(dtype)
    name_or_path = resolve_model_folder(name_or_path, revision, token=kwargs.pop("token", None))
    if is_adapter_folder(name_or_path):
        return load_adapter_backbone(name_or_path, arch=arch, device=device, dtype=dtype, **kwargs)
    config, old_settings = _saved_settings(name_or_path, arch)
    saved_size = config.image_size
    for field_name in ("image_size", "image_token_offset"):
        if field_name in kwargs:
            setattr(config, field_name, kwargs.pop(field_name))
    prompt, separator = kwargs.pop("prompt", None), kwargs.pop("separator_token", None)
    if dtype is not None:
        kwargs["dtype"] = dtype
    family = backbone_class(config.arch)
    processor = load_processor(
        name_or_path, lambda: family.default_image_processor(name_or_path, config), old_settings
    )
    if config.image_size != saved_size:  # another grid: the saved layout and square no longer hold
        processor.resize(config.image_size)
    if prompt is not None:
        processor.prompt = prompt
    if separator is not None:
        processor.separator_token = separator
    try:
        backbone = family.from_pretrained(name_or_path, config, processor, **kwargs)
    except SafetensorError as error:  # a truncated or foreign weights file
        raise OSError(f"{name_or_path}: unreadable weights ({error})") from error
    backbone.trained_task = trained_task(name_or_path)
    backbone.model.eval()
    if device is not None:
        backbone.to(device)
    return backbone


def _saved_settings(folder: str, arch: str | None) -> tuple[BackboneConfig, dict[str, Any]]:
    """A checkpoint folder's wm-hub settings (detected for a stock checkpoint) and an older checkpoint's processor
    settings (see :func:`~wm_hub.models.base.read_backbone_config`)."""
    config_dict, _ = PretrainedConfig.get_config_dict(folder)
    config, old_settings = read_backbone_config(config_dict)
    if config is None:
        model_type = config_dict.get("model_type")
        detected = arch or MODEL_TYPE_TO_ARCH.get(model_type)
        if detected is None:
            raise ValueError(
                f"{folder}: cannot tell the backbone family of model_type={model_type!r}; "
                f"pass arch= one of {sorted(BACKBONES)}"
            )
        config = BackboneConfig(arch=detected, image_size=_default_image_size(config_dict, detected))
    elif arch is not None and arch != config.arch:
        raise ValueError(f"{folder} is a {config.arch!r} checkpoint, not {arch!r}")
    return config, old_settings


def load_model_processor(name_or_path: str, revision: str | None = None) -> WorldModelProcessor:
    """The processor of a model (its image processor and sequence format) without loading its weights.

    Evaluation uses it to prepare reference pictures exactly as the model's inputs were prepared. An adapter
    folder without a saved processor reads its base model's.

    Args:
        name_or_path: Local folder or Hub id, as :func:`load_backbone` takes it.
        revision: Branch, tag or commit of a Hub id.
    """
    folder = resolve_model_folder(name_or_path, revision)
    if is_adapter_folder(folder) and not is_world_model_processor(folder):
        adapter = read_json_object(Path(folder) / ADAPTER_CONFIG)
        return load_model_processor(adapter["base_model_name_or_path"], adapter.get("revision"))
    if is_adapter_folder(folder):
        return WorldModelProcessor.from_pretrained(folder)
    config, old_settings = _saved_settings(folder, None)
    family = backbone_class(config.arch)
    return load_processor(folder, lambda: family.default_image_processor(folder, config), old_settings)


def load_adapter_backbone(folder: str | Path, **kwargs: Any) -> Backbone:
    """Load an adapter-layout model: its base backbone with the saved wm-hub settings, and the adapter merged in.

    Args:
        folder: The adapter folder (``adapter_config.json``, ``adapter_model.safetensors``, ``wm_hub.json``).
        **kwargs: For :func:`load_backbone` of the base model (``device``, ``dtype``...); ``arch`` must match the
            saved one.

    Returns:
        The backbone with the merged LM, in eval mode.
    """
    from peft import PeftModel
    from transformers import AutoTokenizer

    folder = Path(folder)
    if not (folder / MANIFEST).is_file():
        raise FileNotFoundError(f"{folder}: an adapter without {MANIFEST} (the wm-hub settings it was trained with)")
    settings = read_json_object(folder / MANIFEST)["backbone"]
    saved = BackboneConfig.from_dict(settings)
    adapter = read_json_object(folder / ADAPTER_CONFIG)
    if kwargs.get("arch") not in (None, saved.arch):
        raise ValueError(f"{folder} is a {saved.arch!r} adapter, not {kwargs['arch']!r}")
    overrides = {"image_size": saved.image_size, "image_token_offset": saved.image_token_offset}
    overrides.update({key: kwargs.pop(key) for key in list(overrides) if key in kwargs})
    device = kwargs.pop("device", None)
    prompt, separator = kwargs.pop("prompt", None), kwargs.pop("separator_token", None)
    backbone = load_backbone(
        adapter["base_model_name_or_path"], revision=adapter.get("revision"), **overrides, **kwargs
    )
    backbone.model = PeftModel.from_pretrained(backbone.model, str(folder)).merge_and_unload().eval()
    if is_world_model_processor(folder):  # the processor the adapter was trained with (tokenizer included)
        saved_processor = WorldModelProcessor.from_pretrained(
            folder, image_processor=backbone.processor.image_processor
        )
        base = backbone.processor
        saved_processor.set_layout(base.image_grid, base.image_start, base.image_end, base.image_row_end)
        backbone.processor = saved_processor
    else:  # saved before the processor existed: the settings in its manifest
        for name, value in old_processor_settings(settings).items():
            setattr(backbone.processor, name, value)
        if (folder / "tokenizer_config.json").is_file():
            backbone.tokenizer = AutoTokenizer.from_pretrained(str(folder))
    if prompt is not None:
        backbone.processor.prompt = prompt
    if separator is not None:
        backbone.processor.separator_token = separator
    backbone.trained_task = trained_task(folder)
    if device is not None:
        backbone.to(device)
    return backbone
