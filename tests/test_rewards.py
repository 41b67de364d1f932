"""Rewards, table-driven: valid, invalid, mixed and adversarial completions."""

from __future__ import annotations

import math
import time

import pytest

from reasonrft import rewards
from reasonrft.rewards import accuracy_score, answer_match_score, format_score, func_sequence_score, math_accuracy_score, strict_format_score

GOOD = "<think>\nThere are 3 objects.\n</think>\n<answer>\n3\n</answer>"


@pytest.mark.parametrize(
    "text, expected",
    [
        (GOOD, 1.0),
        ("<think>x</think><answer>3</answer>", 1.0),
        ("<think></think> \n\t <answer></answer>", 1.0),
        ("<think>a</think>b<answer>3</answer>", 0.0),  # text between the blocks
        (" <think>a</think><answer>3</answer>", 0.0),  # leading space: not a full match
        ("<think>a</think><answer>3</answer> ", 0.0),  # trailing space
        ("<answer>3</answer>", 0.0),
        ("<think>a</think>", 0.0),
        ("3", 0.0),
        ("", 0.0),
        ("<think>a<think>b</think>c</think><answer>3</answer>", 1.0),  # nested tags: .*? spans them
        ("<think>a</think><answer>1</answer><answer>2</answer>", 1.0),  # two answer blocks still match
        ("<think></answer>", 0.0),
    ],
)
def test_format_score_matches_the_papers_regex(text, expected):
    import re

    reference = 1.0 if re.fullmatch(r"<think>.*?</think>\s*<answer>.*?</answer>", text, re.DOTALL) else 0.0
    assert format_score(text) == expected == reference


@pytest.mark.parametrize(
    "text, expected",
    [
        ("<think>a</think>\n<answer>3</answer>", 1.0),
        ("<think>a</think><answer>1</answer><answer>2</answer>", 0.0),  # the paper's format: 1
        ("<think>a</think><answer>1</think><answer>2</answer>", 0.0),  # GRPO's loop on transformation (results 5.N2): 1 there
        ("<think>a<think>b</think>c</think><answer>3</answer>", 0.0),
        ("<think>a</think>b<answer>3</answer>", 0.0),
        ("<think>a</think><answer>3", 0.0),
    ],
)
def test_strict_format_allows_one_block_of_each_kind(text, expected):
    assert strict_format_score(text) == expected
    assert strict_format_score(text) <= format_score(text)  # never more lenient than the paper's


@pytest.mark.parametrize(
    "text, solution, expected",
    [
        (GOOD, "3", 1.0),
        (GOOD, "<answer> 3 </answer>", 1.0),
        ("<answer>4</answer>", "3", 0.0),
        ("<answer>03</answer>", "3", 0.0),  # a tag is present: exact string match only
        ("<answer>\u0663</answer>", "3", 0.0),  # Arabic-Indic digit three: not the string "3"
        ("<answer>3</answer><answer>4</answer>", "3", 1.0),  # the first block counts
        ("<answer>4</answer><answer>3</answer>", "3", 0.0),
        ("<answer>3", "3", 0.0),  # no closing tag: no block; math_verify finds no answer in it
        ("The answer is 3", "3", 1.0),  # no tag: math_verify fallback
        ("The answer is 4", "3", 0.0),
        ("3", "3", 1.0),
        ("", "3", 0.0),
    ],
)
def test_accuracy_score(text, solution, expected):
    assert accuracy_score(text, solution) == expected


