"""Encoding each distinct image once (reasonrft.vision_dedup) and running each prompt once in
the log-prob passes (reasonrft.shared_prefix) change nothing but the work.

On the nano model, fp32, CPU, one batch: the rollout completions, the reference and policy
per-token log-probs, the GRPO loss and every parameter's gradient equal vanilla TRL's within
1e-5, while a hook on the vision tower's patch embedding counts G times fewer patches in
every pass (generation prefill, reference pass, policy pass). One image per prompt, two
images per prompt (transformation), and LoRA (frozen tower: one encoding per step in all).
The reference and policy passes (forward and backward) run each prompt's positions once, not
G times (not under LoRA's dropout).
"""

from __future__ import annotations

import copy
import json

import pytest
import torch

from reasonrft import modeling, shared_prefix, vision_dedup
from reasonrft.config import build
from reasonrft.stages import grpo

G = 4  # completions per prompt; 2 prompts per batch


def _trainer(model_dir, out, task="counting", dedup=False, **extra):
    config = build(grpo.GRPOStageConfig, dict(model=model_dir, output_dir=str(out), task=task, n_train=4, num_generations=G, prompts_per_device=2, max_completion_length=6, max_steps=1, save_steps=10_000, dedup_images=dedup, share_prompt_prefix=dedup, lora_merged_rollouts=False, **extra))
    trainer = grpo.build_trainer(config)[0]
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1  # set by Trainer.train(), which these tests do not run
    return trainer


class PatchCounter:
    """Patch rows through each vision tower's patch embedding, one entry per tower call."""

    def __init__(self, trainer):
        self.calls: list[tuple[str, int]] = []
        self.handles = []
        for name, model in (("policy", trainer.model), ("ref", trainer.ref_model)):
            tower = vision_dedup.find_vision_tower(model) if model is not None else None
            if tower is not None:
                self.handles.append(tower.patch_embed.register_forward_pre_hook(lambda m, args, name=name: self.calls.append((name, args[0].shape[0]))))
        self.lm_rows: list[int] = []  # batch rows of each policy language-model call
        language_model = vision_dedup._unwrap(trainer.model).model.language_model
        language_model.register_forward_pre_hook(lambda m, args, kwargs: self.lm_rows.append(kwargs["inputs_embeds"].shape[0]), with_kwargs=True)

    def take(self) -> list[tuple[str, int]]:
        calls, self.calls = self.calls, []
        self.taken_lm_rows, self.lm_rows = self.lm_rows, []
        return calls


def _one_step(trainer, batch, seed=0):
    """Rollouts, per-token log-probs of every log-prob pass (reference, then policy), loss and
    gradients of one batch, as GRPO computes them."""
    logps = []
    plain = trainer._get_per_token_logps_and_entropies

    def recording(*args, **kwargs):
        out = plain(*args, **kwargs)
        logps.append(out[0].detach().clone())
        return out

    trainer._get_per_token_logps_and_entropies = recording
    try:
        torch.manual_seed(seed)
        inputs = trainer._generate_and_score_completions(copy.deepcopy(batch))
        # An untrained model's rewards are all equal, so its advantages are 0, and at the first
        # step the policy is the reference, so the KL's gradient is 0 too: the loss would have
        # no gradient to compare. Fixed advantages and a shifted reference give it one.
        inputs["advantages"] = torch.linspace(-1.0, 1.0, inputs["advantages"].numel())
        inputs["ref_per_token_logps"] = inputs["ref_per_token_logps"] - 0.1
        trainer.model.zero_grad(set_to_none=True)
        loss = trainer.compute_loss(trainer.model, inputs)
        loss.backward()
    finally:
        del trainer._get_per_token_logps_and_entropies
    grads = {n: p.grad.detach().clone() for n, p in trainer.model.named_parameters() if p.grad is not None}
    trainer.model.zero_grad(set_to_none=True)
    return inputs, logps, loss.detach(), grads


