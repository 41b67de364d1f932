"""Marginal generation rate of the transformation family (two renders per sample).

Run: ``python benchmarks/bench_transformation.py [--n 400] [--split test-ood-left]``.
Prints one JSON line. Import, the first sample and cache filling (backgrounds per camera)
are excluded by a warm-up; the timed loop then generates items ``warmup .. warmup + n`` on
one core. ``samples_per_s`` counts generation only (symbolic scene, program, two PIL
images); ``samples_per_s_with_png`` also encodes both images as PNG, as a dataset writer does.
"""

from __future__ import annotations

import argparse
import io
import json
import time

from reasonrft.tasks import get_task


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400, help="samples timed")
    parser.add_argument("--warmup", type=int, default=20, help="samples generated before timing")
    parser.add_argument("--split", default="train")
    args = parser.parse_args(argv)

    task = get_task("transformation")
    for idx in range(args.warmup):
        task.sample(args.split, idx)

    start = time.perf_counter()
    for idx in range(args.warmup, args.warmup + args.n):
        task.sample(args.split, idx)
    generation = time.perf_counter() - start

    start = time.perf_counter()
    for idx in range(args.warmup, args.warmup + args.n):
        for image in task.sample(args.split, idx).images:
            image.save(io.BytesIO(), format="PNG")
    with_png = time.perf_counter() - start

    print(json.dumps({
        "task": "transformation",
        "split": args.split,
        "samples_per_s": round(args.n / generation, 1),
        "samples_per_s_with_png": round(args.n / with_png, 1),
        "n": args.n,
    }))


if __name__ == "__main__":
    main()
