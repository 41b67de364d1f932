"""The base model's pretraining: generic perception data and the ``pretrain`` stage.

The data must never ask the three tasks' own questions, every answer must follow from the
symbolic scene, and a tiny ``reasonrft pretrain`` must leave a loadable model, the config
that reproduces it, and a loss that fell.
"""

from __future__ import annotations

import json
import math
import os
import random
from pathlib import Path

import pytest
import yaml

from reasonrft import base_skills, dense_targets, modeling, pretrain_data, rewards, text_phase
from reasonrft.data import Record
from reasonrft.tasks import counting, get_task, task_names
from reasonrft.tasks.perception import COPY_QUESTION, COT_INSTRUCTION, DIAGRAM_QUESTIONS, KINDS, PerceptionConfig, in_split, place

N = 120
BANNED = ("Subtract", "Add ", "transformation", "change_", "find x", "Find", "Choices", "How many objects are left", "Round to")  # the tasks' question types


@pytest.fixture(scope="module")
def records():
    return pretrain_data.pretrain_records(N, seed=0)


def bare(r: Record) -> tuple[str, str]:
    """Question and answer of an item without the think/answer format of format items."""
    return r.problem.removesuffix(f" {COT_INSTRUCTION}"), rewards.extract_answer(r.answer)


def test_the_mix_has_every_kind_and_no_task_question(records):
    kinds = {r.meta["kind"] for r in records}
    assert kinds == set(KINDS[:5])  # the default mix
    for r in records:
        text = f"{r.problem} {r.answer}"
        for banned in BANNED:
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
    assert {r.meta["kind"] for r in formatted} == set(KINDS[:5])
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
    stage = json.loads((shipped / "reasonrft_stage.json").read_text())
    assert stage["output_dir"] == f"runs/{out.name}" and not any(isinstance(v, str) and os.path.isabs(v) for v in stage.values()), stage
    assert modeling.load_model(shipped).state_dict().keys() == model.state_dict().keys()
    assert cli.main(["model", "ship", "--from", str(tmp_path / "nothing"), "--to", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()

    # init_model: a second run continues the trained model, so it starts where the first ended
    more = tmp_path / "more"
    assert cli.main(["pretrain", "--out", str(more), f"init_model={out}", "seed=1", "n_train=8", "max_steps=2", "per_device_train_batch_size=4", "logging_steps=1"]) == 0
    first = [h["loss"] for h in json.loads((more / "trainer_state.json").read_text())["log_history"] if "loss" in h][0]
    assert first < losses[0] - 1.0, (first, losses[0])
    assert not any(more.glob("init-*"))  # no random model made
    shipped = tmp_path / "shipped-more"
    assert cli.main(["model", "ship", "--from", str(more), "--to", str(shipped)]) == 0
    card = (shipped / "README.md").read_text()  # reproduces the chain: the first run, then the one that continued it
    first_run, second_run = card.index(f"pretrain --out runs/{out.name} "), card.index(f"pretrain --out runs/{more.name} seed=1 ")
    assert first_run < second_run and f"init_model=runs/{out.name}\n" in card[second_run:], card
    assert (shipped / f"pretrain_config-{out.name}.yaml").is_file()


def test_bad_pretrain_config_is_a_user_error(tmp_path):
    from reasonrft import cli

    assert cli.main(["pretrain", "--out", str(tmp_path), "size=huge"]) == 2
    assert cli.main(["pretrain", "n_train=5"]) == 2  # no out
    assert cli.main(["pretrain", "--out", str(tmp_path / "w"), "kind_weights=[1, 2]"]) == 2  # one weight per kind
    assert cli.main(["pretrain", "--out", str(tmp_path / "w"), "dense_diagram_fraction=1.5"]) == 2
    assert cli.main(["pretrain", "--out", str(tmp_path / "w"), "text_kind_weights=[1, 2, 3]"]) == 2  # one per text kind
    assert cli.main(["pretrain", "--out", str(tmp_path / "w"), "text_steps=-1"]) == 2
    assert cli.main(["pretrain", "--out", str(tmp_path / "w"), "text_kinds=[count, juggling]"]) == 2  # not a perception kind
    assert cli.main(["pretrain", "--out", str(tmp_path / "w"), "text_kinds=[count, attribute]", "text_kind_weights=[1]"]) == 2  # one weight per kind
    assert cli.main(["pretrain", "--out", str(tmp_path / "w"), f"init_model={tmp_path / 'none'}"]) == 2
    assert cli.main(["pretrain", "--out", str(tmp_path / "w"), "fresh_language_model=true"]) == 2  # nothing to keep a vision tower from
    assert cli.main(["pretrain", "--out", str(tmp_path / "w"), "max_steps=0"]) == 2  # no phase at all
    assert cli.main(["pretrain", "--out", str(tmp_path / "w"), "max_steps=-2"]) == 2
    assert cli.main(["pretrain", "--out", str(tmp_path / "w"), "question_first_kinds=[count_filtered, juggling]"]) == 2  # not a perception kind
    assert cli.main(["pretrain", "--out", str(tmp_path / "w"), "workers=-1"]) == 2
    assert not (tmp_path / "w").exists()  # nothing written


def test_a_fresh_language_model_keeps_the_vision_tower_and_the_tokenizer(nano_model, tmp_path):
    """``fresh_language_model``: the trained vision tower (merger included) and the tokenizer
    carried over exactly; every language-model weight a new draw."""
    import torch

    trained = modeling.load_model(nano_model, dtype=torch.float32)
    with torch.no_grad():  # a "trained" tower and LM: not what a fresh init would draw
        for p in trained.parameters():
            p.add_(0.5)
    trained.save_pretrained(tmp_path / "trained")
    modeling.load_processor(nano_model).save_pretrained(tmp_path / "trained")
    out = modeling.fresh_language_model(tmp_path / "trained", "nano", tmp_path / "fresh", seed=1)
    fresh = modeling.load_model(out, dtype=torch.float32)
    before, after = trained.state_dict(), fresh.state_dict()
    assert before.keys() == after.keys()
    for name, tensor in after.items():
        same = torch.equal(tensor, before[name])
        assert same == (".visual." in f".{name}"), name
    assert modeling.load_processor(out).tokenizer.get_vocab() == modeling.load_processor(nano_model).tokenizer.get_vocab()
    with pytest.raises(modeling.UserError, match="vision tower is not a small one"):
        modeling.fresh_language_model(tmp_path / "trained", "small", tmp_path / "never")
    assert not (tmp_path / "never").exists()


def test_a_grafted_vision_tower_joins_the_language_model_exactly(nano_model, tmp_path):
    """``graft_vision``: the language model and tokenizer of one model, the vision tower (of
    another depth) and merger of the other, every weight carried over exactly; a tower whose
    merger projects to another width, or a model of another tokenizer, is refused by name."""
    import torch

    corpus = modeling.training_corpus(samples_per_split=12)  # nano_model's tokenizer
    deeper = modeling.init_model("2b-proportioned", tmp_path / "deeper", seed=3, corpus=corpus)  # 4 vision layers, nano's 2
    out = modeling.graft_vision(nano_model, deeper, tmp_path / "grafted")
    grafted = modeling.load_model(out, dtype=torch.float32).state_dict()
    language, seeing = (modeling.load_model(m, dtype=torch.float32).state_dict() for m in (nano_model, deeper))
    visual = {k for k in grafted if ".visual." in f".{k}"}
    assert visual == {k for k in seeing if ".visual." in f".{k}"} and grafted.keys() - visual == language.keys() - {k for k in language if ".visual." in f".{k}"}
    assert all(torch.equal(v, (seeing if k in visual else language)[k]) for k, v in grafted.items())
    assert modeling.load_processor(out).tokenizer.get_vocab() == modeling.load_processor(nano_model).tokenizer.get_vocab()
    wider = modeling.init_model("small", tmp_path / "wider", seed=0, corpus=corpus)
    with pytest.raises(modeling.UserError, match="merger projects to width 512"):
        modeling.graft_vision(nano_model, wider, tmp_path / "never")
    other = modeling.init_model("nano", tmp_path / "other-tokenizer", seed=0, corpus=["a b c"] * 20)
    with pytest.raises(modeling.UserError, match="its tokenizer is not"):
        modeling.graft_vision(nano_model, other, tmp_path / "never")
    assert not (tmp_path / "never").exists()


def test_a_rung_without_a_reading_phase_ends_with_its_text_phase_model(nano_model, tmp_path):
    """``max_steps=0``: a run of a fresh language model's text phase alone (a curriculum's rung)
    ends as a model directory holding that phase's model, the vision tower carried over as is."""
    import torch

    from reasonrft import cli

    out = tmp_path / "rung"
    overrides = [f"init_model={nano_model}", "fresh_language_model=true", "text_steps=2", "text_batch_size=2", "text_kinds=[attribute]", "max_steps=0"]
    assert cli.main(["pretrain", "--out", str(out), *overrides]) == 0
    assert not any(out.glob("checkpoint-*")) and not (out / "data").exists()  # no reading phase
    model, phase = modeling.load_model(out, dtype=torch.float32), modeling.load_model(out / "text" / "model", dtype=torch.float32)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), phase.state_dict().values()))
    init = modeling.load_model(nano_model, dtype=torch.float32)
    assert all(torch.equal(a, b) for a, b in zip(model.model.visual.state_dict().values(), init.model.visual.state_dict().values()))
    assert not torch.equal(model.lm_head.weight, init.lm_head.weight)
    assert not list(out.glob(".*.tmp"))


