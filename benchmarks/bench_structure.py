"""Marginal generation rate of the ``structure`` family on one core.

Generates (scene, solver, render to a PIL image, text) ``--n`` samples per split after a
warm-up (imports, font loading and caches excluded) and prints one JSON line:

    python benchmarks/bench_structure.py [--n 600] [--image-size 224]

Target: >= 300 samples/s at the default 224x224.
"""

from __future__ import annotations

import argparse
import json
import os
import time

from reasonrft.tasks import get_task
from reasonrft.tasks.structure import StructureConfig


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=600, help="samples timed per split")
    parser.add_argument("--image-size", type=int, default=224)
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    task = get_task("structure")
    config = StructureConfig(image_size=args.image_size)
    for split in task.splits:  # warm-up
        for idx in range(20):
            task.sample(split, 10_000_000 + idx, config=config)
    per_split = {}
    total = 0.0
    for split in task.splits:
        start = time.perf_counter()
        for idx in range(args.n):
            task.sample(split, idx, config=config)
        elapsed = time.perf_counter() - start
        per_split[split] = round(args.n / elapsed, 1)
        total += elapsed
    n = args.n * len(task.splits)
    print(json.dumps({"task": "structure", "samples_per_s": round(n / total, 1), "n": n, "image_size": args.image_size, "per_split": per_split}))


if __name__ == "__main__":
    main()
