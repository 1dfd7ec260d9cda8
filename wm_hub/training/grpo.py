"""GRPO for the forward-dynamics model on TRL's ``GRPOTrainer``, rewarded by a frozen verifier (SWIRL's reading).

:class:`FDMGRPOTrainer` changes only what a rollout is: TRL's public ``rollout_func`` hook samples, for the
``num_generations`` copies of each FDM prompt that TRL's sampler puts side by side, one image each through
:func:`~wm_hub.inference.generation.generate_images` (all candidates of a prompt in one ``generate`` call, the
prompt read once, only image codes sampled, layout tokens forced), and returns the layout ids plus ``eos`` as the
completion. The forced tokens (``eoi``, Emu3's end-of-line, the ``eos``) carry no choice, so ``env_mask`` leaves
them out of the loss, the KL and the token counts. The sampled ids reach the rewards as ``image_ids``
(:mod:`wm_hub.training.rewards`). Everything else (advantages, clipping, the KL to the reference, LoRA through peft,
logging, checkpoints) is TRL's; the backbone's processor is saved with every checkpoint, so checkpoints load in
``pipeline("forward-dynamics")`` as SFT ones do.

Rows: ``prompt`` (the FDM prompt ids, ``build_fdm_sequence(source, action).input_ids``), ``source_ids`` and
``action`` (read by the rewards): :func:`fdm_grpo_rows`.

:class:`IDMGRPOTrainer` is the reverse direction: the completions are TRL's own text generation from the IDM prompt
ids (``_tokenize_prompts`` passes them through; image tokens are suppressed, as ``generate_actions`` does), and a
frozen FDM rewards the action by its likelihood of the row's target (:func:`idm_grpo_rows`: ``prompt``,
``source_ids``, ``target_ids``). Design notes and the TRL references: ``docs/design/grpo-on-trl.md``.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import torch
from trl import GRPOConfig, GRPOTrainer, get_peft_config

from wm_hub.inference.generation import generate_images
from wm_hub.models.base import Backbone
from wm_hub.training.configs import check_run_settings
from wm_hub.training.rewards import REWARDS, TASK_REWARDS
from wm_hub.training.trainers import IMAGE_TOKENIZER_MODULE, TEXT_ATTENTION_TARGETS


def _refuse_unsupported(args: GRPOConfig, peft_config: Any) -> None:
    if args.use_vllm:
        raise ValueError("wm-hub's GRPO trainers generate with transformers' generate: set use_vllm=False")
    if args.beta > 0 and peft_config is None:
        raise ValueError(
            f"beta={args.beta} needs a reference model: train with a peft_config (the reference is then the model "
            "with its adapters off), or set beta=0"
        )
    if args.log_completions:
        raise ValueError("log_completions cannot print token-id prompts: set log_completions=False")


def _refuse_trainable_vq(model: torch.nn.Module) -> None:
    trainable_vq = [
        name
        for name, parameter in model.named_parameters()
        if parameter.requires_grad and f"{IMAGE_TOKENIZER_MODULE}." in name
    ]
    if trainable_vq:
        raise ValueError(
            f"VQ image tokenizer parameters would train ({trainable_vq[:3]}...); restrict LoRA to the language "
            f"model, e.g. target_modules={TEXT_ATTENTION_TARGETS!r}"
        )


class _WorldModelGRPO:
    """What both world-model GRPO trainers share: the refusals, the backbone's model and tokenizer handed to TRL, the
    frozen-VQ check, and the backbone's processor saved with every checkpoint (its sequence format)."""

    def __init__(
        self,
        *,
        backbone: Backbone,
        reward_funcs: Any,
        args: GRPOConfig,
        train_dataset: Any,
        peft_config: Any = None,
        **kwargs: Any,
    ):
        _refuse_unsupported(args, peft_config)
        self.backbone = backbone
        super().__init__(
            model=backbone.model,
            reward_funcs=reward_funcs,
            args=args,
            train_dataset=train_dataset,
            processing_class=backbone.tokenizer,
            peft_config=peft_config,
            **kwargs,
        )
        _refuse_trainable_vq(self.model)

    def _save(self, output_dir: str | None = None, state_dict: dict[str, torch.Tensor] | None = None) -> None:
        """Save as TRL does, and the backbone's processor beside (checkpoints load in the pipelines)."""
        super()._save(output_dir, state_dict=state_dict)
        self.backbone.processor.save_pretrained(output_dir or self.args.output_dir)