def _compare(trainer, batch, shared_prefill=True):
    """Vanilla TRL, then the same trainer with dedup and the shared prompt prefix installed:
    results and patch counts."""
    counter = PatchCounter(trainer)
    plain = _one_step(trainer, batch)
    plain_calls = counter.take()
    plain_lm = counter.taken_lm_rows
    installed = vision_dedup.install(trainer)
    installed.prefixes = shared_prefix.install(trainer)
    installed.scorers = [shared_prefix.compact_scoring(m) for m in (trainer.model, trainer.ref_model) if m is not None]  # the installed ones (idempotent)
    dedup = _one_step(trainer, batch)
    dedup_calls = counter.take()
    # the rollout prefill runs one row per prompt (not with dropout active: LoRA's), then every
    # decode step and log-prob pass all 2G rows
    assert plain_lm[0] == 2 * G and counter.taken_lm_rows[0] == (2 if shared_prefill else 2 * G)
    assert installed.prefill.grown_layers == 4  # the rollout's cache grew in place: and the same rollouts (below)
    assert counter.taken_lm_rows[1:] == plain_lm[1:]
    installed.clear()
    installed.completion_tokens = int(dedup[0]["completion_mask"].sum())
    installed.sequence_length = dedup[0]["prompt_ids"].shape[1] + dedup[0]["completion_ids"].shape[1]
    (a_in, a_logps, a_loss, a_grads), (b_in, b_logps, b_loss, b_grads) = plain, dedup
    assert torch.equal(a_in["completion_ids"], b_in["completion_ids"])  # same rollouts
    assert torch.equal(a_in["pixel_values"], b_in["pixel_values"])  # processor: same pixels
    assert len(a_logps) == len(b_logps) == 2  # the reference pass, the policy pass
    for a, b in zip(a_logps, b_logps):
        assert torch.allclose(a, b, atol=1e-5, rtol=0)
    assert abs(a_loss.item() - b_loss.item()) <= 1e-5
    assert a_grads.keys() == b_grads.keys() and a_grads
    worst = max((a_grads[n] - b_grads[n]).abs().max().item() for n in a_grads)
    assert worst <= 1e-5, worst
    # every trained tensor gets a real gradient (but LoRA's A, whose gradient is B's, initially 0)
    assert min(a_grads[n].abs().max().item() for n in a_grads if "lora_A" not in n) > 1e-4
    return plain_calls, dedup_calls, installed


def _assert_prefix_shared(installed, passes):
    """Each log-prob pass ran its prompts once (G rows of a prompt, 1 computed for the prompt)
    and scored only the completion positions."""
    assert sum(w.shared for w in installed.prefixes) == passes
    assert sum(s.calls for s in installed.scorers) == passes
    for w in installed.prefixes:
        if w.shared:
            assert w.positions_run < 0.75 * w.positions_in  # the prompt is most of these short sequences


@pytest.fixture(scope="module")
def batch_of(nano_model):
    def get(trainer):
        return next(iter(trainer.get_train_dataloader()))

    return get


def test_one_image_per_prompt_matches_vanilla_and_encodes_g_times_fewer(nano_model, tmp_path, batch_of, monkeypatch):
    import trl.trainer.utils as trl_utils

    scored = []  # positions through the LM head per log-prob pass
    kernel = trl_utils._ChunkedLogProbFunction

    class Recording(kernel):
        @staticmethod
        def apply(hidden, *args):
            scored.append(hidden.shape[0])
            return kernel.apply(hidden, *args)

    monkeypatch.setattr(trl_utils, "_ChunkedLogProbFunction", Recording)
    trainer = _trainer(nano_model, tmp_path)
    plain_calls, dedup_calls, installed = _compare(trainer, batch_of(trainer))
    # TRL on the CPU scores every position (2G rows x the sequence); ours the completions' tokens
    assert len(scored) == 4 and scored[0] == scored[1] == 2 * G * (installed.sequence_length - 1)
    assert scored[2] == scored[3] == installed.completion_tokens < scored[0]
    # generation prefill (policy), reference pass (ref model), policy pass (policy); 256 patches per 224 px image
    assert [n for n, _ in plain_calls] == ["policy", "ref", "policy"] == [n for n, _ in dedup_calls]
    assert [rows for _, rows in plain_calls] == [2 * G * 256] * 3
    assert [rows for _, rows in dedup_calls] == [2 * 256] * 3
    _assert_prefix_shared(installed, passes=2)  # the policy's wrapper and the reference's, one pass each
    assert installed.processor.images_in == 2 * 2 * G and installed.processor.images_processed == 2 * 2


def test_two_images_per_prompt_match_vanilla(nano_model, tmp_path, batch_of):
    trainer = _trainer(nano_model, tmp_path, task="transformation")
    plain_calls, dedup_calls, installed = _compare(trainer, batch_of(trainer))
    assert len(plain_calls) == len(dedup_calls) == 3
    for (_, plain_rows), (_, dedup_rows) in zip(plain_calls, dedup_calls):
        assert plain_rows == G * dedup_rows and dedup_rows == 2 * 2 * 256  # 2 prompts x 2 distinct images
    _assert_prefix_shared(installed, passes=2)


