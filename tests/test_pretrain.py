"""The base model's pretraining: generic perception data and the ``pretrain`` stage.

The data must never ask the three tasks' own questions, every answer must follow from the
symbolic scene, and a tiny ``reasonrft pretrain`` must leave a loadable model, the config
that reproduces it, and a loss that fell.
"""

from __future__ import annotations

import json

import pytest
import yaml

from reasonrft import modeling, pretrain_data, rewards
from reasonrft.data import Record
from reasonrft.tasks import counting, get_task, task_names
from reasonrft.tasks.perception import COT_INSTRUCTION, DIAGRAM_QUESTIONS, KINDS, place

N = 120


@pytest.fixture(scope="module")
def records():
    return pretrain_data.pretrain_records(N, seed=0)


def bare(r: Record) -> tuple[str, str]:
    """Question and answer of an item without the think/answer format of format items."""
    return r.problem.removesuffix(f" {COT_INSTRUCTION}"), rewards.extract_answer(r.answer)


def test_the_mix_has_every_kind_and_no_task_question(records):
    kinds = {r.meta["kind"] for r in records}
    assert kinds == set(KINDS)
    for r in records:
        text = f"{r.problem} {r.answer}"
        for banned in ("Subtract", "Add ", "transformation", "change_", "find x", "Choices", "How many objects are left"):
            assert banned not in text, (r.id, text)
        assert r.task == "perception" and r.cot is None


def test_records_rebuild_alone_and_match_the_task(records):
    task = get_task("perception")
    s = task.sample("train", 5, 0)
    assert (records[5].id, records[5].problem, bare(records[5])[1]) == (s.id, s.problem, s.answer)
    assert pretrain_data.pretrain_records(1, seed=0, offset=5)[0].answer == records[5].answer


def test_attribute_answers_come_from_the_named_object(records):
    checked = 0
    for r in records:
        if r.meta["kind"] != "attribute":
            continue
        objects = [counting.Obj(**{k: o[k] for k in ("shape", "color", "size", "material", "x", "z")}) for o in r.meta["objects"]]
        question, (problem, answer) = r.meta["question"], bare(r)
        if question == "count":
            assert answer == str(len(objects))
        elif question == "count_filtered":
            flt = tuple(tuple(f) for f in r.meta["filter"])
            assert answer == str(sum(counting.matches(o, flt) for o in objects))
        else:
            flt = tuple(tuple(f) for f in r.meta["filter"])
            named = [o for o in objects if counting.matches(o, flt)]
            assert len(named) == 1 and question not in dict(flt), r.id  # the phrase picks it out alone
            assert answer == named[0].get(question) == objects[r.meta["target"]].get(question)
            assert problem == f"What {question} is the {counting.phrase(flt, plural=False)}?"
        checked += 1
    assert checked >= 10


def test_descriptions_list_every_object_with_its_place(records):
    for r in (r for r in records if r.meta["kind"] == "describe"):
        objects, answer = r.meta["objects"], bare(r)[1]
        assert answer.startswith(f"{len(objects)} object")
        for o in objects:
            assert f"{o['size']} {o['color']} {o['material']} {o['shape']}, {place(counting.Obj(o['shape'], o['color'], o['size'], o['material'], o['x'], o['z']))}" in answer


def test_two_image_kind_describes_both_states(records):
    pairs = [r for r in records if r.meta["kind"] == "two_images"]
    assert pairs
    for r in pairs:
        problem, answer = bare(r)
        assert len(r.images) == 2 and problem == "Describe each of the two images."
        first, second = answer.split(" Image 2: ")
        for state, text in (("initial", first), ("final", second)):
            names = sorted(f"{o['size']} {o['color']} {o['material']} {o['shape']}" for o in r.meta[state])
            assert sorted(text.removeprefix("Image 1: ").rstrip(".").split(", ")) == names