class FDMGRPOTrainer(_WorldModelGRPO, GRPOTrainer):
    """``GRPOTrainer`` whose completions are the FDM's sampled next images (see the module docstring).

    Args:
        backbone: The FDM being trained (its model is the policy; with ``peft_config`` the reference is the same
            model with the adapters off, i.e. the SFT FDM).
        reward_funcs: Reward callables (:data:`wm_hub.training.rewards.REWARDS`).
        args: TRL's GRPO settings. ``max_completion_length`` is set to the image layout plus ``eos``.
        train_dataset: Rows of :func:`fdm_grpo_rows`.
        peft_config: LoRA settings (required when ``args.beta > 0``: the reference is the adapter-free model).
        **kwargs: Passed to ``GRPOTrainer`` (``eval_dataset``, ``callbacks``...).

    Raises:
        ValueError: Settings this trainer cannot honour (vLLM, a KL without LoRA, completion logging of id prompts),
            or LoRA reaching into the VQ image tokenizer.
    """

    _name = "FDM-GRPO"
    _tag_names = ["trl", "grpo", "wm-hub", "forward-dynamics"]

    def __init__(self, *, backbone: Backbone, args: GRPOConfig, **kwargs: Any):
        self._layout = backbone.generation_layout()
        args.max_completion_length = len(self._layout) + 1
        with warnings.catch_warnings():  # rollout_func is TRL's documented (experimental) hook
            warnings.filterwarnings("ignore", message=".*rollout_func.*")
            super().__init__(backbone=backbone, args=args, rollout_func=_image_rollout, **kwargs)

    def rollout_images(self, prompts: list[list[int]]) -> dict[str, Any]:
        """One sampled image per row (the rows of one prompt together in one ``generate`` call).

        Returns:
            TRL's rollout fields: ``prompt_ids``, ``completion_ids`` (the layout ids and ``eos``), ``logprobs``
            (``None``: TRL computes them), ``env_mask`` (1 at the sampled codes) and ``image_ids`` (the codes).
        """
        runs: list[tuple[list[int], int]] = []
        for prompt in prompts:
            if runs and runs[-1][0] == list(prompt):
                runs[-1] = (runs[-1][0], runs[-1][1] + 1)
            else:
                runs.append((list(prompt), 1))
        sizes = {count for _, count in runs}
        args = self.args
        sampling = {
            "temperature": args.temperature,
            "top_k": args.top_k or None,
            "top_p": args.top_p if args.top_p < 1 else None,
            "cache_implementation": args.cache_implementation,
            "decode": False,
        }
        with torch.no_grad():
            if len(sizes) == 1:  # TRL's sampler: every prompt repeated num_generations times
                generated = generate_images(self.backbone, [prompt for prompt, _ in runs], sizes.pop(), **sampling)
            else:  # a group split over processes: one image per row
                generated = generate_images(self.backbone, [list(prompt) for prompt in prompts], 1, **sampling)
        layout = self._layout
        sampled = (layout < 0).int().tolist()
        completions = generated.sequences[:, -len(layout) :].tolist()
        return {
            "prompt_ids": [list(prompt) for prompt in prompts],
            "completion_ids": [ids + [self.backbone.eos_token_id] for ids in completions],
            "logprobs": None,
            "env_mask": [sampled + [0] for _ in completions],
            "image_ids": generated.image_ids.reshape(len(prompts), -1).tolist(),
        }


class IDMGRPOTrainer(_WorldModelGRPO, GRPOTrainer):
    """``GRPOTrainer`` for the inverse-dynamics model: TRL's text generation from IDM prompt ids, image tokens
    suppressed; rewards such as :class:`~wm_hub.training.rewards.FDMTargetLikelihood` read ``source_ids`` and
    ``target_ids``.

    Args:
        backbone: The IDM being trained.
        reward_funcs: Reward callables (:data:`wm_hub.training.rewards.REWARDS`).
        args: TRL's GRPO settings (``max_completion_length``: the longest action, in tokens).
        train_dataset: Rows of :func:`idm_grpo_rows`.
        peft_config: LoRA settings (required when ``args.beta > 0``).
        **kwargs: Passed to ``GRPOTrainer``.

    Raises:
        ValueError: As :class:`FDMGRPOTrainer`.
    """

    _name = "IDM-GRPO"
    _tag_names = ["trl", "grpo", "wm-hub", "inverse-dynamics"]

    def __init__(self, *, backbone: Backbone, args: GRPOConfig, **kwargs: Any):
        suppressed = backbone.image_token_ids.tolist()
        args.generation_kwargs = {**(args.generation_kwargs or {}), "suppress_tokens": suppressed}
        super().__init__(backbone=backbone, args=args, **kwargs)

    def _tokenize_prompts(self, prompts: list[list[int]]) -> tuple[list[list[int]], None, dict[str, Any]]:
        """The prompts are IDM prompt ids already (``build_idm_sequence(source, target).input_ids``)."""
        return [list(prompt) for prompt in prompts], None, {}