# The evaluation scorer of counting and structure. Each value was checked against math_verify
# itself; the right column is what the training reward (accuracy_score) gives.
ANSWER_MATCH = [
    # (completion, gold, evaluation score, training reward)
    ("<answer>9 objects</answer>", "9", 1.0, 0.0),  # units
    ("<answer>10.0</answer>", "10", 1.0, 0.0),  # decimals
    ("<answer>\n12.50\n</answer>", "12.5", 1.0, 0.0),
    ("<answer>\\frac{315}{1}</answer>", "315", 1.0, 0.0),  # LaTeX fraction
    ("$\\frac{1}{2}$", "0.5", 1.0, 1.0),  # no block: the whole output
    ("x = 5", "5", 1.0, 1.0),
    ("<think>t</think>\n<answer>\nB\n</answer>", "B", 1.0, 1.0),  # letters: exact only
    ("B", "B", 1.0, 1.0),
    ("<answer>(B)</answer>", "B", 0.0, 0.0),  # math_verify reads no letter: as the official evaluator
    ("(B)", "B", 0.0, 0.0),
    ("<answer>b</answer>", "B", 0.0, 0.0),
    ("<answer>C</answer>", "B", 0.0, 0.0),
    ("<answer>19</answer>", "9", 0.0, 0.0),  # near misses
    ("<answer>9 or 10</answer>", "9", 0.0, 0.0),  # math_verify reads the last number: 10
    ("<answer>10 or 9</answer>", "9", 1.0, 0.0),  # ... so this hedge passes, in the official evaluator too
    ("<answer>-9</answer>", "9", 0.0, 0.0),
    ("<answer>9.0001</answer>", "9", 0.0, 0.0),
    ("<answer></answer>", "9", 0.0, 0.0),  # empty block
    ("<answer>  </answer>", "9", 0.0, 0.0),
    ("", "9", 0.0, 0.0),
    ("<answer>8</answer><answer>9</answer>", "9", 0.0, 0.0),  # two blocks: the first counts
    ("<answer>9</answer><answer>8</answer>", "9", 1.0, 1.0),
    ("<answer>9", "9", 0.0, 0.0),  # no closing tag: no block, and math_verify finds no number
    ("The answer is 9", "9", 1.0, 1.0),
    ("<answer>9</answer>", "<answer> 9 </answer>", 1.0, 1.0),  # a tagged gold
]


def _official_scorer(text: str, gold: str) -> float:
    """The reference evaluator's counting/structure score, from its definition: the first
    answer block by a DOTALL regex (else the whole text), string equality, then
    math_verify with the prediction first, any exception a 0; inputs uncut."""
    import re

    from math_verify import parse, verify

    match = re.search(r"<answer>(.*?)</answer>", text, re.DOTALL)
    pred = (match.group(1) if match else text).strip()
    gold = rewards.extract_answer(gold)
    if pred == gold:
        return 1.0
    try:
        return 1.0 if verify(parse(pred), parse(gold)) else 0.0
    except Exception:
        return 0.0


@pytest.mark.parametrize("text, gold, expected, reward", ANSWER_MATCH)
def test_answer_match_score_equals_the_official_evaluator(text, gold, expected, reward):
    assert answer_match_score(text, gold) == expected == _official_scorer(text, gold)
    assert accuracy_score(text, gold) == reward  # the training reward stays the reference trainer's


def test_counting_and_structure_are_evaluated_with_the_official_scorer():
    from reasonrft.tasks import get_task

    for name in ("counting", "structure"):
        assert get_task(name).score is answer_match_score
        assert get_task(name).accuracy_reward != "answer_match"  # training keeps its reward


@pytest.mark.parametrize(
    "pred, gold, expected",
    [
        ("40", "40", 1.0),
        ("41", "40", 1.0),  # within 5 %
        ("49", "40", 0.0),  # beyond 20 %
        ("0", "0", 1.0),  # the reference code scores a correct 0 as 0: fixed
        ("0.0", "0", 1.0),
        ("1", "0", 0.0),
        ("B", "B", 1.0),
        ("C", "B", 0.0),
        ("b", "B", 0.0),
        ("forty", "40", 0.0),
        ("-40", "40", 0.0),
    ],
)
def test_math_accuracy_score(pred, gold, expected):
    assert math_accuracy_score(f"<think>.</think><answer>{pred}</answer>", gold) == expected


def test_math_accuracy_cosine_ramp_is_continuous_and_monotone():
    values = [math_accuracy_score(f"<answer>{100 + d}</answer>", "100") for d in (4.99, 5.0, 8.0, 12.5, 17.0, 20.0, 20.01)]
    assert values[0] == 1.0 and values[-1] == 0.0
    assert all(a >= b for a, b in zip(values, values[1:]))
    assert math.isclose(values[3], 0.5, abs_tol=1e-9)  # the midpoint of the ramp