def test_the_dense_phase_refines_a_trained_vision_tower(nano_model, tmp_path):
    """``init_model`` with ``dense_steps``: the vision tower of the given model trains on, the
    language model is untouched, and the run (``max_steps=0``) ends with that model."""
    import torch

    from reasonrft import cli

    out = tmp_path / "refined"
    assert cli.main(["pretrain", "--out", str(out), f"init_model={nano_model}", "dense_steps=2", "dense_batch_size=2", "dense_curriculum_steps=0", "max_steps=0"]) == 0
    model, init = modeling.load_model(out, dtype=torch.float32), modeling.load_model(nano_model, dtype=torch.float32)
    assert not torch.equal(model.model.visual.patch_embed.proj.weight, init.model.visual.patch_embed.proj.weight)
    assert torch.equal(model.lm_head.weight, init.lm_head.weight) and torch.equal(model.get_input_embeddings().weight, init.get_input_embeddings().weight)


def test_the_dense_phase_at_another_image_size_trains_a_finer_grid_and_the_model_keeps_it(nano_model, tmp_path, capsys):
    """``dense_image_size=336``: scenes rendered at 336 px with a 12 x 12 grid of cell targets,
    the tower trained on them, and the saved processor resizing every image, a task's 224 px
    one too, to 336 x 336 (144 image tokens, not 64). A side that is no multiple of 28 is refused."""
    import json

    from PIL import Image

    from reasonrft import cli
    from reasonrft.config import UserError

    image, targets, _ = dense_targets.scene_item("train", 0, 1, 0, 13, 336)
    assert image.size == (336, 336) and targets["present"].shape == (144,) and targets["present"].sum() > 0
    out = tmp_path / "fine"
    assert cli.main(["pretrain", "--out", str(out), f"init_model={nano_model}", "dense_steps=1", "dense_batch_size=2", "dense_curriculum_steps=0", "max_steps=0", "dense_image_size=336"]) == 0
    heldout = json.loads((out / "dense" / dense_targets.LOG).read_text().splitlines()[-1])["heldout"]
    assert {"present", "color", "count"} <= set(heldout)
    processor = modeling.load_processor(out)
    assert modeling.pixel_limits(processor) == (336 * 336, 336 * 336)
    grid = processor.image_processor(images=[Image.new("RGB", (224, 224))], return_tensors="pt")["image_grid_thw"]
    assert grid.tolist() == [[1, 24, 24]]  # 24 x 24 patches, merged 2 x 2: 144 image tokens
    assert modeling.pixel_limits(modeling.load_processor(nano_model)) != (336 * 336, 336 * 336)  # the init's processor untouched
    with pytest.raises(UserError, match="renders 336 px scenes"):  # a processor that would shrink the scenes: cells would not match the targets
        dense_targets.train(modeling.load_model(nano_model), modeling.load_processor(nano_model), tmp_path / "x", dense_targets.DenseConfig(steps=1, image_size=336))
    capsys.readouterr()
    assert cli.main(["pretrain", "--out", str(tmp_path / "bad"), f"init_model={nano_model}", "dense_steps=1", "max_steps=0", "dense_image_size=300"]) == 2
    assert "dense_image_size must be a multiple of 28" in capsys.readouterr().err


