"""Reward functions of Reason-RFT, as pure functions with TRL's reward signature.

Each reward comes in two layers:
- a scalar scorer, ``*_score(text, solution) -> float`` in [0, 1], used by evaluation too;
- a TRL reward function, ``*_reward(completions, solution, **kwargs) -> list[float]``, which
  applies the scorer to every completion. ``completions`` may be plain strings or TRL's
  conversational form ``[{"role": "assistant", "content": ...}]``; the ground truth comes in
  the dataset column ``solution``.

The definitions follow the paper (see ``shared/reference/reason-rft.md`` section 5):
- ``format``: 1 iff the whole completion matches ``<think>.*?</think>\\s*<answer>.*?</answer>``
  (DOTALL, full match).
- ``accuracy``: exact string match of the stripped answer blocks; only when the completion
  has no ``<answer>`` tag, fall back to math_verify.
- ``math_accuracy``: cosine-tolerance reward on numbers, exact match on anything else.
- ``answer_match_score`` (evaluation only, not a reward): the official evaluator's scorer,
  exact match or math_verify on the answer block.
- ``func_accuracy`` / ``full_func_accuracy``: scores of a predicted transformation program.
- ``strict_format`` (beyond the paper): ``format`` with exactly one block of each kind.

Every scorer runs in time linear in the input: the paper's regexes are re-implemented with
``str.find`` or with possessive quantifiers and a word-boundary guard, which accept exactly
the same strings (see the comments) without the catastrophic backtracking of the originals
on adversarial input such as a megabyte of letters. Explicit choices beyond the paper:
- the math_verify fallback of ``accuracy`` reads only the last ``MATH_VERIFY_TAIL``
  characters of each side, so its sympy parse is bounded on any input;
- a correct 0 scores 1 in ``math_accuracy`` (the reference code divides by zero and gives 0).
"""

from __future__ import annotations

import math
import re
import threading
from typing import Any, Callable, Iterable

ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
MATH_VERIFY_TAIL = 512

# The paper's format pattern, minus the outer tags (checked separately): the middle must
# contain "</think>", optional whitespace, "<answer>". Each candidate "</think>" is followed
# by one whitespace run only, so the search is linear.
_THINK_TO_ANSWER = re.compile(r"</think>\s*+<answer>")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
# The paper's function-call pattern r"(\w+)\((\w+),\s*'?(\w+)'?\)". The look-behind makes a
# match start only at the beginning of a word (every other start inside the same word run
# has the same continuation, so it would fail or succeed alike); possessive quantifiers
# drop backtracking that can never succeed (each is followed by a non-word character).
_FUNC_CALL = re.compile(r"(?<!\w)(\w++)\((\w++),\s*+'?(\w++)'?\)", re.ASCII)


