"""The contract every registered task family must keep (loops over the whole registry)."""

from __future__ import annotations

import collections
import io
import json
import subprocess
import sys

import pytest

from reasonrft import rewards
from reasonrft.tasks import PROMPT_STYLES, get_task, task_names

TASKS = task_names(include_pretraining=True)  # every registered family, the pretraining one too
SPLITS = [(t, s) for t in TASKS for s in get_task(t).splits]


def png_bytes(image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def fingerprint(task: str, split: str, idx: int, seed: int = 0) -> str:
    import hashlib

    s = get_task(task).sample(split, idx, seed)
    h = hashlib.sha256()
    for img in s.images:
        h.update(png_bytes(img))
    h.update(json.dumps([s.id, s.problem, s.cot, s.answer, s.meta], sort_keys=True).encode())
    return h.hexdigest()


def test_registry_has_the_counting_family():
    assert "counting" in TASKS


@pytest.mark.parametrize("task,split", SPLITS)
def test_item_is_deterministic_and_independent_of_order(task, split):
    first = fingerprint(task, split, 7)
    for i in range(3):  # generating other items first must not change item 7
        get_task(task).sample(split, i)
    assert fingerprint(task, split, 7) == first
    assert fingerprint(task, split, 7, seed=1) != first


def test_items_are_identical_across_processes():
    """Hash randomisation differs between processes: a set iterated in a generator shows here."""
    script = "import json,sys; sys.path.insert(0, 'tests'); from test_tasks_contract import fingerprint, SPLITS; print(json.dumps([fingerprint(t, s, 3) for t, s in SPLITS]))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, env={"PYTHONHASHSEED": "123", "PATH": ""}).stdout
    assert json.loads(out) == [fingerprint(t, s, 3) for t, s in SPLITS]


@pytest.mark.parametrize("task,split", SPLITS)
def test_gold_scores_one_and_a_perturbed_answer_scores_less(task, split):
    t = get_task(task)
    reward = rewards.REWARDS[t.accuracy_reward]
    for idx in range(20):
        s = t.sample(split, idx)
        gold_completion = f"<think>\n{s.cot}\n</think>\n<answer>\n{s.answer}\n</answer>"
        assert rewards.format_score(gold_completion) == 1.0
        assert t.score(gold_completion, s.answer) == 1.0, s.id
        assert reward([gold_completion], solution=[s.answer]) == [1.0], s.id
        wrong = f"<think>\n{s.cot}\n</think>\n<answer>\n{_perturb(s.answer)}\n</answer>"
        assert t.score(wrong, s.answer) < 1.0, (s.id, s.answer)
        assert reward([wrong], solution=[s.answer])[0] < 1.0, (s.id, s.answer)


def _perturb(answer: str) -> str:
    """A different answer of the same kind: a number off by a lot, another letter, a
    program with one call dropped or its value changed; any other text, lengthened."""
    if answer.strip().lstrip("-").replace(".", "", 1).isdigit():
        return str(round(float(answer) * 3 + 7, 2))
    if answer in ("A", "B", "C", "D"):
        return "ABCD"[("ABCD".index(answer) + 1) % 4]
    calls = rewards.parse_calls(answer)
    if not calls:
        return answer + " extra"
    if len(calls) > 1:
        return "\n".join(f"{f}({o}, {v})" for f, o, v in calls[1:])
    f, o, v = calls[0]
    return f"{f}({o}, not_{v})"


@pytest.mark.parametrize("task", TASKS)
def test_splits_share_no_scene(task):
    t = get_task(task)
    keys = {split: {t.sample(split, i).meta["scene_key"] for i in range(60)} for split in t.splits}
    for a in t.splits:
        for b in t.splits:
            if a < b:
                assert not keys[a] & keys[b], (a, b)


@pytest.mark.parametrize("task,split", SPLITS)
def test_no_answer_above_a_quarter_of_a_split(task, split):
    t = get_task(task)
    counts = collections.Counter(t.sample(split, i).answer for i in range(200))
    answer, count = counts.most_common(1)[0]
    assert count / 200 <= 0.25, (answer, count)


@pytest.mark.parametrize("task", TASKS)
def test_prompts_images_and_meta(task):
    t = get_task(task)
    s = t.sample(t.train_split, 0)
    assert len(s.images) == t.num_images or (t.pretraining and 1 <= len(s.images) <= t.num_images)
    assert all(img.mode == "RGB" for img in s.images)
    json.dumps(dict(s.meta))
    for style in PROMPT_STYLES:
        prompt = t.build_prompt(s.problem, s.answer, style)
        assert s.problem in prompt
    assert "<think>" in t.build_prompt(s.problem, s.answer, "cot")
    assert "<think>" not in t.build_prompt(s.problem, s.answer, "zero-shot")


@pytest.mark.parametrize("task", TASKS)
def test_bad_config_raises_value_error(task):
    t = get_task(task)
    import dataclasses

    field = next(f for f in dataclasses.fields(t.config_cls) if f.name == "image_size")
    with pytest.raises(ValueError):
        t.config_cls(**{field.name: 1})


def test_unknown_task_and_split_are_user_errors():
    from reasonrft.errors import UserError

    with pytest.raises(UserError, match="unknown task 'nope'"):
        get_task("nope")
    with pytest.raises(UserError, match="unknown split"):
        get_task("counting").sample("validation", 0)
    with pytest.raises(UserError, match=">= 0"):
        get_task("counting").sample("train", -1)


def test_generation_budgets_cover_the_longest_gold_completion(nano_model):
    """A budget shorter than the gold CoT truncates right answers to a score of 0."""
    from reasonrft import modeling
    from reasonrft.data import Record, sft_target
    from reasonrft.stages import demo, evaluate, experiment, grpo

    tokenizer = modeling.load_processor(nano_model).tokenizer
    longest = max(
        len(tokenizer(sft_target(Record(s.id, [], s.problem, s.answer, s.cot), "cot"))["input_ids"])
        for t in task_names()
        for split in get_task(t).splits
        for s in (get_task(t).sample(split, i) for i in range(40))
    )
    budgets = [evaluate.EvalConfig.max_new_tokens, experiment.CompareConfig.max_new_tokens, demo.DemoConfig.max_new_tokens, grpo.GRPOStageConfig.max_completion_length]
    assert min(budgets) >= longest + 16, (budgets, longest)
