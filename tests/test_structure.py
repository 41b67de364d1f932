"""Tests of the ``structure`` family: every solver against a measurement of the drawn figure,
the option and split statistics, determinism, prompts and scoring."""

from __future__ import annotations

import collections
import math
import random
import re

import pytest

from reasonrft import rewards
from reasonrft.tasks import get_task
from reasonrft.tasks.structure import BUILDERS, ID_FAMILIES, LETTERS, OOD_FAMILIES, StructureConfig, fmt

TASK = get_task("structure")
N_PER_SPLIT = 240


@pytest.fixture(scope="module")
def samples():
    return {split: [TASK.sample(split, i) for i in range(N_PER_SPLIT)] for split in TASK.splits}


# --------------------------------------------------------------------------- independent measurement


def measure(points: dict, m: tuple) -> float:
    """The quantity ``m`` measured from the figure's coordinates alone (no solver code)."""
    kind, refs = m[0], m[1:]
    if kind == "angle":
        p, v, q = (points[n] for n in refs)
        a = (p[0] - v[0], p[1] - v[1])
        b = (q[0] - v[0], q[1] - v[1])
        cos = (a[0] * b[0] + a[1] * b[1]) / (math.hypot(*a) * math.hypot(*b))
        return math.degrees(math.acos(max(-1.0, min(1.0, cos))))
    if kind == "length":
        return math.dist(points[refs[0]], points[refs[1]])
    if kind in ("area", "perimeter"):
        poly = [points[n] for n in refs[1:]]
        pairs = list(zip(poly, poly[1:] + poly[:1]))
        if kind == "perimeter":
            return sum(math.dist(a, b) for a, b in pairs)
        return abs(sum(a[0] * b[1] - b[0] * a[1] for a, b in pairs)) / 2  # shoelace
    radius = math.dist(points[refs[0]], points[refs[1]])
    return 2 * math.pi * radius if kind == "circumference" else math.pi * radius**2


@pytest.mark.parametrize("family", sorted(BUILDERS))
def test_solver_matches_the_drawn_figure(family):
    kinds = set()
    for seed in range(80):
        problem = BUILDERS[family](random.Random(seed))
        kinds.add(problem.kind)
        points = problem.figure.points
        for given in problem.givens:  # the figure is drawn to scale: every given holds in it
            tolerance = 0.051 if given.measure[0] == "circumference" else 1e-6 * max(1.0, given.value)
            assert measure(points, given.measure) == pytest.approx(given.value, abs=tolerance), (seed, given)
        value = problem.target.value
        assert measure(points, problem.target.measure) == pytest.approx(value, rel=1e-6, abs=1e-6), (seed, problem.kind)
        for p, q, _ in problem.figure.segments:
            assert math.dist(points[p], points[q]) > 1e-6
        if problem.target.measure[0] == "angle":
            assert 0 < value < 180
        assert value > 0
    assert len(kinds) >= 2, kinds  # every sub-kind of a family is reached in a few seeds


def test_circle_centre_is_equidistant():
    for seed in range(40):
        for family in ("circle_angles", "circle_measure"):
            problem = BUILDERS[family](random.Random(seed))
            (centre, radius), = problem.figure.circles
            on_circle = [n for n in problem.figure.points if n != centre]
            for name in on_circle:
                assert math.dist(problem.figure.points[centre], problem.figure.points[name]) == pytest.approx(radius)


# --------------------------------------------------------------------------- samples


def test_families_per_split(samples):
    train = {s.meta["family"] for s in samples["train"]}
    test_id = {s.meta["family"] for s in samples["test-id"]}
    ood = {s.meta["family"] for s in samples["test-ood"]}
    assert train == test_id == set(ID_FAMILIES)
    assert ood == set(OOD_FAMILIES)
    assert not ood & train


def test_splits_disjoint(samples):
    keys = {split: {s.meta["scene_key"] for s in samples[split]} for split in TASK.splits}
    assert not keys["train"] & keys["test-id"]
    assert not keys["train"] & keys["test-ood"]
    assert not keys["test-id"] & keys["test-ood"]


@pytest.mark.parametrize("split", TASK.splits)
def test_choice_fraction_letters_and_answer_balance(samples, split):
    items = samples[split]
    choice = [s for s in items if s.meta["choice"]]
    assert 0.3 <= len(choice) / len(items) <= 0.7
    letters = collections.Counter(s.answer for s in choice)
    assert set(letters) == set(LETTERS)
    assert all(0.12 <= n / len(choice) <= 0.38 for n in letters.values()), letters
    top_answer, top = collections.Counter(s.answer for s in items).most_common(1)[0]
    assert top / len(items) <= 0.25, top_answer
    assert all(TASK.groups(s.answer) == (("choice",) if s.meta["choice"] else ("non-choice",)) for s in items)


