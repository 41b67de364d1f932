"""Plots for people: training curves from a trainer's log history."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

# Curves worth a panel each, in order, when the log has them: (log key, panel title).
CURVES = (
    ("rewards/format_reward/mean", "format reward"),
    ("rewards/strict_format_reward/mean", "strict format reward"),
    ("rewards/accuracy_reward/mean", "accuracy reward"),
    ("rewards/math_accuracy_reward/mean", "math accuracy reward"),
    ("rewards/func_accuracy_reward/mean", "function accuracy reward"),
    ("rewards/full_func_accuracy_reward/mean", "exact function reward"),
    ("completions/mean_length", "completion length (tokens)"),
    ("kl", "KL to reference"),
    ("loss", "loss"),
)


def training_curves(state_file: str | os.PathLike, out: str | os.PathLike, title: str = "") -> Path | None:
    """A PNG with one panel per logged curve of ``trainer_state.json``; None if nothing was logged."""
    fig = _curves_figure(state_file, title)
    return save_figure(fig, out) if fig is not None else None


def training_curves_png(state_file: str | os.PathLike, title: str = "") -> bytes | None:
    """The same figure as PNG bytes, for a page that embeds it (``html_report``)."""
    import io

    fig = _curves_figure(state_file, title)
    if fig is None:
        return None
    buf = io.BytesIO()
    _render(fig, buf)
    return buf.getvalue()


def _curves_figure(state_file: str | os.PathLike, title: str):
    state_file = Path(state_file)
    if not state_file.is_file():
        return None
    history = json.loads(state_file.read_text()).get("log_history", [])
    panels = [(key, name) for key, name in CURVES if any(key in h for h in history)]
    if not panels:
        return None
    plt = pyplot()
    cols = min(3, len(panels))
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    for ax, (key, name) in zip(axes.flat, panels):
        points = [(h["step"], h[key]) for h in history if key in h]
        ax.plot([p[0] for p in points], [p[1] for p in points], marker=".", linewidth=1)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    return fig


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def legend_below(fig, names, ncol: int) -> dict[str, Any]:
    """One colour per series name, kept in every panel, and one legend for them all below the
    panels (leave room with ``save_figure``'s ``rect``); returns name -> colour for the plots.
    Up to 10 series take matplotlib's default cycle, up to 20 the paired ``tab20`` map (no
    two series share a colour); past 20 colours repeat."""
    names = list(names)
    palette = [f"C{k}" for k in range(10)] if len(names) <= 10 else [pyplot().get_cmap("tab20")(k) for k in range(20)]
    colours = {name: palette[k % len(palette)] for k, name in enumerate(names)}
    handles = [pyplot().Line2D([], [], color=colour, marker="o", label=name) for name, colour in colours.items()]
    fig.legend(handles=handles, loc="lower center", ncol=ncol, fontsize=8, frameon=False)
    return colours


def save_figure(fig, out: str | os.PathLike, rect: tuple | None = None) -> Path:
    """Lay out (within ``rect``, e.g. to leave room for a legend below), write atomically (a
    temporary file, then a rename: no half-written figure) and close the figure."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.png")
    _render(fig, tmp, rect)
    os.replace(tmp, out)
    return out


def _render(fig, target, rect: tuple | None = None) -> None:
    """Lay out, write as PNG (to a path or a binary buffer) and close: every figure's last step."""
    fig.tight_layout(rect=rect)
    fig.savefig(target, format="png", dpi=110)
    pyplot().close(fig)


def accuracy_bars(rows: list[list], header: list[str], out: str | os.PathLike, title: str = "") -> Path:
    """Grouped bars: one group per test split (plus AVG), one bar per paradigm."""
    plt = pyplot()
    columns = header[1:-2]  # the splits and AVG (ID / OOD AVG repeat them)
    fig, ax = plt.subplots(figsize=(1.6 + 1.5 * len(columns), 3.6))
    width = 0.8 / max(1, len(rows))
    for i, row in enumerate(rows):
        xs = [c + (i - (len(rows) - 1) / 2) * width for c in range(len(columns))]
        ax.bar(xs, row[1 : 1 + len(columns)], width=width, label=row[0])
    ax.set_xticks(range(len(columns)), columns)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(axis="y", alpha=0.3)
    if title:
        ax.set_title(title)
    return save_figure(fig, out)


BASELINES = {"most-frequent": ("gray", "most frequent answer"), "best-constant": ("black", "best constant answer")}  # sweep rows drawn dotted


