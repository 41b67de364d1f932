"""Few-step SFT and GRPO runs on the nano model, for every task family: learning happens.

Each asserts behaviour, not that code ran: trainable parameters change (and frozen ones do
not), the SFT loss falls, GRPO's loss moves, and the saved model reloads and generates.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from reasonrft import modeling
from reasonrft.config import build
from reasonrft.stages import grpo, sft
from reasonrft.tasks import task_names

pytestmark = pytest.mark.slow


def _weights(model_dir: str) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in modeling.load_model(model_dir).state_dict().items()}


def _history(out: Path) -> list[dict]:
    return json.loads((out / "trainer_state.json").read_text())["log_history"]


SFT_STEPS = {"transformation": 32}  # function-call answers take longer to come out well formed


@pytest.fixture(scope="module")
def sft_runs(nano_model, tmp_path_factory) -> dict[str, Path]:
    """A short ANS-SFT per task (vision tower trained: it starts random). Answer-only, so that
    GRPO's short completions reach an answer and rewards differ within a group (with equal
    rewards, GRPO's advantages are all zero and, rightly, nothing is updated)."""
    runs = {}
    for task in task_names():
        out = tmp_path_factory.mktemp(f"sft-{task}")
        config = build(sft.SFTStageConfig, dict(model=nano_model, output_dir=str(out), task=task, paradigm="answer", n_train=32, max_steps=SFT_STEPS.get(task, 16), per_device_train_batch_size=4, gradient_accumulation_steps=1, learning_rate=3e-3, lr_scheduler_type="constant", warmup_steps=0, freeze_vision=False, logging_steps=1, save_steps=10_000))
        runs[task] = sft.run(config)
    return runs


@pytest.mark.parametrize("task", task_names())
def test_sft_changes_every_parameter_and_lowers_the_loss(task, sft_runs, nano_model):
    before, after = _weights(nano_model), _weights(str(sft_runs[task]))
    unchanged = [k for k in before if torch.equal(before[k], after[k])]
    assert not unchanged, unchanged[:5]
    losses = [h["loss"] for h in _history(sft_runs[task]) if "loss" in h]
    assert len(losses) == SFT_STEPS.get(task, 16) and sum(losses[-2:]) / 2 < sum(losses[:2]) / 2 - 0.5, losses


def test_sft_with_frozen_vision_keeps_the_vision_tower(nano_model, tmp_path):
    config = build(sft.SFTStageConfig, dict(model=nano_model, output_dir=str(tmp_path), n_train=16, max_steps=2, per_device_train_batch_size=4, gradient_accumulation_steps=1, learning_rate=1e-3, warmup_steps=0, save_steps=10_000))
    before, after = _weights(nano_model), _weights(str(sft.run(config)))
    vision = [k for k in before if ".visual." in k or k.startswith("visual.")]
    assert vision and all(torch.equal(before[k], after[k]) for k in vision)
    assert not torch.equal(before["lm_head.weight"], after["lm_head.weight"])


COMPLETION_TOKENS = {"transformation": 40}  # room for whole func(object, value) calls
# GRPO updates only where a group's rewards differ; a briefly trained model often repeats one
# answer, so structure (few distinct letters and numbers) gets more prompts and completions
GROUPS = {"structure": dict(prompts_per_device=4, num_generations=8)}


@pytest.mark.parametrize("task", task_names())
def test_grpo_updates_the_policy(task, sft_runs, tmp_path):
    config = build(grpo.GRPOStageConfig, dict(model=str(sft_runs[task]), output_dir=str(tmp_path), task=task, n_train=16, max_steps=3, max_completion_length=COMPLETION_TOKENS.get(task, 16), learning_rate=1e-3, logging_steps=1, save_steps=10_000, **GROUPS.get(task, dict(prompts_per_device=2, num_generations=4))))
    out = grpo.run(config)
    before, after = _weights(str(sft_runs[task])), _weights(str(out))
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert len(changed) > len(before) // 2, f"only {len(changed)} of {len(before)} tensors changed"
    history = [h for h in _history(out) if "loss" in h]
    assert len(history) == 3
    assert any(h["reward_std"] > 0 for h in history)
    reward_keys = [k for k in history[0] if k.startswith("rewards/") and k.endswith("/mean")]
    assert any("format_reward" in k for k in reward_keys) and len(reward_keys) == 2
    assert "completions/mean_length" in history[0] and "kl" in history[0]
    assert len({round(h["loss"], 8) for h in history}) > 1  # the loss moved


def test_resume_restores_weights_and_continues(nano_model, tmp_path):
    common = dict(model=nano_model, output_dir=str(tmp_path), n_train=16, per_device_train_batch_size=4, gradient_accumulation_steps=1, warmup_steps=0, save_steps=2, logging_steps=1, freeze_vision=False)
    sft.run(build(sft.SFTStageConfig, dict(common, max_steps=2)))
    trained = _weights(str(tmp_path / "checkpoint-2"))
    # resuming at the step already reached trains nothing: the weights must be the checkpoint's
    sft.run(build(sft.SFTStageConfig, dict(common, max_steps=2, resume=True)))
    after = _weights(str(tmp_path))
    assert all(torch.equal(trained[k], after[k]) for k in trained)
    sft.run(build(sft.SFTStageConfig, dict(common, max_steps=4, resume=True)))
    steps = [h["step"] for h in _history(tmp_path) if "loss" in h]
    assert steps == [1, 2, 3, 4]  # steps 1-2 come from the checkpoint's history


def test_pixels_reach_the_model(nano_model, tmp_path):
    """Solid-colour images, "What color is the image?": only the pixels carry the answer, so
    a model that learns it (chance: 1 in 8) proves images flow through processor, collator,
    vision tower and generation."""
    import random

    from PIL import Image

    from reasonrft import data
    from reasonrft.stages import evaluate
    from reasonrft.tasks import get_task
    from reasonrft.tasks.sprites import COLORS

    rng = random.Random(0)

    def records(n: int, prefix: str) -> list:
        out = []
        for i in range(n):
            color = rng.choice(sorted(COLORS))
            rgb = tuple(min(255, max(0, v + rng.randint(-20, 20))) for v in COLORS[color])
            out.append(data.Record(f"{prefix}{i}", [Image.new("RGB", (112, 112), rgb)], "What color is the image?", color))
        return out

    data.write_dataset(tmp_path / "train", records(480, "train"))
    out = sft.run(build(sft.SFTStageConfig, dict(model=nano_model, output_dir=str(tmp_path / "sft"), task="perception", paradigm="answer", data=str(tmp_path / "train"), max_steps=30, per_device_train_batch_size=16, gradient_accumulation_steps=1, learning_rate=1e-3, warmup_steps=5, freeze_vision=False, save_steps=10_000)))
    test = records(48, "test")
    config = build(evaluate.EvalConfig, dict(model=str(out), task="perception", temperature=0.0, max_new_tokens=4, prompt_style="answer", progress=False))
    predictions = evaluate.generate(modeling.load_model(out).eval(), modeling.load_processor(out), get_task("perception"), test, config, "cpu")
    accuracy = sum(p.strip() == r.answer for p, r in zip(predictions, test)) / len(test)
    assert accuracy >= 0.9, list(zip(predictions, [r.answer for r in test]))[:8]
