"""Evaluation: the interval math, the summaries, the generation protocol, the order of work.

The interval tests compare against values worked by hand (Wilson) or against the exact
answer a bootstrap must approach; the generation tests run real ``generate()`` on a nano
model and look at what reaches it: the logits processors and the final generation config.
"""

from __future__ import annotations

import json
import math

import pytest

from reasonrft import data, modeling, stats
from reasonrft.cli import main
from reasonrft.config import build
from reasonrft.errors import UserError
from reasonrft.stages import evaluate
from reasonrft.tasks import get_task

# --------------------------------------------------------------------------- intervals


@pytest.mark.parametrize(
    "k, n, low, high",
    [
        (5, 10, 0.236593, 0.763407),  # textbook values
        (0, 10, 0.0, 0.277533),  # upper bound z^2 / (n + z^2)
        (10, 10, 0.722467, 1.0),
        (14, 100, 0.085263, 0.221372),
        (1, 1, 0.206549, 1.0),  # lower bound 1 / (1 + z^2)
    ],
)
def test_wilson_interval_known_values(k, n, low, high):
    assert stats.wilson_interval(k, n) == pytest.approx((low, high), abs=1e-6)


def test_bootstrap_interval_is_seeded_and_approaches_the_normal_one():
    values = [1.0] * 50 + [0.0] * 50  # mean 0.5, standard error 0.05
    low, high = stats.bootstrap_mean_interval([values], seed=3)
    assert (low, high) == stats.bootstrap_mean_interval([values], seed=3)
    assert low == pytest.approx(0.5 - 1.96 * 0.05, abs=0.012) and high == pytest.approx(0.5 + 1.96 * 0.05, abs=0.012)
    assert stats.bootstrap_mean_interval([[0.25] * 7], seed=0) == (0.25, 0.25)
    # two groups: the interval of the mean of means; a constant group adds no spread
    low2, high2 = stats.bootstrap_mean_interval([values, [1.0] * 10], seed=3)
    assert low2 == pytest.approx((low + 1.0) / 2, abs=0.01) and high2 == pytest.approx((high + 1.0) / 2, abs=0.01)


def test_mover_combines_wilson_intervals_as_newcombe_published():
    # Newcombe (1998), Stat Med 17:873, method 10: 56/70 - 48/80 = 0.2000, 95% CI 0.0524 to 0.3339
    parts = [(56 / 70, *stats.wilson_interval(56, 70)), (48 / 80, *stats.wilson_interval(48, 80))]
    assert stats.mover_interval(parts, [1.0, -1.0]) == pytest.approx((0.0524, 0.3339), abs=5e-4)
    # AVG of splits that all score 0: Wilson's upper bounds still give the interval a width
    avg = stats.average_interval([[0.0] * 100, [0.0] * 100, [0.0] * 100])
    assert avg["ci_method"] == "mover-wilson" and avg["ci95"] == [0.0, round(100 * stats.wilson_interval(0, 100)[1] / math.sqrt(3), 2)]
    assert stats.average_interval([[0.5, 1.0], [0.0, 0.25]])["ci_method"] == "bootstrap"  # partial credit


def test_accuracy_interval_picks_wilson_for_binary_scores_and_the_bootstrap_otherwise():
    assert stats.accuracy_interval([1.0] * 14 + [0.0] * 86) == {"n": 100, "accuracy": 14.0, "ci95": [8.53, 22.14], "ci_method": "wilson"}
    partial = stats.accuracy_interval([0.5, 0.25, 1.0, 0.0] * 25, seed=0)
    assert partial["ci_method"] == "bootstrap" and partial["accuracy"] == 43.75 and partial["ci95"][0] < 43.75 < partial["ci95"][1]
    avg = stats.average_interval([[1.0] * 14 + [0.0] * 86, [1.0] * 3 + [0.0] * 97], seed=0)
    assert avg["accuracy"] == 8.5 and avg["n"] == 200 and avg["ci95"][0] < 8.5 < avg["ci95"][1]
    assert stats.format_ci({"accuracy": 14.0, "ci95": [8.53, 22.14]}) == "14.00 [8.53, 22.14]"
    assert stats.format_ci({"difference": 2.9, "ci95": [0.5, 5.3]}, "difference", signed=True) == "+2.90 [+0.50, +5.30]"
    assert stats.format_ci({"difference": -3.5, "ci95": None}, "difference", signed=True) == "-3.50" and stats.format_ci(None) == "-"
    with pytest.raises(ValueError):
        stats.wilson_interval(3, 2)


