"""A rollout KV cache that grows in place (issue 15): the same keys and values, no O(length) copy per token.

transformers' ``DynamicLayer.update`` appends each decode step's keys and values with
``torch.cat``, copying the whole cache of every layer at every generated token: on the demo's
rollouts (16 sequences, ~135 prompt tokens, ~80 generated) that copying was about a third of
a decode step's operator time (``torch.profiler``). ``GrowingLayer`` keeps the keys and values
in a buffer with room to spare (doubling when full) and writes each step's new positions into
it; ``keys`` / ``values`` stay what they were, the first ``length`` positions, now views of
the buffer, so every other ``DynamicLayer`` method (length, mask sizes, crop, repeat, select)
works unchanged. A method that replaces ``keys`` (``batch_repeat_interleave``, ``reorder_cache``)
is noticed and the buffer is rebuilt from the new tensor on the next update.

The attention reads the same numbers in the same order: the logits of a decode are bitwise
those of ``DynamicLayer`` (``tests/test_rollout_decode.py``), so the rollouts are the same tokens.
``vision_dedup.SharedPrefill`` switches a rollout's cache layers to it after the prefill.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import DynamicLayer


class GrowingLayer(DynamicLayer):
    """A ``DynamicLayer`` whose ``update`` writes into a preallocated buffer instead of concatenating."""

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized or self.keys.numel() == 0:
            return super().update(key_states, value_states, *args, **kwargs)
        length, new = self.keys.shape[-2], key_states.shape[-2]
        buffers = self.__dict__.get("_kv_buffers")
        if buffers is None or not _backs(buffers[0], self.keys) or not _backs(buffers[1], self.values) or length + new > buffers[0].shape[-2]:
            capacity = 2 * (length + new)
            buffers = tuple(t.new_empty(*t.shape[:-2], capacity, t.shape[-1]) for t in (self.keys, self.values))
            buffers[0][..., :length, :] = self.keys
            buffers[1][..., :length, :] = self.values
            self._kv_buffers = buffers
        buffers[0][..., length : length + new, :] = key_states
        buffers[1][..., length : length + new, :] = value_states
        self.keys = buffers[0][..., : length + new, :]
        self.values = buffers[1][..., : length + new, :]
        return self.keys, self.values

    def reset(self) -> None:
        self.__dict__.pop("_kv_buffers", None)
        super().reset()


def _backs(buffer: torch.Tensor, view: torch.Tensor) -> bool:
    """Whether ``view`` is the leading part of ``buffer`` (same storage, start, batch and heads)."""
    return view.data_ptr() == buffer.data_ptr() and view.shape[:-2] == buffer.shape[:-2] and view.stride() == buffer.stride()


def grow_in_place(cache) -> int:
    """Switch a cache's plain ``DynamicLayer`` layers (not sliding-window or other kinds) to
    ``GrowingLayer``, keeping their contents; returns how many were switched."""
    switched = 0
    for layer in getattr(cache, "layers", ()):
        if type(layer) is DynamicLayer:
            layer.__class__ = GrowingLayer
            switched += 1
    return switched
