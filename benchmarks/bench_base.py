"""How well a base model sees: exact-match accuracy per kind of perception question.

Run by hand: ``.venv/bin/python benchmarks/bench_base.py [--model DIR] [--n 400]``. Greedy
answers to the held-out ``test`` split of the perception family (never zoomed, never seen in
pretraining); one JSON line per question type (kind/question, with its chance level where
one exists), then one for the whole set. Default model: the shipped base.
"""

from __future__ import annotations

import argparse
import collections
import json
import time

from reasonrft import modeling, pretrain_data, rewards
from reasonrft.config import build
from reasonrft.stages import evaluate
from reasonrft.tasks import counting, get_task

CHANCE = {"color": 1 / len(counting.COLORS), "shape": 1 / len(counting.SHAPES), "material": 1 / len(counting.MATERIALS), "size": 1 / len(counting.SIZES)}


def question_type(meta: dict) -> str:
    kind = meta["kind"] + ("/" + meta["question"] if "question" in meta else "")
    return kind + ("+format" if meta.get("format") else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(modeling.shipped_base() or ""), help="model directory (default: the shipped base)")
    parser.add_argument("--n", type=int, default=400, help="test items")
    args = parser.parse_args()
    if not args.model:
        parser.error("no shipped base in this package: pass --model")
    task = get_task("perception")
    records = pretrain_data.pretrain_records(args.n, seed=0, split="test")
    config = build(evaluate.EvalConfig, dict(model=args.model, task="perception", prompt_style="answer", temperature=0.0, max_new_tokens=96, batch_size=16, progress=True))
    processor, model = modeling.load_processor(args.model), modeling.load_model(args.model).eval()
    started = time.time()
    predictions = evaluate.generate(model, processor, task, records, config, "cpu")
    scores = collections.defaultdict(list)
    for record, prediction in zip(records, predictions):
        scores[question_type(record.meta)].append(task.score(prediction, record.answer))  # format items: the answer blocks
        if record.meta["kind"] == "describe":  # exact match on a whole description is harsh: the count alone too
            scores["describe/count"].append(float(rewards.extract_answer(prediction).split(":")[0] == rewards.extract_answer(record.answer).split(":")[0]))
    for name in sorted(scores):
        values = scores[name]
        line = {"model": args.model, "question": name, "n": len(values), "accuracy": round(100 * sum(values) / len(values), 1)}
        attribute = name.split("/")[-1].removesuffix("+format")
        if attribute in CHANCE and name.startswith(("single", "attribute")):  # object attributes only
            line["chance"] = round(100 * CHANCE[attribute], 1)
        print(json.dumps(line))
    total = [v for name, values in scores.items() if name != "describe/count" for v in values]
    print(json.dumps({"model": args.model, "question": "all", "n": len(total), "accuracy": round(100 * sum(total) / len(total), 1), "seconds": round(time.time() - started, 1)}))


if __name__ == "__main__":
    main()
