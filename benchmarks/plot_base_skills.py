"""Skill against training compute: the base-model runs of docs/results.md section 4.1 in one figure.

Run by hand: ``.venv/bin/python benchmarks/plot_base_skills.py --out FIG.png SERIES@EXAMPLES=FILE ...``,
where each ``FILE`` is what ``benchmarks/bench_base.py`` printed for one model (JSON lines),
``SERIES`` names the run (one line per series) and ``EXAMPLES`` is the number of training
examples the language model had seen by then (reading-phase steps x batch size). One panel per
skill group, with the issue's target as a dashed line; prints the plotted points as JSON lines.
"""

from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path

from reasonrft.plots import legend_below, pyplot, save_figure

# panel -> (skills averaged, target %)
PANELS: dict[str, tuple[tuple[str, ...], float]] = {
    "count, test-id scenes": (("count/test-id",), 90),
    "count, test-ood-d look": (("count/test-ood-d",), 90),
    "filtered count": (("count_filtered/1", "count_filtered/2"), 80),
    "attribute of a named object": (tuple(f"attribute/{a}" for a in ("color", "shape", "size", "material")), 90),
    "diagram reading": (("diagram/labels", "diagram/numbers"), 90),
    "two-image description": (("two_images",), 80),
    "text arithmetic": (("arithmetic/sum_difference", "arithmetic/product_quotient_square_root"), 90),
    "copy a phrase": (("copy",), 90),
    "think/answer format": (("format",), 95),
    "mean over skills": (("mean",), 0),
}


def read_skills(path: Path) -> dict[str, float]:
    return {row["skill"]: row["accuracy"] for row in map(json.loads, path.read_text().splitlines()) if row.get("skill")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("points", nargs="+", help="SERIES@EXAMPLES=FILE")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    series: dict[str, list[tuple[int, dict[str, float]]]] = collections.defaultdict(list)
    for point in args.points:
        label, _, file = point.partition("=")
        name, _, examples = label.rpartition("@")
        if not (name and examples.isdigit() and file):
            raise SystemExit(f"plot_base_skills: bad point {point!r}; want SERIES@EXAMPLES=FILE")
        series[name].append((int(examples), read_skills(Path(file))))

    fig, axes = pyplot().subplots(2, 5, figsize=(17, 7.5), sharex=True)
    colours = legend_below(fig, series, ncol=5)  # below the panels: no curve hidden
    for ax, (panel, (skills, target)) in zip(axes.flat, PANELS.items()):
        for name, points in series.items():
            points = sorted((x, s) for x, s in points if all(k in s for k in skills))  # a text-only run has no visual skills
            xs = [x / 1000 for x, _ in points]
            ys = [sum(s[k] for k in skills) / len(skills) for _, s in points]
            ax.plot(xs, ys, marker="o", color=colours[name], label=name)
            for x, y in zip(xs, ys):
                print(json.dumps({"panel": panel, "series": name, "lm_examples_k": x, "accuracy": round(y, 1)}))
        if target:
            ax.axhline(target, ls="--", color="gray", lw=1)
        ax.set_xscale("log")  # the runs' compute spans two orders of magnitude (the text phase's batches of 64)
        ax.set_title(panel, fontsize=10)
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("LM training examples seen, thousands", fontsize=9)
    axes[0][0].set_ylabel("exact match, %")
    axes[1][0].set_ylabel("exact match, %")
    fig.suptitle("The nano base's skills against training (benchmarks/bench_base.py, n = 100 or 300 per skill; dashed: the issue's target)")
    save_figure(fig, args.out, rect=(0, 0.1, 1, 1))


if __name__ == "__main__":
    main()
