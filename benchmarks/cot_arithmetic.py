"""How sound is a counting model's reasoning? Its chain-of-thought arithmetic, checked step by step.

Run: ``.venv/bin/python benchmarks/cot_arithmetic.py RUN/eval/NAME/predictions.jsonl [...]``.

Counting's CoT (``tasks/counting.py``) writes each add/subtract step as ``a + b = c`` or
``a - b = c`` and ends with ``So N objects are left.``; the answer is scored, the steps are
not. This reads every step of every completion and reports, per predictions file, one JSON
line: {"predictions", "completions", "steps", "steps_right_pct" (c = a +- b), "chains_right"
(completions whose every step is right), "chains_right_answer_right_pct" (of those, how many
answered right), "answer_follows_pct" (the answer is the N of "So N objects are left", of the
completions that have both)}. A model whose steps are wrong cannot be right by reasoning,
whatever it sees: this separates reckoning from seeing.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from reasonrft.errors import UserError
from reasonrft.io import read_jsonl

STEP = re.compile(r"\b(\d{1,3}) ([+-]) (\d{1,3}) = (\d{1,3})\b")  # bounded: no nested repetition
LEFT = re.compile(r"So (\d{1,3}) objects? (?:is|are) left")
ANSWER = re.compile(r"<answer>\s*(\d{1,3})\s*</answer>")


def soundness(path: Path) -> dict:
    completions = steps = right = chains = chains_answer_right = follows = has_both = 0
    for number, row in enumerate(read_jsonl(path), 1):
        if not isinstance(row.get("pred"), str) or "score" not in row:
            raise UserError(f"{path}: record {number} has no 'pred' and 'score' (not a predictions.jsonl of reasonrft eval)")
        completions += 1
        found = STEP.findall(row["pred"])
        good = [int(a) + (int(b) if op == "+" else -int(b)) == int(c) for a, op, b, c in found]
        steps += len(good)
        right += sum(good)
        if good and all(good):
            chains += 1
            chains_answer_right += row["score"] == 1
        left, answer = LEFT.search(row["pred"]), ANSWER.search(row["pred"])
        if left and answer:
            has_both += 1
            follows += left.group(1) == answer.group(1)
    return {"predictions": str(path), "completions": completions, "steps": steps, "steps_right_pct": _pct(right, steps), "chains_right": chains, "chains_right_answer_right_pct": _pct(chains_answer_right, chains), "answer_follows_pct": _pct(follows, has_both)}


def _pct(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("predictions", nargs="+", type=Path, help="RUN/eval/NAME/predictions.jsonl of a counting run")
    args = parser.parse_args()
    try:
        for path in args.predictions:
            print(json.dumps(soundness(path)), flush=True)
    except UserError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