GOLD_PROGRAM = "change_color(0, red)\nchange_position(2, left)"


@pytest.mark.parametrize(
    "pred, partial, penalty, expected",
    [
        (GOLD_PROGRAM, True, True, 1.0),
        ("change_position(2, 'left'), change_color(0, red)", True, True, 1.0),  # order and quotes ignored
        ("change_color(0, red)", True, True, 0.5),
        ("change_color(0, blue)\nchange_position(2, left)", True, True, 0.75),  # same func+object: 0.5
        ("change_color(1, red)\nchange_position(2, left)", True, True, 0.75),  # same func+value: 0.5
        ("change_color(1, blue)\nchange_position(2, left)", True, True, 0.625),  # same func: 0.25
        ("change_color(1, blue)\nchange_position(2, left)", False, True, 0.5),  # exact pass only
        ("change_color(0, red)\nchange_color(0, red)\nchange_position(2, left)", True, True, 2 / 3),  # repeat penalty
        ("change_color(0, red)\nchange_color(0, red)\nchange_position(2, left)", True, False, 1.0),
        ("change_size(0, large)", True, True, 0.0),
        ("no calls here", True, True, 0.0),
        ("", True, True, 0.0),
    ],
)
def test_func_sequence_score(pred, partial, penalty, expected):
    assert func_sequence_score(f"<answer>{pred}</answer>", GOLD_PROGRAM, partial=partial, repeat_penalty=penalty) == pytest.approx(expected)


def test_trl_signature_and_conversational_completions():
    completions = [[{"role": "assistant", "content": GOOD}], [{"role": "assistant", "content": "nope"}]]
    assert rewards.format_reward(completions) == rewards.strict_format_reward(completions) == [1.0, 0.0]
    assert rewards.accuracy_reward(completions, solution=["3", "3"], prompts=None, trainer_state=None) == [1.0, 0.0]
    assert rewards.math_accuracy_reward(["<answer>3</answer>"], solution=["3"]) == [1.0]
    assert rewards.full_func_accuracy_reward([f"<answer>{GOLD_PROGRAM}</answer>"], solution=[GOLD_PROGRAM]) == [1.0]
    with pytest.raises(ValueError, match="solution"):
        rewards.accuracy_reward(completions)


ADVERSARIAL = [
    "a" * 1_000_000,  # a megabyte of letters: quadratic for the paper's (\w+)\( pattern
    "<think>" + " " * 1_000_000,
    "<think>" + "</think>" * 100_000 + "x",
    "<answer>" * 100_000,
    "<think>a</think>" + "\n" * 500_000 + "<answer>" + "9" * 400_000 + "</answer>",
    "change_color(" * 80_000,
    "f(" + "a" * 500_000 + ", " + " " * 400_000,
    "\u0661" * 300_000,
]


@pytest.mark.parametrize("text", ADVERSARIAL, ids=[f"adversarial{i}" for i in range(len(ADVERSARIAL))])
def test_every_reward_is_fast_on_adversarial_input(text):
    start = time.perf_counter()
    for name, fn in rewards.REWARDS.items():
        scores = fn([text], solution=["3"])
        well_formed = name in ("format", "strict_format") and text.startswith("<think>a</think>")  # adversarial4: think, then an answer block
        assert scores == [1.0 if well_formed else 0.0], name  # none of them holds the answer 3
    assert time.perf_counter() - start < 3.0


@pytest.mark.parametrize("text", ADVERSARIAL, ids=[f"adversarial{i}" for i in range(len(ADVERSARIAL))])
def test_the_evaluation_scorer_is_fast_on_adversarial_input(text):
    start = time.perf_counter()
    assert answer_match_score(text, "3") == 0.0
    assert answer_match_score(text, text) == 1.0  # a megabyte gold equal to the prediction
    assert answer_match_score(f"<answer>{text}</answer>", "8" * 100_000) == 0.0
    assert time.perf_counter() - start < 1.0
