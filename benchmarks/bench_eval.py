"""Evaluation decode speed: transformers' concatenating KV cache against ``rollout_cache``'s in-place one.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_eval.py --model DIR --task counting
[--data-root DIR] [--n 64] [--repeats 2]``.

``evaluate.generate`` on the first ``--n`` records of the task's in-domain test split (from
``--data-root``, else generated), greedy, batch 32, once with the plain cache and once with
``evaluate``'s in-place one, alternating, best of ``--repeats``; timed by this process's CPU
time (less sensitive to a busy machine than wall time). One JSON line per variant: {"task",
"variant", "n", "cpu_s", "wall_s", "questions_per_cpu_s", "same_completions"} (same_completions:
bitwise the same text as the plain cache's), then {"speedup_cpu"}.
"""

from __future__ import annotations

import argparse
import json
import os
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--task", default="counting")
    parser.add_argument("--data-root", default="")
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    import torch

    from reasonrft import data, modeling
    from reasonrft.config import build
    from reasonrft.stages import evaluate
    from reasonrft.tasks import get_task

    task = get_task(args.task)
    split = task.test_splits[0]
    records = data.load_dataset(os.path.join(args.data_root, split))[: args.n] if args.data_root else data.generate_records(task, split, args.n, 0)
    config = build(evaluate.EvalConfig, dict(model=args.model, task=task.name, n=args.n, temperature=0.0, progress=False))
    processor = modeling.load_processor(args.model)
    model = modeling.load_model(args.model, dtype=torch.float32).eval()
    best: dict[str, tuple[float, float]] = {}
    texts: dict[str, list[str]] = {}
    for _ in range(args.repeats):
        for variant, in_place in (("concatenating", False), ("in_place", True)):
            cpu, wall = time.process_time(), time.perf_counter()
            texts[variant] = evaluate.generate(model, processor, task, records, config, "cpu", in_place_cache=in_place)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            best[variant] = min(best.get(variant, (cpu, wall)), (cpu, wall))
    for variant, (cpu, wall) in best.items():
        line = {"task": task.name, "variant": variant, "n": len(records), "cpu_s": round(cpu, 2), "wall_s": round(wall, 2), "questions_per_cpu_s": round(len(records) / cpu, 2), "same_completions": texts[variant] == texts["concatenating"]}
        print(json.dumps(line), flush=True)
    print(json.dumps({"task": task.name, "speedup_cpu": round(best["concatenating"][0] / best["in_place"][0], 3), "load_average": round(os.getloadavg()[0], 2)}), flush=True)


if __name__ == "__main__":
    main()