def test_a_cycle_of_init_model_runs_is_named(tmp_path):
    """``model ship`` follows ``init_model`` back to the first run; runs that continue each
    other have no first run, and the message says so (not that a config is missing)."""
    import yaml

    from reasonrft.config import UserError, to_dict
    from reasonrft.stages import pretrain

    for name, other in (("a", "b"), ("b", "a")):
        (tmp_path / name).mkdir()
        config = to_dict(pretrain.PretrainConfig(out=str(tmp_path / name), init_model=str(tmp_path / other)))
        (tmp_path / name / pretrain.CONFIG_FILE).write_text(yaml.safe_dump(config))
    with pytest.raises(UserError, match="comes back to .*a cycle"):
        pretrain._chain(tmp_path / "a")


def test_a_run_that_continues_the_shipped_base_reproduces_through_its_chain(tmp_path):
    """``init_model: src/reasonrft/base``: the chain goes on through the runs the shipped base
    was made by (the configs it was shipped with), and the card's commands name them as
    ``runs/NAME``, never the package folder."""
    import yaml

    from reasonrft.config import load_config, to_dict
    from reasonrft.stages import pretrain

    base = Path(modeling.__file__).parent / "base"
    run = tmp_path / "pt-next"
    run.mkdir()
    config = pretrain.PretrainConfig(out="runs/pt-next", init_model=str(base), fresh_language_model=True, text_steps=5, max_steps=0)
    (run / pretrain.CONFIG_FILE).write_text(yaml.safe_dump(to_dict(config)))
    chain = pretrain._chain(run)
    names = [name for name, *_ in chain]
    shipped_name = Path(load_config(pretrain.PretrainConfig, str(base / pretrain.CONFIG_FILE)).out).name
    assert "pt-dense-long" in names[:-2] and names[-2:] == [shipped_name, "pt-next"]
    assert chain[-2][2] == base / pretrain.CONFIG_FILE
    assert all((base / f"pretrain_config-{name}.yaml").is_file() for name in names[:-2])  # the base carries its chain
    assert f" init_model=runs/{shipped_name} " in pretrain._overrides(config, {"init_model": shipped_name}) + " "


def test_a_base_shipped_from_a_run_that_continued_the_shipped_base_has_a_chain_of_its_own(nano_model, tmp_path):
    """A run with ``init_model: src/reasonrft/base``, shipped: the new base's configs name the
    runs they continued as ``runs/NAME``, never the package folder (which would then be the new
    base itself: a cycle), so the next run that continues it still reproduces."""
    import shutil

    import yaml

    from reasonrft.config import load_config, to_dict
    from reasonrft.stages import pretrain

    base = Path(modeling.__file__).parent / "base"
    run = tmp_path / "pt-next"
    shutil.copytree(nano_model, run)
    config = pretrain.PretrainConfig(out="runs/pt-next", init_model=str(base), fresh_language_model=True, text_steps=5, max_steps=0)
    (run / pretrain.CONFIG_FILE).write_text(yaml.safe_dump(to_dict(config)))
    shipped_name = Path(yaml.safe_load((base / pretrain.CONFIG_FILE).read_text())["out"]).name
    shipped = pretrain.ship(run, tmp_path / "new-base")
    assert yaml.safe_load((shipped / pretrain.CONFIG_FILE).read_text())["init_model"] == f"runs/{shipped_name}"
    assert all(not yaml.safe_load(f.read_text()).get("init_model", "runs/").startswith(str(base)) for f in shipped.glob("pretrain_config*.yaml"))
    names = [name for name, *_ in pretrain._chain(shipped)]  # no cycle
    assert "pt-dense-long" in names[:-2] and names[-2:] == [shipped_name, shipped.name]


def test_a_run_that_continues_a_phase_model_reproduces_through_that_run(tmp_path):
    """``init_model: runs/NAME/text/model`` (the model a run's text phase left): the chain goes
    through NAME's config, whose command makes that model, and the card keeps the phase path."""
    import yaml

    from reasonrft.config import to_dict
    from reasonrft.stages import pretrain

    first = pretrain.PretrainConfig(out=str(tmp_path / "pt-a"), text_steps=5, max_steps=800)
    branch = pretrain.PretrainConfig(out=str(tmp_path / "pt-b"), init_model=str(tmp_path / "pt-a" / "text" / "model"), max_steps=800)
    for config in (first, branch):
        Path(config.out).mkdir()
        (Path(config.out) / pretrain.CONFIG_FILE).write_text(yaml.safe_dump(to_dict(config)))
    chain = pretrain._chain(tmp_path / "pt-b")
    assert [name for name, *_ in chain] == ["pt-a", "pt-b"] and chain[0][2] == tmp_path / "pt-a" / pretrain.CONFIG_FILE
    assert " init_model=runs/pt-a/text/model " in pretrain._overrides(branch, {"init_model": "pt-a"}) + " "
    assert " init_model=runs/pt-a/text/model " in pretrain._overrides(branch) + " "  # without the chain: from the path itself


def test_a_grafted_run_reproduces_through_both_its_lines(nano_model, tmp_path):
    """``vision_from``: the run starts from init_model's language model over the other run's
    vision tower; shipped, its chain names the vision run (and the runs it continued) before
    the language model's line, each command with its parents as ``runs/NAME``."""
    import shutil

    import torch
    import yaml

    from reasonrft import cli
    from reasonrft.config import to_dict
    from reasonrft.stages import pretrain

    runs = {"pt-eyes": pretrain.PretrainConfig(out=str(tmp_path / "pt-eyes"), dense_steps=5, max_steps=0),
            "pt-words": pretrain.PretrainConfig(out=str(tmp_path / "pt-words"), text_steps=5, max_steps=0)}
    for name, config in runs.items():
        shutil.copytree(nano_model, tmp_path / name)
        (tmp_path / name / pretrain.CONFIG_FILE).write_text(yaml.safe_dump(to_dict(config)))
    with torch.no_grad():  # the vision run's tower: not the language run's
        eyes = modeling.load_model(tmp_path / "pt-eyes", dtype=torch.float32)
        eyes.model.visual.patch_embed.proj.weight.add_(1.0)
        eyes.save_pretrained(tmp_path / "pt-eyes")
    out = tmp_path / "pt-both"
    args = [f"init_model={tmp_path / 'pt-words'}", f"vision_from={tmp_path / 'pt-eyes'}", "text_steps=1", "text_batch_size=2", "max_steps=0"]
    assert cli.main(["pretrain", "--out", str(out), *args]) == 0
    both = modeling.load_model(out / "init-grafted-s0", dtype=torch.float32)
    assert torch.equal(both.model.visual.patch_embed.proj.weight, eyes.model.visual.patch_embed.proj.weight)
    assert torch.equal(both.lm_head.weight, modeling.load_model(tmp_path / "pt-words", dtype=torch.float32).lm_head.weight)
    chain = pretrain._chain(out)
    assert [name for name, *_ in chain] == ["pt-eyes", "pt-words", "pt-both"] and chain[-1][3] == {"vision_from": "pt-eyes", "init_model": "pt-words"}
    card = (pretrain.ship(out, tmp_path / "shipped") / "README.md").read_text()
    assert {"init_model=runs/pt-words", "vision_from=runs/pt-eyes"} <= set(card.split())
    assert card.index("--out runs/pt-eyes") < card.index("--out runs/pt-words") < card.index("--out runs/pt-both")
    assert "A Qwen2-VL (the `nano` size;" in card  # both lines' runs are nano
    assert cli.main(["pretrain", "--out", str(tmp_path / "w"), f"vision_from={tmp_path / 'pt-eyes'}"]) == 2  # no language model to keep
    assert cli.main(["pretrain", "--out", str(tmp_path / "w"), f"init_model={nano_model}", f"vision_from={tmp_path / 'none'}", "text_steps=1"]) == 2
    assert not (tmp_path / "w").exists()


