"""``resume=true`` continues the same run: a run interrupted after a checkpoint and resumed ends
where the uninterrupted run ends, and gets there by running only the steps that were left.

CPU training is deterministic, so equal final weights alone would also pass if resume were
ignored and the run retrained from scratch: each test also counts the steps the resumed run
executes, checks that the checkpoint it resumed from was not rewritten, and that optimizer and
scheduler state came back. GRPO checks that the KL after the resume is measured against the
run's starting model (``model=``), not the checkpoint it resumed from.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import transformers.trainer
from transformers import TrainerCallback

from reasonrft import modeling
from reasonrft.config import build
from reasonrft.errors import UserError
from reasonrft.stages import grpo, sft
from reasonrft.stages.common import resume_checkpoint

pytestmark = pytest.mark.slow

DEFAULT_CALLBACKS = list(transformers.trainer.DEFAULT_CALLBACKS)
PIXELS = 112 * 112  # 16 image tokens an image, not 64: what is compared does not depend on the image size


class Interrupt(Exception):
    """Raised by a callback as step 4 begins: a run killed between steps, with checkpoint-2 on
    disk and step 3 done and logged after it."""


class Recorder(TrainerCallback):
    """What a run did: the steps it executed, and optimizer / scheduler state before its first."""

    def __init__(self, interrupt_before: int = 0):
        self.steps: list[int] = []
        self.first: dict | None = None
        self.interrupt_before = interrupt_before

    def on_step_begin(self, args, state, control, optimizer=None, lr_scheduler=None, **kwargs):
        if state.global_step + 1 == self.interrupt_before:
            raise Interrupt
        if self.first is None:
            adam = [s for s in optimizer.state.values() if "step" in s]
            self.first = {"global_step": state.global_step, "scheduler_epoch": lr_scheduler.last_epoch, "adam_steps": {int(s["step"]) for s in adam}}

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append(state.global_step)


def _with(monkeypatch, callback: Recorder) -> Recorder:
    monkeypatch.setattr(transformers.trainer, "DEFAULT_CALLBACKS", [*DEFAULT_CALLBACKS, callback])
    return callback


def _weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return modeling.load_model(model_dir).state_dict()


def _logs(out: Path) -> dict[int, dict]:
    return {h["step"]: h for h in json.loads((out / "trainer_state.json").read_text())["log_history"] if "loss" in h}


def _console_steps(out: Path) -> list[int]:
    """The steps of the training entries of ``OUT/log.jsonl`` (``console.ConsoleCallback``), in order."""
    return [entry["step"] for line in (out / "log.jsonl").read_text().splitlines() if "loss" in (entry := json.loads(line))]


def _mtimes(directory: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in directory.iterdir()}


def _interrupted_then_resumed(stage, cls, values: dict, tmp_path: Path, monkeypatch) -> tuple[Path, Path, Recorder]:
    """Run ``values`` (4 steps, a checkpoint every 2) uninterrupted into ``tmp/full``; run it
    again into ``tmp/cut``, interrupted after step 3 (checkpoint-2 the newest), and resume that.
    Returns both output directories and the resumed run's recorder."""
    full = tmp_path / "full"
    _with(monkeypatch, Recorder())
    stage.run(build(cls, dict(values, output_dir=str(full))))
    cut = tmp_path / "cut"
    _with(monkeypatch, Recorder(interrupt_before=4))
    with pytest.raises(Interrupt):
        stage.run(build(cls, dict(values, output_dir=str(cut))))
    assert not (cut / "config.json").exists() and (cut / "checkpoint-2").is_dir() and not (cut / "checkpoint-4").exists()
    assert _console_steps(cut) == [1, 2, 3]  # step 3 ran and was logged before the kill
    before = _mtimes(cut / "checkpoint-2")
    resumed = _with(monkeypatch, Recorder())
    stage.run(build(cls, dict(values, output_dir=str(cut), resume=True)))
    assert _mtimes(cut / "checkpoint-2") == before  # the checkpoint resumed from was not rewritten
    return full, cut, resumed


def _assert_same_run(full: Path, cut: Path, resumed: Recorder, keys: list[str]) -> None:
    assert resumed.steps == [3, 4]  # only the remaining steps ran
    assert resumed.first == {"global_step": 2, "scheduler_epoch": 2, "adam_steps": {2}}  # optimizer and scheduler restored
    logs_a, logs_b = _logs(full), _logs(cut)
    assert sorted(logs_b) == [1, 2, 3, 4]  # steps 1-2 come from the checkpoint's history
    assert _console_steps(cut) == [1, 2, 3, 4]  # OUT/log.jsonl reads as one run: step 3 once, not twice
    for step in (3, 4):
        for key in keys:
            assert logs_b[step][key] == pytest.approx(logs_a[step][key], rel=1e-4, abs=1e-7), (step, key)
    a, b = _weights(full), _weights(cut)
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-5


