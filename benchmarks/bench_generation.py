"""Generation rate of each task family on one core: in memory, and end to end.

Run: ``.venv/bin/python benchmarks/bench_generation.py [--n 1000] [--tasks counting,...] [--end-to-end]``.

In memory (the default): ``task.sample`` only, start-up and warm-up excluded. One JSON line per
task: {"task", "split", "image_size", "n", "samples_per_s"}.

End to end (``--end-to-end``): ``reasonrft data generate`` as a user runs it (PNG encoding and
the JSON file included), at ``--n`` and at ``--n-small`` samples; the difference of the two runs
is the marginal rate, start-up excluded. Timed by CPU time (user + sys of the child process,
less sensitive to a busy machine than wall time) and by wall time, best of ``--repeats``. One
JSON line per task: {"task", "split", "mode": "end_to_end", "n", "n_small",
"marginal_samples_per_s_cpu", "marginal_samples_per_s_wall", "load_average"}.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def in_memory(name: str, n: int) -> dict:
    from reasonrft.tasks import get_task

    task = get_task(name)
    for i in range(100):  # warm-up: sprite caches, fonts, imports
        task.sample(task.train_split, 10_000_000 + i)
    start = time.perf_counter()
    for i in range(n):
        task.sample(task.train_split, i)
    elapsed = time.perf_counter() - start
    size = getattr(task.config_cls(), "image_size", None)
    return {"task": name, "split": task.train_split, "image_size": size, "n": n, "samples_per_s": round(n / elapsed, 1)}


def _cli_run(task: str, split: str, n: int, out: Path) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one ``reasonrft data generate`` run."""
    cli = Path(sys.executable).with_name("reasonrft")
    cmd = [str(cli), "data", "generate", "--task", task, "--split", split, "--n", str(n), "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, wall


def end_to_end(name: str, n: int, n_small: int, repeats: int) -> dict:
    from reasonrft.tasks import get_task

    split = get_task(name).train_split
    cpu, wall = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats):  # a fresh directory each time: replacing one would time deleting it too
            small = _cli_run(name, split, n_small, Path(tmp) / f"small-{r}")
            large = _cli_run(name, split, n, Path(tmp) / f"large-{r}")
            cpu.append(large[0] - small[0])
            wall.append(large[1] - small[1])
    marginal = n - n_small
    return {
        "task": name,
        "split": split,
        "mode": "end_to_end",
        "n": n,
        "n_small": n_small,
        "marginal_samples_per_s_cpu": round(marginal / min(cpu), 1),
        "marginal_samples_per_s_wall": round(marginal / min(wall), 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from reasonrft.tasks import task_names

    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--tasks", default=",".join(task_names()))
    parser.add_argument("--end-to-end", action="store_true", help="time `reasonrft data generate` (PNG and JSON included) instead")
    parser.add_argument("--n-small", type=int, default=200, help="end to end: the smaller run, whose time is subtracted")
    parser.add_argument("--repeats", type=int, default=3, help="end to end: repeats (the best is reported)")
    args = parser.parse_args()
    for name in args.tasks.split(","):
        result = end_to_end(name, args.n, args.n_small, args.repeats) if args.end_to_end else in_memory(name, args.n)
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
