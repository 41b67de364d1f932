"""The skills of a base model: exact-match accuracy per skill on held-out items.

Run by hand: ``.venv/bin/python benchmarks/bench_base.py [--model DIR] [--n 40] [--skills a,b]``.
Each skill's items come from the task families' own renderers at their own image size
(224 px), built by the perception family's generators on its ``test`` split, whose scenes
(and expressions, and phrases) are never in pretraining data. None is a task's own question
type (no add/subtract programs, no geometry to solve, no transformation program):

- ``count/test-id``, ``count/test-ood-d``: how many objects, 3-13; plain scenes, and
  test-ood-d-looking scenes (striped textures, new light and floor, cones), never trained on;
- ``count_filtered/1``, ``count_filtered/2``: objects matching one or two attribute values;
- ``attribute/color|shape|size|material``: of an object picked out by a phrase;
- ``diagram/labels``, ``diagram/numbers``: every point label / every number written on a
  structure diagram, the whole list exact;
- ``two_images``: both images of a transformation pair described, every object exact;
- ``arithmetic/sum_difference`` (up to 30), ``arithmetic/product_quotient_square_root``;
- ``copy``: a phrase of the question repeated exactly;
- ``format``: asked for the think/answer format (items of every kind), the completion has it.

Greedy decoding, bare prompts. One JSON line per skill (with chance where it exists, and
``majority``: the score of always giving the skill's most frequent answer), then one for the
mean over skills. Default model: the shipped base.
"""

from __future__ import annotations

import argparse
import collections
import json
import time

from reasonrft import modeling, rewards
from reasonrft.config import build
from reasonrft.data import Record
from reasonrft.stages import evaluate
from reasonrft.tasks import counting, get_task, perception
from reasonrft.tasks.base import item_rng

# skill -> (kind, generator options, max new tokens)
SKILLS: dict[str, tuple[str, dict, int]] = {
    "count/test-id": ("count", {"style": "plain"}, 16),
    "count/test-ood-d": ("count", {"style": "textured"}, 16),
    "count_filtered/1": ("count_filtered", {"n_attributes": 1}, 16),
    "count_filtered/2": ("count_filtered", {"n_attributes": 2}, 16),
    **{f"attribute/{q}": ("attribute", {"qtype": q}, 16) for q in ("color", "shape", "size", "material")},
    "diagram/labels": ("diagram", {"qtype": "labels"}, 48),
    "diagram/numbers": ("diagram", {"qtype": "numbers"}, 48),
    "two_images": ("two_images", {}, 128),
    "arithmetic/sum_difference": ("arithmetic", {"family": ("sum", "difference")}, 16),
    "arithmetic/product_quotient_square_root": ("arithmetic", {"family": ("product", "quotient", "square", "root")}, 16),
    "copy": ("copy", {}, 64),
    "format": ("", {}, 200),
}
CHANCE = {"attribute/color": 1 / len(counting.COLORS), "attribute/shape": 1 / len(counting.SHAPES), "attribute/size": 1 / len(counting.SIZES), "attribute/material": 1 / len(counting.MATERIALS)}
FORMAT_KINDS = ("count", "count_filtered", "attribute", "diagram", "arithmetic", "copy", "single", "describe")


def skill_records(skill: str, n: int, seed: int = 0) -> list[Record]:
    """``n`` held-out items of ``skill``; item ``i`` from its own RNG, so any one rebuilds alone."""
    kind, options, _ = SKILLS[skill]
    config = perception.PerceptionConfig()
    records = []
    for i in range(n):
        rng = item_rng(f"bench-base/{skill}", "test", seed, i)
        item_options = dict(options)
        if "family" in item_options:
            item_options["family"] = rng.choice(item_options["family"])
        item_kind = kind or rng.choice(FORMAT_KINDS)
        sample = perception.make_sample(config, item_kind, "test", rng, f"{skill}-{i}", ask_format=skill == "format", **item_options)
        records.append(Record(sample.id, list(sample.images), sample.problem, sample.answer, sample.cot or None, "perception", dict(sample.meta)))
    return records


def score(skill: str, prediction: str, record: Record) -> float:
    if skill == "format":
        return rewards.format_score(prediction)
    return get_task("perception").score(prediction, record.answer)


def run(model_dir: str, n: int, skills: list[str], batch_size: int = 16) -> list[dict]:
    task = get_task("perception")
    processor, model = modeling.load_processor(model_dir), modeling.load_model(model_dir).eval()
    lines = []
    for skill in skills:
        started = time.time()
        records = skill_records(skill, n)
        config = build(evaluate.EvalConfig, dict(model=model_dir, task="perception", prompt_style="answer", temperature=0.0, max_new_tokens=SKILLS[skill][2], batch_size=batch_size, progress=False))
        predictions = evaluate.generate(model, processor, task, records, config, "cpu")
        values = [score(skill, p, r) for p, r in zip(predictions, records)]
        line = {"model": model_dir, "skill": skill, "n": n, "accuracy": round(100 * sum(values) / n, 1), "seconds": round(time.time() - started, 1), "example": [records[0].answer, predictions[0]]}
        if skill in CHANCE:
            line["chance"] = round(100 * CHANCE[skill], 1)
        if skill != "format":  # the score of always giving the skill's most frequent answer
            line["majority"] = round(100 * collections.Counter(r.answer for r in records).most_common(1)[0][1] / n, 1)
        print(json.dumps(line), flush=True)
        lines.append(line)
    print(json.dumps({"model": model_dir, "skill": "mean", "n": n * len(lines), "accuracy": round(sum(l["accuracy"] for l in lines) / len(lines), 1)}), flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(modeling.shipped_base() or ""), help="model directory (default: the shipped base)")
    parser.add_argument("--n", type=int, default=40, help="held-out items per skill")
    parser.add_argument("--skills", default=",".join(SKILLS), help="comma-separated skills (default: all)")
    args = parser.parse_args()
    if not args.model:
        parser.error("no shipped base in this package: pass --model")
    skills = args.skills.split(",")
    unknown = [s for s in skills if s not in SKILLS]
    if unknown:
        parser.error(f"unknown skill(s) {', '.join(unknown)}; choose from {', '.join(SKILLS)}")
    run(args.model, args.n, skills)


if __name__ == "__main__":
    import torch

    torch.set_num_threads(1)
    main()