def test_sft_resume_continues_the_same_run(nano_model, tmp_path, monkeypatch):
    values = dict(model=nano_model, max_pixels=PIXELS, n_train=24, per_device_train_batch_size=4, gradient_accumulation_steps=1, max_steps=4, save_steps=2, learning_rate=1e-3, lr_scheduler_type="linear", warmup_steps=2, logging_steps=1, freeze_vision=False)
    full, cut, resumed = _interrupted_then_resumed(sft, sft.SFTStageConfig, values, tmp_path, monkeypatch)
    _assert_same_run(full, cut, resumed, ["loss", "learning_rate", "grad_norm"])


def _length_reward(completions, **kwargs) -> list[float]:
    """A reward that differs within every group from any model: the completion's length."""
    return [len(c[0]["content"]) / 16 for c in completions]


def test_grpo_resume_continues_the_same_run_against_the_starting_model(nano_model, tmp_path, monkeypatch):
    monkeypatch.setitem(grpo.REWARDS, "length", _length_reward)
    values = dict(model=nano_model, max_pixels=PIXELS, n_train=12, rewards={"length": 1.0}, prompts_per_device=2, num_generations=4, max_completion_length=8, max_steps=4, save_steps=2, learning_rate=3e-3, logging_steps=1, beta=0.04)
    full, cut, resumed = _interrupted_then_resumed(grpo, grpo.GRPOStageConfig, values, tmp_path, monkeypatch)
    assert min(_logs(full)[s]["kl"] for s in (3, 4)) > 1e-4  # the policy has moved: a KL to tell references apart
    _assert_same_run(full, cut, resumed, ["kl", "rewards/_length_reward/mean", "reward_std", "loss", "learning_rate"])


def test_lora_grpo_resume_keeps_the_reference_and_the_adapter(nano_model, tmp_path, monkeypatch):
    """LoRA: the KL reference is the policy with the adapter disabled, i.e. ``model=``; the
    adapter itself comes back from the checkpoint."""
    monkeypatch.setitem(grpo.REWARDS, "length", _length_reward)
    values = dict(model=nano_model, max_pixels=PIXELS, n_train=12, rewards={"length": 1.0}, prompts_per_device=2, num_generations=4, max_completion_length=8, max_steps=4, save_steps=2, learning_rate=3e-2, logging_steps=1, beta=0.04, lora=True, lora_r=4, lora_alpha=8, lora_dropout=0.0)
    full, cut, resumed = _interrupted_then_resumed(grpo, grpo.GRPOStageConfig, values, tmp_path, monkeypatch)
    assert (cut / "checkpoint-2" / "adapter_model.safetensors").is_file()
    _assert_same_run(full, cut, resumed, ["kl", "rewards/_length_reward/mean", "loss"])


def test_half_written_checkpoints_are_skipped_with_one_line(nano_model, tmp_path, capsys):
    sft.run(build(sft.SFTStageConfig, dict(model=nano_model, max_pixels=PIXELS, output_dir=str(tmp_path), n_train=8, per_device_train_batch_size=4, gradient_accumulation_steps=1, max_steps=2, save_steps=1, warmup_steps=0)))
    good = tmp_path / "checkpoint-2"
    assert resume_checkpoint(str(tmp_path), True) == str(good)
    no_state = tmp_path / "checkpoint-3"  # killed before trainer_state.json was written
    truncated = tmp_path / "checkpoint-4"  # killed while writing the weights
    for bad in (no_state, truncated):
        (bad).mkdir()
        for f in good.iterdir():
            if f.is_file():
                (bad / f.name).write_bytes(f.read_bytes())
    (no_state / "trainer_state.json").unlink()
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    capsys.readouterr()
    assert resume_checkpoint(str(tmp_path), True) == str(good)
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [
        f"reasonrft: skipping half-written checkpoint {truncated} (truncated model.safetensors)",
        f"reasonrft: skipping half-written checkpoint {no_state} (missing trainer_state.json)",
    ]
    (good / "optimizer.pt").write_bytes(b"PK")  # every checkpoint broken: one clear error
    for name in ("checkpoint-1",):
        (tmp_path / name / "trainer_state.json").unlink(missing_ok=True)
    with pytest.raises(UserError, match="no checkpoint-N directory is complete"):
        resume_checkpoint(str(tmp_path), True)
