"""The paper's experiment machinery: ``reasonrft compare`` and ``reasonrft sweep``, tiny.

Budgets here are a handful of samples, so the accuracies mean nothing; what is checked is the
table's shape (every paradigm x every split, produced by the command), the files and figures
written, that finished paradigms are not retrained, and where the activation point is drawn.
"""

from __future__ import annotations

import csv
import json
import shutil

from PIL import Image

from reasonrft import cli, stats
from reasonrft.stages.experiment import CSV_HEADER, TITLES
from reasonrft.tasks import get_task

TINY = ["n_eval=2", "sft_epochs=1", "grpo_steps=1", "grpo_prompts=2", "num_generations=2", "max_new_tokens=12"]


def test_compare_writes_the_paper_table_for_every_paradigm_and_split(nano_model, tmp_path, capsys):
    out = tmp_path / "compare"
    argv = ["compare", "--task", "counting", "--out", str(out), f"model={nano_model}", "n_train=6", "stage1=3", *TINY]
    assert cli.main(argv) == 0
    result = json.loads((out / "results.json").read_text())
    splits = get_task("counting").test_splits
    assert list(result["rows"]) == ["zero-shot", "ans-sft", "cot-sft", "reason-rft-zero", "stage1", "reason-rft"]
    for name, row in result["rows"].items():  # each cell is its evaluation's scores, with n and the Wilson interval
        predictions = [json.loads(line) for line in (out / "eval" / name / "predictions.jsonl").read_text().splitlines()]
        assert set(row["splits"]) == set(splits)
        for s in splits:
            scores = [p["score"] for p in predictions if p["split"] == s]
            assert len(scores) == 2 and row["splits"][s] | {"format": 0, "mean_completion_chars": 0} == stats.accuracy_interval(scores) | {"format": 0, "mean_completion_chars": 0}
        assert row["shift_average"] == round(sum(row["splits"][s]["accuracy"] for s in splits[1:]) / 2, 2) and row["shift_splits"] == list(splits[1:])
    assert result["config"]["freeze_vision"] is True  # a given base is pretrained: frozen vision, as the paper
    baseline = result["baseline"]  # always the training set's most frequent answer
    train_answers = [r["answer"] for r in json.loads((out / "data" / "train" / "data.json").read_text())]
    assert baseline["answer"] == stats.most_frequent_answer(train_answers)
    assert "best_constant" not in result  # 0/1 scores: the best constant answer is the most frequent
    for s in splits:
        gold = [r["answer"] for r in json.loads((out / "data" / s / "data.json").read_text())]
        assert baseline["splits"][s]["accuracy"] == 100 * sum(a == baseline["answer"] for a in gold) / len(gold)
    table = list(csv.reader((out / "results.csv").open()))
    titles = [TITLES[n] for n in result["rows"]] + [f"Most frequent answer ({baseline['answer']!r} always)"]
    assert table[0] == CSV_HEADER and [r[0] for r in table[1:]] == [t for t in titles for _ in range(len(splits) + 2)]
    first = dict(zip(CSV_HEADER, table[1]))
    zero = result["rows"]["zero-shot"]["splits"][splits[0]]
    assert (first["split"], first["group"], int(first["n"]), float(first["accuracy"]), [float(first["ci95_low"]), float(first["ci95_high"])]) == (splits[0], "all", 2, zero["accuracy"], zero["ci95"])
    md = (out / "results.md").read_text()
    assert all(t in md for t in titles) and f"| Zero-shot | {stats.format_ci(zero)} |" in md and "n = 2" in md
    for png in ("accuracy_bars.png", "curves-reason-rft-zero.png", "curves-reason-rft.png"):  # SFT here: one step, too few to log
        assert Image.open(out / png).size[0] > 200, png
    stage2 = json.loads((out / "reason-rft" / "trainer_state.json").read_text())
    assert stage2["global_step"] == 1  # GRPO ran after stage 1
    seen = {"steps": 1, "prompts_per_step": 2, "completions_per_prompt": 2, "prompts_seen": 2, "distinct_records": 2, "learning_rate": 2e-5, "rewards": {"format": 1.0, "accuracy": 1.0}}
    assert result["grpo"] == {"reason-rft-zero": {**seen, "records": 6}, "reason-rft": {**seen, "records": 3}}  # stage 2: the records after stage 1's
    for pair, entry in result["paired"].items():  # the paper's comparisons, question by question
        first, second = pair.split(" - ")
        assert entry[splits[0]]["difference"] == round(result["rows"][first]["splits"][splits[0]]["accuracy"] - result["rows"][second]["splits"][splits[0]]["accuracy"], 2)
        assert entry["OOD AVG"]["n"] == 4 and entry["OOD AVG"]["ci_method"] == "paired-bootstrap"
    assert list(result["paired"]) == ["reason-rft - cot-sft", "reason-rft - ans-sft", "reason-rft - stage1", "reason-rft-zero - zero-shot"]
    assert "| Reason-RFT - CoT-SFT |" in md
    assert "Reason-RFT's GRPO: 1 steps x 2 prompts x 2 completions, lr 2e-05, rewards format 1 + accuracy 1: 2 prompts seen, 2 distinct of its 3 records." in md

    before = [(out / p).stat().st_mtime_ns for p in ("ans-sft/model.safetensors", "eval/ans-sft/summary.json")]
    assert cli.main(argv) == 0  # re-run: finished paradigms and evaluations are reused, the report rewritten
    assert [(out / p).stat().st_mtime_ns for p in ("ans-sft/model.safetensors", "eval/ans-sft/summary.json")] == before
    assert json.loads((out / "results.json").read_text())["rows"] == result["rows"]
    assert cli.main([*argv, "n_eval=1", "paradigms=[ans-sft]"]) == 0  # other settings: evaluated again (one paradigm shows it)
    assert json.loads((out / "eval" / "ans-sft" / "summary.json").read_text())["config"]["n"] == 1
    capsys.readouterr()
    assert cli.main([*argv, "sft_learning_rate=0.5", "paradigms=[ans-sft]"]) == 2  # trained with other settings: refused, not reused
    assert "ans-sft: already trained with other settings (learning_rate: 0.001 there, 0.5 now)" in capsys.readouterr().err
    assert [(out / p).stat().st_mtime_ns for p in ("ans-sft/model.safetensors",)] == before[:1]