def test_options_are_distinct_and_hold_the_answer(samples):
    for s in (s for split in TASK.splits for s in samples[split] if s.meta["choice"]):
        options = s.meta["options"]
        assert len(options) == 4 and len(set(options)) == 4, options
        assert all(float(o) > 0 for o in options)
        assert options[LETTERS.index(s.answer)] == fmt(s.meta["value"], s.meta["decimals"])
        listed = " ".join(f"{letter}. {o}" for letter, o in zip(LETTERS, options))
        assert s.problem.endswith("Choices: " + listed)
        assert s.cot.endswith(f"is choice {s.answer}.\nSo the answer is {s.answer}.")


def test_numeric_answers_follow_the_stated_rounding(samples):
    for s in (s for split in TASK.splits for s in samples[split] if not s.meta["choice"]):
        if s.meta["decimals"] == 0:
            assert re.fullmatch(r"\d+", s.answer) and s.problem.endswith("Round to the nearest integer."), s.problem
        else:
            assert re.fullmatch(r"\d+\.\d", s.answer) and s.problem.endswith("Round to one decimal place."), s.problem
        assert float(s.answer) == pytest.approx(s.meta["value"], abs=0.5 * 10 ** -s.meta["decimals"] + 1e-9)
        assert s.cot.endswith(f"So the answer is {s.answer}.")


def test_the_image_is_needed_and_the_cot_is_short(samples):
    for s in (s for split in TASK.splits for s in samples[split]):
        assert s.meta["diagram_givens"] >= 1 or s.meta["x_mode"]  # some given or the unknown only in the image
        assert ("find x." in s.problem.lower()) == s.meta["x_mode"]
        assert len(s.cot.split()) < 60, s.cot
        assert s.images[0].size == (224, 224) and s.images[0].mode == "RGB"
        assert s.images[0].getextrema() != ((255, 255), (255, 255), (255, 255))


def test_gold_scores_one_and_a_perturbed_answer_less(samples):
    for s in (s for split in TASK.splits for s in samples[split][:80]):
        completion = f"<think>\n{s.cot}\n</think>\n<answer>\n{s.answer}\n</answer>"
        for score in (rewards.accuracy_score, rewards.math_accuracy_score, TASK.score):
            assert score(completion, s.answer) == 1.0
        assert rewards.format_score(completion) == 1.0
        wrong = LETTERS[(LETTERS.index(s.answer) + 1) % 4] if s.meta["choice"] else fmt(float(s.answer) * 1.5 + 1, s.meta["decimals"])
        for score in (rewards.accuracy_score, rewards.math_accuracy_score):
            assert score(f"<think>x</think><answer>{wrong}</answer>", s.answer) < 1.0
        assert rewards.math_accuracy_reward([completion], solution=[s.answer]) == [1.0]


def test_prompt_variants():
    choice = TASK.sample("train", next(i for i in range(50) if TASK.sample("train", i).meta["choice"]))
    number = TASK.sample("train", next(i for i in range(50) if not TASK.sample("train", i).meta["choice"]))
    assert "letter A, B, C or D" in TASK.build_prompt(choice.problem, choice.answer, "cot")
    assert "float or int number" in TASK.build_prompt(number.problem, number.answer, "cot")
    for s in (choice, number):
        cot = TASK.build_prompt(s.problem, s.answer, "cot")
        assert cot.startswith(s.problem) and "<think> </think>" in cot and "<answer> </answer>" in cot
        assert TASK.build_prompt(s.problem, s.answer, "answer") == s.problem
        assert TASK.build_prompt(s.problem, s.answer, "zero-shot").startswith(s.problem + " Answer with")
    assert "letter" in TASK.build_prompt(choice.problem, choice.answer, "zero-shot")
    corpus = " ".join(TASK.corpus())
    assert all(word in corpus for word in ("circumference", "trapezoid", "Choices:", "Round to one decimal place."))


# --------------------------------------------------------------------------- config
# (determinism within and across processes: tests/test_tasks_contract.py, for every task and split)


def test_image_size_config():
    s = TASK.sample("test-ood", 0, config=StructureConfig(image_size=256))
    assert s.images[0].size == (256, 256)


@pytest.mark.parametrize(
    "bad",
    [dict(image_size=32), dict(p_choice=1.5), dict(p_text_given=-0.1), dict(p_x=2.0), dict(holdout_modulus=1)],
)
def test_bad_config_raises(bad):
    with pytest.raises(ValueError):
        StructureConfig(**bad)