def test_lora_frozen_tower_encodes_once_per_step(nano_model, tmp_path, batch_of):
    """LoRA freezes the tower, and the reference is the same model with the adapter off: the
    features of the generation prefill serve the reference and policy passes too."""
    trainer = _trainer(nano_model, tmp_path, lora=True)
    plain_calls, dedup_calls, installed = _compare(trainer, batch_of(trainer), shared_prefill=False)  # lora_dropout 0.05
    assert [rows for _, rows in plain_calls] == [2 * G * 256] * 3
    assert [rows for _, rows in dedup_calls] == [2 * 256]  # once, in the prefill; then cached
    assert installed.towers[0].stats.cache_hits == 2 * 2 * G  # every image of the two later passes
    assert not installed.towers[0].cache  # cleared
    # the reference pass (adapters off) runs each prompt once; the policy pass not (lora_dropout:
    # each copy has its own mask)
    assert [w.shared for w in installed.prefixes] == [1]


def test_stage_installs_dedup_by_default_and_not_when_off(nano_model, tmp_path):
    on = grpo.build_trainer(build(grpo.GRPOStageConfig, dict(model=nano_model, output_dir=str(tmp_path / "on"), n_train=2, max_steps=1)))[0]
    off = grpo.build_trainer(build(grpo.GRPOStageConfig, dict(model=nano_model, output_dir=str(tmp_path / "off"), n_train=2, max_steps=1, dedup_images=False, share_prompt_prefix=False)))[0]
    for model in (on.model, on.ref_model):
        assert isinstance(vision_dedup.find_vision_tower(model).__dict__.get("forward"), vision_dedup.DedupTower)
        assert isinstance(vision_dedup._unwrap(model).model.language_model.__dict__.get("forward"), shared_prefix.SharedPrefix)
    for model in (off.model, off.ref_model):
        assert "forward" not in vision_dedup.find_vision_tower(model).__dict__
        assert "forward" not in vision_dedup._unwrap(model).model.language_model.__dict__


def test_tower_wrapper_keeps_state_dict_and_handles_mixed_sizes_and_order(nano_model):
    """Unit level: images of two sizes, duplicates not adjacent, every output row where the
    plain tower puts it; a frozen tower answers a repeat call from its cache, but not under
    another autocast state; state_dict keys do not change."""
    model = modeling.load_model(nano_model)
    tower = vision_dedup.find_vision_tower(model)
    keys = list(model.state_dict())
    torch.manual_seed(1)
    small, big = torch.randn(16, 1176), torch.randn(64, 1176)
    pixels = torch.cat([big, small, big, small, small])
    grid = torch.tensor([[1, 8, 8], [1, 4, 4], [1, 8, 8], [1, 4, 4], [1, 4, 4]])
    expected = tower(pixels, grid_thw=grid)
    wrapper = vision_dedup.wrap_tower(tower)
    assert list(model.state_dict()) == keys
    for p in tower.parameters():
        p.requires_grad_(False)
    got = tower(pixels, grid_thw=grid)
    assert (wrapper.stats.images_in, wrapper.stats.images_encoded) == (5, 2)
    assert torch.allclose(got.pooler_output, expected.pooler_output, atol=1e-6)
    assert torch.allclose(got.last_hidden_state, expected.last_hidden_state, atol=1e-6)
    again = tower(pixels, grid_thw=grid)
    assert wrapper.stats.images_encoded == 2 and wrapper.stats.cache_hits == 5
    assert torch.equal(again.pooler_output, got.pooler_output)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        tower(pixels, grid_thw=grid)
    assert wrapper.stats.images_encoded == 4  # bf16 features are not the fp32 ones
    vision_dedup.unwrap_tower(tower)
    assert "forward" not in tower.__dict__


def test_processor_wrapper_gives_the_same_pixels_and_saves_the_same_files(nano_model, tmp_path):
    from PIL import Image

    processor = modeling.load_processor(nano_model)
    processor.save_pretrained(tmp_path / "before")
    images = [Image.new("RGB", (224, 224), (10 * i, 0, 0)) for i in range(2)]
    batch = [images[0], images[0].copy(), images[1], images[0].copy()]
    expected = processor.image_processor(batch, return_tensors="pt")
    cls = vision_dedup.wrap_processor(processor)
    got = processor.image_processor(batch, return_tensors="pt")
    assert (cls.images_in, cls.images_processed) == (4, 2)
    assert torch.equal(got["pixel_values"], expected["pixel_values"]) and torch.equal(got["image_grid_thw"], expected["image_grid_thw"])
    processor.save_pretrained(tmp_path / "after")
    for name in ("processor_config.json",):
        if (tmp_path / "before" / name).is_file():
            assert json.loads((tmp_path / "after" / name).read_text()) == json.loads((tmp_path / "before" / name).read_text())
    assert sorted(p.name for p in (tmp_path / "after").iterdir()) == sorted(p.name for p in (tmp_path / "before").iterdir())
