"""The configuration dataclasses of the training recipes, parsed by ``trl.TrlParser`` from YAML and the command line.

``recipes/idm.py`` and ``recipes/fdm.py`` parse ``(DataArguments, WorldModelSFTConfig, ModelArguments)``:

- :class:`WorldModelSFTConfig` is ``trl.SFTConfig`` (every ``TrainingArguments`` field) plus the loss weighting,
  with the defaults that pre-tokenised world-model data needs.
- :class:`ModelArguments` is ``trl.ModelConfig`` (model path, dtype, LoRA settings) plus what
  :func:`wm_hub.load_backbone` takes (arch, VQGAN location, image size).
- :class:`DataArguments` is the data mixture (:mod:`wm_hub.data.mixture`), the instruction strings that are saved
  with the checkpoint, and ``dry_run``.

Every field can be set in the YAML recipe and overridden on the command line (``--learning_rate 1e-4``), except the
lists of sources, which live in YAML only.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from transformers.trainer_utils import HubStrategy
from trl import ModelConfig, SFTConfig

from wm_hub.data.mixture import SourceConfig
from wm_hub.models.base import PromptFormat
from wm_hub.training.trainers import TEXT_ATTENTION_TARGETS


@dataclass
class WorldModelSFTConfig(SFTConfig):
    """``trl.SFTConfig`` for IDM/FDM training on pre-tokenised sequences.

    Defaults that differ from ``SFTConfig``, because the data arrives pre-tokenised with a per-token
    ``token_weights`` column: ``remove_unused_columns=False`` and ``dataset_kwargs={"skip_prepare_dataset": True}``
    (both required), ``max_length=None`` (sequences are used whole: truncation would cut an image), and
    ``hub_strategy="end"`` (the merged model is pushed once, after training; see :mod:`wm_hub.training.run`).

    On a machine without an accelerator ``use_cpu`` is switched on: ``accelerate launch`` with several processes
    then joins them in one gloo process group (without it, each rank would train alone).

    Args:
        loss_weighting: ``l2`` weights each FDM target image token by its recognition weight (paper Eq. 2); ``none``
            is the standard completion loss. IDM training requires ``none``.
        weight_normalization: ``mean`` (wm-hub's default) scales the weights of each target image to average 1,
            ``none`` keeps the raw squared distances (the paper's Eq. 2 as written), ``batch`` divides them by their
            mean over each batch's target image tokens.
        loss_weight_floor: With ``l2``: weights ``floor + (1 - floor) * w`` (a documented deviation; 0 is the
            paper's).
    """

    loss_weighting: Literal["none", "l2"] = field(
        default="none",
        metadata={"help": "'l2': recognition-weighted FDM loss (paper Eq. 2); 'none': standard completion loss."},
    )
    weight_normalization: Literal["mean", "none", "batch"] = field(
        default="mean",
        metadata={
            "help": "'mean': weights average 1 over each target image; 'none': raw squared distances (the paper's "
            "Eq. 2); 'batch': raw distances divided by their mean over each batch's target image tokens."
        },
    )
    loss_weight_floor: float = field(
        default=0.0,
        metadata={
            "help": "wm-hub option, not the paper's: with l2, weights floor + (1 - floor) * w, so unchanged tokens "
            "keep "
            "a share of the loss (0: the paper's Eq. 2)."
        },
    )
    remove_unused_columns: bool = field(
        default=False,
        metadata={"help": "Must stay False: the collator needs the token_weights column."},
    )
    dataset_kwargs: dict[str, Any] | str | None = field(
        default_factory=lambda: {"skip_prepare_dataset": True},
        metadata={"help": "Must keep skip_prepare_dataset=True: the data is pre-tokenised by wm-hub."},
    )
    max_length: int | None = field(
        default=None,
        metadata={"help": "Unused: pre-tokenised sequences are used whole (truncation would cut an image)."},
    )
    hub_strategy: HubStrategy | str = field(
        default="end",
        metadata={"help": "Must be 'end': the merged model is pushed once, after training."},
    )

    def __post_init__(self) -> None:
        if not self.use_cpu and not torch.accelerator.is_available():
            self.use_cpu = True
        super().__post_init__()
        for name, allowed in (("loss_weighting", ("none", "l2")), ("weight_normalization", ("mean", "none", "batch"))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {list(allowed)}, got {getattr(self, name)!r}")
        if not 0.0 <= self.loss_weight_floor <= 1.0:
            raise ValueError(f"loss_weight_floor must be in [0, 1], got {self.loss_weight_floor}")
        if self.remove_unused_columns:
            raise ValueError("remove_unused_columns must be False: it would drop the token_weights column")
        if not (self.dataset_kwargs or {}).get("skip_prepare_dataset"):
            raise ValueError("dataset_kwargs must keep skip_prepare_dataset=True: wm-hub pre-tokenises the data")
        if self.push_to_hub and self.hub_strategy != HubStrategy.END:
            raise ValueError(
                f"hub_strategy={self.hub_strategy.value!r} would push LoRA checkpoints over the merged model: "
                "wm-hub pushes once, after training (hub_strategy='end')"
            )


@dataclass
class ModelArguments(ModelConfig):
    """``trl.ModelConfig`` plus the options of :func:`wm_hub.load_backbone`.

    Defaults that differ from ``ModelConfig``: ``use_peft=True`` and LoRA targets restricted to the attention
    projections of the language model (``TEXT_ATTENTION_TARGETS``, a regex: Emu3's VQ model inside the LM has
    ``q_proj``/``k_proj``/``v_proj`` modules too; a one-element list is read as a regex by PEFT, several elements as
    module names). r 16, alpha 32 and dropout 0.05 are the paper's (and TRL's) values.

    Args:
        arch: ``chameleon``, ``liquid`` or ``emu3``; read from the checkpoint when omitted.
        vqgan: Chameleon/Liquid VQGAN location: a diffusers ``VQModel`` folder or Meta's ``vqgan.ckpt``
            (default: ``<model>/vqgan``).
        vqgan_config: The ``vqgan.yaml`` of a ``vqgan.ckpt``.
        image_size: Image side the VQ tokenizer reads and writes (default: the checkpoint's).
    """

    arch: Literal["chameleon", "liquid", "emu3"] | None = field(
        default=None, metadata={"help": "Backbone family; read from the checkpoint's config.json when omitted."}
    )
    vqgan: str | None = field(
        default=None,
        metadata={"help": "Chameleon/Liquid VQGAN: a diffusers VQModel folder or vqgan.ckpt (default <model>/vqgan)."},
    )
    vqgan_config: str | None = field(default=None, metadata={"help": "vqgan.yaml of a vqgan.ckpt."})
    image_size: int | None = field(
        default=None, metadata={"help": "Image side in pixels (default: the checkpoint's)."}
    )
    use_peft: bool = field(default=True, metadata={"help": "Train LoRA adapters (the paper) instead of all weights."})
    lora_target_modules: list[str] | None = field(
        default_factory=lambda: [TEXT_ATTENTION_TARGETS],
        metadata={"help": "One regex (full match on module names) or several module names."},
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.load_in_4bit or self.load_in_8bit:
            raise ValueError("load_backbone does not load quantised models: drop load_in_4bit/load_in_8bit")

    def backbone_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`wm_hub.load_backbone` (a local model folder as an absolute path; a Hub id at
        ``model_revision``).

        Raises:
            ValueError: ``model_name_or_path`` is not set, or a revision is asked of a local folder.
        """
        if not self.model_name_or_path:
            raise ValueError("model_name_or_path is not set: give the backbone's folder or Hub id")
        path = Path(self.model_name_or_path).expanduser()
        kwargs: dict[str, Any] = {
            "name_or_path": str(path.resolve()) if path.is_dir() else self.model_name_or_path,
            "arch": self.arch,
            "dtype": None if self.dtype in (None, "auto") else self.dtype,
        }
        options = {
            "vqgan": self.vqgan,
            "vqgan_config": self.vqgan_config,
            "image_size": self.image_size,
            "attn_implementation": self.attn_implementation,
        }
        kwargs.update({name: value for name, value in options.items() if value is not None})
        if self.model_revision != "main":
            if path.is_dir():
                raise ValueError(
                    f"model_revision={self.model_revision!r} applies to Hub ids; {path} is a local folder"
                )
            kwargs["revision"] = self.model_revision  # one bootstrap round's checkpoint, by branch, tag or commit
        return kwargs


@dataclass
class DataArguments:
    """The data mixture and the training format.

    Args:
        sources: Training sources (YAML list of :class:`~wm_hub.data.mixture.SourceConfig` mappings).
        eval_sources: Sources of a separate evaluation set (e.g. AURORA-BENCH).
        eval_size: Rows held out of the training sources for evaluation, a count (>= 1) or a fraction (< 1);
            exclusive with ``eval_sources``.
        data_root: Folder that relative ``data_dir`` values of the sources are resolved against.
        mixture_seed: Seed of the row draws (``max_samples``, ``weight``, ``eval_size``).
        cache_dir: ``datasets`` cache for built sources and pre-tokenised sequences (default: the ``datasets`` one).
        task: ``idm`` or ``fdm``: which script the recipe is for (checked by the script).
        fdm_instruction: FDM instruction string (default: the backbone's); saved in the checkpoint's config.json.
        idm_instruction: IDM instruction string (default: the backbone's); saved in the checkpoint's config.json.
        idm_rationale: Train the IDM to write the row's ``rationale`` (e.g. the changed cells) before the action
            (default: the backbone's setting, ``false`` for a base); saved with the model, which then generates
            ``"<rationale> => <action>"`` and is read by the pipelines as the action.
        dry_run: Build the mixture, print its sizes as JSON and stop (no model is loaded).
    """

    sources: list[SourceConfig] = field(
        default_factory=list, metadata={"help": "Training sources (set in the YAML recipe)."}
    )
    eval_sources: list[SourceConfig] = field(
        default_factory=list, metadata={"help": "Evaluation sources (set in the YAML recipe)."}
    )
    eval_size: float | None = field(
        default=None, metadata={"help": "Hold out this many rows (>= 1) or this fraction (< 1) for evaluation."}
    )
    data_root: str | None = field(
        default=None, metadata={"help": "Folder that relative data_dir values of the sources are resolved against."}
    )
    mixture_seed: int = field(default=0, metadata={"help": "Seed of the row draws of the mixture."})
    cache_dir: str | None = field(default=None, metadata={"help": "datasets cache folder."})
    task: Literal["idm", "fdm"] | None = field(
        default=None, metadata={"help": "The task the recipe is for; the script checks that it is its own."}
    )
    fdm_instruction: str | None = field(default=None, metadata={"help": "FDM instruction (saved with the model)."})
    idm_instruction: str | None = field(default=None, metadata={"help": "IDM instruction (saved with the model)."})
    idm_rationale: bool | None = field(
        default=None,
        metadata={"help": "The IDM writes the row's rationale before the action (saved with the model)."},
    )
    dry_run: bool = field(default=False, metadata={"help": "Only build the data mixture and print its sizes."})

    def __post_init__(self) -> None:
        if self.task not in (None, "idm", "fdm"):
            raise ValueError(f"task must be 'idm' or 'fdm', got {self.task!r}")
        for name in ("sources", "eval_sources"):
            if not isinstance(getattr(self, name), (list, tuple)):
                raise ValueError(
                    f"{name} must be a YAML list of mappings (`{name}:` then `- builder: shapes_world` lines), got "
                    f"one value: {getattr(self, name)!r}"
                )
        self.sources = [_source(item) for item in self.sources]
        self.eval_sources = [_source(item) for item in self.eval_sources]
        if self.data_root is not None:
            self.data_root = os.path.expanduser(self.data_root)

    def prompt_format(self, current: PromptFormat) -> PromptFormat:
        """``current`` with the instruction strings (and ``idm_rationale``) this recipe sets."""
        changes = {
            "fdm_instruction": self.fdm_instruction,
            "idm_instruction": self.idm_instruction,
            "idm_rationale": self.idm_rationale,
        }
        return dataclasses.replace(current, **{name: value for name, value in changes.items() if value is not None})


def check_run_settings(training_args: Any, model_path: str | None, data_args: Any, **models: str | None) -> None:
    """Refuse, before any weight loads, a run that would do nothing or write over one of its inputs.

    Args:
        training_args: The run's ``TrainingArguments`` (SFT or GRPO).
        model_path: The model trained (``model_name_or_path``).
        data_args: Its data settings (``sources``, ``eval_sources``, ``data_root``).
        **models: Other model folders the run reads, by option name (``reward_model=...``).

    Raises:
        ValueError: ``max_steps`` 0 (only -1, epochs, or >= 1), a ``learning_rate`` <= 0, or an ``output_dir`` that is
            the model, another model read, or a data folder (or inside one), named.
    """
    if training_args.max_steps == 0 or training_args.max_steps < -1:
        raise ValueError(f"max_steps must be -1 (train num_train_epochs) or >= 1, got {training_args.max_steps}")
    if not training_args.learning_rate > 0:
        raise ValueError(f"learning_rate must be > 0, got {training_args.learning_rate}")
    out = Path(training_args.output_dir).expanduser().resolve()
    for name, path in {"model_name_or_path": model_path, **models}.items():
        if path and Path(path).expanduser().resolve() == out:
            raise ValueError(f"output_dir {training_args.output_dir} is the {name} this run reads: choose another")
    root = Path(getattr(data_args, "data_root", None) or ".")
    for source in [*data_args.sources, *data_args.eval_sources]:
        for folder in (source.path, source.data_dir):
            if not folder or not (root / folder).expanduser().is_dir():
                continue
            where = (root / folder).expanduser().resolve()
            if out == where or where in out.parents:
                raise ValueError(
                    f"output_dir {training_args.output_dir} is inside the data folder {folder}: choose another"
                )


def _source(item: SourceConfig | dict[str, Any]) -> SourceConfig:
    """A YAML mapping as a :class:`SourceConfig` (parsing twice with one parser hands back the objects)."""
    if isinstance(item, SourceConfig):
        return item
    if not isinstance(item, dict):
        raise ValueError(f"a mixture source must be a mapping (builder/path, config, data_dir...), got {item!r}")
    unknown = sorted(set(item) - {f.name for f in dataclasses.fields(SourceConfig)})
    if unknown:
        raise ValueError(f"unknown mixture source field(s) {unknown} in {item!r}")
    return SourceConfig(**item)