def completion_text(completion: Any) -> str:
    """The text of one completion: a string, or TRL's list of message dicts (last message)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion:
        content = completion[-1].get("content", "")
        if isinstance(content, list):  # multimodal content parts
            return "".join(part.get("text", "") for part in content if isinstance(part, dict))
        return str(content)
    return ""


def answer_block(text: str) -> str | None:
    """Content of the first ``<answer>...</answer>`` block (DOTALL, lazy), or None.

    Same result as ``re.search(r"<answer>(.*?)</answer>", text, re.DOTALL)``: if no closing tag
    follows the first opening tag, none follows any later one either.
    """
    start = text.find(ANSWER_OPEN)
    if start < 0:
        return None
    end = text.find(ANSWER_CLOSE, start + len(ANSWER_OPEN))
    if end < 0:
        return None
    return text[start + len(ANSWER_OPEN) : end]


def extract_answer(text: str) -> str:
    """The stripped answer block, or the whole stripped text when there is no block."""
    block = answer_block(text)
    return (block if block is not None else text).strip()


# --------------------------------------------------------------------------- scalar scorers


def format_score(text: str) -> float:
    """1.0 iff ``re.fullmatch(r"<think>.*?</think>\\s*<answer>.*?</answer>", text, re.DOTALL)``."""
    if not (text.startswith(THINK_OPEN) and text.endswith(ANSWER_CLOSE)):
        return 0.0  # (the two tags cannot overlap: they share no suffix/prefix)
    middle = text[len(THINK_OPEN) : len(text) - len(ANSWER_CLOSE)]
    return 1.0 if _THINK_TO_ANSWER.search(middle) else 0.0


def strict_format_score(text: str) -> float:
    """``format_score`` with exactly one of each tag: one think block, then one answer block.

    Not the paper's reward. Its pattern also matches ``<think>..</think> <answer>..</think>
    <answer>..</answer>``, whose first answer block then runs to the last ``</answer>`` and
    holds every call written: GRPO on transformation learnt to repeat blocks for that credit
    (docs/results.md, 5.N2). This variant gives such completions 0."""
    if any(text.count(tag) != 1 for tag in (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)):
        return 0.0
    return format_score(text)


def accuracy_score(text: str, solution: str) -> float:
    """Exact match of the stripped answer blocks; math_verify only when ``text`` has no block."""
    gold = extract_answer(solution)
    block = answer_block(text)
    if block is not None:
        return 1.0 if block.strip() == gold else 0.0
    if text.strip() == gold:
        return 1.0
    return 1.0 if _math_verify_equal(text[-MATH_VERIFY_TAIL:], solution[-MATH_VERIFY_TAIL:]) else 0.0


def answer_match_score(text: str, solution: str) -> float:
    """The official evaluator's score for counting and structure (evaluation, not training).

    Take the first answer block (DOTALL), or the whole text when there is none; 1 if its
    stripped text equals the stripped gold, or if math_verify accepts it (the official
    ``verify(parse(prediction), parse(gold))``), else 0. Unlike ``accuracy_score`` (the
    training reward), math_verify also runs when there is a block, so ``9 objects``,
    ``10.0``, ``\\frac{315}{1}`` or ``x = 5`` score 1 against ``9``/``10``/``315``/``5``.
    Consequences of math_verify kept as they are, for equal numbers: it reads the last number
    of a text (``9 or 10`` scores 0 against 9, ``10 or 9`` scores 1) and finds no letter (a
    choice scores only by string equality: ``(B)`` scores 0 against ``B``). The one
    departure: math_verify reads the last ``MATH_VERIFY_TAIL`` characters of each side, so
    the score is bounded in time on any input.
    """
    gold = extract_answer(solution)
    block = answer_block(text)
    pred = (block if block is not None else text).strip()
    if pred == gold:
        return 1.0
    if not pred or not gold:
        return 0.0
    return 1.0 if _math_verify_equal(pred[-MATH_VERIFY_TAIL:], gold[-MATH_VERIFY_TAIL:], prediction_first=True) else 0.0


def math_accuracy_score(text: str, solution: str, eps1: float = 0.05, eps2: float = 0.20) -> float:
    """The paper's tolerance reward: full credit within ``eps1`` relative error, none beyond
    ``eps2``, a cosine ramp between. Non-numbers (choice letters) score by exact match.
    A gold value of 0 needs an exact 0 (relative error is undefined there)."""
    pred, gold = extract_answer(text), extract_answer(solution)
    pred_value, gold_value = parse_number(pred), parse_number(gold)
    if pred_value is None or gold_value is None:
        return 1.0 if pred == gold else 0.0
    d, g = abs(pred_value - gold_value), abs(gold_value)
    if g == 0.0:
        return 1.0 if d == 0.0 else 0.0
    if d < eps1 * g:
        return 1.0
    if d > eps2 * g:
        return 0.0
    return 0.5 * (math.cos(math.pi * (d - eps1 * g) / ((eps2 - eps1) * g)) + 1.0)


def parse_number(text: str) -> float | None:
    """A float if ``text`` is exactly one decimal number (sign, digits, point, exponent), else None."""
    text = text.strip()
    if len(text) > 64 or not _NUMBER.fullmatch(text):
        return None
    value = float(text)
    return value if math.isfinite(value) else None


Triple = tuple[str, str, str]


def parse_calls(text: str) -> list[Triple]:
    """Every ``func(object_id, value)`` call in the answer block (whole text if none), in order."""
    return [tuple(m) for m in _FUNC_CALL.findall(extract_answer(text))]


# The four greedy passes of the paper: (credit, which fields must agree).
_MATCH_PASSES: tuple[tuple[float, tuple[int, ...]], ...] = (
    (1.0, (0, 1, 2)),  # same function, object and value
    (0.5, (0, 1)),  # same function and object
    (0.5, (0, 2)),  # same function and value
    (0.25, (0,)),  # same function
)


def func_sequence_score(text: str, solution: str, *, partial: bool = True, repeat_penalty: bool = True) -> float:
    """Score a predicted transformation program against the gold one.

    Calls are deduplicated (order ignored); ``repeat_penalty`` multiplies by unique/total of
    the prediction; each matched call is worth ``1 / max(|pred|, |gold|)`` times its credit.
    Matching is greedy and one-to-one, in the four passes of ``_MATCH_PASSES`` (only the
    exact pass when ``partial`` is False), each pass over the calls in sorted order.
    """
    predicted = parse_calls(text)
    gold = sorted(set(parse_calls(solution)))
    if not predicted or not gold:
        return 0.0
    unique = sorted(set(predicted))
    penalty = len(unique) / len(predicted) if repeat_penalty else 1.0
    item = penalty / max(len(unique), len(gold))
    passes = _MATCH_PASSES if partial else _MATCH_PASSES[:1]
    free_pred, free_gold = list(unique), list(gold)
    total = 0.0
    for credit, fields in passes:
        for p in list(free_pred):
            key = tuple(p[i] for i in fields)
            match = next((g for g in free_gold if tuple(g[i] for i in fields) == key), None)
            if match is not None:
                free_pred.remove(p)
                free_gold.remove(match)
                total += credit
    return item * total


def _math_verify_equal(text: str, solution: str, prediction_first: bool = False) -> bool:
    """math_verify's equivalence of two short texts. The training reward calls
    ``verify(gold, prediction)`` as the reference trainer does; ``prediction_first`` gives
    the reference evaluator's ``verify(prediction, gold)``."""
    from math_verify import parse, verify

    # math_verify's timeouts use signal.alarm, which only works on the main thread; off it,
    # the inputs are already bounded to MATH_VERIFY_TAIL characters.
    seconds = 2 if threading.current_thread() is threading.main_thread() else None
    try:
        gold = parse(solution, parsing_timeout=seconds)
        pred = parse(text, parsing_timeout=seconds)
        if not (gold and pred):
            return False
        return bool(verify(pred, gold, timeout_seconds=seconds) if prediction_first else verify(gold, pred, timeout_seconds=seconds))
    except Exception:  # math_verify raises on unparsable or timed-out input: not a match
        return False


