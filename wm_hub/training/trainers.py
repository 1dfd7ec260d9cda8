"""IDM and FDM trainers: TRL's ``SFTTrainer`` with the recognition-weighted loss, on pre-tokenised data.

The trainers take the output of :func:`wm_hub.training.pretokenize.pretokenize` as is (``input_ids``, ``labels``,
``token_weights``): TRL's dataset preparation is skipped, no column is dropped, and :class:`WorldModelCollator` pads
the rows. ``compute_loss`` runs the model through TRL's fused LM head (per-token log-probabilities, no ``(B, T, V)``
logits) and applies :func:`wm_hub.training.losses.weighted_token_loss`.

Gradient accumulation and data parallelism: ``Trainer`` passes ``num_items_in_batch``, the supervised-token count of
the whole optimizer step over all micro-batches and ranks. The loss divides by it, so the accumulated gradient is
``sum(w * grad nll) / N`` whatever the split; ``loss_is_scaled_for_ga = True`` stops ``Trainer`` from dividing by
the accumulation steps again, and the loss is multiplied by the number of processes because DDP averages gradients
over ranks (both exactly as ``SFTTrainer`` does for its own loss).
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import PreTrainedModel
from trl import SFTConfig, SFTTrainer

from wm_hub.data.collator import WorldModelCollator
from wm_hub.models.base import IGNORE_INDEX, Backbone
from wm_hub.training.losses import TokenLossStats, weighted_token_loss
from wm_hub.training.recognition import normalize_over_batch

# Name of the VQ image tokenizer inside Chameleon and Emu3 LMs; it must not train (LoRA names like q_proj hit it).
IMAGE_TOKENIZER_MODULE = "vqmodel"
# LoRA target regex that reaches the decoder layers' attention of every backbone family, and never the VQ model.
TEXT_ATTENTION_TARGETS = r".*\.layers\.\d+\.self_attn\.(q|k|v|o)_proj"


class WorldModelTrainer(SFTTrainer):
    """``SFTTrainer`` whose loss weighs every supervised token by its ``token_weights`` entry.

    Metrics logged at each logging step (and with an ``eval_`` prefix by ``evaluate``), as token means over all
    micro-batches and ranks since the last log: ``loss_image`` and ``loss_image_weighted`` (NLL and weight x NLL per
    image-code label), ``loss_text`` (NLL per other label) and ``token_accuracy``.

    Args:
        backbone: The backbone being trained; gives the model, the tokenizer, the pad id and the image token ids.
        args: Training settings. ``remove_unused_columns`` is set to ``False`` and ``dataset_kwargs`` gets
            ``skip_prepare_dataset=True``: the data is pre-tokenised and its ``token_weights`` must reach the loss.
        train_dataset: Pre-tokenised rows (``input_ids``, ``labels``, optionally ``token_weights``).
        eval_dataset: Held-out pre-tokenised rows (or a dict of them) for ``evaluate``.
        model: The model to train, by default ``backbone.model``.
        data_collator: By default a :class:`WorldModelCollator` with the backbone's pad id and
            ``args.pad_to_multiple_of``.
        processing_class: TRL's processing class; by default ``backbone.tokenizer`` (TRL's text path). The backbone's
            :class:`~wm_hub.models.processing.WorldModelProcessor` is saved with every checkpoint beside it.
        **kwargs: Passed to ``SFTTrainer`` (``peft_config``, ``callbacks``, ``optimizers``...).
    """

    loss_is_scaled_for_ga = True

    def __init__(
        self,
        *,
        backbone: Backbone,
        args: SFTConfig,
        train_dataset: Any,
        eval_dataset: Any = None,
        model: PreTrainedModel | None = None,
        data_collator: Any = None,
        processing_class: Any = None,
        **kwargs: Any,
    ):
        if args.loss_type != "nll" or args.label_smoothing_factor or kwargs.get("compute_loss_func"):
            raise ValueError(
                f"{type(self).__name__} computes its own weighted NLL: use loss_type='nll', no label smoothing and no "
                "compute_loss_func"
            )
        args.remove_unused_columns = False
        args.dataset_kwargs = {**(args.dataset_kwargs or {}), "skip_prepare_dataset": True}
        super().__init__(
            model=backbone.model if model is None else model,
            args=args,
            data_collator=data_collator or WorldModelCollator(backbone.pad_token_id, args.pad_to_multiple_of),
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=backbone.tokenizer if processing_class is None else processing_class,
            **kwargs,
        )
        # `Trainer` counts `num_items_in_batch` (over `labels[:, 1:]`) only for models that take loss kwargs; this
        # `compute_loss` always consumes it and always shifts, whatever the model.
        self.model_accepts_loss_kwargs = True
        self._loss_shifts_labels = True
        self._image_token_ids = backbone.image_token_ids.to(self.args.device)
        self._processor = backbone.processor
        self._token_stats: dict[str, torch.Tensor] = {}
        trainable_vq = [
            name
            for name, parameter in self.model.named_parameters()
            if parameter.requires_grad and f"{IMAGE_TOKENIZER_MODULE}." in name
        ]
        if trainable_vq:
            raise ValueError(
                f"VQ image tokenizer parameters would train ({trainable_vq[:3]}...); they must stay frozen. With "
                f"LoRA, restrict target_modules to the language model, e.g. target_modules={TEXT_ATTENTION_TARGETS!r}"
            )

    def _save(self, output_dir: str | None = None, state_dict: dict[str, torch.Tensor] | None = None) -> None:
        """Save as ``Trainer`` does, and the backbone's processor beside (every checkpoint has its sequence format)."""
        super()._save(output_dir, state_dict=state_dict)
        self._processor.save_pretrained(output_dir or self.args.output_dir)

    def _loss_weights(self, token_weights: torch.Tensor | None, labels: torch.Tensor) -> torch.Tensor | None:
        """The per-token weights the loss uses (``None``: all 1)."""
        return token_weights

    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, torch.Tensor],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, Any]:
        """Weighted NLL of the batch's supervised tokens over ``num_items_in_batch``; records the statistics."""
        mode = "train" if self.model.training else "eval"
        labels = inputs["labels"]
        token_weights = self._loss_weights(inputs.pop("token_weights", None), labels)
        inputs["use_cache"] = False
        outputs = model(**inputs, fused_lm_head=True)
        loss, stats = weighted_token_loss(
            outputs.log_probs,
            outputs.is_top1,
            labels,
            token_weights,
            self._image_token_ids.to(labels.device),
            num_items_in_batch,
        )
        # `num_items_in_batch` counts the tokens of every rank and DDP averages the gradients over ranks
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * (self.accelerator.num_processes // self.get_tp_size())
        totals = self.accelerator.gather(stats.to_tensor()[None]).sum(dim=0)
        self._token_stats[mode] = self._token_stats[mode] + totals if mode in self._token_stats else totals
        if return_outputs:  # `compute_metrics` wants logits, which the fused head does not build
            with torch.no_grad():
                outputs = model(**{key: value for key, value in inputs.items() if key != "labels"})
            return loss, outputs
        return loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add the token means accumulated since the last log to the logged metrics."""
        mode = "train" if self.model.training else "eval"
        totals = self._token_stats.pop(mode, None)
        if totals is not None:
            for key, value in TokenLossStats.from_tensor(totals).metrics().items():
                self._metrics[mode][key] = [value]
        super().log(logs, start_time)


class FDMTrainer(WorldModelTrainer):
    """Forward dynamics: (source image, action) -> target image, with recognition-weighted target tokens.

    Each target image token's NLL is multiplied by its recognition weight (paper Eq. 2), as
    ``pretokenize(..., PretokenizeConfig(task="fdm", loss_weighting="l2"))`` writes them into ``token_weights``.
    """

    _tag_names = ["trl", "sft", "wm-hub", "forward-dynamics"]
    _name = "FDM"

    def _loss_weights(self, token_weights: torch.Tensor | None, labels: torch.Tensor) -> torch.Tensor | None:
        """With ``weight_normalization: batch``, the raw recognition weights divided by the batch's image-token mean
        (each micro-batch of each process on its own), then the floor."""
        if token_weights is None or getattr(self.args, "weight_normalization", "mean") != "batch":
            return token_weights
        image_tokens = torch.isin(labels, self._image_token_ids.to(labels.device))
        return normalize_over_batch(token_weights, image_tokens, getattr(self.args, "loss_weight_floor", 0.0))


class IDMTrainer(WorldModelTrainer):
    """Inverse dynamics: (source, target) -> action text, plain NLL on the action tokens.

    IDM sequences are unweighted: a batch whose supervised ``token_weights`` are not all 1 (an FDM-weighted dataset
    passed by mistake) raises ``ValueError``.
    """

    _tag_names = ["trl", "sft", "wm-hub", "inverse-dynamics"]
    _name = "IDM"

    def _loss_weights(self, token_weights: torch.Tensor | None, labels: torch.Tensor) -> None:
        if token_weights is not None and (token_weights[labels != IGNORE_INDEX] != 1).any():
            raise ValueError("IDM rows must weigh every supervised token 1; pre-tokenise them with task='idm'")
        return None
