"""Does a base fail to see an attribute, or to bind the phrase to its object?

Run by hand: ``.venv/bin/python benchmarks/probe_binding.py [--model DIR] [--n 300] [--no-describe]``.
For the attribute skills of ``reasonrft.base_skills`` ("What color is the large rubber
cylinder?"), the held-out items' accuracy broken down by the scene's number of objects and the
phrase's number of attributes, and how often the answer is a value that some object of the
scene has (seen, perhaps bound to the wrong object) against how many distinct values a scene
holds (what a guess among the scene's values would reach). One JSON line per skill; then
one for scene descriptions (the perception family's ``describe`` kind, 2-5 objects, held-out
scenes): how often the number of objects is right, and each attribute of the i-th object
listed (left to right) against the i-th object of the scene: binding by position.
"""

from __future__ import annotations

import argparse
import collections
import json

from reasonrft import modeling
from reasonrft.base_skills import as_record, greedy_answers, measure
from reasonrft.io import portable_path

ATTRIBUTE_SKILLS = ("attribute/color", "attribute/shape", "attribute/size", "attribute/material")
OBJECT_BINS = ((1, 4), (5, 8), (9, 13))


def breakdown(records, predictions, scores, attribute: str) -> dict:
    def rate(values: list[float]) -> dict:
        return {"accuracy": round(100 * sum(values) / len(values), 1) if values else None, "n": len(values)}

    by_objects = {f"{lo}-{hi}": rate([s for r, s in zip(records, scores) if lo <= len(r.meta["objects"]) <= hi]) for lo, hi in OBJECT_BINS}
    by_phrase = collections.defaultdict(list)
    for r, s in zip(records, scores):
        by_phrase[len(r.meta["filter"])].append(s)
    in_scene = [p.strip() in {o[attribute] for o in r.meta["objects"]} for r, p in zip(records, predictions)]
    distinct = [len({o[attribute] for o in r.meta["objects"]}) for r in records]
    return {
        "accuracy": round(100 * sum(scores) / len(scores), 1),
        "by_objects": by_objects,
        "by_phrase_attributes": {str(k): rate(v) for k, v in sorted(by_phrase.items())},
        "answer_in_scene": round(100 * sum(in_scene) / len(in_scene), 1),
        "distinct_values_per_scene": round(sum(distinct) / len(distinct), 2),
        "top_answers": collections.Counter(p.strip() for p in predictions).most_common(4),
    }


def describe_breakdown(model, processor, model_dir: str, n: int) -> dict:
    from reasonrft.tasks import perception
    from reasonrft.tasks.base import item_rng

    config = perception.PerceptionConfig()
    records = [as_record(perception.make_sample(config, "describe", "test", item_rng("probe-binding/describe", "test", 0, i), f"describe-{i}")) for i in range(n)]
    predictions = greedy_answers(model, processor, model_dir, records, max_new_tokens=96, batch_size=25)
    names = ("size", "color", "material", "shape")  # the order of a description's words
    right, total, counted, exact = collections.Counter(), collections.Counter(), 0, 0
    for record, prediction in zip(records, predictions):
        exact += prediction.strip() == record.answer
        gold = [g.split(", ")[0].split() for g in record.answer.split(": ", 1)[1].split("; ")]
        said = [g.split(", ")[0].split() for g in prediction.strip().split(": ", 1)[-1].split("; ")]
        counted += len(gold) == len(said)
        for g, p in zip(gold, said):
            for k, name in enumerate(names):
                total[name] += 1
                right[name] += len(p) > k and p[k] == g[k]
    return {"skill": "describe", "n": n, "exact": round(100 * exact / n, 1), "object_count_right": round(100 * counted / n, 1), "attribute_by_position": {k: round(100 * right[k] / total[k], 1) for k in names}, "example": [records[0].answer, predictions[0]]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(modeling.shipped_base() or ""), help="model directory (default: the shipped base)")
    parser.add_argument("--n", type=int, default=300, help="held-out items per skill")
    parser.add_argument("--skills", default=",".join(ATTRIBUTE_SKILLS))
    parser.add_argument("--no-describe", action="store_true", help="skip the scene descriptions (a model never taught to describe)")
    args = parser.parse_args()
    if not args.model:
        parser.error("no shipped base in this package: pass --model")
    processor, model = modeling.load_processor(args.model), modeling.load_model(args.model).eval()
    for skill in args.skills.split(","):
        if skill not in ATTRIBUTE_SKILLS:
            parser.error(f"unknown skill {skill!r}; choose from {', '.join(ATTRIBUTE_SKILLS)}")
        records, predictions, scores = measure(model, processor, args.model, skill, args.n)
        print(json.dumps({"model": portable_path(args.model), "skill": skill, "n": args.n, **breakdown(records, predictions, scores, skill.split("/")[1])}), flush=True)
    if not args.no_describe:
        print(json.dumps({"model": portable_path(args.model), **describe_breakdown(model, processor, args.model, args.n)}), flush=True)


if __name__ == "__main__":
    import torch

    torch.set_num_threads(1)
    main()