# --------------------------------------------------------------------------- TRL reward functions


def _batch(score: Callable[..., float], completions: Iterable[Any], solution: Iterable[str] | None) -> list[float]:
    texts = [completion_text(c) for c in completions]
    if solution is None:
        raise ValueError("this reward needs the ground truth in a dataset column named 'solution'")
    return [score(t, str(s)) for t, s in zip(texts, solution, strict=True)]


def format_reward(completions: list[Any], **kwargs: Any) -> list[float]:
    """1.0 per completion in the ``<think>...</think> <answer>...</answer>`` format, else 0.0."""
    return [format_score(completion_text(c)) for c in completions]


def strict_format_reward(completions: list[Any], **kwargs: Any) -> list[float]:
    """1.0 per completion with one think block then one answer block and nothing around them."""
    return [strict_format_score(completion_text(c)) for c in completions]


def accuracy_reward(completions: list[Any], solution: list[str] | None = None, **kwargs: Any) -> list[float]:
    """Exact match of answer blocks, math_verify fallback when the completion has no block."""
    return _batch(accuracy_score, completions, solution)


def math_accuracy_reward(completions: list[Any], solution: list[str] | None = None, **kwargs: Any) -> list[float]:
    """The paper's cosine-tolerance reward for numbers; exact match for choice letters."""
    return _batch(math_accuracy_score, completions, solution)


def func_accuracy_reward(completions: list[Any], solution: list[str] | None = None, **kwargs: Any) -> list[float]:
    """Partial credit for transformation programs, with the repeat penalty (the paper's reward)."""
    return _batch(func_sequence_score, completions, solution)


def full_func_accuracy_reward(completions: list[Any], solution: list[str] | None = None, **kwargs: Any) -> list[float]:
    """Exact-triple credit only (the variant the reference training scripts use)."""
    return _batch(lambda t, s: func_sequence_score(t, s, partial=False), completions, solution)


REWARDS: dict[str, Callable[..., list[float]]] = {
    "format": format_reward,
    "strict_format": strict_format_reward,
    "accuracy": accuracy_reward,
    "math_accuracy": math_accuracy_reward,
    "func_accuracy": func_accuracy_reward,
    "full_func_accuracy": full_func_accuracy_reward,
}
"""Rewards by the names that configs use (``rewards: {format: 1.0, accuracy: 1.0}``)."""


def check_known(names: Iterable[str], what: str) -> None:
    """Raise a one-line ValueError naming every name in ``names`` that is not in ``REWARDS``
    (``what``: how the config calls them, e.g. "reward(s)" or "grpo_rewards")."""
    unknown = sorted(set(names) - set(REWARDS))
    if unknown:
        raise ValueError(f"unknown {what} {', '.join(unknown)}; choose from {', '.join(REWARDS)}")