def _image_rollout(prompts: list[list[int]], trainer: FDMGRPOTrainer) -> dict[str, Any]:
    """TRL's ``rollout_func``: :meth:`FDMGRPOTrainer.rollout_images`."""
    return trainer.rollout_images(prompts)


def fdm_grpo_rows(backbone: Backbone, sources: list[torch.Tensor], actions: list[str]) -> datasets.Dataset:
    """GRPO rows of (source ids, action) pairs: ``prompt`` (the FDM prompt ids), ``source_ids``, ``action``."""
    rows = [
        {
            "prompt": backbone.build_fdm_sequence(source, action).input_ids,
            "source_ids": torch.as_tensor(source).tolist(),
            "action": action,
        }
        for source, action in zip(sources, actions, strict=True)
    ]
    return datasets.Dataset.from_list(rows)


def idm_grpo_rows(
    backbone: Backbone,
    sources: list[torch.Tensor],
    targets: list[torch.Tensor],
    change_distances: list[torch.Tensor] | None = None,
) -> datasets.Dataset:
    """GRPO rows of (source ids, target ids) pairs: ``prompt`` (the IDM prompt ids), ``source_ids``, ``target_ids``,
    and ``change_distances`` when given (per target code, as ``encode_triplets`` computes them; the weighted reward
    ``fdm_weighted_log_likelihood`` reads them)."""
    rows = []
    for index, (source, target) in enumerate(zip(sources, targets, strict=True)):
        row = {
            "prompt": backbone.build_idm_sequence(source, target).input_ids,
            "source_ids": torch.as_tensor(source).tolist(),
            "target_ids": torch.as_tensor(target).tolist(),
        }
        if change_distances is not None:
            row["change_distances"] = torch.as_tensor(change_distances[index]).tolist()
        rows.append(row)
    return datasets.Dataset.from_list(rows)


@dataclass
class GRPOScriptArguments:
    """What ``recipes/grpo.py`` trains and with which frozen verifier.

    Args:
        reward_model: The frozen verifier: an IDM for ``task: fdm`` (reward ``idm_log_likelihood``), an FDM for
            ``task: idm`` (``fdm_log_likelihood``). It must share the policy's image tokenizer.
        reward: A name of :data:`~wm_hub.training.rewards.REWARDS` that fits the task
            (:data:`~wm_hub.training.rewards.TASK_REWARDS`); empty: the task's default. For ``task: idm``,
            ``fdm_weighted_log_likelihood`` weights the target codes by how much they change (paper Eq. 2).
        reward_min: Lower clamp of the reward (the per-token mean log-likelihood).
        reward_max: Upper clamp of the reward.
        reward_weight_floor: The recognition weights' floor of a weighted reward (1.0: the plain mean).
    """

    reward_model: str | None = None
    reward: str = ""
    reward_min: float = -10.0
    reward_max: float = 0.0
    reward_weight_floor: float = 0.5

    def __post_init__(self) -> None:
        if not self.reward_model:
            raise ValueError("reward_model is required: the frozen IDM (task fdm) or FDM (task idm) that rewards")
        if self.reward and self.reward not in REWARDS:
            raise ValueError(f"unknown reward {self.reward!r}: choose one of {sorted(REWARDS)}")


def task_reward(task: str, reward: str = "") -> str:
    """The reward a GRPO recipe trains ``task`` with: ``reward``, or the task's default when empty.

    Raises:
        ValueError: ``task`` is not ``fdm`` or ``idm``, or ``reward`` does not score that policy.
    """
    if task not in TASK_REWARDS:
        raise ValueError(f"the recipe must name its task (fdm or idm), got {task!r}")
    if reward and reward not in TASK_REWARDS[task]:
        raise ValueError(f"reward {reward!r} does not score a {task} policy: use one of {list(TASK_REWARDS[task])}")
    return reward or TASK_REWARDS[task][0]


