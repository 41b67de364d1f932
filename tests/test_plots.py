"""The figures show the data they are given: the curves, bars and markers handed to matplotlib
are checked against the input (a PNG's width says nothing about what is drawn in it)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from reasonrft import plots


@pytest.fixture
def figures(monkeypatch):
    """Every figure ``plots`` saves, kept open for inspection (and still written)."""
    saved = []

    def keep(fig, out, rect=None):
        saved.append(fig)
        fig.tight_layout()
        fig.savefig(out, dpi=50)
        return out

    monkeypatch.setattr(plots, "save_figure", keep)
    yield saved
    for fig in saved:
        plots.pyplot().close(fig)


def _drawn(png) -> bool:
    """More than a blank canvas: a few percent of the pixels are not background white."""
    pixels = np.asarray(Image.open(png).convert("L"))
    return (pixels < 200).mean() > 0.02


def test_training_curves_plot_each_logged_series(tmp_path, figures):
    history = [{"step": s, "loss": 1.0 / s, "kl": 0.01 * s, "rewards/format_reward/mean": s / 10} for s in (1, 2, 3)] + [{"step": 3, "train_runtime": 9.0}]
    state = tmp_path / "trainer_state.json"
    state.write_text(json.dumps({"log_history": history}))
    assert _drawn(plots.training_curves(state, tmp_path / "curves.png", title="t"))
    (fig,) = figures
    panels = {ax.get_title(): ax for ax in fig.axes if ax.lines}
    assert set(panels) == {"format reward", "KL to reference", "loss"}  # only the logged curves, each once
    for title, key in (("loss", "loss"), ("KL to reference", "kl"), ("format reward", "rewards/format_reward/mean")):
        (line,) = panels[title].lines
        assert line.get_xydata().tolist() == [[h["step"], h[key]] for h in history if key in h]
    state.write_text(json.dumps({"log_history": [{"step": 1, "train_runtime": 1.0}]}))
    assert plots.training_curves(state, tmp_path / "none.png") is None and not (tmp_path / "none.png").exists()


def test_accuracy_bars_have_one_bar_per_paradigm_and_split(tmp_path, figures):
    header = ["paradigm", "test-id", "test-ood", "AVG", "ID", "OOD AVG"]
    rows = [["ANS-SFT", 10.0, 20.0, 15.0, 10.0, 20.0], ["Reason-RFT", 30.0, 40.0, 35.0, 30.0, 40.0]]
    assert _drawn(plots.accuracy_bars(rows, header, tmp_path / "bars.png"))
    (ax,) = figures[0].axes
    heights = [[patch.get_height() for patch in container] for container in ax.containers]
    assert heights == [row[1:4] for row in rows]  # the splits and AVG, per paradigm
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["ANS-SFT", "Reason-RFT"]


def test_data_efficiency_draws_each_paradigm_zero_shot_and_stage1(tmp_path, figures):
    summary = {
        str(b): {
            "zero-shot": {"id": 5.0, "ood": 4.0},
            "ans-sft": {"id": 10.0 + b / 100, "ood": 8.0 + b / 100},
            "reason-rft": {"id": 12.0 + b / 100, "ood": 9.0 + b / 100},
            "stage1": {"id": 7.0, "ood": 6.0, "samples": b // 2},
        }
        for b in (200, 800)
    }
    assert _drawn(plots.data_efficiency(summary, tmp_path / "eff.png"))
    for ax, key in zip(figures[0].axes, ("id", "ood")):
        curves = {line.get_label(): line.get_xydata().tolist() for line in ax.lines if line.get_label() != "zero-shot"}
        assert curves == {p: [[b, summary[str(b)][p][key]] for b in (200, 800)] for p in ("ans-sft", "reason-rft")}
        (zero,) = [line for line in ax.lines if line.get_label() == "zero-shot"]
        assert zero.get_ydata()[0] == summary["200"]["zero-shot"][key]
        (stars,) = ax.collections
        assert stars.get_offsets().tolist() == [[100, 7.0 if key == "id" else 6.0], [400, 7.0 if key == "id" else 6.0]]  # at stage 1's own samples


def test_data_efficiency_draws_intervals_and_the_most_frequent_answer(tmp_path, figures):
    """Each point with its 95% interval as an error bar, the baseline as a dotted line."""
    summary = {
        str(b): {
            "zero-shot": {"id": 5.0, "ood": 4.0, "id_ci95": [3.0, 8.0], "ood_ci95": [2.0, 7.0]},
            "reason-rft": {"id": 12.0, "ood": 9.0, "id_ci95": [10.0, 15.0], "ood_ci95": [7.5, 11.0], "samples": b},
            "most-frequent": {"id": 10.0, "ood": 9.5 + b / 1000, "id_ci95": [8.0, 13.0], "ood_ci95": [8.0, 12.0], "samples": b},
        }
        for b in (200, 800)
    }
    plots.data_efficiency(summary, tmp_path / "eff.png")
    for ax, key in zip(figures[0].axes, ("id", "ood")):
        (baseline,) = [line for line in ax.lines if line.get_label() == "most frequent answer"]
        assert baseline.get_linestyle() == ":" and baseline.get_xydata().tolist() == [[b, summary[str(b)]["most-frequent"][key]] for b in (200, 800)]
        (bars,) = ax.collections  # reason-rft's error bars; zero-shot and the baseline are lines
        segments = [seg.tolist() for seg in bars.get_segments()]
        lo, hi = summary["200"]["reason-rft"][f"{key}_ci95"]
        assert segments[0] == [[200, lo], [200, hi]] and len(segments) == 2


def test_every_reward_has_a_training_curve_panel():
    from reasonrft.plots import CURVES
    from reasonrft.rewards import REWARDS

    panels = {key for key, _ in CURVES}
    assert {f"rewards/{name}_reward/mean" for name in REWARDS} <= panels
