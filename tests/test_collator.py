"""WorldModelCollator: right padding of pre-tokenised rows into the trainers' tensors."""

from __future__ import annotations

import pytest
import torch

from wm_hub.data.collator import WorldModelCollator
from wm_hub.models.base import IGNORE_INDEX

ROWS = [
    {"id": "a", "origin": "test", "input_ids": [1, 2, 3], "labels": [-100, 2, 3], "token_weights": [1.0, 0.5, 2.0]},
    {"id": "b", "origin": "test", "input_ids": [4, 5], "labels": [-100, 5], "token_weights": [1.0, 0.0]},
]


def test_rows_are_padded_on_the_right_and_other_columns_ignored():
    batch = WorldModelCollator(pad_token_id=9)(ROWS)
    assert set(batch) == {"input_ids", "attention_mask", "labels", "token_weights"}
    assert batch["input_ids"].tolist() == [[1, 2, 3], [4, 5, 9]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["labels"].tolist() == [[IGNORE_INDEX, 2, 3], [IGNORE_INDEX, 5, IGNORE_INDEX]]
    assert batch["token_weights"].tolist() == [[1.0, 0.5, 2.0], [1.0, 0.0, 0.0]]
    assert batch["input_ids"].dtype == batch["labels"].dtype == batch["attention_mask"].dtype == torch.long
    assert batch["token_weights"].dtype == torch.float32


def test_rows_without_token_weights_weigh_every_token_one():
    rows = [{key: value for key, value in row.items() if key != "token_weights"} for row in ROWS]
    assert WorldModelCollator(pad_token_id=0)(rows)["token_weights"].tolist() == [[1, 1, 1], [1, 1, 0]]


def test_pad_to_multiple_of_rounds_the_length_up():
    batch = WorldModelCollator(pad_token_id=0, pad_to_multiple_of=8)(ROWS)
    assert batch["input_ids"].shape == (2, 8)
    assert batch["attention_mask"].sum().item() == 5 and batch["token_weights"][:, 3:].eq(0).all()


def test_a_row_whose_columns_disagree_in_length_is_named():
    rows = [ROWS[0], {**ROWS[1], "token_weights": [1.0]}]
    with pytest.raises(ValueError, match="row 1: 1 token_weights for 2 input_ids"):
        WorldModelCollator(pad_token_id=0)(rows)
