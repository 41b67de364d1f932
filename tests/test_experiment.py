"""The paper's experiment machinery: ``reasonrft compare`` and ``reasonrft sweep``, tiny.

Budgets here are a handful of samples, so the accuracies mean nothing; what is checked is the
table's shape (every paradigm x every split, produced by the command), the files and figures
written, that finished paradigms are not retrained, and where the activation point is drawn.
"""

from __future__ import annotations

import csv
import json

from PIL import Image

from reasonrft import cli
from reasonrft.stages.experiment import TITLES
from reasonrft.tasks import get_task

TINY = ["n_eval=2", "sft_epochs=1", "grpo_steps=1", "grpo_prompts=2", "num_generations=2", "max_new_tokens=12"]


def test_compare_writes_the_paper_table_for_every_paradigm_and_split(nano_model, tmp_path):
    out = tmp_path / "compare"
    argv = ["compare", "--task", "counting", "--out", str(out), f"model={nano_model}", "n_train=6", "stage1=3", *TINY]
    assert cli.main(argv) == 0
    result = json.loads((out / "results.json").read_text())
    splits = get_task("counting").test_splits
    assert list(result["rows"]) == ["zero-shot", "ans-sft", "cot-sft", "reason-rft-zero", "stage1", "reason-rft"]
    for row in result["rows"].values():
        assert set(row["splits"]) == set(splits) and all(0 <= row["splits"][s]["accuracy"] <= 100 for s in splits)
    assert result["config"]["freeze_vision"] is True  # a given base is pretrained: frozen vision, as the paper
    table = list(csv.reader((out / "results.csv").open()))
    assert table[0] == ["paradigm", *splits, "AVG", "ID", "OOD AVG"] and [r[0] for r in table[1:]] == [TITLES[n] for n in result["rows"]]
    assert all(t in (out / "results.md").read_text() for t in TITLES.values())
    for png in ("accuracy_bars.png", "curves-reason-rft-zero.png", "curves-reason-rft.png"):  # SFT here: one step, too few to log
        assert Image.open(out / png).size[0] > 200, png
    stage2 = json.loads((out / "reason-rft" / "trainer_state.json").read_text())
    assert stage2["global_step"] == 1  # GRPO ran after stage 1

    before = [(out / p).stat().st_mtime_ns for p in ("ans-sft/model.safetensors", "eval/ans-sft/summary.json")]
    assert cli.main(argv) == 0  # re-run: finished paradigms and evaluations are reused, the report rewritten
    assert [(out / p).stat().st_mtime_ns for p in ("ans-sft/model.safetensors", "eval/ans-sft/summary.json")] == before
    assert json.loads((out / "results.json").read_text())["rows"] == result["rows"]
    assert cli.main([*argv, "n_eval=1"]) == 0  # other settings: evaluated again
    assert json.loads((out / "eval" / "ans-sft" / "summary.json").read_text())["config"]["n"] == 1


def test_compare_trains_the_vision_tower_of_a_fresh_base(tmp_path, monkeypatch):
    from reasonrft import modeling
    from reasonrft.stages import experiment

    monkeypatch.setattr(modeling, "shipped_base", lambda: None)  # as in a package without a base
    out = tmp_path / "compare"
    config = experiment.CompareConfig(task="counting", out=str(out), paradigms=["zero-shot"], n_train=4, stage1=2, n_eval=1, max_new_tokens=4)
    result = experiment.run_compare(config)
    assert result["config"]["freeze_vision"] is False and (out / "base" / "config.json").is_file()


def test_sweep_plots_accuracy_against_samples_with_the_activation_point(nano_model, tmp_path):
    out = tmp_path / "sweep"
    argv = ["sweep", "--task", "counting", "--out", str(out), "--budgets", "4,8", f"compare={{model: {nano_model}, paradigms: [zero-shot, reason-rft], {', '.join(t.replace('=', ': ') for t in TINY)}}}"]
    assert cli.main(argv) == 0
    summary = json.loads((out / "sweep.json").read_text())
    assert list(summary) == ["4", "8"]
    assert summary["8"]["stage1"]["samples"] == 4 and summary["8"]["reason-rft"]["samples"] == 8 and summary["4"]["zero-shot"]["samples"] == 0
    assert {"id", "ood"} <= set(summary["4"]["reason-rft"])
    assert Image.open(out / "data_efficiency.png").size[0] > 400
