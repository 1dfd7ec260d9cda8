"""The recognition-weighted token loss of the FDM (paper Eq. 2) and its logging statistics.

The loss is computed from per-token log-probabilities of the next-token labels, as TRL's fused LM head returns them
(``model(..., fused_lm_head=True).log_probs``, shape ``(B, T - 1)``, already shifted), so the ``(B, T, V)`` logits
are never built. Each supervised token's negative log-likelihood is multiplied by its recognition weight, summed, and
divided by ``num_items_in_batch``: the number of supervised tokens of the whole optimizer step (all micro-batches of
gradient accumulation, all ranks), as ``transformers.Trainer`` counts it. Dividing by that global count, rather than
by each micro-batch's own, is what makes the gradient independent of how the step's rows are split into
micro-batches and ranks. With every weight 1 the loss is exactly TRL's SFT loss.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass

import torch

from wm_hub.models.base import IGNORE_INDEX


@dataclass
class TokenLossStats:
    """Sums and counts over the supervised tokens of a batch, for logging.

    Sums add up over micro-batches and ranks; the logged means are ratios of the totals (:meth:`metrics`), so a
    logging window averages over tokens, not over batches. Every field is a 0-dim float tensor.

    Attributes:
        image_nll: Sum of the negative log-likelihood over image-code labels.
        image_weighted_nll: Sum of weight x negative log-likelihood over image-code labels.
        image_tokens: Number of image-code labels.
        text_nll: Sum of the negative log-likelihood over the other labels (text, boi/eoi, eos, layout tokens).
        text_tokens: Number of those labels.
        correct_tokens: Number of labels that are the model's most likely next token.
    """

    image_nll: torch.Tensor
    image_weighted_nll: torch.Tensor
    image_tokens: torch.Tensor
    text_nll: torch.Tensor
    text_tokens: torch.Tensor
    correct_tokens: torch.Tensor

    def to_tensor(self) -> torch.Tensor:
        """The fields stacked into one float tensor (one collective gathers them all)."""
        return torch.stack(astuple(self))

    @classmethod
    def from_tensor(cls, values: torch.Tensor) -> TokenLossStats:
        """Inverse of :meth:`to_tensor`."""
        return cls(*values.unbind())

    def metrics(self) -> dict[str, float]:
        """Means to log; a mean over no tokens (e.g. ``loss_image`` of IDM batches) is left out.

        Returns:
            ``loss_image`` and ``loss_image_weighted`` (mean NLL and mean weight x NLL per image-code label),
            ``loss_text`` (mean NLL per other label) and ``token_accuracy`` (share of labels predicted top-1).
        """
        image, text = self.image_tokens.item(), self.text_tokens.item()
        metrics = {}
        if image:
            metrics["loss_image"] = self.image_nll.item() / image
            metrics["loss_image_weighted"] = self.image_weighted_nll.item() / image
        if text:
            metrics["loss_text"] = self.text_nll.item() / text
        if image + text:
            metrics["token_accuracy"] = self.correct_tokens.item() / (image + text)
        return metrics


def weighted_token_loss(
    token_log_probs: torch.Tensor,
    is_top1: torch.Tensor,
    labels: torch.Tensor,
    token_weights: torch.Tensor | None,
    image_token_ids: torch.Tensor,
    num_items_in_batch: torch.Tensor | int | None = None,
) -> tuple[torch.Tensor, TokenLossStats]:
    """Recognition-weighted next-token loss and its statistics.

    Args:
        token_log_probs: ``(B, T - 1)`` log-probability of ``labels[:, 1:]`` (TRL's fused LM head output; any
            value where the label is ``-100``).
        is_top1: ``(B, T - 1)`` whether ``labels[:, 1:]`` is the most likely next token.
        labels: ``(B, T)`` labels aligned with ``input_ids``, ``-100`` where there is no loss.
        token_weights: ``(B, T)`` weight of each token, aligned with ``labels``; ``None`` weighs every token 1.
        image_token_ids: LM ids of the image codes (``Backbone.image_token_ids``), on the labels' device.
        num_items_in_batch: Supervised-token count of the whole optimizer step (all micro-batches and ranks), as
            ``Trainer`` passes it; ``None`` uses this batch's own count (evaluation).

    Returns:
        The loss ``sum(w * nll) / num_items_in_batch`` (a finite 0 for a batch without labels), and the statistics
        of this batch.
    """
    labels = labels[:, 1:]
    supervised = labels != IGNORE_INDEX
    nll = -token_log_probs.masked_fill(~supervised, 0.0)
    weighted_nll = nll if token_weights is None else nll * token_weights[:, 1:].to(nll.dtype)
    count = supervised.sum() if num_items_in_batch is None else num_items_in_batch
    loss = weighted_nll.sum() / torch.as_tensor(count, device=nll.device).clamp(min=1)

    with torch.no_grad():
        image = torch.isin(labels, image_token_ids) & supervised
        text = supervised & ~image
        nll, weighted_nll = nll.detach().float(), weighted_nll.detach().float()
        stats = TokenLossStats(
            image_nll=nll[image].sum(),
            image_weighted_nll=weighted_nll[image].sum(),
            image_tokens=image.sum().float(),
            text_nll=nll[text].sum(),
            text_tokens=text.sum().float(),
            correct_tokens=(is_top1.bool() & supervised).sum().float(),
        )
    return loss, stats
