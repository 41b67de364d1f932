"""Where does a counting chain go wrong? Each stage of it checked against the gold chain.

Run: ``.venv/bin/python benchmarks/cot_stages.py RUN/eval/NAME/predictions.jsonl [...]``.

Counting's CoT (``tasks/counting.py``) has three kinds of line: the start count ("There are N
objects in the image."), one line per step of the question ("Subtract all red cubes: there
are K red cubes, 7 - K = ..."; "Add 2 small ...: 7 + 2 = 9."), and the conclusion. The
gold chain is in the run's data (``RUN/data/SPLIT/data.json``, found from the predictions'
path). For each predictions file this prints one JSON line over all its questions, then one per
split:

- ``start_right_pct``: the start count is the scene's;
- ``steps_copied_pct``: the chain's step phrases are the question's, in order, exactly;
  ``step_phrases_right_pct``: of the gold chain's steps, how many the chain has at the same
  place, exactly (a chain of the right length with one phrase wrong scores the rest);
- ``subtract_counts_right_pct``: of the subtract steps whose phrase is copied exactly, how
  many count the objects it removes right (the filtered count, the hardest seeing);
- ``answer_right_pct`` overall, and ``answer_right_given_start_and_steps_pct``: of the chains
  whose start and phrases are right, how many answer right.

A demo's accuracy is the product of these stages; this says which one limits it.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import sys
from pathlib import Path

from reasonrft.errors import UserError
from reasonrft.io import read_jsonl

START = re.compile(r"There (?:is|are) (\d{1,3}) objects?")
STEP = re.compile(r"^((?:Add|Subtract) [^:\n]{1,80}): (.{0,120})$", re.MULTILINE)
REMOVED = re.compile(r"there (?:is|are) (\d{1,3}) ")


def _chain(text: str) -> tuple[str | None, list[tuple[str, str | None]]]:
    """(start count, [(step phrase, count removed or None for an add step)]) of one chain."""
    start = START.search(text)
    steps = []
    for phrase, rest in STEP.findall(text):
        removed = REMOVED.match(rest) if phrase.startswith("Subtract") else None
        steps.append((phrase, removed.group(1) if removed else None))
    return (start.group(1) if start else None), steps


@functools.lru_cache(maxsize=None)  # read once per run, not once per split
def _gold(predictions: Path) -> dict[str, dict]:
    if len(predictions.parents) < 3:
        raise UserError(f"{predictions}: not RUN/eval/NAME/predictions.jsonl (the gold chains are found from the run's folder)")
    run = predictions.parents[2]
    gold = {}
    for data in sorted(run.glob("data/*/data.json")):
        for record in json.loads(data.read_text()):
            gold[record["id"]] = record
    if not gold:
        raise UserError(f"{predictions}: no gold chains under {run}/data/*/data.json")
    return gold


def stages(predictions: Path, split: str | None = None) -> dict:
    """The stage table of one predictions file, over one split or (None) all of them."""
    rows = read_jsonl(predictions)
    for number, row in enumerate(rows, 1):
        if not {"id", "split", "pred", "score"} <= row.keys():
            raise UserError(f"{predictions}: record {number} lacks one of 'id', 'split', 'pred', 'score' (not a predictions.jsonl of reasonrft eval)")
    gold = _gold(predictions)
    n = start_right = copied = phrases = phrases_right = sub_steps = sub_right = answered = both = both_answered = 0
    for row in rows:
        if split is not None and row["split"] != split:
            continue
        record = gold.get(row["id"])
        if record is None:
            raise UserError(f"{predictions}: prediction {row['id']!r} has no gold record")
        gold_start, gold_steps = _chain(record["cot"])
        start, steps = _chain(row["pred"])
        n += 1
        answered += row["score"] == 1
        start_ok = start == gold_start
        copy_ok = [p for p, _ in steps] == [p for p, _ in gold_steps]
        start_right += start_ok
        copied += copy_ok
        phrases += len(gold_steps)
        for (phrase, removed), (gold_phrase, gold_removed) in zip(steps, gold_steps):
            phrases_right += phrase == gold_phrase
            if phrase == gold_phrase and gold_removed is not None:
                sub_steps += 1
                sub_right += removed == gold_removed
        if start_ok and copy_ok:
            both += 1
            both_answered += row["score"] == 1
    return {"predictions": predictions.as_posix().split("runs/", 1)[-1], "split": split or "all", "n": n, "start_right_pct": _pct(start_right, n), "steps_copied_pct": _pct(copied, n), "step_phrases_right_pct": _pct(phrases_right, phrases), "subtract_steps_copied": sub_steps, "subtract_counts_right_pct": _pct(sub_right, sub_steps), "answer_right_pct": _pct(answered, n), "start_and_steps_right": both, "answer_right_given_start_and_steps_pct": _pct(both_answered, both)}


def _pct(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("predictions", nargs="+", type=Path, help="RUN/eval/NAME/predictions.jsonl of a counting compare or demo")
    args = parser.parse_args()
    try:
        for path in args.predictions:
            for split in (None, "test-id", "test-ood-d", "test-ood-m"):
                print(json.dumps(stages(path, split)), flush=True)
    except UserError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