def test_diagram_answers_come_from_the_figure(records):
    diagrams = [r for r in records if r.meta["kind"] == "diagram"]
    assert diagrams
    for r in diagrams:
        problem, answer = bare(r)
        assert problem in DIAGRAM_QUESTIONS.values() and len(r.images) == 1
        expected = {"labels": ", ".join(r.meta["labels"]), "numbers": ", ".join(sorted(r.meta["numbers"], key=float)), "shape": r.meta["shape"]}
        assert answer == expected[r.meta["question"]]


def test_answers_are_short(records):
    assert max(len(bare(r)[1].split()) for r in records) <= 40
    assert max(len(r.answer.split()) for r in records) <= 100  # format items: the thought too


def test_format_items_are_well_formed_and_think_only_about_what_is_seen(records):
    formatted = [r for r in records if r.meta.get("format")]
    assert 0.08 * N <= len(formatted) <= 0.35 * N  # format_fraction 0.2
    assert {r.meta["kind"] for r in formatted} == set(KINDS)
    for r in formatted:
        assert r.problem.endswith(COT_INSTRUCTION) and rewards.format_score(r.answer) == 1.0
        assert get_task("perception").score(r.answer, bare(r)[1]) == 1.0
        think = r.answer.split("</think>")[0]
        for o in r.meta.get("objects", []):  # counting-style scenes: every object named
            assert f"{o['size']} {o['color']} {o['material']} {o['shape']}" in think
    assert not any(r.meta.get("format") or COT_INSTRUCTION in r.problem for r in records if r not in formatted)


def test_single_objects_are_zoomed_in_train_only():
    task = get_task("perception")
    singles = {split: [s for i in range(150) if (s := task.sample(split, i, 0)).meta["kind"] == "single"] for split in ("train", "test")}
    zooms = [s.meta["zoom"] for s in singles["train"]]
    assert min(zooms) >= 1 and max(zooms) > 2 and all(s.images[0].size == (224, 224) for s in singles["train"])
    assert singles["test"] and not any("zoom" in s.meta for s in singles["test"])


def test_perception_is_registered_but_not_a_reasoning_task():
    assert "perception" not in task_names()
    assert "perception" in task_names(include_pretraining=True)
    assert get_task("perception").pretraining


def test_pretrain_cli_writes_a_model_and_its_config_and_the_loss_falls(tmp_path):
    from reasonrft import cli

    out = tmp_path / "base"
    overrides = ["n_train=32", "max_steps=12", "per_device_train_batch_size=4", "learning_rate=3e-3", "lr_scheduler_type=constant", "warmup_steps=0", "logging_steps=1"]
    assert cli.main(["pretrain", "--out", str(out), *overrides]) == 0
    config = yaml.safe_load((out / "pretrain_config.yaml").read_text())
    assert config["out"] == str(out) and config["n_train"] == 32 and config["max_steps"] == 12
    model = modeling.load_model(out)
    assert modeling.load_processor(out).tokenizer("What color is the cube?")["input_ids"]
    assert sum(p.numel() for p in model.parameters()) * 4 < 30e6  # fits the 30 MB budget in float32
    losses = [h["loss"] for h in json.loads((out / "trainer_state.json").read_text())["log_history"] if "loss" in h]
    assert len(losses) == 12 and sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 1.0, losses

    shipped = tmp_path / "shipped"
    assert cli.main(["model", "ship", "--from", str(out), "--to", str(shipped)]) == 0
    assert {"config.json", "model.safetensors", "pretrain_config.yaml", "trainer_state.json"} <= {f.name for f in shipped.iterdir()}
    assert not any(f.is_dir() for f in shipped.iterdir()) and not (shipped / "training_args.bin").exists()
    assert modeling.load_model(shipped).state_dict().keys() == model.state_dict().keys()
    assert cli.main(["model", "ship", "--from", str(tmp_path / "nothing"), "--to", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()


def test_bad_pretrain_config_is_a_user_error(tmp_path):
    from reasonrft import cli

    assert cli.main(["pretrain", "--out", str(tmp_path), "size=huge"]) == 2
    assert cli.main(["pretrain", "n_train=5"]) == 2  # no out
