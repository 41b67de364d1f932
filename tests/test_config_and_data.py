"""Configs (YAML + overrides, checked up front) and dataset files (official format)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reasonrft import data
from reasonrft.config import load_config
from reasonrft.errors import UserError
from reasonrft.stages.grpo import GRPOStageConfig
from reasonrft.stages.sft import SFTStageConfig
from reasonrft.tasks import get_task


def test_yaml_then_overrides(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("model: m\noutput_dir: o\nlearning_rate: 1e-5\nrewards:\n  format: 1.0\n")
    c = load_config(GRPOStageConfig, str(f), ["beta=0.1", "rewards.accuracy=0.5", "num_generations=4"])
    assert c.learning_rate == 1e-5 and c.beta == 0.1 and c.num_generations == 4
    assert c.rewards == {"format": 1.0, "accuracy": 0.5}


@pytest.mark.parametrize(
    "yaml_text, overrides, message",
    [
        ("model: m\noutput_dir: o\n", ["lerning_rate=1"], "unknown config key 'lerning_rate' for sft (did you mean 'learning_rate'?)"),
        ("model: m\noutput_dir: o\nbogus: 1\n", [], "unknown config key 'bogus'"),
        ("model: m\noutput_dir: o\n", ["per_device_train_batch_size=two"], "expected an integer"),
        ("model: m\noutput_dir: o\n", ["freeze_vision=maybe"], "expected true or false"),
        ("model: m\noutput_dir: o\n", ["paradigm=rl"], "paradigm must be"),
        ("model: m\noutput_dir: o\n", ["novalue"], "expected key=value"),
        ("model: m\n", [], "missing required key(s) output_dir"),
        ("model: [m\noutput_dir: o\n", [], "broken YAML (line"),
        ("- a\n- b\n", [], "expected a mapping"),
    ],
)
def test_config_errors_are_one_clear_line(tmp_path, yaml_text, overrides, message):
    f = tmp_path / "c.yaml"
    f.write_text(yaml_text)
    with pytest.raises(UserError) as e:
        load_config(SFTStageConfig, str(f), overrides)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_missing_config_file():
    with pytest.raises(UserError, match="config file not found"):
        load_config(SFTStageConfig, "/no/such.yaml")


def test_write_and_load_roundtrip(tmp_path):
    task = get_task("counting")
    records = data.generate_records(task, "test-id", 4, seed=3)
    out = data.write_dataset(tmp_path / "ds", records, {"task": "counting"})
    rows = json.loads((out / "data.json").read_text())
    assert set(rows[0]) >= {"id", "image", "problem", "cot", "answer"}
    assert rows[0]["image"] == f"images/{rows[0]['id']}.png"  # relative to the directory
    loaded = data.load_dataset(out)
    assert [r.answer for r in loaded] == [r.answer for r in records]
    assert loaded[0].open_images()[0].tobytes() == records[0].images[0].tobytes()


def _write_rows(tmp_path: Path, rows) -> Path:
    (tmp_path / "images").mkdir(exist_ok=True)
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "images" / "a.png")
    (tmp_path / "data.json").write_text(json.dumps(rows) if not isinstance(rows, str) else rows)
    return tmp_path


@pytest.mark.parametrize(
    "rows, message",
    [
        ([{"id": 1, "image": "images/a.png", "answer": "3"}], "record 0 (id 1): missing field 'problem'"),
        ([{"id": 1, "image": "images/a.png", "problem": "q"}], "missing field 'answer'"),
        ([{"id": 1, "image": "images/missing.png", "problem": "q", "answer": "3"}], "image not found"),
        ([{"id": 1, "image": 5, "problem": "q", "answer": "3"}], "field 'image' must be str or list"),
        ([{"id": 1, "image": "images/a.png", "problem": ["q"], "answer": "3"}], "field 'problem' must be str"),
        ({"id": 1}, "expected a JSON list"),
        ("[{\"id\": 1,", "not valid JSON (line 1"),
        (["just a string"], "record 0: expected an object"),
    ],
)
def test_bad_records_name_file_and_record(tmp_path, rows, message):
    d = _write_rows(tmp_path, rows)
    with pytest.raises(UserError) as e:
        data.load_dataset(d)
    assert message in str(e.value) and str(d / "data.json") in str(e.value)


def test_image_count_follows_the_record_task_else_the_stage_task(tmp_path):
    rows = [{"id": "a", "image": "images/a.png", "problem": "q", "answer": "3"}]
    d = _write_rows(tmp_path, rows)
    assert len(data.load_dataset(d, task="counting")) == 1
    with pytest.raises(UserError, match=r"record 0 \(id 'a'\): 1 image\(s\), but task 'transformation' takes 2"):
        data.load_dataset(d, task="transformation")
    _write_rows(tmp_path, [{**rows[0], "image": ["images/a.png", "images/a.png"], "task": "transformation"}])
    assert len(data.load_dataset(d, task="counting")) == 1  # the record's own task decides
    _write_rows(tmp_path, [{**rows[0], "image": ["images/a.png", "images/a.png"]}])
    with pytest.raises(UserError, match=r"2 image\(s\), but task 'counting' takes 1"):
        data.load_dataset(d, task="counting")


def _with_valid_crcs(png: bytes) -> bytes:
    """``png`` with every chunk's CRC recomputed, so only a decode can find what is broken."""
    import struct
    import zlib

    out, pos = bytearray(png[:8]), 8
    while pos + 12 <= len(png):
        (length,) = struct.unpack_from(">I", png, pos)
        chunk = png[pos + 4 : pos + 8 + length]
        out += png[pos : pos + 8 + length] + struct.pack(">I", zlib.crc32(chunk))
        pos += 12 + length
    return bytes(out)


