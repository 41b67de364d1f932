"""Held-out skills against steps, for text-phase runs side by side (docs/results.md 4.1).

Run by hand: ``.venv/bin/python benchmarks/plot_phase_curves.py --out FIG.png SERIES=LOG[@STEPS] ...``,
where each ``LOG`` is a text phase's ``text-log.jsonl`` (``OUT/text/text-log.jsonl`` of a
``reasonrft pretrain`` run with ``text_steps``) and ``SERIES`` names the run. A run that
continues another (a curriculum's second rung) takes the same ``SERIES`` and ``@STEPS``, the
steps before it, so its points follow the first rung's. One panel per held-out skill, each point with its 95% Wilson interval
over the phase's held-out items (``--items``, the phase's ``eval_items``: 50 by default);
prints the plotted points as JSON lines.
"""

from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path

from reasonrft import stats
from reasonrft.plots import legend_below, pyplot, save_figure


# run F's log (2026-12-01) predates the skills' family prefix
OLD_NAMES = {"sum_difference": "arithmetic/sum_difference", "product_quotient_square_root": "arithmetic/product_quotient_square_root"}


def read_log(path: str) -> dict[str, list[tuple[int, float]]]:
    """skill -> [(step, accuracy %)] from a text phase's log (only its held-out lines)."""
    curves: dict[str, list[tuple[int, float]]] = collections.defaultdict(list)
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as error:
            raise SystemExit(f"{path}:{number}: not a JSON line ({error.msg})") from None
        for skill, accuracy in entry.get("heldout", {}).items():
            curves[OLD_NAMES.get(skill, skill)].append((entry["step"], accuracy))
    if not curves:
        raise SystemExit(f"{path}: no held-out lines (a text phase's text-log.jsonl has one every eval_every steps)")
    return curves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--items", type=int, default=50, help="held-out items per skill at each point (the phase's eval_items)")
    parser.add_argument("--title", default="")
    parser.add_argument("--skills", default="", help="comma-separated skills to plot (default: every skill in the logs)")
    parser.add_argument("series", nargs="+", help="SERIES=text-log.jsonl[@STEPS before it]")
    args = parser.parse_args()
    runs: dict[str, dict[str, list[tuple[int, float]]]] = collections.defaultdict(lambda: collections.defaultdict(list))
    for spec in args.series:
        name, _, path = spec.partition("=")
        path, _, before = path.partition("@")
        if not path or not (before or "0").isdigit():
            parser.error(f"{spec!r}: expected SERIES=LOG or SERIES=LOG@STEPS")
        for skill, points in read_log(path).items():
            runs[name][skill] += [(step + int(before or 0), accuracy) for step, accuracy in points]
    skills = sorted({skill for curves in runs.values() for skill in curves})
    if args.skills:
        wanted = args.skills.split(",")
        if unknown := sorted(set(wanted) - set(skills)):
            parser.error(f"--skills: {', '.join(unknown)} not in the logs (they have {', '.join(skills)})")
        skills = wanted
    fig, axes = pyplot().subplots(1, len(skills), figsize=(3.2 * len(skills), 3.2), squeeze=False)
    colours = legend_below(fig, runs, ncol=len(runs))
    for ax, skill in zip(axes[0], skills):
        for name, curves in runs.items():
            points = sorted(curves.get(skill, []))
            if not points:
                continue
            steps = [s for s, _ in points]
            accuracies = [a for _, a in points]
            intervals = [stats.wilson_interval(round(a * args.items / 100), args.items) for a in accuracies]
            # max(0, .): at 0% the Wilson bound is 0 only up to rounding
            low = [max(0.0, a - 100 * lo) for a, (lo, _) in zip(accuracies, intervals)]
            high = [max(0.0, 100 * hi - a) for a, (_, hi) in zip(accuracies, intervals)]
            ax.errorbar(steps, accuracies, yerr=[low, high], marker="o", capsize=2, color=colours[name], label=name)
            for step, accuracy in points:
                print(json.dumps({"series": name, "skill": skill, "step": step, "accuracy": accuracy, "n": args.items}))
        ax.set_title(skill, fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylim(0, 100)
    axes[0][0].set_ylabel("held-out accuracy (%)")
    if args.title:
        fig.suptitle(args.title, fontsize=10)
    save_figure(fig, args.out, rect=(0, 0.08, 1, 1))  # room for the legend below the panels


if __name__ == "__main__":
    main()
