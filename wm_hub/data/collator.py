"""Batching of pre-tokenised rows for the IDM/FDM trainers.

Rows come from :func:`wm_hub.training.pretokenize.pretokenize`: ``input_ids``, ``labels`` (``-100`` outside the
completion) and ``token_weights`` (recognition weights), one value per token. The collator pads them on the right to
the longest row of the batch with TRL's ``pad``; padding is never attended to, never a label and weighs 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from trl.trainer.utils import pad

from wm_hub.models.base import IGNORE_INDEX


@dataclass
class WorldModelCollator:
    """Pads pre-tokenised rows into training tensors.

    Columns other than ``input_ids``, ``labels`` and ``token_weights`` (``id``, ``origin``...) are ignored. A row
    without ``token_weights`` (e.g. a hand-built IDM row) weighs every token 1.

    Args:
        pad_token_id: Id written into padded ``input_ids`` positions (the backbone's ``pad_token_id``).
        pad_to_multiple_of: Round the padded length up to a multiple of this (tensor-core friendly shapes).
    """

    pad_token_id: int
    pad_to_multiple_of: int | None = None

    def __call__(self, rows: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Pad ``rows`` on the right.

        Returns:
            ``input_ids`` (long, padded with ``pad_token_id``), ``attention_mask`` (long, 0 on padding), ``labels``
            (long, ``-100`` on padding) and ``token_weights`` (float32, 0 on padding), each ``(B, T)``.
        """
        ids, labels, weights, masks = [], [], [], []
        for index, row in enumerate(rows):
            length = len(row["input_ids"])
            if len(row["labels"]) != length:
                raise ValueError(f"row {index}: {len(row['labels'])} labels for {length} input_ids")
            row_weights = row.get("token_weights")
            if row_weights is not None and len(row_weights) != length:
                raise ValueError(f"row {index}: {len(row_weights)} token_weights for {length} input_ids")
            ids.append(torch.as_tensor(row["input_ids"], dtype=torch.long))
            labels.append(torch.as_tensor(row["labels"], dtype=torch.long))
            masks.append(torch.ones(length, dtype=torch.long))
            weights.append(
                torch.ones(length) if row_weights is None else torch.as_tensor(row_weights, dtype=torch.float32)
            )
        multiple = self.pad_to_multiple_of or None
        batch = {
            "input_ids": pad(ids, self.pad_token_id, pad_to_multiple_of=multiple),
            "attention_mask": pad(masks, 0, pad_to_multiple_of=multiple),
            "labels": pad(labels, IGNORE_INDEX, pad_to_multiple_of=multiple),
            "token_weights": pad(weights, 0, pad_to_multiple_of=multiple),
        }
        return batch
