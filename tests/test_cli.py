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
        (["sft", "model=/does/not/exist", "output_dir=X", "dataloader_num_workers=-1"], "dataloader_num_workers must be >= 0"),
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
    import numpy as np
    from PIL import Image

    from reasonrft import report
    from reasonrft.tasks import get_task

    sheet = Image.open(tmp_path / "sheet.png").convert("RGB")
    samples = [get_task("counting").sample("test-ood-d", i) for i in range(2)]
    for row, sample in enumerate(samples):  # each row shows its own sample's image, pixel for pixel
        y = 30 + row * (report.THUMB + 12)
        assert sheet.crop((6, y, 6 + report.THUMB, y + report.THUMB)).tobytes() == sample.images[0].tobytes()
        text = np.asarray(sheet.crop((6 + report.THUMB + 6, y, sheet.width, y + report.THUMB)).convert("L"))
        assert (text < 128).mean() > 0.01  # and its question, CoT and answer as text


def test_rescore_official_predictions(tmp_path, capsys):
    f = tmp_path / "preds.json"
    f.write_text(json.dumps([
        {"image": "a.png", "problem": "q", "answer": "3", "pred": "<think>x</think><answer>3</answer>"},
        {"image": "b.png", "problem": "q", "answer": "4", "pred": "<answer>\n5\n</answer>"},
    ]))
    assert main(["eval", "--task", "counting", "--predictions", str(f)]) == 0
    assert "| all | 2 | 50.00 | 50.00 |" in capsys.readouterr().out


def _break_record(row: dict, root, case: str) -> str:
    """Make ``row`` bad in the way ``case`` names; return what the error line must say."""
    image = root / row["image"]
    if case == "corrupt PNG":
        png = image.read_bytes()
        image.write_bytes(png[:100] + bytes(200) + png[300:])  # the pixel stream zeroed
        return f"image {image}: not a readable image"
    if case == "zero-byte image":
        image.write_bytes(b"")
        return f"image {image}: empty file (0 bytes)"
    if case == "missing image":
        image.unlink()
        return f"image {image}: image not found"
    if case == "wrong number of images":
        row["image"] = [row["image"], row["image"]]
        return "2 image(s), but task 'counting' takes 1"
    if case == "non-string answer":
        row["answer"] = int(row["answer"])
        return "field 'answer' must be a string, got int"
    raise AssertionError(case)


BAD_DATA = ["corrupt PNG", "zero-byte image", "missing image", "wrong number of images", "non-string answer"]


@pytest.mark.parametrize("stage", ["sft", "grpo", "eval"])
@pytest.mark.parametrize("case", BAD_DATA)
def test_bad_data_is_refused_before_any_work(nano_model, tmp_path, capsys, monkeypatch, stage, case):
    """One bad record among good ones stops each stage before it loads the model: one line
    naming the dataset file, the record id (and the image), exit code 2, no output directory."""
    from reasonrft import data, modeling
    from reasonrft.tasks import get_task

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the data was checked")

    monkeypatch.setattr(modeling, "load_model", no_model)
    split = "test-id" if stage == "eval" else "train"
    root = data.write_dataset(tmp_path / "data" / split, data.generate_records(get_task("counting"), split, 3, seed=1))
    rows = json.loads((root / "data.json").read_text())
    expected = _break_record(rows[1], root, case)
    (root / "data.json").write_text(json.dumps(rows))
    out = tmp_path / "out"
    if stage == "eval":
        argv = ["eval", "--model", nano_model, "--task", "counting", "--splits", split, f"data_root={tmp_path / 'data'}", f"output_dir={out}"]
    else:
        argv = [stage, f"model={nano_model}", f"data={root}", f"output_dir={out}", "max_steps=1"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"reasonrft: error: {root / 'data.json'}: record 1 (id {rows[1]['id']!r}): "), err
    assert expected in err and "\n" not in err
    assert not out.exists()


def test_fsdp_without_a_gpu_is_refused_before_any_work(nano_model, tmp_path, capsys, monkeypatch):
    import torch

    if torch.accelerator.is_available():
        pytest.skip("this machine has an accelerator: FSDP can run")
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")  # what `accelerate launch` sets for an FSDP config
    assert main(["sft", f"model={nano_model}", f"output_dir={tmp_path / 'out'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("reasonrft: error: FSDP needs GPUs") and "\n" not in err
    assert not (tmp_path / "out").exists()