def test_the_cards_commands_run_as_written_in_a_shell(tmp_path):
    """The card's ``key=value`` arguments survive a POSIX shell (a mapping's braces and commas
    would brace-expand unquoted) and parse back to the config's values."""
    import shlex

    from reasonrft.config import load_config
    from reasonrft.stages import pretrain

    config = pretrain.PretrainConfig(out="runs/pt-x", kind_weights=[1, 1, 3, 1, 0, 4, 3, 8, 4], text_steps=5, text_kinds=["attribute", "copy"],
                                     text_perception={"attribute_min_objects": 2, "attribute_max_objects": 10}, freeze_vision=True)
    words = shlex.split(pretrain._overrides(config))
    assert len(words) == 5 and "'" in pretrain._overrides(config)
    again = load_config(pretrain.PretrainConfig, None, words + ["out=runs/pt-x"])
    assert again == config


@pytest.mark.slow
def test_the_device_script_trains_measures_and_packs_a_loadable_base(tmp_path):
    """scripts/device_pretrain.sh, as the GPU machine runs it, here on the CPU at toy size:
    the run finishes, every skill is measured, and the parts it packs rebuild the model."""
    import subprocess
    import sys
    import tarfile

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "OUT": str(tmp_path / "out"), "BENCH_N": "2", "BENCH_BATCH": "2"}
    toy = ["dense_steps=2", "dense_batch_size=2", "n_train=40", "max_steps=2", "per_device_train_batch_size=2", "workers=1", "save_steps=2"]
    done = subprocess.run(["bash", "scripts/device_pretrain.sh", "recipes/pretrain/pt-n4g.yaml", f"out={tmp_path / 'pt-toy'}", *toy],
                          cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    lines = [json.loads(line) for line in (tmp_path / "out" / "bench.jsonl").read_text().splitlines()]
    assert len(lines) == len(base_skills.SKILLS) + 1 and lines[-1]["skill"] == "mean"
    packed = tmp_path / "packed.tgz"
    packed.write_bytes(b"".join(p.read_bytes() for p in sorted((tmp_path / "out").glob("run.tgz.part-*"))))
    with tarfile.open(packed) as tar:
        tar.extractall(tmp_path / "back", filter="data")
    names = {p.name for p in (tmp_path / "back" / "pt-toy").iterdir()}
    assert {"model.safetensors", "config.json", "pretrain_config.yaml"} <= names and not names & {"data", "dense-checkpoint.pt"}
    assert modeling.load_model(tmp_path / "back" / "pt-toy") is not None


# --------------------------------------------------------------------------- the skills mix and the dense phase

ALL_KINDS = PerceptionConfig(kind_weights=(1,) * len(KINDS))


@pytest.fixture(scope="module")
def skill_records():
    return pretrain_data.pretrain_records(N, seed=0, perception_config=ALL_KINDS)


def test_the_default_mix_is_the_shipped_bases(records):
    """New kinds have weight 0 by default: the shipped base's data (and its reproduction) is unchanged."""
    assert {r.meta["kind"] for r in records} == set(KINDS[:5])


def test_the_skills_mix_has_every_kind_and_no_task_question(skill_records):
    assert {r.meta["kind"] for r in skill_records} == set(KINDS)
    for r in skill_records:
        text = f"{r.problem} {r.answer}"
        assert rewards.format_score(r.answer) == float(bool(r.meta.get("format")))
        for banned in BANNED:
            assert banned not in text, (r.id, text)


def test_count_arithmetic_and_copy_answers_are_exact(skill_records):
    seen = set()
    for r in skill_records:
        kind, (problem, answer) = r.meta["kind"], bare(r)
        objects = [counting.Obj(**{k: o[k] for k in ("shape", "color", "size", "material", "x", "z")}) for o in r.meta.get("objects", [])]
        if kind == "count":
            assert answer == str(len(objects)) and 3 <= len(objects) <= 13
        elif kind == "count_filtered":
            flt = tuple(tuple(f) for f in r.meta["filter"])
            assert 1 <= len(flt) <= 2 and answer == str(sum(counting.matches(o, flt) for o in objects))
            assert problem == f"How many {counting.phrase(flt, plural=True)} are there?"
        elif kind == "arithmetic":
            expression = problem.removeprefix("What is ").removesuffix("?")
            expected = math.isqrt(int(expression.split()[-1])) if "square root" in expression else int(expression.split()[0]) ** 2 if "squared" in expression else eval(expression)
            assert answer == str(int(expected)) and r.images[0].size == (56, 56)
        elif kind == "copy":
            assert problem == f'{COPY_QUESTION} "{answer}"'
        else:
            continue
        seen.add(kind)
    assert seen == {"count", "count_filtered", "arithmetic", "copy"}


def test_benchmark_items_are_held_out_and_rebuild_alone(skill_records):
    from reasonrft import base_skills as bench

    train_keys = {r.meta["scene_key"] for r in skill_records}
    for skill in bench.SKILLS:
        items = bench.skill_records(skill, 3)
        assert not {r.meta["scene_key"] for r in items} & train_keys, skill
        assert all(in_split(r.meta["scene_key"], "test", PerceptionConfig()) for r in items), skill  # never a train scene
        for r in items:
            assert not any(banned in f"{r.problem} {r.answer}" for banned in BANNED), (skill, r.problem)
    assert bench.skill_records("copy", 6)[5].answer == bench.skill_records("copy", 6)[5].answer
    assert {r.meta["style"] for r in bench.skill_records("count/test-ood-d", 3)} == {"textured"}
    assert all(r.meta.get("format") for r in bench.skill_records("format", 4))


def test_arithmetic_skills_score_each_held_out_fact_once():
    """Drawn as pretraining draws them, a few sums would carry the score ("29 + 1" came 26
    times in 300); the benchmark asks every held-out fact once, and only those."""
    from reasonrft import base_skills as bench
    from reasonrft.tasks import perception

    config = PerceptionConfig()
    for skill, families in (("arithmetic/sum_difference", ("sum", "difference")), ("arithmetic/product_quotient_square_root", ("product", "quotient", "square", "root"))):
        held_out = {q for f in families for q, _ in perception.arithmetic_facts(f) if in_split(perception.scene_key("arithmetic", q), "test", config)}
        items = bench.skill_records(skill, 10_000)
        assert [r.problem for r in items] and sorted(r.problem for r in items) == sorted(held_out), skill
        assert [r.problem for r in bench.skill_records(skill, 7)] == [r.problem for r in items[:7]]  # a prefix: n only cuts
    rng = random.Random(3)
    for family in perception.ARITHMETIC_FAMILIES:  # the enumeration is every fact pretraining can draw, and no other
        facts = set(perception.arithmetic_facts(family))
        assert {perception._draw_fact(family, rng) for _ in range(3_000)} <= facts and len(facts) == len(perception.arithmetic_facts(family))
    held_out_sum = next(fact for fact in perception.arithmetic_facts("sum") if in_split(perception.scene_key("arithmetic", fact[0]), "test", config))
    with pytest.raises(ValueError, match="not in the train split"):
        perception.arithmetic(config, "train", rng, "sum", fact=held_out_sum)


def test_partial_credit_on_list_skills_separates_length_items_and_attributes():
    """Gold answers score 1.0 on every partial measure; the right number of wrong labels gets
    the length only; a two-image answer with one object wrong by one word keeps the rest."""
    from reasonrft import base_skills as bench

    for skill in bench.LIST_SKILLS:
        for record in bench.skill_records(skill, 4):
            assert set(bench.partial_scores(skill, record.answer, record).values()) == {1.0}, (skill, record.answer)
            assert bench.partial_scores(skill, "", record)["item_f1"] == 0.0
    labels = bench.skill_records("diagram/labels", 1)[0]
    wrong = ", ".join("Z" * (i + 2) for i in range(len(labels.answer.split(", "))))
    assert bench.partial_scores("diagram/labels", wrong, labels) == {"item_f1": 0.0, "length_right": 1.0}
    half = labels.answer.split(", ")[:1]
    assert bench.partial_scores("diagram/labels", f"<think>x</think><answer>{half[0]}</answer>", labels)["item_f1"] == pytest.approx(2 / (1 + len(labels.answer.split(", "))))
    pair = bench.skill_records("two_images", 1)[0]
    first, second = bench.answer_lists("two_images", pair.answer)
    changed = first[0].split()
    changed[1] = "teal" if changed[1] != "teal" else "gold"
    prediction = "Image 1: " + ", ".join([" ".join(changed), *first[1:]]) + ". Image 2: " + ", ".join(second) + "."
    scores = bench.partial_scores("two_images", prediction, pair)
    n_objects, n_words = len(first) + len(second), sum(len(o.split()) for o in first + second)
    assert scores == pytest.approx({"item_f1": (n_objects - 1) / n_objects, "length_right": 1.0, "attributes_right": (n_words - 1) / n_words,
                                    "size_right": 1.0, "color_right": (n_objects - 1) / n_objects, "material_right": 1.0, "shape_right": 1.0})
    assert bench.partial_scores("two_images", "Image 2: " + ", ".join(second) + ".", pair)["length_right"] == 0.0  # image 1 missing


def test_the_diagram_probe_reads_labels_that_are_plainly_in_the_features(monkeypatch):
    """``benchmarks/probe_diagram_features.py`` says whether a base's vision outputs hold a
    diagram's point labels; its reader must find labels that are plainly there (one channel per
    letter, raised at one random cell per label, in noise), and its scores are the benchmark's."""
    import importlib
    import pathlib

    import torch

    monkeypatch.syspath_prepend(str(pathlib.Path(__file__).parents[1] / "benchmarks"))
    probe = importlib.import_module("probe_diagram_features")
    generator = torch.Generator().manual_seed(0)
    letters = probe.LETTERS

    def oracle(n: int):
        x, sets = 0.1 * torch.randn(n, 64, 32, generator=generator), []
        for i in range(n):
            chosen = torch.randperm(len(letters), generator=generator)[: int(torch.randint(3, 6, (1,), generator=generator))]
            for k in chosen.tolist():
                x[i, int(torch.randint(0, 64, (1,), generator=generator)), k] += 1.0
            sets.append({letters[k] for k in chosen.tolist()})
        return x, sets

    (x_train, train_sets), (x_test, test_sets) = oracle(1500), oracle(100)
    reader = probe.train_reader(x_train, probe.multi_hot(train_sets), epochs=20, seed=0)
    with torch.no_grad():
        predicted = [{l for l, on in zip(letters, row) if on} for row in (reader(x_test) > 0).tolist()]
    result = probe.scored(predicted, test_sets)
    assert result["item_f1"]["accuracy"] >= 95 and result["set_exact"]["accuracy"] >= 80, result
    assert probe.scored([{"A"}, {"B", "C"}], [{"A"}, {"C", "D"}])["item_f1"]["accuracy"] == 75.0  # 1.0 and 0.5, as bench_base's F1


def test_cell_targets_follow_the_scene():
    near = counting.Obj("cube", "red", "large", "metal", x=0.0, z=0.9)
    far = counting.Obj("sphere", "blue", "large", "rubber", x=0.05, z=0.8)
    for scene in ([far, near], [near, far]):
        targets = dense_targets.cell_targets(scene, 448, 16)  # 448 px: objects span several 28 px cells
        assert targets["present"].sum() >= 4 and targets["centres"].sum() == 2
        def covers(obj, k, part):  # the middle ``part`` of cell k's side lies in the object's box, both ways
            left, top, right, bottom = counting.screen_box(obj, 448)
            x, y, half = (k % 16 + 0.5) * 28, (k // 16 + 0.5) * 28, 14 * part
            return left < x - half and x + half < right and top < y - half and y + half < bottom

        both = [k for k in range(256) if covers(near, k, 0.6) and covers(far, k, 0.6)]
        assert both and all(targets["color"][k] == counting.COLORS.index("red") for k in both)  # the near object occludes the far one
        assert any(targets["color"][k] == counting.COLORS.index("blue") for k in range(256) if covers(far, k, 0.6) and not covers(near, k, 0.0))
        assert (targets["color"][targets["present"] == 0] == dense_targets.IGNORE).all()


def test_dense_phase_trains_the_vision_tower_and_resumes_exactly(nano_model, tmp_path, monkeypatch):
    """Three steps straight, or two then an interruption then a restart: the same weights."""
    import torch

    config = dense_targets.DenseConfig(steps=3, batch_size=2, save_steps=1, eval_every=3, eval_images=4, curriculum_steps=2, warmup_steps=1)
    straight = modeling.load_model(nano_model)
    before = {k: v.clone() for k, v in straight.model.visual.state_dict().items()}
    processor = modeling.load_processor(nano_model)
    heldout = dense_targets.train(straight, processor, tmp_path / "a", config, log=lambda *a, **k: None)
    assert set(heldout) >= {"present", "color", "shape", "size", "material", "count"}
    assert all(not torch.equal(before[k], v) for k, v in straight.model.visual.state_dict().items() if k.endswith("weight"))

    real = dense_targets.scene_item

    def interrupted(split, seed, step, *rest, **options):
        if split == "train" and step == 2:
            raise KeyboardInterrupt
        return real(split, seed, step, *rest, **options)

    resumed = modeling.load_model(nano_model)
    monkeypatch.setattr(dense_targets, "scene_item", interrupted)
    with pytest.raises(KeyboardInterrupt):
        dense_targets.train(resumed, processor, tmp_path / "b", config, log=lambda *a, **k: None)
    monkeypatch.setattr(dense_targets, "scene_item", real)
    resumed = modeling.load_model(nano_model)  # a fresh process: random weights until the checkpoint loads
    dense_targets.train(resumed, processor, tmp_path / "b", config, log=lambda *a, **k: None)
    for key, value in straight.model.visual.state_dict().items():
        assert torch.allclose(value, resumed.model.visual.state_dict()[key], atol=1e-6), key


def test_filtered_count_targets_count_each_value_and_pair_of_the_scene(nano_model, tmp_path):
    """With ``filtered_counts`` every scene carries, for each attribute value and each pair of
    values of two attributes, how many of its objects have it; diagrams carry none; a dense run
    trains the head and reports it held out."""
    import random

    assert len(dense_targets.VALUE_FILTERS) == 15 + 72 and len(set(dense_targets.VALUE_FILTERS)) == 87
    image, targets, count = dense_targets.scene_item("train", 0, 5, 1, 13, filtered_counts=True)
    scene_counts = dict(zip(dense_targets.VALUE_FILTERS, targets["filtered_counts"].tolist()))
    for attribute in counting.ATTRIBUTES:  # each object has one value of each attribute
        assert sum(scene_counts[((attribute, value),)] for value in counting.VALUES[attribute]) == count
    rng = random.Random(0)
    for flt in rng.sample(dense_targets.VALUE_FILTERS[15:], 10):  # a pair is counted no more often than either of its values
        assert scene_counts[flt] <= min(scene_counts[(flt[0],)], scene_counts[(flt[1],)])
    _, diagram, _ = dense_targets.scene_item("train", 0, 5, 1, 13, diagram_fraction=1.0, filtered_counts=True)
    assert (diagram["filtered_counts"] == dense_targets.IGNORE).all()
    assert "filtered_counts" not in dense_targets.scene_item("train", 0, 5, 1, 13)[1]  # off by default: existing recipes draw what they drew

    config = dense_targets.DenseConfig(steps=2, batch_size=2, save_steps=2, eval_every=2, eval_images=4, curriculum_steps=0, warmup_steps=1, filtered_counts=True)
    heldout = dense_targets.train(modeling.load_model(nano_model), modeling.load_processor(nano_model), tmp_path / "fc", config, log=lambda *a, **k: None)
    assert {"filtered_counts", "filtered_counts_present", "count"} <= set(heldout)


def test_dense_batches_rendered_by_workers_train_the_same_tower(nano_model, tmp_path):
    """``workers`` render the batches ahead in other processes: the weights are those of a
    run that renders them itself."""
    import torch

    towers = []
    for workers in (0, 2):
        config = dense_targets.DenseConfig(steps=3, batch_size=2, save_steps=3, eval_every=3, eval_images=4, curriculum_steps=2, warmup_steps=1, workers=workers)
        model = modeling.load_model(nano_model)
        dense_targets.train(model, modeling.load_processor(nano_model), tmp_path / f"w{workers}", config, log=lambda *a, **k: None)
        towers.append(model.model.visual.state_dict())
    for key, value in towers[0].items():
        assert torch.allclose(value, towers[1][key], atol=1e-6), key


def test_the_reading_set_written_in_chunks_by_workers_is_the_serial_one(tmp_path):
    """Records, rows and image bytes: the same whether one process writes them or three."""
    import functools

    from reasonrft import data
    from reasonrft.config import build
    from reasonrft.stages import pretrain

    config = build(pretrain.PretrainConfig, dict(out=str(tmp_path / "run"), n_train=pretrain.READING_CHUNK + 30, seed=5))
    serial = data.write_dataset(tmp_path / "serial", pretrain_data.iter_pretrain_records(config.n_train, config.seed), {"seed": 5})
    chunked = data.write_dataset_in_chunks(tmp_path / "chunked", functools.partial(pretrain._reading_chunk, config), 2, {"seed": 5}, workers=2)
    assert (serial / data.DATA_FILE).read_text() == (chunked / data.DATA_FILE).read_text()
    images = sorted(p.name for p in (serial / "images").iterdir())
    assert len(images) >= config.n_train and images == sorted(p.name for p in (chunked / "images").iterdir())  # two-image items have two
    assert all((serial / "images" / name).read_bytes() == (chunked / "images" / name).read_bytes() for name in images)


def test_pretrain_with_the_dense_phase_ships_a_plain_model_and_a_restart_resumes(nano_model, tmp_path):
    import shutil

    import torch
    from transformers import Qwen2VLForConditionalGeneration

    from reasonrft import cli

    out = tmp_path / "base"
    shutil.copytree(nano_model, out / "init-nano-s0")  # the random model `model init` would build (saves its 8 s)
    weights = ",".join(["1"] * len(KINDS))
    overrides = ["n_train=8", "per_device_train_batch_size=4", "save_steps=2", "logging_steps=1", "dense_steps=2", "dense_batch_size=2", "text_steps=2", "text_batch_size=2", f"kind_weights=[{weights}]", "freeze_vision=true"]
    assert cli.main(["pretrain", "--out", str(out), "max_steps=2", *overrides]) == 0
    dense = modeling.load_model(out / "dense" / "model")
    first = modeling.load_model(out)
    assert type(first) is Qwen2VLForConditionalGeneration and first.state_dict().keys() == modeling.load_model(nano_model).state_dict().keys()
    text = modeling.load_model(out / "text" / "model")
    for key, value in first.model.visual.state_dict().items():  # phases 2 and 3 read the dense phase's features, frozen
        assert torch.equal(value, dense.model.visual.state_dict()[key]) and torch.equal(value, text.model.visual.state_dict()[key]), key
    assert any(not torch.equal(v, dense.model.language_model.state_dict()[k]) for k, v in text.model.language_model.state_dict().items())  # the text phase trained the LM

    dense_written = (out / "dense" / "model" / "model.safetensors").stat().st_mtime_ns
    assert cli.main(["pretrain", "--out", str(out), "max_steps=4", "resume=true", *overrides]) == 0
    assert (out / "dense" / "model" / "model.safetensors").stat().st_mtime_ns == dense_written  # phase 1 reused
    assert [json.loads(line)["step"] for line in (out / "text" / text_phase.LOG).read_text().splitlines()] == [2]  # phase 2 reused, not rerun
    steps = [h["step"] for h in json.loads((out / "trainer_state.json").read_text())["log_history"] if "loss" in h]
    assert steps == [1, 2, 3, 4]  # phase 2 continued from checkpoint-2


def test_diagram_cells_hold_the_characters_drawn_there():
    """Every point label of a diagram is the character target of one cell; object targets are ignored."""
    image, targets, count = dense_targets.scene_item("train", 0, 0, 3, 5, diagram_fraction=1.0)
    assert count == dense_targets.IGNORE and (targets["color"] == dense_targets.IGNORE).all()
    with dense_targets.recorded_texts() as texts:
        import random

        from reasonrft.tasks import perception

        (again,), _, _, meta = perception.diagram(perception.PerceptionConfig(), "train", random.Random(1))
    cells = dense_targets.text_targets(texts, 224, 8)
    pixels = again.convert("L").load()
    for (x, y), text in texts:  # the recorded centre is on the drawn text, in output pixels, and names its cell
        assert min(pixels[min(223, max(0, round(x) + dx)), min(223, max(0, round(y) + dy))] for dx in range(-5, 6) for dy in range(-5, 6)) < 160, text
    first = {}
    for (x, y), text in texts:
        first.setdefault(int(y // 28) * 8 + int(x // 28), text)
    assert {k: t[0] for k, t in first.items()} == {k: dense_targets.CHARACTERS[c] for k, c in enumerate(cells["char0"]) if c >= 0}  # other cells: IGNORE
    written = {"".join(dense_targets.CHARACTERS[cells[f"char{j}"][k]] for j in range(dense_targets.TEXT_SLOTS)).strip() for k in range(64) if cells["char0"][k] >= 0}
    assert set(meta["labels"]) <= written and {t for _, t in texts} >= written
    assert dense_targets.geometry_draw._Canvas.text.__qualname__ == "_Canvas.text"  # the renderer restored


# --------------------------------------------------------------------------- the text phase


def test_text_phase_items_are_train_text_kinds_with_the_answer_alone_labelled(nano_model):
    processor = modeling.load_processor(nano_model)
    config = text_phase.TextConfig(kind_weights=(1, 1))
    items = [text_phase.item("train", 0, 0, i, config) for i in range(12)]
    assert {r.meta["kind"] for r in items} == {"arithmetic", "copy"}
    assert all(in_split(r.meta["scene_key"], "train", PerceptionConfig()) for r in items)
    assert not [r.problem for r in items if any(b in r.problem for b in BANNED)]  # no task's question type
    assert [r.answer for r in items] == [text_phase.item("train", 0, 0, i, config).answer for i in range(12)]  # rebuild alone
    inputs = text_phase.batch_tensors(processor, items)
    task = get_task("perception")
    from reasonrft.data import user_message_with_images

    for row, record in enumerate(items):
        labels = inputs["labels"][row]
        assert processor.tokenizer.decode(labels[labels != text_phase.IGNORE]) == f"{record.answer}<|im_end|>\n"
        prompt = processor.apply_chat_template([user_message_with_images(task, record, "answer")], tokenize=False, add_generation_prompt=True)
        real = inputs["input_ids"][row][inputs["attention_mask"][row] == 1]
        assert processor.tokenizer.decode(real).startswith(prompt.replace("<|image_pad|>", "<|image_pad|>" * 4))  # what eval renders


def test_text_phase_format_items_label_the_tagged_answer_and_leave_the_other_items_as_they_were(nano_model):
    """``format_fraction`` asks some items in the think/answer format, labelled with the tagged
    thought and answer; every other item is the one the phase gave before (earlier runs rebuild)."""
    from reasonrft.data import sft_target

    processor = modeling.load_processor(nano_model)
    plain, with_format = text_phase.TextConfig(kind_weights=(1, 1)), text_phase.TextConfig(kind_weights=(1, 1), format_fraction=0.5)
    before, after = ([text_phase.item("train", 0, 0, i, c) for i in range(16)] for c in (plain, with_format))
    asked = [r for r in after if r.meta.get("format")]
    assert 0 < len(asked) < 16 and not any(r.meta.get("format") for r in before)
    assert all(a.answer == b.answer and (a.problem == b.problem or a.meta.get("format")) for a, b in zip(after, before))
    inputs = text_phase.batch_tensors(processor, asked)
    for row, record in enumerate(asked):
        labels = inputs["labels"][row]
        target = processor.tokenizer.decode(labels[labels != text_phase.IGNORE])
        assert target == f"{sft_target(record, 'cot')}<|im_end|>\n" and target.startswith("<think>") and rewards.format_reward([target.removesuffix("<|im_end|>\n")])[0] == 1.0
    with pytest.raises(ValueError, match="format_fraction"):
        text_phase.TextConfig(format_fraction=1.5)


def test_text_phase_on_image_kinds_gives_their_scenes_and_measures_their_skills(nano_model):
    """``text_kinds`` turns the same loop to counting or attributes: items of those kinds with
    their 224 px scenes (train split), the answer alone labelled, and the benchmark's skills of
    those kinds in the held-out log."""
    from reasonrft import base_skills
    from reasonrft.stages.pretrain import PretrainConfig

    config = PretrainConfig(out="x", text_kinds=["count", "attribute"], text_kind_weights=[3, 1]).text_config()
    assert (config.kinds, config.kind_weights) == (("count", "attribute"), (3, 1))
    items = [text_phase.item("train", 0, 0, i, config) for i in range(8)]
    assert {r.meta["kind"] for r in items} == {"count", "attribute"} and {r.images[0].size for r in items} == {(224, 224)}
    assert all(in_split(r.meta["scene_key"], "train", PerceptionConfig()) for r in items)
    inputs = text_phase.batch_tensors(modeling.load_processor(nano_model), items)
    labels = inputs["labels"][0]
    assert modeling.load_processor(nano_model).tokenizer.decode(labels[labels != text_phase.IGNORE]) == f"{items[0].answer}<|im_end|>\n"
    assert base_skills.skills_of(config.kinds) == ["count/test-id", "count/test-ood-d", "attribute/color", "attribute/shape", "attribute/size", "attribute/material"]


def test_text_phase_scene_settings_shape_its_items_and_a_wrong_key_is_named(tmp_path, capsys):
    """``text_perception`` sets the phase's scenes (a curriculum's first rung: attribute
    questions in scenes of 2-3 objects); a key PerceptionConfig does not have stops the run."""
    from reasonrft import cli
    from reasonrft.stages.pretrain import PretrainConfig

    config = PretrainConfig(out="x", text_kinds=["attribute"], text_perception={"attribute_min_objects": 2, "attribute_max_objects": 3}).text_config()
    sizes = {len(text_phase.item("train", 0, 0, i, config).meta["objects"]) for i in range(24)}
    assert sizes == {2, 3}
    default = PretrainConfig(out="x", text_kinds=["attribute"]).text_config()
    assert max(len(text_phase.item("train", 0, 0, i, default).meta["objects"]) for i in range(24)) > 3
    assert cli.main(["pretrain", "--out", str(tmp_path / "w"), "text_kinds=[attribute]", "text_perception={attribute_max_objectz: 3}"]) == 2
    err = capsys.readouterr().err
    assert "attribute_max_objectz" in err and "attribute_max_objects" in err and not (tmp_path / "w").exists()


def test_text_phase_learns_and_resumes_exactly(nano_model, tmp_path, monkeypatch):
    """The loss on a fixed batch falls; three steps straight, or two, an interruption and a
    restart, give the same weights."""
    import torch

    processor = modeling.load_processor(nano_model)
    config = text_phase.TextConfig(steps=3, batch_size=4, learning_rate=3e-3, warmup_steps=1, save_steps=1, eval_every=3, eval_items=2)
    probe = text_phase.batch_tensors(processor, [text_phase.item("train", 0, 0, i, config) for i in range(4)])
    straight = modeling.load_model(nano_model)
    with torch.no_grad():
        before = straight(**probe).loss.item()
    heldout = text_phase.train(straight, processor, nano_model, tmp_path / "a", config, log=lambda *a, **k: None)
    assert set(heldout) == {"arithmetic/sum_difference", "arithmetic/product_quotient_square_root", "copy"}  # the benchmark's skills of its kinds
    with torch.no_grad():
        assert straight(**probe).loss.item() < before - 0.5

    real = text_phase.item

    def interrupted(split, seed, step, *rest):
        if split == "train" and step == 2:
            raise KeyboardInterrupt
        return real(split, seed, step, *rest)

    monkeypatch.setattr(text_phase, "item", interrupted)
    with pytest.raises(KeyboardInterrupt):
        text_phase.train(modeling.load_model(nano_model), processor, nano_model, tmp_path / "b", config, log=lambda *a, **k: None)
    monkeypatch.setattr(text_phase, "item", real)
    with open(tmp_path / "b" / text_phase.LOG, "a") as log:  # logged after the last checkpoint, then a torn line
        log.write('{"step": 3, "loss": 9.9}\n{"step": 4, "lo')
    resumed = modeling.load_model(nano_model)
    text_phase.train(resumed, processor, nano_model, tmp_path / "b", config, log=lambda *a, **k: None)
    for key, value in straight.state_dict().items():
        assert torch.allclose(value, resumed.state_dict()[key], atol=1e-6), key
    logged = [json.loads(line) for line in (tmp_path / "b" / text_phase.LOG).read_text().splitlines()]
    assert [r["step"] for r in logged] == [3] and logged[0]["loss"] != 9.9  # the log reads as one run


def test_reading_perception_shapes_the_reading_set_and_a_wrong_key_is_named(tmp_path, capsys):
    """``reading_perception`` sets the reading set's items (here every attribute question asks a
    size); a key PerceptionConfig does not have, or one with a pretrain key of its own, stops the run."""
    from reasonrft import cli
    from reasonrft.stages.pretrain import PretrainConfig

    config = PretrainConfig(out="x", kind_weights=[0, 0, 1, 0, 0, 0, 0, 0, 0], reading_perception={"question_weights": [0, 0, 0, 1, 0, 0]}).perception_config()
    assert {r.meta["question"] for r in pretrain_data.pretrain_records(12, 0, perception_config=config)} == {"size"}
    default = PretrainConfig(out="x", kind_weights=[0, 0, 1, 0, 0, 0, 0, 0, 0]).perception_config()
    assert len({r.meta["question"] for r in pretrain_data.pretrain_records(12, 0, perception_config=default)}) > 2
    assert cli.main(["pretrain", "--out", str(tmp_path / "w"), "reading_perception={question_weightz: [1, 1, 1, 1, 1, 1]}"]) == 2
    err = capsys.readouterr().err
    assert "question_weightz" in err and "question_weights" in err
    assert cli.main(["pretrain", "--out", str(tmp_path / "w"), "reading_perception={question_weights: [1, 2]}"]) == 2  # one weight per question type
    assert cli.main(["pretrain", "--out", str(tmp_path / "w"), "reading_perception={kind_weights: [1, 1, 1, 1, 1, 1, 1, 1, 1]}"]) == 2  # a key of its own
    assert "kind_weights is a pretrain key of its own" in capsys.readouterr().err and not (tmp_path / "w").exists()