def data_efficiency(summary: dict, out: str | os.PathLike, title: str = "") -> Path:
    """Accuracy vs training samples (log x), in-domain and domain-shift panels, each point with
    its 95% interval where the summary has one; zero-shot as a dashed line, the constant-answer
    baselines (most frequent; best constant, for partial credit) as dotted ones, the stage-1
    activation point as a star at the samples stage 1 saw (the paper's figure). ``summary[budget][row]`` holds ``id``,
    ``ood``, ``samples`` and optionally ``id_ci95`` / ``ood_ci95``."""
    plt = pyplot()
    budgets = sorted(int(b) for b in summary)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, key, name in ((axes[0], "id", "in-domain"), (axes[1], "ood", "domain shift (avg)")):
        paradigms = sorted({p for b in budgets for p in summary[str(b)]})
        for p in paradigms:
            if p in ("zero-shot", "stage1", *BASELINES):
                continue
            entries = [(b, summary[str(b)][p]) for b in budgets if p in summary[str(b)]]
            (line,) = ax.plot([b for b, _ in entries], [e[key] for _, e in entries], marker="o", label=p)
            _intervals(ax, [b for b, _ in entries], [e for _, e in entries], key, line.get_color())
        zero = [summary[str(b)]["zero-shot"][key] for b in budgets if "zero-shot" in summary[str(b)]]
        if zero:
            ax.axhline(zero[0], linestyle="--", color="gray", label="zero-shot")
        for row, (color, label) in BASELINES.items():
            baseline = [(b, summary[str(b)][row][key]) for b in budgets if row in summary[str(b)]]
            if baseline:
                ax.plot([x for x, _ in baseline], [y for _, y in baseline], linestyle=":", color=color, label=label)
        stage1 = [(summary[str(b)]["stage1"].get("samples", b), summary[str(b)]["stage1"]) for b in budgets if "stage1" in summary[str(b)]]  # at its own data share
        if stage1:
            ax.scatter([x for x, _ in stage1], [e[key] for _, e in stage1], marker="*", s=120, color="black", label="stage 1 only", zorder=5)
            _intervals(ax, [x for x, _ in stage1], [e for _, e in stage1], key, "black")
        ax.set_xscale("log")
        ax.set_xlabel("training samples")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(name)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7)
    if title:
        fig.suptitle(title)
    return save_figure(fig, out)


def _intervals(ax, xs: list, entries: list[dict], key: str, color) -> None:
    """Error bars at ``xs`` from each entry's ``key + "_ci95"`` (none drawn where an entry has none)."""
    points = [(x, e[key], e.get(f"{key}_ci95")) for x, e in zip(xs, entries) if e.get(f"{key}_ci95")]
    if points:
        errors = [[y - ci[0] for _, y, ci in points], [ci[1] - y for _, y, ci in points]]
        ax.errorbar([x for x, _, _ in points], [y for _, y, _ in points], yerr=errors, fmt="none", ecolor=color, capsize=3, alpha=0.7)


def seed_spread(result: dict, out: str | os.PathLike, title: str = "") -> Path:
    """One experiment at several seeds (``reasonrft.seeds``): in-domain and domain-shift panels,
    one line per row, each seed a point with its 95% interval over questions, the seeds' mean
    a vertical tick: whether a gap between rows is larger than the seed's own spread."""
    plt = pyplot()
    names = list(result["rows"])
    seeds = result["seeds"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.9 + 0.55 * len(names)), sharey=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, key, name in ((axes[0], "id", f"in domain ({result['in_domain']})"), (axes[1], "ood", "domain shift (avg)")):
        for y, row_name in enumerate(names):
            row = result["rows"][row_name]
            for i, point in enumerate(row["seeds"]):
                offset = (i - (len(seeds) - 1) / 2) * 0.18
                low, high = point[f"{key}_ci95"]
                ax.errorbar([point[key]], [y + offset], xerr=[[point[key] - low], [high - point[key]]], fmt="o", color=colors[i % len(colors)], markersize=4, capsize=2, label=f"seed {point['seed']}" if y == 0 else None)
            ax.plot([row[f"{key}_mean"]] * 2, [y - 0.35, y + 0.35], color="black", linewidth=1.5)
        ax.set_yticks(range(len(names)), [result["rows"][n]["title"] for n in names])
        ax.invert_yaxis()
        ax.set_xlabel("accuracy (%)")
        ax.set_title(name)
        ax.grid(axis="x", alpha=0.3)
    axes[1].legend(fontsize=7)
    if title:
        fig.suptitle(title)
    return save_figure(fig, out)