def test_paired_difference_cancels_shared_difficulty():
    """Two models that agree on most questions: the paired interval is far narrower than the
    gap two unpaired Wilson intervals would need, and it is centred on the true difference."""
    first = [1.0] * 30 + [0.0] * 70
    second = [1.0] * 30 + [1.0] * 8 + [0.0] * 62  # the same 30 right, 8 more
    d = stats.paired_difference([first], [second], seed=0)
    assert d["difference"] == 8.0 and d["n"] == 100 and d["ci_method"] == "paired-bootstrap"
    assert 2.0 <= d["ci95"][0] < 8.0 < d["ci95"][1] <= 14.0  # excludes 0: a real gain
    unpaired = [stats.accuracy_interval(x)["ci95"] for x in (first, second)]
    assert unpaired[1][0] < unpaired[0][1]  # ... which the two unpaired intervals, overlapping, would miss
    assert stats.paired_difference([first], [first]) == {"n": 100, "difference": 0.0, "ci95": [0.0, 0.0], "ci_method": "paired-bootstrap"}
    two = stats.paired_difference([first, [0.0] * 10], [second, [1.0] * 10])  # averaged over splits, each equal
    assert two["difference"] == 54.0 and two["n"] == 110
    with pytest.raises(ValueError, match="same questions"):
        stats.paired_difference([first], [second[:-1]])


def test_most_frequent_answer_and_its_baseline_summary():
    assert stats.most_frequent_answer(["3", " 4", "4 ", "3", "5"]) == "3"  # a tie: the first seen
    task = get_task("structure")
    rec = lambda i, answer: data.Record(f"r{i}", ["x.png"], "q", answer)  # noqa: E731
    test = {"test-id": [rec(0, "B"), rec(1, "B"), rec(2, "C"), rec(3, "12.5")], "test-ood": [rec(4, "B"), rec(5, "7")]}
    summary = evaluate.most_frequent_answer_baseline(task, ["B", "B", "3", "A"], test)
    assert summary["answer"] == "B"
    assert {s: (e["n"], e["accuracy"]) for s, e in summary["splits"].items()} == {"test-id": (4, 50.0), "test-ood": (2, 50.0)}
    assert summary["splits"]["test-id"]["groups"] == {
        "choice": stats.accuracy_interval([1.0, 1.0, 0.0]),
        "non-choice": stats.accuracy_interval([0.0]),
    }


def test_the_best_constant_answer_is_the_most_frequent_under_exact_match_and_a_longer_guess_under_partial_credit():
    exact = lambda prediction, gold: float(prediction == gold)  # noqa: E731
    assert stats.best_constant_answer(["3", "4", " 4", "5"], exact) == "4"
    assert stats.best_constant_answer(["3", "4", "4", "3"], exact) == "3"  # a tie: the more frequent first, then the first seen
    task = get_task("transformation")
    color, size, shape = "change_color(0, red)", "change_size(1, small)", "change_shape(2, cube)"
    train = [color, color, size, size, shape, f"{color}, {size}, {shape}"]
    # always `color` scores 1 + 1 + 0 + 0 + 0 + 1/3; always all three calls 1/3 on each one-call answer and 1 on the last
    assert stats.most_frequent_answer(train) == color
    assert stats.best_constant_answer(train, task.score) == f"{color}, {size}, {shape}"
    rec = lambda i, answer: data.Record(f"r{i}", ["before.png", "after.png"], "q", answer)  # noqa: E731
    test = {"test-id": [rec(0, color), rec(1, shape)], "test-ood-left": [rec(2, f"{size}, {shape}")], "test-ood-right": [rec(3, "change_color(1, blue)")]}
    best = evaluate.best_constant_answer_baseline(task, train, test)
    assert best["answer"] == f"{color}, {size}, {shape}"
    # test-id: 1/3 + 1/3; left: 2 of 3 calls exact; right: color's function on another object and value, 0.25 / 3
    assert {s: e["accuracy"] for s, e in best["splits"].items()} == {"test-id": 33.33, "test-ood-left": 66.67, "test-ood-right": 8.33}


# --------------------------------------------------------------------------- summaries


def _rows(split: str, answers_scores: list[tuple[str, float]]) -> list[dict]:
    task = get_task("structure")
    return [{"split": split, "score": s, "format": 1.0, "pred": "p", "groups": list(task.groups(a))} for a, s in answers_scores]