def test_compare_breaks_structure_down_by_answer_type(nano_model, tmp_path):
    from reasonrft.stages import experiment

    out = tmp_path / "compare"
    result = experiment.run_compare(experiment.CompareConfig(task="structure", out=str(out), model=nano_model, paradigms=["zero-shot"], n_train=4, stage1=2, n_eval=6, max_new_tokens=4))
    row = result["rows"]["zero-shot"]
    groups = {s: set(row["splits"][s]["groups"]) for s in ("test-id", "test-ood")}
    assert groups == {"test-id": {"choice", "non-choice"}, "test-ood": {"choice", "non-choice"}}
    md = (out / "results.md").read_text()
    assert "By group (structure: choice / non-choice answers" in md and all(f"{s} {g} (n = {row['splits'][s]['groups'][g]['n']})" in md for s in groups for g in groups[s])
    assert f"| Zero-shot | {' | '.join(stats.format_ci(row['splits'][s]['groups'][g]) for s in groups for g in sorted(groups[s]))} |" in md
    lines = [dict(zip(CSV_HEADER, r)) for r in csv.reader((out / "results.csv").open())][1:]
    assert {(r["split"], r["group"]) for r in lines if r["paradigm"] == "Zero-shot"} == {(s, g) for s in groups for g in ["all", *groups[s]]} | {("AVG", "all"), ("OOD AVG", "all")}


def test_compare_trains_the_vision_tower_of_a_fresh_base(fresh_base, tmp_path, monkeypatch):
    """Without a shipped base, compare starts from ``starting_model``'s fresh one at OUT/base
    (here already built there, as on a re-run: ``init_model`` is reproducible)."""
    import shutil

    from reasonrft import modeling
    from reasonrft.stages import experiment

    monkeypatch.setattr(modeling, "shipped_base", lambda: None)  # as in a package without a base
    out = tmp_path / "compare"
    shutil.copytree(fresh_base[0], out / "base")
    config = experiment.CompareConfig(task="counting", out=str(out), paradigms=["zero-shot"], n_train=4, stage1=2, n_eval=1, max_new_tokens=4)
    result = experiment.run_compare(config)
    assert result["config"]["freeze_vision"] is False and result["base"] == str(out / "base")
    assert result["rows"]["zero-shot"]["model"] == str(out / "base")


