"""Faster rollouts, same numbers: a KV cache that grows in place (reasonrft.rollout_cache) and
LoRA rollouts from merged adapters in eval mode (reasonrft.lora_rollouts).

The in-place cache gives bitwise the logits of transformers' concatenating cache, through a
prefill, a repeat of the batch (the shared prefill's) and a crop. LoRA, while merged: the
logits equal the unmerged adapters' in eval mode within 1e-5, no adapter matmul runs, dropout
is off. Afterwards: the very same weight tensors, bit-exact, and every
module's own training flag. In the GRPO stage: rollouts go through it by default (prefill
shared across a prompt's G copies, as without LoRA) and not with ``lora_merged_rollouts=false``.
"""

from __future__ import annotations

import copy

import torch

from reasonrft import lora_rollouts, modeling, rollout_cache, vision_dedup
from reasonrft.config import build
from reasonrft.stages import grpo


def test_cache_growing_in_place_gives_bitwise_the_same_logits(nano_model):
    """Prefill 2 rows, decode 2 steps, repeat the batch 3 times (the buffer must then follow the
    new tensors), decode on with a crop in between: every logit bitwise the plain cache's."""
    from transformers import DynamicCache

    model = modeling.load_model(nano_model).eval()
    text = model.model.language_model
    torch.manual_seed(0)
    prompt, steps = torch.randn(2, 9, 256), torch.randn(7, 6, 1, 256)
    mask = torch.ones(6, 9 + 7, dtype=torch.long)
    mask[3:, :4] = 0  # the second prompt is left-padded

    def decode(grow: bool):
        cache = DynamicCache(config=text.config)
        out, switched = [], 0
        with torch.no_grad():
            text(inputs_embeds=prompt, attention_mask=mask[::3, :9], cache=cache, use_cache=True)
            for i, x in enumerate(steps):
                rows = 2 if i < 2 else 6
                if i == 2:
                    cache.batch_repeat_interleave(3)
                if i == 5:
                    cache.crop(-1)  # drop the last position: the next step overwrites it
                length = cache.get_seq_length()
                rows_mask = mask[::3] if rows == 2 else mask
                h = text(inputs_embeds=x[::3] if rows == 2 else x, attention_mask=rows_mask[:, : length + 1], position_ids=torch.full((3, rows, 1), length), cache=cache, use_cache=True)
                out.append(model.lm_head(h.last_hidden_state).repeat_interleave(6 // rows, 0))
                if grow:
                    switched += rollout_cache.grow_in_place(cache)  # as SharedPrefill does after every call
        return torch.cat(out, 1), cache, switched

    expected, plain_cache, _ = decode(False)
    got, cache, switched = decode(True)
    assert switched == len(cache.layers) == 4 and all(type(layer) is rollout_cache.GrowingLayer for layer in cache.layers)
    assert torch.equal(got, expected)
    assert cache.get_seq_length() == plain_cache.get_seq_length() == 9 + 6
    assert all(torch.equal(a.keys, b.keys) and torch.equal(a.values, b.values) for a, b in zip(cache.layers, plain_cache.layers))
    assert cache.layers[0].keys.data_ptr() == cache.layers[0]._kv_buffers[0].data_ptr()  # a view of the buffer: no copies


def _randomise_adapters(model, seed=0):
    """LoRA's B starts at zero (merged == base); give it values so that merging matters."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=generator) * 0.05)


def _adapter_calls(model) -> list[int]:
    calls = [0]
    for name, module in model.named_modules():
        if name.endswith("lora_A.default"):
            module.register_forward_hook(lambda *a: calls.__setitem__(0, calls[0] + 1))
    return calls


def test_merged_logits_match_unmerged_and_weights_come_back_bit_exact(nano_model):
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(modeling.load_model(nano_model), LoraConfig(r=8, lora_alpha=16, lora_dropout=0.5, target_modules=r".*language_model.*\.(q_proj|v_proj|down_proj)"))
    _randomise_adapters(model)
    model.train()
    tower = vision_dedup.find_vision_tower(model)
    tower.eval()  # a module in its own mode: restored as it was, not set to train
    before = {n: (p, p.detach().clone()) for n, p in model.named_parameters()}
    data_ptrs = {n: p.data_ptr() for n, p in model.named_parameters()}
    ids = torch.randint(10, 200, (3, 12))
    model.eval()
    with torch.no_grad():
        expected = model(input_ids=ids).logits  # unmerged, dropout off
        with model.disable_adapter():
            base = model(input_ids=ids).logits
    model.train()
    tower.eval()
    calls = _adapter_calls(model)
    with lora_rollouts.merged_for_generation(model):
        assert not model.training and not any(m.training for m in model.modules())
        with torch.no_grad():
            merged = model(input_ids=ids).logits
            again = model(input_ids=ids).logits
    assert calls[0] == 0  # the adapters' matmuls did not run: they are in the weights
    assert torch.equal(merged, again)  # no dropout
    assert (merged - expected).abs().max().item() <= 1e-5
    assert (merged - base).abs().max().item() > 1e-3  # the adapters count
    for name, (param, value) in before.items():
        assert torch.equal(param.detach(), value), name  # bit-exact
        assert param.data_ptr() == data_ptrs[name], name  # the very same storage
    assert not any(layer.merged for layer in lora_rollouts.lora_layers(model)) and lora_rollouts.lora_layers(model)
    assert model.training and not tower.training and tower.patch_embed.training is False
    with torch.no_grad():
        model(input_ids=ids)
    assert calls[0] > 0  # unmerged again: the adapters run


def _lora_trainer(model_dir, out, **extra):
    config = build(grpo.GRPOStageConfig, dict(model=model_dir, output_dir=str(out), n_train=4, num_generations=4, prompts_per_device=2, max_completion_length=6, max_steps=1, save_steps=10_000, lora=True, **extra))
    trainer = grpo.build_trainer(config)[0]
    trainer.model.train()
    _randomise_adapters(trainer.model)
    return trainer


def _rollouts(trainer):
    """One rollout batch; the adapter matmuls it ran (the reference pass disables them)."""
    calls = _adapter_calls(trainer.model)
    batch = next(iter(trainer.get_train_dataloader()))
    torch.manual_seed(0)
    inputs = trainer._generate_and_score_completions(copy.deepcopy(batch))
    return inputs, calls[0]


def test_grpo_lora_rollouts_merged_by_default_with_shared_prefill(nano_model, tmp_path):
    trainer = _lora_trainer(nano_model, tmp_path / "on")
    wrapper = trainer.accelerator.unwrap_model(trainer.model).__dict__.get("generate")
    assert isinstance(wrapper, lora_rollouts.MergedGenerate)
    prefill = vision_dedup._unwrap(trainer.model).__dict__["forward"]
    state = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    inputs, adapter_calls = _rollouts(trainer)
    assert wrapper.calls == 1 and adapter_calls == 0  # generated from merged weights
    assert prefill.prefills == 1 and prefill.rows_run == 2  # one prefill row per prompt, dropout off
    assert trainer.model.training and inputs["completion_ids"].shape[0] == 8
    for name, p in trainer.model.named_parameters():
        assert torch.equal(p.detach(), state[name]), name

    off = _lora_trainer(nano_model, tmp_path / "off", lora_merged_rollouts=False)
    assert "generate" not in off.accelerator.unwrap_model(off.model).__dict__
    _, adapter_calls = _rollouts(off)
    assert adapter_calls > 0 and vision_dedup._unwrap(off.model).__dict__["forward"].prefills == 0  # TRL's way: dropout on
