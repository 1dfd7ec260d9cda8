"""Recognition weights (paper Eq. 2): how much each target image token changes between source and target.

The recognition model is the backbone's frozen VQ encoder: for target token ``l``,
``w_l = || z_src,l - z_tgt,l ||^2`` on pre-quantisation features (``Backbone.prequant_features``). The FDM loss
weights each target token's cross-entropy by ``w_l``; text and layout tokens of the completion keep weight 1.
"""

from __future__ import annotations

from typing import Literal

import torch

LossWeighting = Literal["none", "l2"]
WeightNormalization = Literal["mean", "none", "batch"]
WEIGHT_NORMALIZATIONS = ("mean", "none", "batch")


def change_distances(source_features: torch.Tensor, target_features: torch.Tensor) -> torch.Tensor:
    """Per-token squared L2 distance ``|| z_src,l - z_tgt,l ||^2`` between pre-quantisation features.

    Args:
        source_features: ``(B, L, D)`` or ``(L, D)`` features of the source images, in token order.
        target_features: Same shape, for the targets.

    Returns:
        Distances of shape ``(B, L)`` (or ``(L,)``), float32.
    """
    if source_features.shape != target_features.shape:
        raise ValueError(f"feature shapes differ: {tuple(source_features.shape)} vs {tuple(target_features.shape)}")
    return (source_features.float() - target_features.float()).pow(2).sum(dim=-1)


def weights_from_distances(
    distances: torch.Tensor, normalization: WeightNormalization = "mean", floor: float = 0.0
) -> torch.Tensor:
    """Recognition weights from :func:`change_distances` (see :func:`recognition_weights` for the arguments)."""
    distances = distances.float()
    if not 0.0 <= floor <= 1.0:
        raise ValueError(f"the weight floor must be in [0, 1], got {floor}")
    if normalization in ("none", "batch"):  # "batch": the trainer divides by the batch's mean (normalize_over_batch)
        weights = distances
    elif normalization == "mean":
        mean = distances.mean(dim=-1, keepdim=True)
        spread = distances.amax(dim=-1, keepdim=True) - distances.amin(dim=-1, keepdim=True)
        uniform = spread <= 1e-12 * mean.clamp_min(1e-30)
        weights = torch.where(uniform, torch.ones_like(distances), distances / mean.clamp_min(1e-30))
    else:
        raise ValueError(f"unknown weight normalization {normalization!r}; use one of {WEIGHT_NORMALIZATIONS}")
    if normalization == "batch":
        return weights  # the floor applies after the batch's normalisation
    return weights if floor == 0.0 else floor + (1.0 - floor) * weights


def normalize_over_batch(weights: torch.Tensor, image_tokens: torch.Tensor, floor: float = 0.0) -> torch.Tensor:
    """Divide the raw recognition weights of a batch's target image tokens by their mean over the whole batch.

    The per-batch reading of Eq. 2's scale: one image whose tokens barely change keeps small weights beside an image
    that changes a lot (per-image ``"mean"`` normalisation gives both an average of 1). A batch whose weights are all
    equal (every pair identical) gets all ones.

    Args:
        weights: ``(B, T)`` token weights holding raw distances on the image tokens (``weight_normalization:
            batch``); other tokens keep their weight.
        image_tokens: ``(B, T)`` bool mask of the target image tokens.
        floor: ``floor + (1 - floor) * w`` after the normalisation (see :func:`recognition_weights`).

    Returns:
        The weights, normalised on the image tokens.
    """
    values = weights[image_tokens].float()
    if values.numel() == 0:
        return weights
    mean = values.mean()
    uniform = (values.max() - values.min()) <= 1e-12 * mean.clamp_min(1e-30)
    normalized = torch.ones_like(values) if uniform else values / mean.clamp_min(1e-30)
    weights = weights.clone()
    weights[image_tokens] = (floor + (1.0 - floor) * normalized).to(weights.dtype)
    return weights


def recognition_weights(
    source_features: torch.Tensor,
    target_features: torch.Tensor,
    normalization: WeightNormalization = "mean",
    floor: float = 0.0,
) -> torch.Tensor:
    """Per-token squared L2 distance between source and target pre-quantisation features, as loss weights.

    Args:
        source_features: ``(B, L, D)`` or ``(L, D)`` features of the source images, in token order.
        target_features: Same shape, for the targets.
        normalization: ``"mean"`` (wm-hub's default) divides each image's weights by their mean, so that they
            average 1 over the target image and the loss scale (and learning rates) stay comparable to plain
            cross-entropy; an image whose distances are all equal (e.g. source == target) gets all ones. ``"none"``
            keeps raw distances, the paper's Eq. 2 as written. ``"batch"`` keeps them raw here and the FDM trainer
            divides by the mean over each batch's target image tokens (:func:`normalize_over_batch`).
        floor: wm-hub's option, not the paper's (0, the default, is the paper's Eq. 2 exactly): the weights become
            ``floor + (1 - floor) * w``, so that unchanged tokens keep a share of the loss (with ``"mean"``
            normalisation they still average 1). An encoder whose features do not move for unchanged content gives
            them ``w ~ 0``, and a model that has not learnt to copy in this format then never learns it.

    Returns:
        Weights of shape ``(B, L)`` (or ``(L,)``), float32.
    """
    return weights_from_distances(change_distances(source_features, target_features), normalization, floor)