def test_sweep_plots_accuracy_against_samples_with_the_activation_point(nano_model, tmp_path):
    out = tmp_path / "sweep"
    argv = ["sweep", "--task", "counting", "--out", str(out), "--budgets", "4,8", f"compare={{model: {nano_model}, paradigms: [zero-shot, reason-rft], {', '.join(t.replace('=', ': ') for t in TINY)}}}"]
    assert cli.main(argv) == 0
    summary = json.loads((out / "sweep.json").read_text())
    assert list(summary) == ["4", "8"]
    assert summary["8"]["stage1"]["samples"] == 4 and summary["8"]["reason-rft"]["samples"] == 8 and summary["4"]["zero-shot"]["samples"] == 0
    point = summary["4"]["reason-rft"]
    compared = json.loads((out / "n4" / "results.json").read_text())["rows"]["reason-rft"]
    assert (point["id"], point["id_ci95"], point["id_n"]) == (compared["splits"]["test-id"]["accuracy"], compared["splits"]["test-id"]["ci95"], 2)
    assert (point["ood"], point["ood_ci95"], point["ood_n"]) == (compared["shift_average"], compared["shift_average_ci95"], 4)
    baseline = json.loads((out / "n4" / "results.json").read_text())["baseline"]  # the most-frequent answer, per budget
    assert (summary["4"]["most-frequent"]["id"], summary["4"]["most-frequent"]["ood_ci95"]) == (baseline["splits"]["test-id"]["accuracy"], baseline["shift_average_ci95"])
    zero = summary["4"]["zero-shot"]
    cells = [stats.format_ci({"accuracy": zero[k], "ci95": zero[f"{k}_ci95"]}) for k in ("id", "ood")]
    assert f"| 4 | {cells[0]} | {cells[1]} |" in (out / "sweep.md").read_text()
    assert Image.open(out / "data_efficiency.png").size[0] > 400
    paired = json.loads((out / "sweep_paired.json").read_text())
    assert paired["4"]["reason-rft - stage1"] == json.loads((out / "n4" / "results.json").read_text())["paired"]["reason-rft - stage1"]
    assert "| Reason-RFT - Reason-RFT stage 1 only ID | Reason-RFT - Reason-RFT stage 1 only OOD |" in (out / "sweep.md").read_text()
    copied = json.loads((out / "n8" / "eval" / "zero-shot" / "summary.json").read_text())  # the base on the same test sets: evaluated once
    assert copied["copied_from"] == str(out / "n4" / "eval" / "zero-shot") and copied["config"]["data_root"] == str(out / "n8" / "data")
    assert summary["8"]["zero-shot"] == summary["4"]["zero-shot"]


def test_a_partial_credit_task_reports_the_best_constant_answer_too(nano_model, tmp_path):
    task = get_task("transformation")
    out = tmp_path / "sweep"
    assert cli.main(["sweep", "--task", "transformation", "--out", str(out), "--budgets", "4,8", f"compare={{model: {nano_model}, paradigms: [zero-shot], n_eval: 2, max_new_tokens: 12}}"]) == 0
    result = json.loads((out / "n8" / "results.json").read_text())
    train = [r["answer"] for r in json.loads((out / "n8" / "data" / task.train_split / "data.json").read_text())]
    best, frequent = result["best_constant"], result["baseline"]
    assert best["answer"] == stats.best_constant_answer(train, task.score)

    def on_training(answer: str) -> float:
        return sum(task.score(answer, gold) for gold in train)

    assert on_training(best["answer"]) >= on_training(frequent["answer"])  # chosen on the training answers, never the test sets
    gold = [r["answer"] for r in json.loads((out / "n8" / "data" / "test-id" / "data.json").read_text())]
    assert best["splits"]["test-id"]["accuracy"] == round(100 * sum(task.score(best["answer"], g) for g in gold) / len(gold), 2)
    title = f"Best constant answer ({best['answer']!r} always)"
    assert f"| {title} | {stats.format_ci(best['splits']['test-id'])} |" in (out / "n8" / "results.md").read_text()
    assert [r for r in csv.reader((out / "n8" / "results.csv").open()) if r[0] == title][-1][1:5] == ["OOD AVG", "all", "4", str(best["shift_average"])]
    point = json.loads((out / "sweep.json").read_text())["8"]["best-constant"]
    assert (point["id"], point["ood"], point["ood_ci95"]) == (best["splits"]["test-id"]["accuracy"], best["shift_average"], best["shift_average_ci95"])


