"""The CLI: bad input gives one clear line and exit code 2, never a traceback."""

from __future__ import annotations

import json

import pytest

from reasonrft.cli import main


@pytest.mark.parametrize(
    "argv, message",
    [
        (["data", "generate", "--task", "nope", "--split", "train", "--n", "2", "--out", "X"], "unknown task 'nope'"),
        (["data", "generate", "--task", "counting", "--split", "dev", "--n", "2", "--out", "X"], "unknown split 'dev'"),
        (["sft", "model=/does/not/exist", "output_dir=X"], "/does/not/exist: model directory not found"),
        (["grpo", "model=/does/not/exist", "output_dir=X", "nonsense_key=1"], "unknown config key 'nonsense_key'"),
        (["eval", "--model", "/does/not/exist"], "model directory not found"),
        (["eval", "--predictions", "/does/not/exist.jsonl"], "predictions file not found"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, message):
    argv = [a.replace("X", str(tmp_path / "x")) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("reasonrft: error:") and message in err and "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_broken_yaml_file(tmp_path, capsys):
    f = tmp_path / "bad.yaml"
    f.write_text("model: [unclosed\n")
    assert main(["sft", "--config", str(f)]) == 2
    assert "broken YAML" in capsys.readouterr().err


def test_negative_count_is_refused(capsys):
    with pytest.raises(SystemExit) as e:
        main(["data", "generate", "--task", "counting", "--split", "train", "--n", "-3", "--out", "x"])
    assert e.value.code == 2
    assert "must be >= 0" in capsys.readouterr().err


def test_data_generate_and_show(tmp_path, capsys):
    assert main(["data", "generate", "--task", "counting", "--split", "train", "--n", "3", "--seed", "2", "--out", str(tmp_path / "ds")]) == 0
    rows = json.loads((tmp_path / "ds" / "data.json").read_text())
    assert len(rows) == 3 and all((tmp_path / "ds" / r["image"]).is_file() for r in rows)
    assert main(["data", "show", "--task", "counting", "--split", "test-ood-d", "--n", "2", "--out", str(tmp_path / "sheet.png")]) == 0
    from PIL import Image

    assert Image.open(tmp_path / "sheet.png").size[0] > 400


def test_rescore_official_predictions(tmp_path, capsys):
    f = tmp_path / "preds.json"
    f.write_text(json.dumps([
        {"image": "a.png", "problem": "q", "answer": "3", "pred": "<think>x</think><answer>3</answer>"},
        {"image": "b.png", "problem": "q", "answer": "4", "pred": "<answer>\n5\n</answer>"},
    ]))
    assert main(["eval", "--task", "counting", "--predictions", str(f)]) == 0
    assert "| all | 2 | 50.00 | 50.00 |" in capsys.readouterr().out
