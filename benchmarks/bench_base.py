"""The skills of a base model: exact-match accuracy per skill on held-out items.

Run by hand: ``.venv/bin/python benchmarks/bench_base.py [--model DIR] [--n 40] [--skills a,b] [--question-first]``.
The skills and their items: ``reasonrft.base_skills`` (counting, filtered counts, attributes of
a named object, diagram reading, two-image descriptions, text arithmetic, copying, the format),
all held out from pretraining and none a task's own question type.

Greedy decoding, bare prompts. One JSON line per skill (its 95% Wilson interval over items:
at n = 100 about +-10 points around 50%, so compare models at n = 300 or more; chance where it
exists; ``majority``: the score of always giving the skill's most frequent answer; for the
list-valued skills, ``partial``: the partial credit of ``base_skills.partial_scores``, with
``partial_ci95``, and ``partial_majority``: the most frequent answer's), then one for the mean over skills.
Default model: the shipped base. ``--question-first`` asks the same items with the question
before the image(s) (lines then carry ``"layout": "question_first"``): for a base pretrained
with ``question_first_kinds``; every task asks images first.
"""

from __future__ import annotations

import argparse
import collections
import json
import time

from reasonrft import modeling, stats
from reasonrft.base_skills import CHANCE, LIST_SKILLS, SKILLS, measure, partial_scores
from reasonrft.io import portable_path
from reasonrft.tasks.base import QUESTION_FIRST


def run(model_dir: str, n: int, skills: list[str], batch_size: int = 16, question_first: bool = False) -> list[dict]:
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"  # fp32 on either: the same model as measured on the CPU
    processor, model = modeling.load_processor(model_dir), modeling.load_model(model_dir).to(device).eval()
    lines = []
    for skill in skills:
        started = time.time()
        records, predictions, values = measure(model, processor, model_dir, skill, n, batch_size, question_first)
        n_items = len(values)  # n, or fewer where the skill has fewer items (the arithmetic facts)
        low, high = stats.wilson_interval(int(sum(values)), n_items) if stats.is_binary(values) else (None, None)
        line = {"model": portable_path(model_dir), "skill": skill, "n": n_items, "accuracy": round(100 * sum(values) / n_items, 1), "ci95": [round(100 * low, 1), round(100 * high, 1)] if low is not None else None, "seconds": round(time.time() - started, 1), "example": [records[0].answer, predictions[0]]}
        if question_first:
            line["layout"] = QUESTION_FIRST
        if skill in CHANCE:
            line["chance"] = round(100 * CHANCE[skill], 1)
        most_frequent = collections.Counter(r.answer for r in records).most_common(1)[0][0]
        if skill != "format":  # the score of always giving the skill's most frequent answer
            line["majority"] = round(100 * sum(r.answer == most_frequent for r in records) / n_items, 1)
        if skill in LIST_SKILLS:  # partial credit, the model's and the most frequent answer's
            line["partial"], line["partial_ci95"] = mean_partial(skill, predictions, records)
            line["partial_majority"] = mean_partial(skill, [most_frequent] * n_items, records)[0]
        print(json.dumps(line), flush=True)
        lines.append(line)
    print(json.dumps({"model": portable_path(model_dir), "skill": "mean", "n": sum(l["n"] for l in lines), "accuracy": round(sum(l["accuracy"] for l in lines) / len(lines), 1)}), flush=True)
    return lines


def mean_partial(skill: str, predictions: list[str], records: list) -> tuple[dict[str, float], dict[str, list[float]]]:
    """``base_skills.partial_scores`` averaged over the items, in percent, and each measure's 95%
    interval over items (Wilson for 0/1 measures, else a seeded bootstrap: ``stats.accuracy_interval``)."""
    scores = [partial_scores(skill, p, r) for p, r in zip(predictions, records)]
    means, intervals = {}, {}
    for key in scores[0]:
        values = [s[key] for s in scores]
        means[key] = round(100 * sum(values) / len(values), 1)
        intervals[key] = [round(v, 1) for v in stats.accuracy_interval(values)["ci95"]]
    return means, intervals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(modeling.shipped_base() or ""), help="model directory (default: the shipped base)")
    parser.add_argument("--n", type=int, default=40, help="held-out items per skill")
    parser.add_argument("--batch-size", type=int, default=16, help="items per generate call")
    parser.add_argument("--skills", default=",".join(SKILLS), help="comma-separated skills (default: all)")
    parser.add_argument("--question-first", action="store_true", help="ask with the question before the image(s)")
    args = parser.parse_args()
    if not args.model:
        parser.error("no shipped base in this package: pass --model")
    skills = args.skills.split(",")
    unknown = [s for s in skills if s not in SKILLS]
    if unknown:
        parser.error(f"unknown skill(s) {', '.join(unknown)}; choose from {', '.join(SKILLS)}")
    run(args.model, args.n, skills, args.batch_size, args.question_first)


if __name__ == "__main__":
    import torch

    torch.set_num_threads(1)
    main()
