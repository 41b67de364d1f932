"""Marginal generation rate of each task family on one core (start-up and warm-up excluded).

Run: ``.venv/bin/python benchmarks/bench_generation.py [--n 1000] [--tasks counting,...]``.
Prints one JSON line per task: {"task", "split", "image_size", "n", "samples_per_s"}.
"""

from __future__ import annotations

import argparse
import json
import os
import time


def main() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from reasonrft.tasks import get_task, task_names

    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--tasks", default=",".join(task_names()))
    args = parser.parse_args()
    for name in args.tasks.split(","):
        task = get_task(name)
        for i in range(100):  # warm-up: sprite caches, fonts, imports
            task.sample(task.train_split, 10_000_000 + i)
        start = time.perf_counter()
        for i in range(args.n):
            task.sample(task.train_split, i)
        elapsed = time.perf_counter() - start
        size = getattr(task.config_cls(), "image_size", None)
        print(json.dumps({"task": name, "split": task.train_split, "image_size": size, "n": args.n, "samples_per_s": round(args.n / elapsed, 1)}))


if __name__ == "__main__":
    main()
