"""A dynamic KV cache that grows in place: one copy per new token instead of one copy of the whole cache.

transformers' ``DynamicLayer`` concatenates every new key/value onto the cache, copying all of it at every decoding
step; for the N candidates of best-of-N (N rows of a long prompt) those copies were the largest cost of a step on
CPU (``benchmarks/bench_verification.py``: ``aten::cat`` 22% of a batch-8 generation). :class:`GrowingLayer` keeps
the keys and values in buffers with room to spare (a quarter more, at least 64 tokens, when full) and returns views
of them, so a step writes only its own token. Attention reads the same values: samples are unchanged (tested).
"""

from __future__ import annotations

import inspect

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

MIN_SPARE_TOKENS = 64


class GrowingLayer(DynamicLayer):
    """A ``DynamicLayer`` whose keys and values are views of preallocated buffers (see the module docstring).

    Any operation of the parent that replaces the keys (repeating rows, selecting rows, cropping) gives back a new
    tensor; the next ``update`` then copies it into a new buffer, so every parent method keeps working.
    """

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        length, new = self.get_seq_length(), key_states.shape[-2]
        buffered = getattr(self, "_views", None) == (id(self.keys), id(self.values))
        if not buffered or length + new > self._key_buffer.shape[-2]:
            capacity = length + new + max(MIN_SPARE_TOKENS, (length + new) // 4)
            self._key_buffer = _regrow(self.keys, key_states, length, capacity)
            self._value_buffer = _regrow(self.values, value_states, length, capacity)
        self._key_buffer[..., length : length + new, :] = key_states
        self._value_buffer[..., length : length + new, :] = value_states
        self.keys = self._key_buffer[..., : length + new, :]
        self.values = self._value_buffer[..., : length + new, :]
        self._views = (id(self.keys), id(self.values))
        return self.keys, self.values


def _regrow(cached: torch.Tensor, new: torch.Tensor, length: int, capacity: int) -> torch.Tensor:
    """A buffer of ``capacity`` positions holding the ``length`` cached ones (shaped after ``new``)."""
    buffer = new.new_empty((*new.shape[:-2], capacity, new.shape[-1]))
    if length:
        buffer[..., :length, :] = cached
    return buffer


def growing_cache() -> DynamicCache:
    """An empty ``DynamicCache`` whose layers are :class:`GrowingLayer` (created on first use, as the parent's)."""
    cache = DynamicCache()
    cache.layer_class_to_replicate = GrowingLayer
    return cache


def cache_argument(model: torch.nn.Module) -> str:
    """The keyword that passes a KV cache to ``model`` and its ``generate``: ``cache`` in the transformers versions
    that renamed it (``past_key_values`` is deprecated there), ``past_key_values`` in earlier ones (5.17)."""
    decoder = getattr(model, "model", model)
    return "cache" if "cache" in inspect.signature(decoder.forward).parameters else "past_key_values"
