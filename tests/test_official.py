"""The published dataset's layout in and out: import, validation, export, and training on it.

Every test builds a tiny copy of the official layout itself (``make_official``: a few records
per file, real PNGs, one TRANCE record with its two images), so nothing is downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from reasonrft import data, official
from reasonrft.cli import main
from reasonrft.config import build
from reasonrft.errors import UserError

N_TRAIN = 5
STAGE1 = 3
TRAIN_FILES = {task: name for name, (task, split) in official.OFFICIAL_FILES.items() if split == "train"}
TEST_FILES = {name: target for name, target in official.OFFICIAL_FILES.items() if target[1] != "train"}
SUPER_CLEVR = "Visual-Counting-ood-test-1k"
SUPER_CLEVR_LEVELS = ["D", "DS-M", "d", "D"]  # DS-D and DS-M in one file, 3 to 1 as in the paper (750 / 250)
GEOMATH_TEST = "Structure-Perception-id-test-820"
GEOMATH_INSTRUCTION = "Please write the letter of your choice first."  # the dataset's own prompt, in ``problem`` only


def _png(path: Path, shade: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (56, 56), (shade % 256, 90, 160)).save(path)


def _answer(task: str, i: int) -> str:
    return {"counting": str(i + 1), "structure": "B" if i % 2 else f"{i + 2}.5", "transformation": f"change_color(O{i}, red)" if i % 2 else f"change_size(O{i}, large)"}[task]


def _record(task: str, i: int, split_dir: str) -> dict:
    if task == "transformation":  # TRANCE: the initial and the final state
        image: str | list[str] = [f"{task}/{i}_init.png", f"{task}/{i}_final.png"]
        problem = f"Initial objects: [('O{i}', 'cube', 'small', 'gray', 'rubber')]. Which transformation?"
    else:
        image = f"{task}/{i}.png"
        problem = "Subtract all red cubes. How many objects are left?" if task == "counting" else "Find the angle x. Choices: A. 30 B. 45 C. 60 D. 90"
    return {"id": f"{task}-{split_dir}-{i}", "image": image, "problem": problem, "cot": f"Step one for item {i}. Step two.", "answer": _answer(task, i)}


def make_official(root: Path) -> Path:
    """The official layout: train_jsons/ (three Meta-JSON files + an ablation file),
    test_jsons/ (seven files: no ids, ``solution`` instead of ``answer`` in two), images/."""
    for task, name in TRAIN_FILES.items():
        rows = [_record(task, i, "train") for i in range(N_TRAIN)]
        _write(root / "train_jsons" / f"{name}.json", rows, root / "images" / "train_images")
    _write(root / "train_jsons" / "AI2D-train-1467-cot.json", [_record("counting", 0, "train")], root / "images" / "train_images")
    for k, (name, (task, _split)) in enumerate(TEST_FILES.items()):
        rows = []
        for i in range(len(SUPER_CLEVR_LEVELS) if name == SUPER_CLEVR else 2):
            row = _record(task, i, f"test{k}")
            del row["id"], row["cot"]
            row["level"] = SUPER_CLEVR_LEVELS[i] if name == SUPER_CLEVR else f"level-{i}"
            if name == GEOMATH_TEST:  # GeoMath carries the problem with and without its prompt
                row["problem_no_prompt"], row["problem"] = row["problem"], f"{row['problem']} {GEOMATH_INSTRUCTION}"
            if k % 3 == 0:
                row["solution"] = f"<answer> {row.pop('answer')} </answer>"
            rows.append(row)
        _write(root / "test_jsons" / f"{name}.json", rows, root / "images" / "test_images")
    return root


def _write(path: Path, rows: list[dict], image_root: Path) -> None:
    for row in rows:
        for j, rel in enumerate(row["image"] if isinstance(row["image"], list) else [row["image"]]):
            if not (image_root / rel).exists():
                _png(image_root / rel, 40 * j + len(rel))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=1))


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> Path:
    src = make_official(tmp_path_factory.mktemp("official"))
    out = tmp_path_factory.mktemp("imported") / "reason-rft"
    report = official.import_official(src, out, stage1=STAGE1, progress=False)
    assert report.skipped == 0 and report.ignored_files == ["AI2D-train-1467-cot.json"] and not report.missing_files
    return out


def test_import_writes_every_task_split_and_the_stage_splits(imported):
    for task in TRAIN_FILES:
        train = data.load_dataset(imported / task / "train")
        assert len(train) == N_TRAIN and all(r.cot and r.task == task for r in train)
        stage1, stage2 = data.load_dataset(imported / task / "stage1"), data.load_dataset(imported / task / "stage2")
        assert [r.id for r in stage1] == [r.id for r in train[:STAGE1]]
        expected = train if task == "structure" else train[STAGE1:]  # structure: all samples
        assert [r.id for r in stage2] == [r.id for r in expected]
    for name, (task, split) in TEST_FILES.items():
        if name == SUPER_CLEVR:
            continue  # split by level: test_super_clevr_is_split_by_level_into_its_two_shifts
        records = data.load_dataset(imported / task / split)
        assert len(records) == 2 and records[0].id == f"{name}-000000"
        assert [r.answer for r in records] == [_answer(task, 0), _answer(task, 1)]  # <answer> wrapper removed
        assert records[1].meta["level"] == "level-1"
    trance = data.load_dataset(imported / "transformation" / "train")
    assert all(len(r.images) == 2 for r in trance) and all(Path(p).is_file() for r in trance for p in r.images)
    assert json.loads((imported / "import.json").read_text())["counts"]["counting/stage2"] == N_TRAIN - STAGE1


def test_super_clevr_is_split_by_level_into_its_two_shifts(imported):
    ood_d, ood_m = data.load_dataset(imported / "counting" / "test-ood-d"), data.load_dataset(imported / "counting" / "test-ood-m")
    assert [(r.id, r.meta["level"], r.answer) for r in ood_d] == [(f"{SUPER_CLEVR}-000000", "D", "1"), (f"{SUPER_CLEVR}-000002", "d", "3"), (f"{SUPER_CLEVR}-000003", "D", "4")]
    assert [(r.id, r.meta["level"]) for r in ood_m] == [(f"{SUPER_CLEVR}-000001", "DS-M")]
    counts = json.loads((imported / "import.json").read_text())["counts"]
    assert counts["counting/test-ood-d"] == 3 and counts["counting/test-ood-m"] == 1
    assert json.loads((imported / "counting" / "test-ood-m" / data.INFO_FILE).read_text())["source"] == [f"{SUPER_CLEVR}.json"]


def test_an_unmapped_level_stops_the_import_and_levels_maps_it(tmp_path, capsys):
    src = make_official(tmp_path / "src")
    path = src / "test_jsons" / f"{SUPER_CLEVR}.json"
    rows = json.loads(path.read_text())
    for row, level in zip(rows, ["easy", "hard", "easy", "easy"]):
        row["level"] = level
    path.write_text(json.dumps(rows))
    out = tmp_path / "out"
    assert main(["data", "import", "--from", str(src), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{SUPER_CLEVR}.json" in err and "level 'easy' names no split" in err and "'easy' (3), 'hard' (1)" in err and "--levels" in err, err
    assert not out.exists()
    assert main(["data", "import", "--from", str(src), "--out", str(out), "--levels", "easy=test-ood-d,hard=test-ood-m"]) == 0
    assert [len(data.load_dataset(out / "counting" / s)) for s in ("test-ood-d", "test-ood-m")] == [3, 1]
    with pytest.raises(UserError, match="unknown split 'test-ood-x'"):
        official.parse_levels("easy=test-ood-x")
    with pytest.raises(UserError, match="expected LEVEL=SPLIT"):
        official.parse_levels("easy")


def test_a_mapped_super_clevr_file_is_imported_whole(tmp_path):
    src = make_official(tmp_path / "src")
    official.import_official(src, tmp_path / "out", mapping=official.parse_mapping([f"{SUPER_CLEVR}=counting/test-ood-d"]), progress=False)
    assert len(data.load_dataset(tmp_path / "out" / "counting" / "test-ood-d")) == len(SUPER_CLEVR_LEVELS)
    assert not (tmp_path / "out" / "counting" / "test-ood-m").exists()


def test_bare_prompt_styles_ask_geomaths_problem_without_its_prompt(imported):
    from reasonrft.tasks import get_task

    task = get_task("structure")
    rec = data.load_dataset(imported / "structure" / "test-id")[0]
    bare = rec.meta["problem_no_prompt"]  # the importer keeps the field in meta
    assert GEOMATH_INSTRUCTION not in bare and rec.problem == f"{bare} {GEOMATH_INSTRUCTION}"
    assert data.prompt_problem(rec, "answer") == data.prompt_problem(rec, "zero-shot") == bare
    assert data.prompt_problem(rec, "cot") == rec.problem
    text = {style: data.user_message_with_images(task, rec, style)["content"][-1]["text"] for style in ("answer", "zero-shot", "cot")}
    assert text["answer"] == task.build_prompt(bare, rec.answer, "answer") and GEOMATH_INSTRUCTION not in text["zero-shot"]
    assert text["cot"] == task.build_prompt(rec.problem, rec.answer, "cot") and GEOMATH_INSTRUCTION in text["cot"]
    assert data.sft_rows(task, [rec], "answer")[0]["prompt"][0]["content"][-1]["text"] == text["answer"]
    plain = data.load_dataset(imported / "structure" / "test-ood")[0]  # no problem_no_prompt: the problem itself
    assert data.prompt_problem(plain, "answer") == plain.problem


BAD = {
    "missing image": (lambda row: row.update(image="counting/nowhere.png"), "image not found: counting/nowhere.png"),
    "missing field": (lambda row: row.pop("problem"), "missing field 'problem'"),
    "wrong type": (lambda row: row.update(problem=["not", "text"]), "field 'problem' must be str, got list"),
}


@pytest.mark.parametrize("kind", BAD)
def test_a_bad_record_stops_the_import_with_one_line_and_leaves_nothing(kind, tmp_path, capsys):
    src = make_official(tmp_path / "src")
    name = TRAIN_FILES["counting"]
    path = src / "train_jsons" / f"{name}.json"
    rows = json.loads(path.read_text())
    change, message = BAD[kind]
    change(rows[1])
    path.write_text(json.dumps(rows))
    out = tmp_path / "out"

    assert main(["data", "import", "--from", str(src), "--out", str(out), "--stage1", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{name}.json: record 1 (id 'counting-train-1')" in err and message in err, err
    assert not out.exists() and not list(tmp_path.glob(".out*"))  # nothing half-written

    assert main(["data", "import", "--from", str(src), "--out", str(out), "--stage1", "3", "--skip-bad"]) == 0
    assert "skipped 1 bad record(s)" in capsys.readouterr().out
    assert len(data.load_dataset(out / "counting" / "train")) == N_TRAIN - 1


def test_unknown_layout_and_bad_map_are_clear_errors(tmp_path):
    with pytest.raises(UserError, match="no known data file"):
        official.import_official(tmp_path, tmp_path / "out")
    with pytest.raises(UserError, match="expected NAME=TASK/SPLIT"):
        official.parse_mapping(["foo=counting"])
    with pytest.raises(UserError, match="unknown split"):
        official.parse_mapping(["foo=counting/dev"])


def test_export_writes_the_official_formats_and_round_trips(imported, tmp_path, capsys):
    exp = tmp_path / "exp"
    assert main(["data", "export", "--data", str(imported / "transformation" / "train"), "--out", str(exp)]) == 0
    assert "--map transformation-train=transformation/train" in capsys.readouterr().out
    cot = json.loads((exp / "transformation-train-cot-sft.json").read_text())
    ans = json.loads((exp / "transformation-train-ans-sft.json").read_text())
    rl = json.loads((exp / "transformation-train-rl.json").read_text())
    user, assistant = cot[0]["messages"]
    assert user["role"] == "user" and user["content"].startswith("<image><image>") and user["content"].count("<image>") == 2
    assert assistant["content"].startswith("<think>\n") and assistant["content"].endswith(f"<answer>\n{_answer('transformation', 0)}\n</answer>")
    assert ans[1]["messages"][1]["content"] == _answer("transformation", 1)
    assert set(rl[0]) == {"id", "image", "problem", "solution"} and all((exp / "images" / p).is_file() for p in rl[0]["image"])
    assert json.loads((exp / "dataset_info.json").read_text())["transformation-train-cot-sft"]["formatting"] == "sharegpt"

    exp2 = tmp_path / "exp2"
    official.export_dataset(imported / "structure" / "stage2", exp2)
    assert "answer" in json.loads((exp2 / "structure-stage2-rl.json").read_text())[0]  # picks the prompt variant

    back = tmp_path / "back"
    official.import_official(exp, back, mapping=official.parse_mapping(["transformation-train=transformation/train"]), progress=False)
    before, after = data.load_dataset(imported / "transformation" / "train"), data.load_dataset(back / "transformation" / "train")
    assert [(r.id, r.problem, r.answer, r.cot) for r in before] == [(r.id, r.problem, r.answer, r.cot) for r in after]
    assert [Path(p).read_bytes() for r in before for p in r.images] == [Path(p).read_bytes() for r in after for p in r.images]


def test_rescore_names_the_split_of_an_official_prediction_file(tmp_path):
    from reasonrft.stages.evaluate import rescore_predictions

    f = tmp_path / "trance-left.json"
    f.write_text(json.dumps([{"image": ["a.png", "b.png"], "problem": "q", "solution": "change_color(O1, red)", "pred": "<think>x</think>\n<answer>\nchange_color(O1, red)\n</answer>"}]))
    summary = rescore_predictions(str(f), "transformation")
    assert summary["splits"]["test-ood-left"]["accuracy"] == 100.0 and summary["splits"]["test-ood-left"]["groups"]["L1"]["n"] == 1

    f = tmp_path / "super-clevr.json"  # DS-D and DS-M in one file: scored apart, by level
    preds = [("D", "3", "<answer>3 objects</answer>"), ("D", "4", "<answer>5</answer>"), ("M", "2", "<answer>2</answer>"), ("X", "1", "1")]
    f.write_text(json.dumps([{"image": "a.png", "problem": "q", "level": lv, "solution": gold, "pred": pred} for lv, gold, pred in preds]))
    summary = rescore_predictions(str(f), "counting")
    assert {s: (e["n"], e["accuracy"]) for s, e in summary["splits"].items()} == {"test-ood-d": (2, 50.0), "test-ood-m": (1, 100.0), "level X": (1, 100.0)}
    assert summary["shift_splits"] == ["test-ood-d", "test-ood-m"] and summary["shift_average"] == 75.0


@pytest.mark.slow
def test_sft_grpo_and_eval_run_on_an_imported_set(imported, nano_model, tmp_path):
    from reasonrft.stages import evaluate, grpo, sft

    common = dict(task="counting", max_steps=2, logging_steps=1, save_steps=10_000, warmup_steps=0)
    stage1 = sft.run(build(sft.SFTStageConfig, dict(common, model=nano_model, output_dir=str(tmp_path / "sft"), data=str(imported / "counting" / "stage1"), per_device_train_batch_size=2, gradient_accumulation_steps=1, freeze_vision=False)))
    assert json.loads((stage1 / "reasonrft_stage.json").read_text())["records"] == STAGE1
    stage2 = grpo.run(build(grpo.GRPOStageConfig, dict(common, model=str(stage1), output_dir=str(tmp_path / "grpo"), data=str(imported / "counting" / "stage2"), prompts_per_device=1, num_generations=2, max_completion_length=8)))
    assert (stage2 / "model.safetensors").is_file()
    summary = evaluate.run(build(evaluate.EvalConfig, dict(model=str(stage2), task="counting", data_root=str(imported / "counting"), splits=["test-id"], n=0, max_new_tokens=8, progress=False)))
    assert summary["splits"]["test-id"]["n"] == 2


def test_eval_on_an_imported_root_takes_the_splits_there_and_names_the_missing(imported, nano_model, tmp_path, capsys):
    from reasonrft.stages import evaluate

    root = tmp_path / "root"  # an import without Super-CLEVR's DS-M
    for split in ("test-id", "test-ood-d"):
        (root / split).mkdir(parents=True)
        (root / split / data.DATA_FILE).symlink_to(imported / "counting" / split / data.DATA_FILE)
        (root / split / "images").symlink_to(imported / "counting" / split / "images")
    values = dict(model=nano_model, task="counting", data_root=str(root), n=0, max_new_tokens=2, temperature=0.0, progress=False, output_dir=str(tmp_path / "eval"))
    summary = evaluate.run(build(evaluate.EvalConfig, values))
    note = [line for line in capsys.readouterr().err.splitlines() if "test-ood-m" in line]
    assert len(note) == 1 and note[0].startswith("reasonrft: note:") and "evaluating test-id, test-ood-d" in note[0]
    assert {s: e["n"] for s, e in summary["splits"].items()} == {"test-id": 2, "test-ood-d": 3} and summary["missing_splits"] == ["test-ood-m"]
    assert "Not evaluated (not in the data root): test-ood-m." in (tmp_path / "eval" / "summary.md").read_text()
    with pytest.raises(UserError, match="dataset file not found"):  # a split asked for by name must be there
        evaluate.run(build(evaluate.EvalConfig, dict(values, splits=["test-id", "test-ood-m"])))


@pytest.mark.slow
def test_lora_sft_saves_a_merged_model_that_plain_transformers_loads(imported, nano_model, tmp_path):
    import torch
    from transformers import AutoModelForImageTextToText

    from reasonrft.stages import sft

    config = build(sft.SFTStageConfig, dict(model=nano_model, output_dir=str(tmp_path), task="counting", data=str(imported / "counting" / "train"), lora=True, lora_r=4, max_steps=2, per_device_train_batch_size=2, gradient_accumulation_steps=1, learning_rate=1e-2, warmup_steps=0, save_steps=10_000))
    out = sft.run(config)
    assert not (out / "adapter_config.json").exists()
    before = AutoModelForImageTextToText.from_pretrained(nano_model).state_dict()
    after = AutoModelForImageTextToText.from_pretrained(str(out)).state_dict()
    assert set(before) == set(after)  # no lora_A / lora_B left: merged
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all("language_model" in k and k.endswith("proj.weight") for k in changed), sorted(changed)[:5]


def test_use_vllm_without_vllm_is_a_clear_error(nano_model, tmp_path, capsys):
    try:
        import vllm  # noqa: F401
        pytest.skip("vLLM is installed here")
    except ImportError:
        pass
    assert main(["grpo", f"model={nano_model}", f"output_dir={tmp_path}", "n_train=2", "use_vllm=true"]) == 2
    assert "vLLM is not installed" in capsys.readouterr().err