def test_an_evaluation_is_copied_only_onto_identical_settings_and_test_files(nano_model, tmp_path):
    from reasonrft.stages import experiment

    def compare(name: str, **overrides) -> dict:
        values = dict(task="counting", out=str(tmp_path / name), model=nano_model, paradigms=["zero-shot"], n_train=4, stage1=2, n_eval=2, max_new_tokens=4, reuse_evals_from=str(tmp_path / "first"))
        experiment.run_compare(experiment.CompareConfig(**{**values, **overrides}))
        return json.loads((tmp_path / name / "eval" / "zero-shot" / "summary.json").read_text())

    first = compare("first", reuse_evals_from="")
    assert "copied_from" not in first
    assert compare("same")["copied_from"] == str(tmp_path / "first" / "eval" / "zero-shot")
    assert "copied_from" not in compare("fewer", n_eval=1)  # another setting
    altered = tmp_path / "altered" / "data"
    shutil.copytree(tmp_path / "first" / "data", altered)
    image = sorted((altered / "test-id" / "images").iterdir())[0]
    Image.open(image).rotate(90).save(image)  # one test image differs: not the same evaluation
    assert "copied_from" not in compare("altered")


def test_results_name_the_shipped_base_without_this_machines_path(tmp_path, monkeypatch):
    from reasonrft import modeling
    from reasonrft.stages import experiment

    monkeypatch.setattr(modeling, "shipped_base", lambda: tmp_path / "site-packages" / "reasonrft" / "base")
    assert experiment._portable(tmp_path / "site-packages" / "reasonrft" / "base") == experiment.SHIPPED_BASE
    assert experiment._portable("runs/compare/stage1") == "runs/compare/stage1"  # what the user named, as named
    assert str(tmp_path) not in experiment.SHIPPED_BASE


def test_a_stage_default_changed_since_training_is_refused_too(tmp_path):
    """compare reuses a trained stage only if every recorded setting still holds, the stage's
    own defaults included; logging and saving do not count."""
    import pytest

    from reasonrft.config import to_dict
    from reasonrft.errors import UserError
    from reasonrft.stages import experiment, sft

    config = sft.SFTStageConfig(model="base", output_dir=str(tmp_path / "ans-sft"), task="counting", data="data/train")
    (tmp_path / "ans-sft").mkdir()
    (tmp_path / "ans-sft" / "config.json").write_text("{}")
    recorded = {"stage": "sft", **to_dict(config), "records": 8, "logging_steps": 1, "save_steps": 7}
    (tmp_path / "ans-sft" / "reasonrft_stage.json").write_text(json.dumps(recorded))
    assert experiment._trained_with(config)
    recorded["warmup_steps"] = config.warmup_steps + 5  # as if the code's default had changed since
    (tmp_path / "ans-sft" / "reasonrft_stage.json").write_text(json.dumps(recorded))
    with pytest.raises(UserError, match=f"warmup_steps: {config.warmup_steps + 5} there, {config.warmup_steps} now"):
        experiment._trained_with(config)


def test_an_interrupted_stage_resumes_from_its_checkpoint_under_the_same_settings_only(nano_model, tmp_path, capsys):
    """A compare stopped mid-stage (a session's end) continues from the stage's newest
    checkpoint, not from step 0; checkpoints left by a run with other settings are refused."""
    out = tmp_path / "compare"
    argv = ["compare", "--task", "counting", "--out", str(out), f"model={nano_model}", "n_train=6", "stage1=3", *TINY, "grpo_steps=2", "checkpoint_steps=1", "paradigms=[reason-rft-zero]"]
    assert cli.main(argv) == 0
    stage = out / "reason-rft-zero"
    assert json.loads((stage / "trainer_state.json").read_text())["global_step"] == 2

    def interrupt_after_step_1():  # what a kill during step 2 leaves: checkpoint-1, no final model
        for name in ("config.json", "model.safetensors", "reasonrft_stage.json"):
            (stage / name).unlink()
        shutil.rmtree(stage / "checkpoint-2")

    interrupt_after_step_1()
    kept = {p.name: p.stat().st_mtime_ns for p in (stage / "checkpoint-1").iterdir()}
    assert cli.main(argv) == 0
    assert json.loads((stage / "trainer_state.json").read_text())["global_step"] == 2 and (stage / "config.json").is_file()
    assert {p.name: p.stat().st_mtime_ns for p in (stage / "checkpoint-1").iterdir()} == kept  # resumed from it, not retrained over it

    interrupt_after_step_1()
    capsys.readouterr()
    assert cli.main([*argv, "grpo_learning_rate=0.001"]) == 2
    assert "reason-rft-zero: holds checkpoints of an interrupted run with other settings (learning_rate: 2e-05 there, 0.001 now)" in capsys.readouterr().err


