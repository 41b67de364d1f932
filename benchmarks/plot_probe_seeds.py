"""How much of a count probe's figure is the tower, and how much the reader's own seed?

Run by hand, from ``docs/figures``: ``python ../../benchmarks/plot_probe_seeds.py --out FIG.png
"LABEL=FILE" ...``, each FILE the JSON lines of one ``probe_count_features.py --reader-seeds N``
run (one tower). One panel per reader, one column of dots per tower (one dot per reader seed, on
the held-out plain scenes), the tower's mean marked: dots that scatter more within a column than
the columns differ say that the reader, not the tower, sets the figure.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from reasonrft import plots


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="the PNG to write")
    parser.add_argument("towers", nargs="+", help="LABEL=FILE, one per tower, in plotting order")
    args = parser.parse_args()
    towers: list[tuple[str, dict[str, list[float]]]] = []
    for spec in args.towers:
        label, _, path = spec.partition("=")
        if not path:
            sys.exit(f"plot_probe_seeds: error: {spec!r} is not LABEL=FILE")
        by_reader: dict[str, list[float]] = {}
        try:
            for line in Path(path).read_text().splitlines():
                row = json.loads(line)
                by_reader.setdefault(row["reader"], []).append(row["plain"]["accuracy"])
        except (OSError, ValueError, KeyError) as error:
            sys.exit(f"plot_probe_seeds: error: {path}: {error}")
        towers.append((label, by_reader))

    readers = sorted({reader for _, by_reader in towers for reader in by_reader})
    figure, axes = plots.pyplot().subplots(1, len(readers), figsize=(4.5 * len(readers), 3.6), sharey=True, squeeze=False)
    for axis, reader in zip(axes[0], readers):
        for x, (label, by_reader) in enumerate(towers):
            values = by_reader.get(reader, [])
            axis.scatter([x] * len(values), values, s=22, color="tab:blue", alpha=0.7)
            if values:
                axis.hlines(sum(values) / len(values), x - 0.3, x + 0.3, color="black", linewidth=1.5)
        axis.set_xticks(range(len(towers)), [label for label, _ in towers], rotation=30, ha="right", fontsize=8)
        axis.set_title(f"{reader}: one dot per reader seed", fontsize=10)
        axis.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("held-out scenes counted exactly (%)")
    print(f"wrote {plots.save_figure(figure, args.out)}")


if __name__ == "__main__":
    main()
