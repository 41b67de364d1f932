"""``reasonrft seeds``: the spread of one compare over seeds, from the runs' results.json.

The runs here are small hand-written results files in compare's format (what a finished
compare writes), so that every number of the spread can be checked by hand.
"""

import json

import pytest

from reasonrft import seeds
from reasonrft.cli import main
from reasonrft.errors import UserError

SPLITS = ("test-id", "test-ood-d", "test-ood-m")


def _row(id_acc: float, ood_acc: float) -> dict:
    splits = {s: {"n": 100, "accuracy": id_acc if s == "test-id" else ood_acc, "ci95": [id_acc - 5 if s == "test-id" else ood_acc - 5, id_acc + 5 if s == "test-id" else ood_acc + 5]} for s in SPLITS}
    return {"splits": splits, "shift_splits": ["test-ood-d", "test-ood-m"], "shift_average": ood_acc, "shift_average_ci95": [ood_acc - 3, ood_acc + 3]}


def _diff(value: float, low: float, high: float) -> dict:
    return {"n": 100, "difference": value, "ci95": [low, high], "ci_method": "paired-bootstrap"}


def _run(tmp_path, seed: int, cot: tuple, rrft: tuple, gap: tuple, **config) -> str:
    """A compare directory at ``seed``: CoT-SFT and Reason-RFT rows (in-domain, shift) and the
    Reason-RFT - CoT-SFT paired difference on the shift average (value, low, high)."""
    run_dir = tmp_path / f"seed{seed}"
    run_dir.mkdir()
    result = {
        "task": "counting",
        "rows": {"cot-sft": _row(*cot), "reason-rft": _row(*rrft), **({"zero-shot": _row(5, 5)} if seed == 0 else {})},
        "baseline": _row(10, 10),
        "paired": {"reason-rft - cot-sft": {"test-id": _diff(0.0, -1, 1), "OOD AVG": _diff(*gap)}},
        "config": {"task": "counting", "seed": seed, "out": str(run_dir), "n_eval": 100, "grpo_steps": 100, **config},
    }
    (run_dir / "results.json").write_text(json.dumps(result))
    return str(run_dir)


def test_the_spread_gives_each_seed_its_mean_range_and_how_often_a_gap_clears_zero(tmp_path):
    dirs = [_run(tmp_path, 0, (30, 10), (20, 14), (4, 1, 7)), _run(tmp_path, 1, (20, 12), (22, 13), (1, -2, 4)), _run(tmp_path, 2, (25, 8), (24, 15), (7, 2, 12))]
    result = seeds.spread(seeds.load_runs(dirs[::-1]))  # any order: sorted by seed
    assert result["seeds"] == [0, 1, 2]
    assert list(result["rows"]) == ["cot-sft", "reason-rft", "most-frequent"]  # zero-shot is in one run only
    cot = result["rows"]["cot-sft"]
    assert [p["ood"] for p in cot["seeds"]] == [10, 12, 8]
    assert (cot["ood_mean"], cot["ood_min"], cot["ood_max"], cot["ood_sd"]) == (10.0, 8, 12, 2.0)
    assert (cot["id_mean"], cot["id_min"], cot["id_max"]) == (25.0, 20, 30)
    assert cot["seeds"][0]["ood_n"] == 200
    gap = result["paired"]["reason-rft - cot-sft"]
    assert gap["ood_clears_zero"] == {"above": 2, "below": 0, "of": 3}
    assert gap["id_clears_zero"] == {"above": 0, "below": 0, "of": 3}
    text = seeds.markdown(result)
    assert "| CoT-SFT | 10.00 [7.00, 13.00] | 12.00 [9.00, 15.00] | 8.00 [5.00, 11.00] | 10.00 | 8.00-12.00 | 2.00 |" in text
    assert "| Reason-RFT - CoT-SFT, shift | +4.00 [+1.00, +7.00] | +1.00 [-2.00, +4.00] | +7.00 [+2.00, +12.00] | 2 of 3 | 0 of 3 |" in text


def test_runs_of_different_experiments_or_the_same_seed_are_refused(tmp_path):
    a = _run(tmp_path, 0, (30, 10), (20, 14), (4, 1, 7))
    b = _run(tmp_path, 1, (20, 12), (22, 13), (1, -2, 4), n_eval=500)
    with pytest.raises(UserError, match=r"not the same experiment .*n_eval: 100 vs 500"):
        seeds.load_runs([a, b])
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "results.json").write_text((tmp_path / "seed0" / "results.json").read_text())
    with pytest.raises(UserError, match="same seed"):
        seeds.load_runs([a, str(tmp_path / "copy")])
    with pytest.raises(UserError, match="at least two"):
        seeds.load_runs([a])
    # a setting added to compare since a run was made counts at its default, and only there
    c = _run(tmp_path, 2, (20, 12), (22, 13), (1, -2, 4), stage1_epochs=0.0)
    assert len(seeds.load_runs([a, c])) == 2
    d = _run(tmp_path, 3, (20, 12), (22, 13), (1, -2, 4), stage1_epochs=2.0)
    with pytest.raises(UserError, match=r"stage1_epochs: 0.0 vs 2.0"):
        seeds.load_runs([a, d])


def test_the_cli_writes_tables_and_a_plot_and_names_a_bad_run_in_one_line(tmp_path, capsys):
    dirs = [_run(tmp_path, 0, (30, 10), (20, 14), (4, 1, 7)), _run(tmp_path, 1, (20, 12), (22, 13), (1, -2, 4))]
    assert main(["seeds", *dirs, "--out", str(tmp_path / "spread")]) == 0
    assert "Domain-shift average" in capsys.readouterr().out
    assert json.loads((tmp_path / "spread" / "seeds.json").read_text())["rows"]["reason-rft"]["ood_mean"] == 13.5
    assert (tmp_path / "spread" / "seeds.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "seeds.md" in {p.name for p in (tmp_path / "spread").iterdir()}

    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "results.json").write_text('{"task": "counting",')
    assert main(["seeds", dirs[0], str(tmp_path / "broken")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "broken/results.json: not valid JSON" in err[0]
    assert main(["seeds", dirs[0], str(tmp_path / "missing")]) == 2
    assert "missing/results.json: not found" in capsys.readouterr().err
