"""Run each prompt once in GRPO's log-prob passes and backward, exactly (issue 15).

TRL's ``GRPOTrainer`` scores the G completions of a prompt as G full sequences, prompt
included, in the reference pass, in the policy pass and in its backward. The prompt part of
the G rows is the same input (same tokens, same image features, same positions, same
padding), and causal attention makes its hidden states the same too: on the demo the prompt
is about 60% of every scored sequence, so about half of those passes is repeated work.

``SharedPrefix`` wraps the language model's ``forward`` (an instance attribute on
``model.model.language_model``: no module replaced, ``state_dict`` unchanged). For a training
pass (no cache asked for) whose batch is groups of G consecutive rows that agree on their
first P positions (``inputs_embeds``, attention mask and M-RoPE positions compared exactly), it
- runs those P positions once per group and keeps their keys and values (a ``DynamicCache``);
- repeats that cache G times (``batch_repeat_interleave``, a differentiable ``repeat_interleave``)
  and runs the remaining positions of all rows against it, as a prefill continued by a chunk;
- returns the prefix hidden states repeated G times next to the rest: the
  ``last_hidden_state`` the plain call computes, up to float rounding.
Autograd's backward of the repeats sums the G rows' gradients into the one prefix, which is
the gradient of G separate copies. P is the longest prefix all groups share: the prompt plus
any identical first completion tokens.

``CompactScoring`` wraps the model's forward (TRL's fused-LM-head forward, an instance
attribute) so that, on the CPU too, the LM head and its log-softmax run on the scored
(completion) positions only. TRL 1.16 does that on Triton devices; elsewhere it projects every
position, prompt and padding included, to keep tile shapes fixed for compilers such as
Neuron's (``trl.trainer.utils._fused_forward``, ``compact = _use_triton(...)``). On the demo that
was about a third of the log-prob passes and their backward. The switch is TRL's own
``compact`` path, asked for during the call (``trl.trainer.utils._use_triton`` answers True
for a CPU tensor; the kernels' own choice of Triton or torch is left alone); the other
positions' log-probs are 0, as before.

It steps aside (the plain call) for anything else: decode and generation (a cache), active
dropout (LoRA's policy pass with ``lora_dropout``, where each copy has its own mask; its
reference pass, adapters off, is shared), gradient checkpointing,
requests for hidden states or attentions, batches that are not such groups. The rollout
prefill is shared by ``vision_dedup.SharedPrefill``, the vision tower by ``vision_dedup``.
Tested against vanilla TRL (log-probs, loss, every gradient within 1e-5) in
``tests/test_vision_dedup.py``. ``share_prompt_prefix=false`` in the GRPO stage leaves it off.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch


class SharedPrefix:
    """The ``forward`` of a Qwen2-VL language model, running a group's shared prefix once."""

    def __init__(self, text_model: torch.nn.Module, group: int) -> None:
        self.text_model = text_model
        self.group = group
        self.inner = text_model.__dict__.get("forward") or type(text_model).forward.__get__(text_model)
        self.__signature__ = inspect.signature(self.inner)
        self.calls = 0
        self.shared = 0  # calls that ran a shared prefix
        self.positions_in = 0  # batch x length of those calls
        self.positions_run = 0  # what they computed

    def _plain(self, *args, **kwargs):
        return self.inner(*args, **kwargs)

    def __call__(self, *args, **kwargs):
        self.calls += 1
        embeds, mask, positions = kwargs.get("inputs_embeds"), kwargs.get("attention_mask"), kwargs.get("position_ids")
        k = self.group
        if (
            args
            or embeds is None
            or embeds.dim() != 3
            or kwargs.get("use_cache")
            or kwargs.get("cache", kwargs.get("past_key_values")) is not None
            or kwargs.get("output_hidden_states")
            or kwargs.get("output_attentions")
            or (self.text_model.training and getattr(self.text_model, "gradient_checkpointing", False))
            or _dropout_active(self.text_model)
            or mask is None
            or not torch.is_tensor(mask)
            or mask.dim() != 2
            or positions is None
            or positions.dim() != 3
            or k < 2
            or embeds.shape[0] % k
        ):
            return self._plain(*args, **kwargs)
        prefix = _shared_prefix_length(embeds, mask, positions, k)
        batch, length = embeds.shape[:2]
        if prefix < 1 or prefix >= length:
            return self._plain(*args, **kwargs)
        from transformers.modeling_outputs import BaseModelOutputWithPast

        rest = {key: v for key, v in kwargs.items() if key not in ("inputs_embeds", "attention_mask", "position_ids", "use_cache", "cache", "past_key_values", "input_ids")}
        keep = torch.arange(0, batch, k, device=embeds.device)
        head = self.inner(inputs_embeds=embeds[keep, :prefix], attention_mask=mask[keep, :prefix], position_ids=positions[:, keep, :prefix], use_cache=True, **rest)
        cache = head.cache if hasattr(head, "cache") else head.past_key_values
        cache.batch_repeat_interleave(k)
        tail = self.inner(inputs_embeds=embeds[:, prefix:], attention_mask=mask, position_ids=positions[:, :, prefix:], cache=cache, use_cache=True, **rest)
        hidden = torch.cat([head.last_hidden_state.repeat_interleave(k, dim=0), tail.last_hidden_state], dim=1)
        self.shared += 1
        self.positions_in += batch * length
        self.positions_run += (batch // k) * prefix + batch * (length - prefix)
        return BaseModelOutputWithPast(last_hidden_state=hidden)


def _dropout_active(model: torch.nn.Module) -> bool:
    """Whether a forward of ``model`` now applies dropout: attention dropout, or a dropout
    module in training mode that is not inside a PEFT layer whose adapters are off (disabled,
    as in the reference pass of a LoRA run, or merged)."""
    config = getattr(model, "config", None)
    if model.training and float(getattr(config, "attention_dropout", 0.0) or 0.0) > 0:
        return True
    idle = set()
    for m in model.modules():
        if hasattr(m, "lora_dropout") and (getattr(m, "disable_adapters", False) or getattr(m, "merged", False)):
            idle.update(id(d) for d in m.lora_dropout.modules())
    return any(isinstance(m, torch.nn.Dropout) and m.p > 0 and m.training and id(m) not in idle for m in model.modules())


def _shared_prefix_length(embeds: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, k: int) -> int:
    """The number of leading positions on which every row equals its group's first row (groups
    of ``k`` consecutive rows): inputs, attention mask and positions, compared exactly."""
    batch, length = embeds.shape[:2]
    with torch.no_grad():
        e = embeds.detach().view(batch // k, k, length, -1)
        same = (e == e[:, :1]).all(-1)  # (groups, k, length)
        m = mask.view(batch // k, k, length)
        same &= m == m[:, :1]
        p = positions.view(positions.shape[0], batch // k, k, length)
        same &= (p == p[:, :, :1]).all(0)
        agree = same.all(1).all(0)  # (length,): every row of every group agrees here
        differs = (~agree).nonzero()
    return int(differs[0]) if differs.numel() else length


class CompactScoring:
    """The ``forward`` of a model with TRL's fused LM head, scoring only labelled positions on the CPU."""

    def __init__(self, model: torch.nn.Module, inner) -> None:
        self.model = model
        self.inner = inner
        self.__signature__ = inspect.signature(inner)  # generate() validates its kwargs by it
        self.calls = 0

    def __call__(self, *args, **kwargs):
        if not kwargs.get("fused_lm_head"):
            return self.inner(*args, **kwargs)
        import trl.trainer.utils as trl_utils

        self.calls += 1
        plain = trl_utils._use_triton
        trl_utils._use_triton = lambda device: device.type == "cpu" or plain(device)
        try:
            return self.inner(*args, **kwargs)
        finally:
            trl_utils._use_triton = plain


def compact_scoring(model: Any) -> CompactScoring | None:
    """Wrap a model's fused-LM-head forward (idempotent; through PEFT/DDP wrappers); None when it
    has none, or TRL no longer decides compactness by ``trl.trainer.utils._use_triton``."""
    import trl.trainer.utils as trl_utils

    from reasonrft.vision_dedup import SharedPrefill, _unwrap

    model = _unwrap(model)
    if not callable(getattr(trl_utils, "_use_triton", None)):
        return None
    # the fused forward, or the shared rollout prefill wrapped around it
    current = model.__dict__.get("forward")
    while isinstance(current, (SharedPrefill, CompactScoring)):
        if isinstance(current, CompactScoring):
            return current
        owner, current = current, current.inner
    code = getattr(getattr(current, "__func__", current), "__code__", None)  # functools.wraps renamed it "forward"
    if code is None or code.co_name != "_fused_forward":
        return None
    wrapper = CompactScoring(model, current)
    if model.__dict__.get("forward") is current:
        model.forward = wrapper
    else:
        owner.inner = wrapper  # keep SharedPrefill outermost: it slices the rollout prefill
    return wrapper


def share_prefix(model: Any, group: int) -> SharedPrefix | None:
    """Wrap the language model of a Qwen2-VL-family model (through PEFT/DDP wrappers;
    idempotent); None when it has none in the expected place."""
    from reasonrft.vision_dedup import _unwrap, wrap_method

    inner = getattr(_unwrap(model), "model", None)
    text_model = getattr(inner, "language_model", None)
    if not isinstance(text_model, torch.nn.Module):
        return None
    return wrap_method(text_model, "forward", SharedPrefix, text_model, group)


def install(trainer: Any) -> list[SharedPrefix]:
    """Share each prompt's prefix across its G completions in a ``GRPOTrainer``'s policy and
    reference passes (the same wrapper when the reference is the policy with its adapters off),
    and score only the completion positions. Returns the ``SharedPrefix`` wrappers."""
    group = int(trainer.args.num_generations)
    wrappers = []
    for model in (trainer.model, getattr(trainer, "ref_model", None)):
        if model is None:
            continue
        compact_scoring(model)
        wrapper = share_prefix(model, group)
        if wrapper is not None and all(wrapper is not w for w in wrappers):
            wrappers.append(wrapper)
    return wrappers