def test_a_compare_that_varies_grpo_links_the_earlier_stages_and_trains_only_grpo(nano_model, tmp_path, capsys):
    """``reuse_models_from``: stages trained with the same settings and data are linked and their
    evaluations copied; the changed stage (GRPO's steps, stage 1's epochs) and what follows it
    train; another SFT setting links nothing."""
    first, second, third = (tmp_path / name for name in ("first", "second", "third"))

    def compare(out, *overrides) -> int:
        return cli.main(["compare", "--task", "counting", "--out", str(out), f"model={nano_model}", "n_train=6", "stage1=3", *TINY, "paradigms=[cot-sft, reason-rft]", *overrides])

    assert compare(first) == 0
    assert compare(second, "grpo_steps=2", f"reuse_models_from={first}") == 0
    for stage in ("cot-sft", "stage1"):
        assert (second / stage).is_symlink() and (second / stage).resolve() == (first / stage).resolve()
        assert json.loads((second / "eval" / stage / "summary.json").read_text())["copied_from"] == str(first / "eval" / stage)
    assert not (second / "reason-rft").is_symlink()
    assert json.loads((second / "reason-rft" / "trainer_state.json").read_text())["global_step"] == 2
    rows = [json.loads((out / "results.json").read_text())["rows"] for out in (first, second)]
    assert rows[0]["cot-sft"]["splits"] == rows[1]["cot-sft"]["splits"]
    assert "cot-sft: linked to" in capsys.readouterr().out
    assert compare(second, "grpo_steps=2", f"reuse_models_from={first}") == 0  # a re-run checks its links again and reuses all
    assert json.loads((second / "results.json").read_text())["rows"] == rows[1]
    assert compare(third, "sft_learning_rate=0.5", "paradigms=[cot-sft]", f"reuse_models_from={first}") == 0
    assert not (third / "cot-sft").is_symlink() and "copied_from" not in json.loads((third / "eval" / "cot-sft" / "summary.json").read_text())
    strict = tmp_path / "strict"  # GRPO with other rewards: stage 1 linked, GRPO trained on them and reported
    assert compare(strict, "paradigms=[reason-rft]", "grpo_rewards={strict_format: 1, accuracy: 1}", f"reuse_models_from={first}") == 0
    assert (strict / "stage1").is_symlink() and not (strict / "reason-rft").is_symlink()
    assert json.loads((strict / "reason-rft" / "reasonrft_stage.json").read_text())["rewards"] == {"strict_format": 1.0, "accuracy": 1.0}
    assert "rewards strict_format 1 + accuracy 1:" in (strict / "results.md").read_text()
    capsys.readouterr()
    assert compare(strict, "grpo_rewards={formatt: 1}") == 2
    assert capsys.readouterr().err.strip().endswith("unknown grpo_rewards formatt; choose from format, strict_format, accuracy, math_accuracy, func_accuracy, full_func_accuracy")
    fourth = tmp_path / "fourth"  # stage 1 alone given more epochs: it trains again, and so does its GRPO
    assert compare(fourth, "stage1_epochs=2", "paradigms=[cot-sft, reason-rft]", f"reuse_models_from={first}") == 0
    assert (fourth / "cot-sft").is_symlink() and not (fourth / "stage1").is_symlink() and not (fourth / "reason-rft").is_symlink()
    assert json.loads((fourth / "stage1" / "reasonrft_stage.json").read_text())["num_train_epochs"] == 2