def test_structure_summary_shows_choice_non_choice_and_overall_with_intervals():
    task = get_task("structure")
    rows = _rows("test-id", [("A", 1.0), ("B", 0.0), ("3", 1.0), ("4.5", 1.0)]) + _rows("test-ood", [("C", 1.0), ("2", 0.0)])
    summary = evaluate.summarize(task, rows, ["test-id", "test-ood"])
    test_id = summary["splits"]["test-id"]
    assert (test_id["n"], test_id["accuracy"], test_id["ci95"]) == (4, 75.0, [round(100 * x, 2) for x in stats.wilson_interval(3, 4)])
    assert {g: (v["n"], v["accuracy"]) for g, v in test_id["groups"].items()} == {"choice": (2, 50.0), "non-choice": (2, 100.0)}
    assert summary["average"] == 62.5 and summary["shift_splits"] == ["test-ood"] and summary["shift_average"] == 50.0
    assert summary["shift_average_ci95"] == [round(100 * x, 2) for x in stats.wilson_interval(1, 2)]  # one shift split: its own interval
    md = evaluate.summary_markdown(summary)
    ci = test_id["ci95"]
    assert f"| test-id | 4 | 75.00 | 100.00 | [{ci[0]:.2f}, {ci[1]:.2f}] |" in md
    assert "| test-id | choice | 2 | 50.00 |" in md and "| test-id | non-choice | 2 | 100.00 |" in md and "| test-id | overall | 4 | 75.00 |" in md
    assert "| **AVG** | | **62.50** | |" in md and "domain-shift AVG (test-ood)" in md


def test_eval_predictions_of_structure_show_the_three_accuracies(tmp_path, capsys):
    f = tmp_path / "geomath.json"
    f.write_text(json.dumps([
        {"image": "a.png", "problem": "q", "solution": "B", "pred": "<answer>B</answer>"},
        {"image": "a.png", "problem": "q", "solution": "C", "pred": "<answer>(C)</answer>"},  # as the official evaluator: 0
        {"image": "a.png", "problem": "q", "solution": "12.5", "pred": "<answer>12.50</answer>"},  # math_verify: 1
    ]))
    assert main(["eval", "--task", "structure", "--predictions", str(f)]) == 0
    out = capsys.readouterr().out
    assert "| test-id | 3 | 66.67 |" in out  # geomath.json: the in-domain split
    assert "| test-id | choice | 2 | 50.00 |" in out and "| test-id | non-choice | 1 | 100.00 |" in out and "| test-id | overall | 3 | 66.67 |" in out


# --------------------------------------------------------------------------- generation protocol


def _spy_logits_processors(model) -> list:
    """Record (generation config, logits processors) of every ``generate()`` call on ``model``."""
    calls = []
    original = model._get_logits_processor

    def spy(generation_config, *args, **kwargs):
        processors = original(generation_config, *args, **kwargs)
        calls.append((generation_config, processors))
        return processors

    model._get_logits_processor = spy
    return calls


def test_a_checkpoints_generation_config_cannot_change_the_protocol(nano_model, tmp_path):
    from transformers.generation import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    model = modeling.load_model(nano_model)
    model.generation_config.update(repetition_penalty=1.05, top_k=None, no_repeat_ngram_size=3, min_new_tokens=4, do_sample=False)
    model.save_pretrained(tmp_path)  # a checkpoint that ships its own sampling settings
    model = modeling.load_model(tmp_path).eval()
    assert model.generation_config.repetition_penalty == 1.05 and model.generation_config.no_repeat_ngram_size == 3
    calls = _spy_logits_processors(model)
    task = get_task("counting")
    records = data.generate_records(task, "test-id", 2)
    config = build(evaluate.EvalConfig, dict(model=str(tmp_path), temperature=0.7, top_p=0.8, top_k=7, max_new_tokens=5, progress=False))
    evaluate.generate(model, modeling.load_processor(nano_model), task, records, config, "cpu")

    generation_config, processors = calls[0]
    assert [type(p) for p in processors] == [TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper]  # no repetition penalty, no n-gram ban, no min length
    assert (processors[0].temperature, processors[1].top_k, processors[2].top_p) == (0.7, 7, 0.8)
    assert generation_config.do_sample is True and generation_config.max_new_tokens == 5
    assert (generation_config.repetition_penalty, generation_config.no_repeat_ngram_size, generation_config.min_new_tokens) == (1.0, 0, None)

    defaults = build(evaluate.EvalConfig, dict(model=str(tmp_path), progress=False))
    assert (defaults.temperature, defaults.top_p, defaults.top_k, defaults.repetition_penalty) == (0.1, 0.9, 50, 1.0)  # the paper's
    evaluate.generate(model, modeling.load_processor(nano_model), task, records[:1], build(evaluate.EvalConfig, dict(model=str(tmp_path), temperature=0.0, max_new_tokens=3, repetition_penalty=1.2, progress=False)), "cpu")
    generation_config, processors = calls[1]
    assert generation_config.do_sample is False and [type(p).__name__ for p in processors] == ["RepetitionPenaltyLogitsProcessor"] and processors[0].penalty == 1.2


