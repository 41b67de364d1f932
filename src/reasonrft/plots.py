"""Plots for people: training curves from a trainer's log history."""

from __future__ import annotations

import json
import os
from pathlib import Path

# Curves worth a panel each, in order, when the log has them: (log key, panel title).
CURVES = (
    ("rewards/format_reward/mean", "format reward"),
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
    state_file = Path(state_file)
    if not state_file.is_file():
        return None
    history = json.loads(state_file.read_text()).get("log_history", [])
    panels = [(key, name) for key, name in CURVES if any(key in h for h in history)]
    if not panels:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, out)
    return out