def run_grpo(
    data_args: Any, grpo_args: GRPOConfig, model_args: Any, script_args: GRPOScriptArguments
) -> dict[str, Any]:
    """Train the recipe's policy (``data_args.task``) with GRPO and save it as SFT runs save their models.

    The policy (``model_name_or_path``, an SFT IDM or FDM) and the reward model are loaded with ``load_backbone``;
    the recipe's triplet mixture is encoded once (``encode_triplets``) and turned into GRPO rows; after training,
    ``save_world_model`` merges the LoRA adapter into the policy, so the folder loads in the pipelines and publishes
    with ``wm-hub push`` as an SFT run's does: ``training_run.json`` has the SFT runs' fields (``run_summary``) and
    the GRPO ones (``method: grpo``, the reward and its clamp, the reward of every logged step), and ``README.md`` is
    the model card.

    Returns:
        The run summary written to ``output_dir/training_run.json``.
    """
    from wm_hub.models.loading import load_backbone
    from wm_hub.models.model_folder import RUN_SUMMARY
    from wm_hub.training.model_card import render_model_card
    from wm_hub.training.pretokenize import encode_triplets
    from wm_hub.training.run import _build_mixture, run_summary, save_world_model

    task = data_args.task
    reward_name = task_reward(task, script_args.reward)
    check_run_settings(grpo_args, model_args.model_name_or_path, data_args, reward_model=script_args.reward_model)
    policy = load_backbone(**model_args.backbone_kwargs())
    verifier = load_backbone(script_args.reward_model, device=grpo_args.device, dtype=model_args.dtype)
    if verifier.image_fingerprint() != policy.image_fingerprint():
        raise ValueError(
            f"reward_model {script_args.reward_model} has another image tokenizer than the policy: it would score "
            "ids it does not read as the policy does"
        )
    with grpo_args.main_process_first(desc="data mixture"):
        mixture = _build_mixture(data_args, prepare=lambda dataset: encode_triplets(dataset, policy))

    def prompt(row: dict[str, Any]) -> dict[str, Any]:
        if task == "fdm":
            return {"prompt": policy.build_fdm_sequence(row["source_ids"], row["action"]).input_ids}
        return {"prompt": policy.build_idm_sequence(row["source_ids"], row["target_ids"]).input_ids}

    rows = mixture.train.map(prompt, desc="GRPO prompts")
    settings: dict[str, Any] = {"min_value": script_args.reward_min, "max_value": script_args.reward_max}
    if reward_name == "fdm_weighted_log_likelihood":
        settings["floor"] = script_args.reward_weight_floor
    if task == "idm":
        settings["policy_writes_rationale"] = policy.writes_rationale
    reward = REWARDS[reward_name](verifier, **settings)
    trainer_class = FDMGRPOTrainer if task == "fdm" else IDMGRPOTrainer
    trainer = trainer_class(
        backbone=policy,
        reward_funcs=[reward],
        args=grpo_args,
        train_dataset=rows,
        peft_config=get_peft_config(model_args),
    )
    result = trainer.train()
    save_world_model(trainer, policy, model_args)
    rewards = [entry[f"rewards/{reward.name}/mean"] for entry in trainer.state.log_history if "reward" in entry]
    metrics = {**result.metrics, "global_step": trainer.state.global_step}
    summary = {
        **run_summary(task, policy, mixture, data_args, grpo_args, model_args, metrics),
        "method": "grpo",
        "reward_model": script_args.reward_model,
        "reward": reward.name,
        "reward_clamp": [script_args.reward_min, script_args.reward_max],
        "reward_weight_floor": settings.get("floor"),
        "num_generations": grpo_args.num_generations,
        "beta": grpo_args.beta,
        "temperature": grpo_args.temperature,
        "steps": trainer.state.global_step,
        "reward_per_step": rewards,
    }
    if trainer.accelerator.is_main_process:
        output_dir = Path(grpo_args.output_dir)
        (output_dir / RUN_SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
        render_model_card(summary, str(output_dir)).save(output_dir / "README.md")
    return summary