@pytest.fixture(scope="module")
def seeing_model(nano_model) -> str:
    """The shipped base (its outputs differ from prompt to prompt); a fresh nano model without one."""
    base = modeling.shipped_base()
    return str(base) if base else nano_model


def _generate(model_dir: str, records: list, **values) -> list[str]:
    task = get_task("counting")
    config = build(evaluate.EvalConfig, dict(model=model_dir, max_new_tokens=12, progress=False, **values))
    model = modeling.load_model(model_dir).eval()
    return evaluate.generate(model, modeling.load_processor(model_dir), task, records, config, "cpu")


def test_greedy_predictions_do_not_depend_on_the_batch_size(seeing_model):
    task = get_task("counting")
    records = data.generate_records(task, "test-ood-m", 3) + data.generate_records(task, "test-id", 3)
    assert len({len(r.problem) for r in records}) == 6  # prompts of different lengths: left padding at work
    alone = _generate(seeing_model, records, temperature=0.0, batch_size=1)
    assert len(set(alone)) > 1  # not one degenerate output for every prompt
    assert _generate(seeing_model, records, temperature=0.0, batch_size=4) == alone
    assert _generate(seeing_model, records, temperature=0.0, batch_size=6) == alone


def test_the_in_place_cache_gives_the_same_predictions(seeing_model, monkeypatch):
    """Evaluation decodes with ``rollout_cache``'s in-place KV cache: every layer of the cache
    ``generate`` uses is one, and the text is exactly transformers' own cache's."""
    from reasonrft import rollout_cache

    records = data.generate_records(get_task("counting"), "test-ood-m", 2) + data.generate_records(get_task("counting"), "test-id", 2)
    appended = []
    original = rollout_cache.GrowingLayer.update
    monkeypatch.setattr(rollout_cache.GrowingLayer, "update", lambda self, *a, **k: appended.append(1) or original(self, *a, **k))
    in_place = _generate(seeing_model, records, temperature=0.0)
    assert len(appended) >= 12 * 2  # every decode step of every layer went through it
    monkeypatch.setattr(rollout_cache.GrowingLayer, "update", original)
    task = get_task("counting")
    config = build(evaluate.EvalConfig, dict(model=seeing_model, max_new_tokens=12, temperature=0.0, progress=False))
    plain = evaluate.generate(modeling.load_model(seeing_model).eval(), modeling.load_processor(seeing_model), task, records, config, "cpu", in_place_cache=False)
    assert in_place == plain and len(set(plain)) > 1


def test_sampled_predictions_repeat_with_the_same_sample_seed(seeing_model):
    records = data.generate_records(get_task("counting"), "test-id", 4)
    first = _generate(seeing_model, records, temperature=1.0, top_k=0, top_p=1.0, batch_size=4, sample_seed=5)
    assert _generate(seeing_model, records, temperature=1.0, top_k=0, top_p=1.0, batch_size=4, sample_seed=5) == first
    assert _generate(seeing_model, records, temperature=1.0, top_k=0, top_p=1.0, batch_size=4, sample_seed=6) != first


# --------------------------------------------------------------------------- order of work


def test_a_bad_test_set_fails_before_the_model_loads(tmp_path, monkeypatch):
    task = get_task("counting")
    for split in task.test_splits:
        data.write_dataset(tmp_path / split, data.generate_records(task, split, 2), {"task": "counting", "split": split})
    broken = tmp_path / "test-ood-m" / data.DATA_FILE  # the last split: found only if every split is read first
    rows = json.loads(broken.read_text())
    rows[1]["problem"] = 7
    broken.write_text(json.dumps(rows))
    loaded = []
    monkeypatch.setattr(modeling, "load_model", lambda *a, **k: loaded.append(a) or pytest.fail("the model loaded before the data were checked"))
    monkeypatch.setattr(modeling, "load_processor", lambda *a, **k: loaded.append(a) or pytest.fail("the processor loaded before the data were checked"))
    with pytest.raises(UserError, match=r"test-ood-m/data.json: record 1 .*field 'problem' must be str"):
        evaluate.run(build(evaluate.EvalConfig, dict(model=str(tmp_path), task="counting", data_root=str(tmp_path), n=0, progress=False)))
    assert not loaded and not (tmp_path / "eval-counting").exists()
