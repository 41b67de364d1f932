"""The console: per stage one header, one bar with the figures that matter, one summary line;
every step's metrics in OUT/log.jsonl; library noise off unless --verbose; report_to checked.

The training tests run the real TRL trainers on the nano model for two steps and read what
reached the terminal (``capfd``: both streams, as a user sees them).
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from types import SimpleNamespace

import pytest

from reasonrft import console, html_report
from reasonrft.cli import main
from reasonrft.config import build
from reasonrft.errors import UserError
from reasonrft.rewards import REWARDS
from reasonrft.rollouts import RolloutLog
from reasonrft.stages import common, evaluate, grpo, sft


@pytest.fixture
def quiet(monkeypatch):
    """Not verbose, whatever the calling shell says."""
    monkeypatch.delenv(console.VERBOSE_ENV, raising=False)


def _tiny_sft(model: str, out, **extra):
    return build(sft.SFTStageConfig, dict(model=model, output_dir=str(out), n_train=8, max_steps=2, per_device_train_batch_size=4, gradient_accumulation_steps=1, warmup_steps=0, logging_steps=1, save_steps=10_000, **extra))


TINY_SFT = ["n_train=8", "max_steps=2", "per_device_train_batch_size=4", "gradient_accumulation_steps=1", "warmup_steps=0", "logging_steps=1", "save_steps=10000"]


def test_sft_prints_header_bar_and_summary_and_logs_every_step(nano_model, tmp_path, capfd, quiet):
    assert main(["sft", f"model={nano_model}", f"output_dir={tmp_path / 'sft'}", *TINY_SFT]) == 0
    out, err = capfd.readouterr()
    lines = [line for line in out.splitlines() if line.startswith("[sft]")]
    assert lines[0].startswith("[sft] model=") and lines[0].endswith(f"-> {tmp_path / 'sft'}")
    assert lines[-1].startswith("[sft] done in") and "loss" in lines[-1] and "tok_acc" in lines[-1]
    assert "[sft]: 100%" in err and "loss=" in err  # the bar, with its figures
    assert "{'loss'" not in out + err and "'train_runtime'" not in out + err  # no raw metric dicts
    assert "Loading weights" not in err and "FutureWarning" not in err
    logged = [json.loads(line) for line in (tmp_path / "sft" / console.LOG_FILE).read_text().splitlines()]
    steps = [e for e in logged if "loss" in e]
    assert [e["step"] for e in steps] == [1, 2] and all("mean_token_accuracy" in e and "learning_rate" in e for e in steps)
    assert any("train_runtime" in e for e in logged)  # the trainer's final summary, in the file only


def test_verbose_keeps_the_trainers_own_progress(nano_model, tmp_path, monkeypatch):
    from transformers.trainer_callback import ProgressCallback

    monkeypatch.delenv(console.VERBOSE_ENV, raising=False)
    trainer = sft.build_trainer(_tiny_sft(nano_model, tmp_path / "a"))[0]
    kinds = [type(cb) for cb in trainer.callback_handler.callbacks]
    assert console.ConsoleCallback in kinds and ProgressCallback not in kinds
    monkeypatch.setenv(console.VERBOSE_ENV, "1")
    trainer = sft.build_trainer(_tiny_sft(nano_model, tmp_path / "b"))[0]
    kinds = [type(cb) for cb in trainer.callback_handler.callbacks]
    assert console.ConsoleCallback in kinds and ProgressCallback in kinds


def test_grpo_bar_shows_rewards_kl_length_and_rollouts_are_logged(nano_model, tmp_path, capfd, quiet):
    out_dir = tmp_path / "grpo"
    tiny = ["n_train=4", "max_steps=2", "prompts_per_device=1", "num_generations=4", "max_completion_length=12", "logging_steps=1", "save_steps=10000"]
    assert main(["grpo", f"model={nano_model}", f"output_dir={out_dir}", *tiny]) == 0
    out, err = capfd.readouterr()
    done = [line for line in out.splitlines() if line.startswith("[grpo] done in")]
    assert done and all(f in done[0] for f in ("format", "accuracy", "kl", "len"))
    assert all(f in err for f in ("format=", "accuracy=", "kl=", "len=")) and "{'loss'" not in out + err
    assert "Loading weights" not in err and "FutureWarning" not in err
    logged = [json.loads(line) for line in (out_dir / console.LOG_FILE).read_text().splitlines()]
    assert [e["step"] for e in logged if "kl" in e] == [1, 2]
    # rollouts: one group of G per logged step, rewards as the reward functions give them
    rollouts = [json.loads(line) for line in (out_dir / "rollouts.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rollouts] == [1, 2]
    for r in rollouts:
        assert len(r["completions"]) == 4 and r["images"][0].startswith("data:image/jpeg;base64,") and r["solution"]
        for c in r["completions"]:
            message = [[{"role": "assistant", "content": c["text"]}]]
            assert c["rewards"]["format"] == REWARDS["format"](message)[0]
            assert c["rewards"]["accuracy"] == REWARDS["accuracy"](message, solution=[r["solution"]])[0]
            assert c["total"] == pytest.approx(c["rewards"]["format"] + c["rewards"]["accuracy"])
    page = html_report.write_report(out_dir).read_text()  # a GRPO output directory's own report
    assert page.count('<details class="rollout"') == 2 and 'alt="training curves' in page


def test_rollout_log_is_bounded_and_keeps_reward_names(tmp_path):
    log = RolloutLog(tmp_path, {"format": 1.0, "accuracy": 0.5}, num_generations=2, max_lines=3, max_chars=10)
    funcs = log.wrap({"format": REWARDS["format"], "accuracy": REWARDS["accuracy"]})
    assert [f.__name__ for f in funcs] == ["format_reward", "accuracy_reward"]  # TRL's metric names
    texts = ["<think>a</think><answer>3</answer>", "no tags 3 and a long tail"]
    completions = [[{"role": "assistant", "content": t}] for t in texts]
    prompts = [[{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "How many?"}]}]] * 2
    for step in range(30):  # 30 steps, lines for at most max_lines + 1 of them
        state = SimpleNamespace(global_step=step, max_steps=30)
        values = [f(prompts=prompts, completions=completions, solution=["3", "3"], problem_id=["q", "q"], trainer_state=state) for f in funcs]
        assert values == [REWARDS["format"](completions), REWARDS["accuracy"](completions, solution=["3", "3"])]  # unchanged
    lines = [json.loads(line) for line in (tmp_path / "rollouts.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [1, 10, 20, 30]
    first = lines[0]["completions"]
    assert first[0] == {"text": texts[0][:10], "rewards": {"format": 1.0, "accuracy": 1.0}, "total": 1.5}
    assert lines[0]["problem"] == "How many?" and lines[0]["problem_id"] == "q"


def test_eval_bar_shows_the_running_accuracy(nano_model, tmp_path, capfd, quiet):
    config = build(evaluate.EvalConfig, dict(model=nano_model, splits=["test-id"], n=3, batch_size=2, max_new_tokens=4, output_dir=str(tmp_path / "ev")))
    evaluate.run(config)
    out, err = capfd.readouterr()
    assert out.splitlines()[0].startswith("[eval] model=") and "data=counting test-id (3)" in out
    assert [line for line in out.splitlines() if line.startswith("[eval] done in") and "AVG" in line and "test-id" in line]
    assert "acc=" in err and "batch" in err


def test_stage_figures_pick_what_matters():
    logs = {"loss": 0.5, "grad_norm": 3.0, "rewards/format_reward/mean": 0.25, "rewards/format_reward/std": 0.1, "rewards/func_accuracy_reward/mean": 0.5, "kl": 0.01, "completions/mean_length": 40.0, "entropy": 1.0}
    assert console.stage_figures("grpo", logs) == {"format": 0.25, "func_accuracy": 0.5, "kl": 0.01, "len": 40.0}
    assert console.stage_figures("sft", {"loss": 1.5, "mean_token_accuracy": 0.75, "grad_norm": 2.0}) == {"loss": 1.5, "tok_acc": 0.75}


def test_no_gradient_checkpointing_warning_at_the_source(tmp_path):
    from trl import GRPOConfig, SFTConfig

    config = build(sft.SFTStageConfig, dict(model="m", output_dir=str(tmp_path)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        args = SFTConfig(**common.trainer_common_args(config))
        GRPOConfig(**common.trainer_common_args(config))
    assert not [w for w in caught if "checkpointing" in str(w.message)], [str(w.message) for w in caught]
    assert args.gradient_checkpointing is False  # the setting itself still holds


def test_quiet_libraries_filters_trls_deprecated_call_unless_verbose(nano_model, monkeypatch):
    from reasonrft import modeling

    model = modeling.load_model(nano_model)
    for loud in (False, True):
        monkeypatch.setenv(console.VERBOSE_ENV, "1" if loud else "0")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            console.quiet_libraries()
            _ = model.is_gradient_checkpointing  # what TRL's unwrap_model_for_generation reads
        assert bool([w for w in caught if "is_gradient_checkpointing" in str(w.message)]) == loud
        if not loud:  # and DeepSpeed's note, on import on every CPU machine, is dropped
            note = logging.LogRecord("DeepSpeed", logging.WARNING, __file__, 1, "Setting accelerator to CPU. If you have GPU ...", None, None)
            assert not logging.getLogger("DeepSpeed").filter(note)


def test_report_to_passes_through_and_is_checked(tmp_path, monkeypatch):
    base = dict(model="m", output_dir=str(tmp_path))
    assert common.trainer_common_args(build(sft.SFTStageConfig, base))["report_to"] == ["tensorboard"]
    assert common.trainer_common_args(build(sft.SFTStageConfig, dict(base, report_to=["none"])))["report_to"] == "none"
    with pytest.raises(UserError, match="unknown tracker 'tensorbord'"):
        build(sft.SFTStageConfig, dict(base, report_to=["tensorbord"]))
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(UserError, match=r"report_to: wandb is not installed \(pip install wandb\)"):
        build(grpo.GRPOStageConfig, dict(base, report_to=["tensorboard", "wandb"]))


def test_report_to_error_on_the_command_line(nano_model, tmp_path, capsys):
    assert main(["sft", f"model={nano_model}", f"output_dir={tmp_path / 'x'}", "report_to=[nope]"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("reasonrft: error:") and "unknown tracker 'nope'" in err and "\n" not in err
    assert not (tmp_path / "x").exists()


def test_verbose_flag_anywhere_sets_the_environment(monkeypatch, tmp_path):
    for argv in (["--verbose", "report", str(tmp_path / "none")], ["report", str(tmp_path / "none"), "--verbose"]):
        monkeypatch.delenv(console.VERBOSE_ENV, raising=False)
        assert main(argv) == 2  # no such run directory
        assert os.environ[console.VERBOSE_ENV] == "1" and console.verbose()
    monkeypatch.delenv(console.VERBOSE_ENV, raising=False)
    main(["report", str(tmp_path / "none")])
    assert not console.verbose()
