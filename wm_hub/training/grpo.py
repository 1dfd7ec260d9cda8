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

import warnings
from typing import Any

import datasets
import torch
from trl import GRPOConfig, GRPOTrainer

from wm_hub.inference.generation import generate_images
from wm_hub.models.base import Backbone
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


class _ProcessorSaving:
    """Checkpoints of a world-model GRPO trainer carry the backbone's processor (its sequence format)."""

    backbone: Backbone

    def _save(self, output_dir: str | None = None, state_dict: dict[str, torch.Tensor] | None = None) -> None:
        """Save as TRL does, and the backbone's processor beside (checkpoints load in the pipelines)."""
        super()._save(output_dir, state_dict=state_dict)
        self.backbone.processor.save_pretrained(output_dir or self.args.output_dir)


class FDMGRPOTrainer(_ProcessorSaving, GRPOTrainer):
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
        self._layout = backbone.generation_layout()
        args.max_completion_length = len(self._layout) + 1
        with warnings.catch_warnings():  # rollout_func is TRL's documented (experimental) hook
            warnings.filterwarnings("ignore", message=".*rollout_func.*")
            super().__init__(
                model=backbone.model,
                reward_funcs=reward_funcs,
                args=args,
                train_dataset=train_dataset,
                processing_class=backbone.tokenizer,
                peft_config=peft_config,
                rollout_func=_image_rollout,
                **kwargs,
            )
        _refuse_trainable_vq(self.model)

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


class IDMGRPOTrainer(_ProcessorSaving, GRPOTrainer):
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
        suppressed = backbone.image_token_ids.tolist()
        args.generation_kwargs = {**(args.generation_kwargs or {}), "suppress_tokens": suppressed}
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


def idm_grpo_rows(backbone: Backbone, sources: list[torch.Tensor], targets: list[torch.Tensor]) -> datasets.Dataset:
    """GRPO rows of (source ids, target ids) pairs: ``prompt`` (the IDM prompt ids), ``source_ids``, ``target_ids``."""
    rows = [
        {
            "prompt": backbone.build_idm_sequence(source, target).input_ids,
            "source_ids": torch.as_tensor(source).tolist(),
            "target_ids": torch.as_tensor(target).tolist(),
        }
        for source, target in zip(sources, targets, strict=True)
    ]
    return datasets.Dataset.from_list(rows)
