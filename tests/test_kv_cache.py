"""The growing KV cache holds exactly what transformers' DynamicCache holds, through every operation generate uses."""

from __future__ import annotations

import torch
from transformers import DynamicCache

from wm_hub.inference.kv_cache import MIN_SPARE_TOKENS, GrowingLayer, growing_cache


def test_the_growing_cache_equals_the_dynamic_cache_and_copies_only_new_tokens():
    torch.manual_seed(0)
    growing, dynamic = growing_cache(), DynamicCache()
    steps = [(2, 30), (2, 1), ("repeat", 3), (6, 1), (6, 1), ("crop", -1), (6, 1), ("select", [0, 2, 5])]
    steps += [(3, 1)] * (MIN_SPARE_TOKENS + 5)  # past the first buffer's room
    for step in steps:
        if step[0] == "repeat":
            growing.batch_repeat_interleave(step[1]), dynamic.batch_repeat_interleave(step[1])
        elif step[0] == "crop":
            growing.crop(step[1]), dynamic.crop(step[1])
        elif step[0] == "select":
            index = torch.tensor(step[1])
            growing.batch_select_indices(index), dynamic.batch_select_indices(index)
        else:
            keys, values = torch.randn(step[0], 2, step[1], 4), torch.randn(step[0], 2, step[1], 4)
            for layer in range(2):
                got = growing.update(keys + layer, values, layer)
                want = dynamic.update(keys + layer, values, layer)
                assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    assert all(isinstance(layer, GrowingLayer) for layer in growing.layers)
    assert growing.get_seq_length() == dynamic.get_seq_length() == 30 + 1 + 2 - 1 + 1 + MIN_SPARE_TOKENS + 5
    # a decoding step writes into the buffer: the returned keys share its memory
    layer = growing.layers[0]
    assert layer.keys.data_ptr() == layer._key_buffer.data_ptr()
