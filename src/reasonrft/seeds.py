"""The spread of one experiment over training seeds (``reasonrft seeds RUN_DIR...``).

``compare`` puts a 95% interval over questions on every cell, but a cell is one training run:
the seed draws the training problems, the test questions and the training order, and a gap
between paradigms can be one seed's luck. This module reads the ``results.json`` of the same
``compare`` run at several seeds and gives, for each row, every seed's accuracy with its
interval, and their mean, range and standard deviation; for each of the paper's paired
comparisons, every seed's difference on the same questions and in how many seeds its interval
clears zero. Only the seed (and the bookkeeping of where a run lives) may differ between runs:
anything else would make the spread a mix of settings, so it is refused.
"""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path

from reasonrft import stats
from reasonrft.errors import UserError
from reasonrft.io import atomic_write_json, atomic_write_text, portable_path
from reasonrft.report import markdown_table

RESULTS_FILE = "results.json"
# compare settings that may differ between the runs of one spread: the seed itself, where the
# run lives, where it copied evaluations from, how often it saved checkpoints, and which paradigms
# it ran (rows in every run count)
MAY_DIFFER = ("seed", "out", "reuse_evals_from", "reuse_models_from", "checkpoint_steps", "paradigms")
SHIFT = "OOD AVG"  # compare's name for the domain-shift average in its paired differences


def _setting(run: dict, key: str):
    """A compare setting of ``run``; one its results predate has compare's default value (a key
    added since, at its default, changes nothing)."""
    from reasonrft.stages.experiment import CompareConfig  # here: the experiment module imports much

    return run["config"].get(key, getattr(CompareConfig(), key, None))


def load_runs(run_dirs: list[str | os.PathLike]) -> list[dict]:
    """The ``results.json`` of each compare directory, checked to be one experiment at distinct seeds."""
    if len(run_dirs) < 2:
        raise UserError("a spread over seeds needs at least two compare directories")
    runs = []
    for run_dir in run_dirs:
        path = Path(run_dir) / RESULTS_FILE
        if not path.is_file():
            raise UserError(f"{path}: not found (is {run_dir} a finished `reasonrft compare` directory?)")
        try:
            result = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise UserError(f"{path}: not valid JSON ({e.msg}, line {e.lineno})") from None
        if not isinstance(result, dict) or not {"task", "rows", "baseline", "config"} <= result.keys():
            raise UserError(f"{path}: not a compare's results (needs task, rows, baseline and config)")
        runs.append({**result, "dir": portable_path(run_dir)})
    first = runs[0]
    for run in runs[1:]:
        differing = sorted(k for k in set(first["config"]) | set(run["config"]) if k not in MAY_DIFFER and _setting(first, k) != _setting(run, k))
        if differing:
            detail = ", ".join(f"{k}: {_setting(first, k)!r} vs {_setting(run, k)!r}" for k in differing)
            raise UserError(f"{run['dir']}: not the same experiment as {first['dir']} ({detail}); only {', '.join(MAY_DIFFER)} may differ")
    seeds = [run["config"].get("seed") for run in runs]
    if len(set(seeds)) < len(seeds):
        listing = ", ".join(f"{run['dir']}: {seed}" for run, seed in zip(runs, seeds))
        raise UserError(f"two runs have the same seed ({listing}); a spread needs distinct seeds")
    return sorted(runs, key=lambda r: r["config"]["seed"])


