"""LoRA rollouts from merged adapters, in eval mode (issue 15): a LoRA GRPO step near a full one.

With ``lora=true``, TRL 1.16's ``GRPOTrainer`` generates with the PEFT model as training left
it: adapters unmerged (every linear of every decode step runs its base matmul plus the two
adapter matmuls) and in training mode, so ``lora_dropout`` is active during rollouts and the
G copies of a prompt each need their own prefill (``vision_dedup.SharedPrefill`` steps aside).
On the demo that made LoRA's rollouts take about twice as long as full fine-tuning's.

``install(trainer)`` wraps the PEFT model's ``generate`` (an instance attribute; TRL calls it
through ``unwrap_model_for_generation``) so that each rollout:
- merges the active adapters into the base weights, with PEFT's own ``merge(safe_merge=True)``,
  which writes ``W + scale * B @ A`` into a new tensor and leaves the original untouched;
- switches the model to eval mode (dropout off), so the shared prefill applies;
- afterwards puts the original weight tensors back (bit-exact: the same tensors, not an
  unmerge, whose subtraction would drift) and every module's own training flag.

What it changes, deliberately (``lora_merged_rollouts=false`` restores TRL's behaviour):
- rollouts are sampled from the policy without dropout, i.e. from the model that is saved
  and evaluated, where TRL samples from a dropout-perturbed copy of it; the reference
  trainer of the paper trains the whole model, which has no dropout, so this matches it;
- merged weights round differently from the unmerged sum (logits within about 1e-6 in fp32,
  ``tests/test_rollout_decode.py``). Only the sampled tokens come from the merged model: the
  log-prob passes, the loss and the gradients use the unmerged adapters as before, so they
  are exact for the rollouts they get.
It is off under DeepSpeed ZeRO-3 and FSDP (sharded weights: nothing to merge locally) and
costs one transient copy of the adapted weights while generating.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

import torch


def lora_layers(model: torch.nn.Module) -> list:
    """The PEFT tuner layers of ``model`` whose adapters are active and not already merged."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [m for m in model.modules() if isinstance(m, BaseTunerLayer) and not m.merged and not m.disable_adapters]


@contextmanager
def merged_for_generation(model: torch.nn.Module):
    """Within the block, ``model``'s active LoRA adapters are merged into its base weights and
    every module is in eval mode; on exit the original weight (and bias) tensors are back in
    place, the layers are unmerged, and each module has its own training flag again."""
    modes = [(m, m.training) for m in model.modules()]
    layers = lora_layers(model)
    saved = []
    try:
        with torch.no_grad():
            for layer in layers:
                base = layer.get_base_layer()
                saved.append((layer, base, base.weight.data, None if getattr(base, "bias", None) is None else base.bias.data))
                layer.merge(safe_merge=True)  # new tensors: `saved` keeps the originals intact
        model.eval()
        yield model
    finally:
        for layer, base, weight, bias in saved:
            base.weight.data = weight
            if bias is not None:
                base.bias.data = bias
            del layer.merged_adapters[:]
        for module, training in modes:
            module.training = training


class MergedGenerate:
    """``generate`` of a PEFT model, run inside ``merged_for_generation``."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.inner = model.__dict__.get("generate") or type(model).generate.__get__(model)
        self.calls = 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        with merged_for_generation(self.model):
            return self.inner(*args, **kwargs)


def install(trainer: Any) -> MergedGenerate | None:
    """Make a LoRA ``GRPOTrainer`` sample its rollouts from merged adapters in eval mode
    (idempotent); None when the policy is not a PEFT model or its weights are sharded."""
    from peft import PeftModel

    from reasonrft.vision_dedup import sharded_weights, wrap_method

    model = trainer.accelerator.unwrap_model(trainer.model)
    if not isinstance(model, PeftModel) or sharded_weights(trainer):
        return None
    return wrap_method(model, "generate", MergedGenerate, model)
