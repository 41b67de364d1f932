"""95% confidence intervals for accuracies, and the constant-answer baselines (most frequent, best constant).

At n = 100 questions per split, a gap of a few points between two models is noise; every
accuracy this project reports therefore carries n and a 95% interval over questions:
- **0/1 scores** (counting, structure): the Wilson score interval, which stays inside
  [0, 100] and keeps its coverage near 0% and 100%, where the normal approximation fails;
- **fractional scores** (transformation's partial credit): a percentile bootstrap over
  questions (``BOOTSTRAP_SAMPLES`` resamples, seeded, so a summary is reproducible);
- **an average over splits** (AVG, the domain-shift average), which weighs every split
  equally whatever its size: for 0/1 scores, the splits' Wilson intervals combined by MOVER
  (Zou & Donner 2008; Newcombe's method 10 for a difference), which stays informative at
  0% or 100% where a bootstrap of all-equal scores has zero width; for fractional scores, the
  bootstrap, each split resampled on its own and the split means averaged.

Intervals are in percent, like the accuracies (``100 x mean score``), rounded to 2 decimals.
The intervals cover sampling noise over questions only, not over training seeds.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Callable, Iterable, Sequence

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile
BOOTSTRAP_SAMPLES = 2000


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``successes / n``, as fractions in [0, 1]."""
    if n <= 0:
        raise ValueError("the Wilson interval needs n >= 1")
    if not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got {successes} of {n}")
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def bootstrap_mean_interval(groups: Sequence[Sequence[float]], seed: int = 0, samples: int = BOOTSTRAP_SAMPLES, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of the groups' means (one group: its mean).

    Each resample draws every group's values with replacement, on its own, and averages the
    group means; the interval is the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles.
    """
    import numpy as np

    arrays = [np.asarray(g, dtype=float) for g in groups]
    if not arrays or any(a.size == 0 for a in arrays):
        raise ValueError("the bootstrap needs at least one value in every group")
    rng = np.random.default_rng(seed)
    means = np.zeros(samples)
    for a in arrays:
        means += a[rng.integers(0, a.size, size=(samples, a.size))].mean(axis=1)
    means /= len(arrays)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)


def mover_interval(parts: Sequence[tuple[float, float, float]], weights: Sequence[float]) -> tuple[float, float]:
    """MOVER interval of ``sum(w * estimate)`` from each part's (estimate, low, high) of
    independent estimates: the distances to each part's bounds add in quadrature, the
    bound a negative weight turns into a lower one taken for it."""
    estimate = sum(w * p for w, (p, _, _) in zip(weights, parts, strict=True))
    below = sum((abs(w) * ((p - lo) if w >= 0 else (hi - p))) ** 2 for w, (p, lo, hi) in zip(weights, parts))
    above = sum((abs(w) * ((hi - p) if w >= 0 else (p - lo))) ** 2 for w, (p, lo, hi) in zip(weights, parts))
    return estimate - math.sqrt(below), estimate + math.sqrt(above)


def is_binary(scores: Iterable[float]) -> bool:
    return all(s in (0.0, 1.0) for s in scores)


def accuracy_interval(scores: Sequence[float], seed: int = 0) -> dict:
    """``{"n", "accuracy", "ci95": [low, high], "ci_method"}`` of per-question scores in [0, 1],
    in percent: Wilson when every score is 0 or 1, else the bootstrap."""
    scores = list(scores)
    if not scores:
        return {"n": 0, "accuracy": 0.0, "ci95": None, "ci_method": None}
    if is_binary(scores):
        low, high = wilson_interval(int(sum(scores)), len(scores))
        method = "wilson"
    else:
        low, high = bootstrap_mean_interval([scores], seed)
        method = "bootstrap"
    return {"n": len(scores), "accuracy": _pct(sum(scores) / len(scores)), "ci95": [_pct(low), _pct(high)], "ci_method": method}


def average_interval(groups: Sequence[Sequence[float]], seed: int = 0) -> dict:
    """The mean of the groups' accuracies (AVG over splits) with its interval, in percent:
    MOVER over the Wilson intervals when every score is 0 or 1, else the bootstrap."""
    groups = [list(g) for g in groups if len(g)]
    if not groups:
        return {"n": 0, "accuracy": 0.0, "ci95": None, "ci_method": None}
    if len(groups) == 1:
        return accuracy_interval(groups[0], seed)
    mean = sum(sum(g) / len(g) for g in groups) / len(groups)
    if all(is_binary(g) for g in groups):
        parts = [(sum(g) / len(g), *wilson_interval(int(sum(g)), len(g))) for g in groups]
        low, high = mover_interval(parts, [1.0 / len(groups)] * len(groups))
        method = "mover-wilson"
    else:
        low, high = bootstrap_mean_interval(groups, seed)
        method = "bootstrap"
    return {"n": sum(len(g) for g in groups), "accuracy": _pct(mean), "ci95": [_pct(max(0.0, low)), _pct(min(1.0, high))], "ci_method": method}


def paired_difference(first: Sequence[Sequence[float]], second: Sequence[Sequence[float]], seed: int = 0, samples: int = BOOTSTRAP_SAMPLES) -> dict:
    """``second``'s accuracy minus ``first``'s on the same questions, averaged over groups
    (splits) like ``average_interval``, in percentage points, with a paired percentile
    bootstrap 95% interval: each resample draws question indices per group and takes both
    models' scores on them, so the questions' shared difficulty cancels. Far tighter than
    comparing two unpaired intervals; an interval that holds 0 is no difference."""
    import numpy as np

    if len(first) != len(second) or any(len(a) != len(b) for a, b in zip(first, second)):
        raise ValueError("a paired difference needs both models' scores on the same questions")
    diffs = [np.asarray(b, dtype=float) - np.asarray(a, dtype=float) for a, b in zip(first, second) if len(a)]
    if not diffs:
        return {"n": 0, "difference": 0.0, "ci95": None, "ci_method": None}
    low, high = bootstrap_mean_interval(diffs, seed, samples)  # resampling the differences is resampling the pairs
    estimate = sum(float(d.mean()) for d in diffs) / len(diffs)
    return {"n": sum(d.size for d in diffs), "difference": _pct(estimate), "ci95": [_pct(low), _pct(high)], "ci_method": "paired-bootstrap"}


def format_ci(entry: dict | None, key: str = "accuracy", signed: bool = False) -> str:
    """``"14.00 [8.53, 22.16]"``: an accuracy (or another ``key``) with its interval, for tables
    ("-" if absent); ``signed`` for differences: ``"+2.90 [+0.50, +5.30]"``."""
    if not entry:
        return "-"
    spec = "+.2f" if signed else ".2f"
    ci = entry.get("ci95")
    return f"{entry[key]:{spec}}" + (f" [{ci[0]:{spec}}, {ci[1]:{spec}}]" if ci else "")


def most_frequent_answer(answers: Iterable[str]) -> str:
    """The most frequent of ``answers`` (stripped); ties go to the one seen first."""
    counts = Counter(a.strip() for a in answers)
    if not counts:
        raise ValueError("no answers to count")
    return counts.most_common(1)[0][0]


def best_constant_answer(answers: Sequence[str], score: Callable[[str, str], float], candidates: int = 300, targets: int = 500) -> str:
    """The answer that, given to every question, scores best against ``answers`` under
    ``score(prediction, gold)``. For a 0/1 scorer that is the most frequent answer; for a
    partial-credit one (transformation's programs) it can be a long program that collects
    partial credit on most questions while being exactly right on none. Searched among the
    ``candidates`` most frequent distinct answers, each scored on the first ``targets``
    answers: candidates x targets scorer calls bound the time. Ties go to the more frequent."""
    ranked = [a for a, _ in Counter(a.strip() for a in answers).most_common(candidates)]
    if not ranked:
        raise ValueError("no answers to choose from")
    gold = [a.strip() for a in answers[:targets]]
    return max(ranked, key=lambda candidate: sum(score(candidate, g) for g in gold))  # max keeps the first of equals


def _pct(fraction: float) -> float:
    return round(100.0 * fraction, 2)
