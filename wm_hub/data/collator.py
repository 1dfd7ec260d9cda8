"""Batching of pre-tokenised rows for the IDM/FDM trainers.

Rows come from :func:`wm_hub.training.pretokenize.pretokenize`: ``input_ids``, ``labels`` (``-100`` outside the
completion) and ``token_weights`` (recognition weights), one value per token. The collator pads them on the right to
the longest row of the batch; padding is never attended to, never a label and weighs 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

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
        lengths = [len(row["input_ids"]) for row in rows]
        width = max(lengths)
        if self.pad_to_multiple_of:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        batch = {
            "input_ids": torch.full((len(rows), width), self.pad_token_id, dtype=torch.long),
            "attention_mask": torch.zeros((len(rows), width), dtype=torch.long),
            "labels": torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long),
            "token_weights": torch.zeros((len(rows), width), dtype=torch.float32),
        }
        for index, (row, length) in enumerate(zip(rows, lengths)):
            if len(row["labels"]) != length:
                raise ValueError(f"row {index}: {len(row['labels'])} labels for {length} input_ids")
            weights = row.get("token_weights")
            if weights is not None and len(weights) != length:
                raise ValueError(f"row {index}: {len(weights)} token_weights for {length} input_ids")
            batch["input_ids"][index, :length] = torch.as_tensor(row["input_ids"])
            batch["attention_mask"][index, :length] = 1
            batch["labels"][index, :length] = torch.as_tensor(row["labels"])
            batch["token_weights"][index, :length] = 1.0 if weights is None else torch.as_tensor(weights)
        return batch