def _corruptions(png: bytes) -> dict[str, bytes]:
    middle = len(png) // 2
    zeroed = png[:100] + bytes(200) + png[300:]
    return {
        "zero bytes": b"",
        "not an image": b"hello",
        "truncated": png[:middle],
        "a flipped byte in the pixel stream": png[:middle] + bytes([png[middle] ^ 0xFF]) + png[middle + 1 :],
        "zeroed pixel stream": zeroed,
        "zeroed pixel stream, CRCs valid": _with_valid_crcs(zeroed),  # PIL's verify() passes this one
    }


def test_image_check_decodes_in_full(tmp_path):
    """Every generated PNG takes the fast path and PIL agrees; each corruption is refused
    (PIL's ``verify()`` would pass the flipped and zeroed pixel streams: it never inflates)."""
    import io

    from PIL import Image

    from reasonrft.image_check import BadImage, _png_decodes, check_image

    records = data.generate_records(get_task("transformation"), "train", 2) + data.generate_records(get_task("counting"), "train", 2)
    out = data.write_dataset(tmp_path / "ds", records)
    pngs = sorted((out / "images").iterdir())
    assert len(pngs) == 6 and all(_png_decodes(p.read_bytes()) for p in pngs)
    for mode in ("L", "LA", "RGBA", "P", "I;16"):  # plain layouts on the fast path; palette and 16-bit grey via PIL
        buf = io.BytesIO()
        Image.new(mode, (9, 5)).save(buf, format="PNG")
        (tmp_path / f"{mode.replace(';', '')}.png").write_bytes(buf.getvalue())
        check_image(str(tmp_path / f"{mode.replace(';', '')}.png"))
    Image.new("RGB", (16, 16), (200, 10, 10)).save(tmp_path / "x.jpg")
    check_image(str(tmp_path / "x.jpg"))
    for name, blob in [*_corruptions(pngs[0].read_bytes()).items(), ("truncated JPEG", (tmp_path / "x.jpg").read_bytes()[:-40])]:
        bad = tmp_path / "bad.img"
        bad.write_bytes(blob)
        with pytest.raises(BadImage):
            check_image(str(bad))
            pytest.fail(f"{name}: accepted")
    with pytest.raises(BadImage, match="image not found"):
        check_image(str(tmp_path / "nowhere.png"))


def test_solution_field_is_accepted_as_answer(tmp_path):
    d = _write_rows(tmp_path, [{"id": "x", "image": "images/a.png", "problem": "q", "solution": "<answer>3</answer>"}])
    assert data.load_dataset(d)[0].answer == "<answer>3</answer>"


def test_a_failed_write_leaves_nothing(tmp_path):
    task = get_task("counting")
    good = data.generate_records(task, "train", 2)

    def records():
        yield from good
        raise RuntimeError("generator failed half-way")

    with pytest.raises(RuntimeError):
        data.write_dataset(tmp_path / "ds", records())
    assert list(tmp_path.iterdir()) == []


def test_trl_rows(tmp_path):
    task = get_task("counting")
    recs = data.generate_records(task, "train", 2)
    sft = data.sft_rows(task, recs, "cot")[0]
    assert sft["completion"][0]["content"].startswith("<think>\n") and sft["completion"][0]["content"].endswith("</answer>")
    assert data.sft_rows(task, recs, "answer")[0]["completion"][0]["content"] == recs[0].answer
    grpo = data.grpo_rows(task, recs)[0]
    assert grpo["solution"] == recs[0].answer and "<answer>" in grpo["prompt"][0]["content"]


def test_atomic_outputs_get_the_usual_file_modes(tmp_path):
    """mkstemp/mkdtemp create 0600/0700; a report or dataset must be readable like any file."""
    import os
    import stat

    from reasonrft.io import atomic_dir, atomic_write_text

    mask = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "report.html", "<p>hi</p>")
        with atomic_dir(tmp_path / "data") as tmp:
            (tmp / "x.txt").write_text("x")
    finally:
        os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o755


def test_read_jsonl_names_the_file_and_line_of_bad_input(tmp_path):
    from reasonrft.io import atomic_write_jsonl, read_jsonl

    good = atomic_write_jsonl(tmp_path / "good.jsonl", [{"id": "a"}, {"id": "b"}])
    assert read_jsonl(good) == [{"id": "a"}, {"id": "b"}]
    (tmp_path / "torn.jsonl").write_text('{"id": "a"}\n\n{"id": \n')
    (tmp_path / "list.jsonl").write_text('{"id": "a"}\n[1, 2]\n')
    for name, message in [("missing.jsonl", "missing.jsonl: no such file"), ("torn.jsonl", "torn.jsonl: line 3 is not valid JSON"), ("list.jsonl", "list.jsonl: line 2 is not a JSON object")]:
        with pytest.raises(UserError, match=message):
            read_jsonl(tmp_path / name)


@pytest.mark.parametrize("script", ["cot_arithmetic", "cot_stages"])
def test_chain_benchmarks_refuse_bad_input_in_one_line(tmp_path, script):
    """The chain benchmarks read eval's predictions; anything else is one line and exit 1, no traceback."""
    import subprocess
    import sys

    (tmp_path / "other.jsonl").write_text('{"answer": "3"}\n')
    root = Path(__file__).resolve().parents[1]
    for argument, message in [(tmp_path / "missing.jsonl", "no such file"), (tmp_path / "other.jsonl", "record 1")]:
        done = subprocess.run([sys.executable, str(root / "benchmarks" / f"{script}.py"), str(argument)], capture_output=True, text=True, timeout=120)
        assert done.returncode == 1 and message in done.stderr and "Traceback" not in done.stderr, done.stderr
