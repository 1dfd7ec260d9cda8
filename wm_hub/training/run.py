"""What ``recipes/idm.py`` and ``recipes/fdm.py`` run: recipe -> data mixture -> pre-tokenised data -> trained model.

``main(task, data_args, training_args, model_args)``:

1. load the backbone (:func:`wm_hub.load_backbone`) and set the recipe's instruction strings on it;
2. build the data mixture and pre-tokenise it (task, loss weighting) on the main process first, so that the other
   ranks read the cached result;
3. train ``IDMTrainer``/``FDMTrainer`` (TRL ``SFTTrainer`` subclasses), resuming from a checkpoint if asked;
4. save: ``output_dir`` holds the full backbone with the LoRA adapter merged into its weights
   (``Backbone.save_pretrained``: ``config.json`` with the ``wm_hub`` settings, instruction strings and arch
   included, weights, tokenizer, image tokenizer), so ``load_backbone(output_dir)`` loads it like any checkpoint,
   offline, without the base model. The adapter alone is in ``output_dir/adapter`` (its ``adapter_config.json``
   names the base model). ``training_run.json`` summarises the run (mixture sizes, hyper-parameters, metrics,
   world size) and ``README.md`` is the model card rendered from it;
5. when ``push_to_hub`` is set, hand the finished ``output_dir`` to ``publish`` on the main process: the recipe
   scripts pass :func:`wm_hub.hub.model_push.push_trained_model`, the same push as ``wm-hub push model`` (one
   commit, no checkpoints or pickled arguments, the card re-rendered for the repository).

Why the merged model is not pushed with ``trainer.push_to_hub()``: that method re-saves ``trainer.model``, the PEFT
wrapper, as ``adapter_config.json`` + adapter weights at the folder's root, and ``transformers`` applies a root
adapter on top of the weights it finds there (the merged ones), so the LoRA update would count twice; it also
replaces the model card with TRL's. Publishing is the hub layer's, which this module (below it) never imports.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any, Literal

import datasets
import transformers
from accelerate.utils import DeepSpeedPlugin
from peft import PeftModel
from transformers import TrainingArguments, set_seed
from transformers.integrations.deepspeed import set_hf_deepspeed_config, unset_hf_deepspeed_config
from trl import SFTTrainer, get_peft_config

from wm_hub.data.mixture import Mixture, build_mixture
from wm_hub.models.base import Backbone
from wm_hub.models.loading import load_backbone
from wm_hub.models.model_folder import RUN_SUMMARY
from wm_hub.training.configs import DataArguments, ModelArguments, WorldModelSFTConfig, check_run_settings
from wm_hub.training.model_card import render_model_card
from wm_hub.training.pretokenize import PretokenizeConfig, encode_triplets, pretokenize
from wm_hub.training.trainers import FDMTrainer, IDMTrainer

logger = logging.getLogger(__name__)

Task = Literal["idm", "fdm"]
TRAINERS = {"idm": IDMTrainer, "fdm": FDMTrainer}
ADAPTER_SUBFOLDER = "adapter"
# Never uploaded: checkpoints (optimizer states), private folders, and pickled TrainingArguments (may hold hub_token).
REPORTED_METRICS = ("global_step", "epoch", "train_runtime")  # besides every loss and accuracy
VERSIONED_PACKAGES = ("wm-hub", "torch", "transformers", "trl", "peft", "datasets", "accelerate")


def setup_logging(training_args: WorldModelSFTConfig) -> None:
    """Log as the Hugging Face example scripts do: ``transformers`` and ``datasets`` at the process's level
    (``log_level`` on the main process, ``log_level_replica`` elsewhere), wm-hub's own steps at INFO on the main
    process only."""
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    level = training_args.get_process_log_level()
    logging.getLogger("wm_hub").setLevel(logging.INFO if training_args.should_log else max(level, logging.WARNING))
    datasets.utils.logging.set_verbosity(level)
    transformers.utils.logging.set_verbosity(level)
    transformers.utils.logging.enable_default_handler()
    transformers.utils.logging.enable_explicit_format()


def main(
    task: Task,
    data_args: DataArguments,
    training_args: WorldModelSFTConfig,
    model_args: ModelArguments,
    publish: Callable[[WorldModelSFTConfig], Any] | None = None,
) -> dict[str, Any]:
    """Train and save an IDM or FDM as the recipe says.

    Args:
        task: ``idm`` or ``fdm`` (the script's task; a recipe that names another task is an error).
        data_args: The data mixture and instruction strings.
        training_args: ``SFTConfig`` fields plus the loss weighting.
        model_args: The backbone and LoRA settings.
        publish: Called with ``training_args`` on the main process once the model is saved, when ``push_to_hub``
            is set (the recipe scripts pass :func:`wm_hub.hub.model_push.push_trained_model`).

    Returns:
        With ``dry_run``, the mixture's sizes (nothing else happens); otherwise the run summary written to
        ``output_dir/training_run.json``.
    """
    if training_args.push_to_hub and publish is None:
        raise ValueError("push_to_hub is set but nothing publishes the model: run recipes/idm.py or recipes/fdm.py")
    if data_args.task is not None and data_args.task != task:
        raise ValueError(
            f"this recipe is for the {data_args.task.upper()} (task: {data_args.task}), not the {task.upper()}: "
            f"run recipes/{data_args.task}.py"
        )
    pretokenize_config = PretokenizeConfig(
        task=task,
        loss_weighting=training_args.loss_weighting,
        weight_normalization=training_args.weight_normalization,
        weight_floor=training_args.loss_weight_floor,
    )
    if data_args.dry_run:
        summary = _build_mixture(data_args).summary()
        if training_args.process_index == 0:  # one report, not one per process of an accelerate launch
            print(json.dumps(summary, indent=2))
        return summary
    check_run_settings(training_args, model_args.model_name_or_path, data_args)
    logger.info("%s run: %s", task.upper(), {"model": model_args.model_name_or_path, "out": training_args.output_dir})

    set_seed(training_args.seed)
    with whole_model_loading(training_args.deepspeed_plugin):
        backbone = load_backbone(**model_args.backbone_kwargs())
    backbone.processor.prompt = data_args.prompt_format(backbone.processor.prompt)
    backbone.image_tokenizer.to(training_args.device)
    with training_args.main_process_first(desc="data mixture and pre-tokenisation"):
        mixture = _build_mixture(
            data_args, prepare=lambda dataset: encode_triplets(dataset, backbone, cache_dir=data_args.cache_dir)
        )
        train_dataset = pretokenize(mixture.train, backbone, pretokenize_config, cache_dir=data_args.cache_dir)
        eval_dataset = None
        if mixture.eval is not None:
            eval_dataset = pretokenize(mixture.eval, backbone, pretokenize_config, cache_dir=data_args.cache_dir)

    trainer = TRAINERS[task](
        model=backbone.model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        backbone=backbone,
        peft_config=get_peft_config(model_args),
    )
    result = trainer.train(resume_from_checkpoint=resume_argument(training_args.resume_from_checkpoint))
    metrics = dict(result.metrics)
    trainer.log_metrics("train", result.metrics)
    trainer.save_metrics("train", result.metrics)
    trainer.save_state()
    if eval_dataset is not None:
        eval_metrics = trainer.evaluate()
        trainer.log_metrics("eval", eval_metrics)
        trainer.save_metrics("eval", eval_metrics)
        metrics.update(eval_metrics)
    metrics.update(global_step=trainer.state.global_step, epoch=trainer.state.epoch)

    save_world_model(trainer, backbone, model_args)
    summary = run_summary(task, backbone, mixture, data_args, training_args, model_args, metrics)
    if trainer.accelerator.is_main_process:
        output_dir = Path(training_args.output_dir)
        (output_dir / RUN_SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
        model_id = trainer.hub_model_id if training_args.push_to_hub else str(output_dir)
        render_model_card(summary, model_id).save(output_dir / "README.md")
        if training_args.push_to_hub:
            publish(training_args)
    trainer.accelerator.wait_for_everyone()
    trainer.accelerator.end_training()
    return summary


def resume_argument(value: str | bool | None) -> str | bool | None:
    """``resume_from_checkpoint`` as ``Trainer.train`` takes it: ``true`` (the last checkpoint), a path, or ``None``.

    YAML gives a boolean, the command line a string: ``--resume_from_checkpoint true`` resumes from the last
    checkpoint in ``output_dir``, ``false`` starts afresh, anything else is a checkpoint folder.
    """
    if isinstance(value, str) and value.lower() in ("true", "false"):
        value = value.lower() == "true"
    return value or None


def save_world_model(trainer: SFTTrainer, backbone: Backbone, model_args: ModelArguments) -> None:
    """Save the trained model to ``trainer.args.output_dir`` in a form :func:`wm_hub.load_backbone` loads.

    Every rank must call this: under DeepSpeed ZeRO-3 the weights are gathered from all of them.
    With LoRA, the adapter goes to ``output_dir/adapter``, and the main process loads the base backbone afresh,
    merges the adapter into it and saves the merged backbone to ``output_dir`` (the training copy holds the LoRA
    layers, and under ZeRO-3 only a shard of the weights). Without LoRA the trained weights are saved directly.

    Args:
        trainer: The trainer, after training.
        backbone: The backbone that was trained (its wm-hub settings, instruction strings included, are saved).
        model_args: Where the base backbone is.
    """
    output_dir = Path(trainer.args.output_dir)
    state_dict = trainer.accelerator.get_state_dict(trainer.model_wrapped)
    if not trainer.accelerator.is_main_process:
        return
    if not model_args.use_peft:
        backbone.save_pretrained(output_dir, state_dict=state_dict)
        return
    adapter_dir = output_dir / ADAPTER_SUBFOLDER
    trainer.accelerator.unwrap_model(trainer.model).save_pretrained(adapter_dir, state_dict=state_dict)
    with whole_model_loading(trainer.accelerator.state.deepspeed_plugin):
        merged = load_backbone(**model_args.backbone_kwargs(), prompt=backbone.processor.prompt)
    merged.model = PeftModel.from_pretrained(merged.model, adapter_dir).merge_and_unload()
    merged.save_pretrained(output_dir)


@contextmanager
def whole_model_loading(deepspeed_plugin: DeepSpeedPlugin | None) -> Iterator[None]:
    """Load models whole, not sharded, even under a DeepSpeed ZeRO-3 config.

    A DeepSpeed plugin registers its config with ``transformers``, whose ``from_pretrained`` then shards every model
    it loads across the ranks (ZeRO-3 init), whatever ``zero3_init_flag`` says. wm-hub needs the backbone whole
    before training (Emu3's VQ tokenizer lives inside the LM and pre-tokenises the data; DeepSpeed shards the model
    when training starts) and loads the base model on the main process alone to merge the adapter, which must not
    wait for the other ranks.
    """
    if deepspeed_plugin is None:
        yield
        return
    unset_hf_deepspeed_config()
    try:
        yield
    finally:
        set_hf_deepspeed_config(deepspeed_plugin.hf_ds_config)


def run_summary(
    task: Task,
    backbone: Backbone,
    mixture: Mixture,
    data_args: DataArguments,
    training_args: WorldModelSFTConfig | TrainingArguments,
    model_args: ModelArguments,
    metrics: dict[str, Any],
) -> dict[str, Any]:
    """What the model card reports, as JSON-ready data (curated fields only: no environment, no tokens).

    ``training_args`` is the SFT run's config, or any ``TrainingArguments`` (a GRPO run's ``GRPOConfig``: its
    ``loss`` is then ``None``, the GRPO fields are added by :func:`wm_hub.training.grpo.run_grpo`).
    """
    precision = "bf16" if training_args.bf16 else "fp16" if training_args.fp16 else "fp32"
    training = {
        "learning_rate": training_args.learning_rate,
        "lr_scheduler_type": _plain(training_args.lr_scheduler_type),
        "warmup_steps": training_args.warmup_steps,
        "num_train_epochs": training_args.num_train_epochs,
        "max_steps": training_args.max_steps,
        "per_device_train_batch_size": training_args.per_device_train_batch_size,
        "gradient_accumulation_steps": training_args.gradient_accumulation_steps,
        "world_size": training_args.world_size,
        "effective_batch_size": training_args.per_device_train_batch_size
        * training_args.gradient_accumulation_steps
        * training_args.world_size,
        "optimizer": _plain(training_args.optim),
        "weight_decay": training_args.weight_decay,
        "max_grad_norm": training_args.max_grad_norm,
        "precision": precision,
        "gradient_checkpointing": training_args.gradient_checkpointing,
        "seed": training_args.seed,
    }
    lora = None
    if model_args.use_peft:
        lora = {
            "r": model_args.lora_r,
            "alpha": model_args.lora_alpha,
            "dropout": model_args.lora_dropout,
            "target_modules": model_args.lora_target_modules,
        }
    return {
        "task": task,
        "base_model": model_args.model_name_or_path,
        "arch": backbone.config.arch,
        "image_size": backbone.config.image_size,
        "prompt": dataclasses.asdict(backbone.processor.prompt),
        "mixture": {**mixture.summary(), "seed": data_args.mixture_seed},
        "loss": {
            "loss_weighting": training_args.loss_weighting,
            "weight_normalization": training_args.weight_normalization,
        }
        if isinstance(training_args, WorldModelSFTConfig)
        else None,
        "training": training,
        "lora": lora,
        "metrics": {
            name: round(value, 4) if isinstance(value, float) else value
            for name, value in metrics.items()
            if name in REPORTED_METRICS or "loss" in name or "accuracy" in name
        },
        "versions": {name: version(name) for name in VERSIONED_PACKAGES},
    }


def _build_mixture(
    data_args: DataArguments, prepare: Callable[[datasets.Dataset], datasets.Dataset] | None = None
) -> Mixture:
    return build_mixture(
        data_args.sources,
        eval_sources=data_args.eval_sources,
        eval_size=data_args.eval_size,
        seed=data_args.mixture_seed,
        data_root=data_args.data_root,
        cache_dir=data_args.cache_dir,
        prepare=prepare,
    )


def _plain(value: Any) -> Any:
    """An enum's value (``SchedulerType.COSINE`` -> ``"cosine"``), anything else as it is."""
    return getattr(value, "value", value)