def spread(runs: list[dict]) -> dict:
    """Per row present in every run: each seed's in-domain and domain-shift accuracy with its
    interval, and their mean, range and sample standard deviation; per paired comparison
    present in every run, each seed's difference and the number of seeds that clear zero."""
    from reasonrft.stages.experiment import TITLES, baseline_rows, row_point
    from reasonrft.tasks import get_task

    in_domain = get_task(runs[0]["task"]).test_splits[0]
    tables = [{**run["rows"], **baseline_rows(run)} for run in runs]
    names = [n for n in TITLES if all(n in t for t in tables)]
    rows = {}
    for name in names:
        points = []
        for run, table in zip(runs, tables):
            try:
                points.append(row_point(table[name], in_domain))
            except (KeyError, TypeError, IndexError) as e:
                raise UserError(f"{run['dir']}/{RESULTS_FILE}: row {name!r} lacks {e} (not compare's format)") from None
        rows[name] = {
            "title": TITLES[name],
            "seeds": [{"seed": run["config"]["seed"], **p} for run, p in zip(runs, points)],
            **{f"{key}_{what}": value for key in ("id", "ood") for what, value in _summary([p[key] for p in points]).items()},
        }
    pairs = [p for p in runs[0].get("paired", {}) if all(p in run.get("paired", {}) for run in runs)]
    paired = {}
    for pair in pairs:
        per_seed = [{"seed": run["config"]["seed"], "id": run["paired"][pair][in_domain], "ood": run["paired"][pair][SHIFT]} for run in runs]
        paired[pair] = {"seeds": per_seed, **{f"{key}_clears_zero": _clears_zero([s[key] for s in per_seed]) for key in ("id", "ood")}}
    return {"task": runs[0]["task"], "in_domain": in_domain, "runs": [run["dir"] for run in runs], "seeds": [run["config"]["seed"] for run in runs], "rows": rows, "paired": paired}


def _summary(values: list[float]) -> dict:
    return {"mean": round(statistics.fmean(values), 2), "min": min(values), "max": max(values), "sd": round(statistics.stdev(values), 2)}


def _clears_zero(differences: list[dict]) -> dict:
    """How many seeds' intervals lie wholly above zero, and how many wholly below."""
    return {"above": sum(d["ci95"][0] > 0 for d in differences), "below": sum(d["ci95"][1] < 0 for d in differences), "of": len(differences)}


def markdown(result: dict) -> str:
    """Two tables (domain shift, in domain) of rows by seed, then the paired differences by seed."""
    from reasonrft.stages.experiment import TITLES

    seeds = result["seeds"]
    parts = [f"# {result['task']}: the spread over {len(seeds)} seeds\n\nRuns: {', '.join(f'`{d}`' for d in result['runs'])}. "
             "Each cell: accuracy (%) with its 95% interval over questions; mean, range and standard deviation are over seeds.\n"]
    for key, title in (("ood", "Domain-shift average"), ("id", f"In domain ({result['in_domain']})")):
        header = [title] + [f"seed {s}" for s in seeds] + ["mean", "range", "sd"]
        cells = [[row["title"]] + [stats.format_ci({"accuracy": p[key], "ci95": p[f"{key}_ci95"]}) for p in row["seeds"]]
                 + [f"{row[f'{key}_mean']:.2f}", f"{row[f'{key}_min']:.2f}-{row[f'{key}_max']:.2f}", f"{row[f'{key}_sd']:.2f}"] for row in result["rows"].values()]
        parts.append(f"\n{title}:\n\n" + markdown_table(header, cells))
    if result["paired"]:
        header = ["paired difference (points)"] + [f"seed {s}" for s in seeds] + ["interval above 0", "below 0"]
        cells = []
        for pair, entry in result["paired"].items():
            title = " - ".join(TITLES.get(n, n) for n in pair.split(" - "))
            for key, where in (("ood", "shift"), ("id", "in domain")):
                counts = entry[f"{key}_clears_zero"]
                cells.append([f"{title}, {where}"] + [stats.format_ci(s[key], "difference", signed=True) for s in entry["seeds"]] + [f"{counts['above']} of {counts['of']}", f"{counts['below']} of {counts['of']}"])
        parts.append("\nPaired differences on each seed's own questions (paired bootstrap 95% interval), and the seeds whose interval clears zero:\n\n" + markdown_table(header, cells))
    return "".join(parts)


def write(result: dict, out: str | os.PathLike) -> Path:
    """``OUT/seeds.json``, ``OUT/seeds.md`` and ``OUT/seeds.png``, each written atomically."""
    from reasonrft import plots

    out = Path(out)
    atomic_write_json(out / "seeds.json", result)
    atomic_write_text(out / "seeds.md", markdown(result))
    plots.seed_spread(result, out / "seeds.png", title=f"{result['task']}: accuracy by seed")
    return out
