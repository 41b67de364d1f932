"""The reference protocol reaches the trainers, and the trainers do what the method says.

Each test checks one link that a wrong value would silently break: stage config -> TRL's
``GRPOConfig`` and the generation config ``generate()`` really uses; rewards -> advantages
(r - group mean) / (group std + 1e-4); SFT labels masked on the prompt and the image tokens;
GRPO moving the policy up the reward (and down it with negated weights); the experiment's
data split and prompt style per paradigm.
"""

from __future__ import annotations

import json
import random
import statistics
from pathlib import Path

import pytest
import torch

from reasonrft import data, modeling
from reasonrft.config import build
from reasonrft.stages import grpo, sft

pytestmark = pytest.mark.slow


def _fixed(values: list[float]):
    """A reward function returning hand-made values, one per completion in batch order."""

    def reward(completions, **kwargs) -> list[float]:
        assert len(completions) == len(values)
        return list(values)

    return reward


def test_grpo_stage_config_reaches_trl(nano_model, tmp_path):
    values = dict(model=nano_model, output_dir=str(tmp_path), n_train=4, temperature=0.7, top_p=0.8, top_k=20, beta=0.02, loss_type="bnpo", scale_rewards="batch", epsilon=0.3, rewards={"format": 0.5, "accuracy": 2.0}, num_generations=4, prompts_per_device=1, max_completion_length=8)
    trainer = grpo.build_trainer(build(grpo.GRPOStageConfig, values))[0]
    args = trainer.args
    got = {k: getattr(args, k) for k in ("temperature", "top_p", "top_k", "beta", "loss_type", "scale_rewards", "epsilon", "num_generations", "max_completion_length")}
    assert got == {k: values[k] for k in got}
    assert args.reward_weights == [0.5, 2.0] and trainer.reward_weights.tolist() == [0.5, 2.0]
    # the reference trainer's protocol, where TRL 1.16's defaults differ
    assert args.use_bias_correction_kl is False and args.vllm_importance_sampling_correction is False
    assert args.num_iterations == 1 and args.mask_truncated_completions is False and args.repetition_penalty == 1.0
    assert args.multi_objective_aggregation == "sum_then_normalize" and (trainer.epsilon_low, trainer.epsilon_high) == (0.3, 0.3)
    # and the paper's values are the stage defaults
    defaults = build(grpo.GRPOStageConfig, dict(model=nano_model, output_dir=str(tmp_path)))
    paper = dict(num_generations=8, beta=0.04, temperature=0.9, top_p=0.9, top_k=50, loss_type="grpo", scale_rewards="group", use_bias_correction_kl=False, vllm_importance_sampling_correction=False)
    assert {k: getattr(defaults, k) for k in paper} == paper


def test_grpo_generation_and_advantages_follow_the_reference(nano_model, tmp_path, monkeypatch):
    """Through TRL's real scoring path (``_generate_and_score_completions``): sampling uses the
    stage's temperature / top_p / top_k even where the checkpoint's generation config says
    otherwise (real Qwen2-VL ships top_k 1, repetition_penalty 1.05), and the advantages of
    hand-made rewards are (r - group mean) / (group std + 1e-4), the std unbiased."""
    from transformers import GenerationConfig
    from transformers.generation import utils as generation_utils

    model_dir = tmp_path / "model"
    model = modeling.load_model(nano_model)
    model.generation_config = GenerationConfig(temperature=0.01, top_k=1, top_p=0.001, repetition_penalty=1.05, do_sample=True)
    model.save_pretrained(model_dir)
    modeling.load_processor(nano_model).save_pretrained(model_dir)

    a = [1.0, 0.0, 0.0, 1.0, 0.5, 0.5, 0.5, 0.5]
    b = [0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]
    monkeypatch.setitem(grpo.REWARDS, "fixed_a", _fixed(a))
    monkeypatch.setitem(grpo.REWARDS, "fixed_b", _fixed(b))
    config = build(grpo.GRPOStageConfig, dict(model=str(model_dir), output_dir=str(tmp_path / "out"), n_train=4, rewards={"fixed_a": 1.0, "fixed_b": 0.5}, num_generations=4, prompts_per_device=2, max_completion_length=6))
    trainer = grpo.build_trainer(config)[0]

    used = []
    prepare = generation_utils.GenerationMixin._prepare_generation_config

    def spy(self, generation_config, **kwargs):
        result = prepare(self, generation_config, **kwargs)
        used.append(result[0])
        return result

    monkeypatch.setattr(generation_utils.GenerationMixin, "_prepare_generation_config", spy)
    rows = [trainer.train_dataset[0]] * 4 + [trainer.train_dataset[1]] * 4  # TRL's sampler: each prompt G times in a row
    out = trainer._generate_and_score_completions(rows)

    assert used, "generate() was not called"
    gen = used[-1]
    assert (gen.do_sample, gen.temperature, gen.top_p, gen.top_k, gen.repetition_penalty) == (True, 0.9, 0.9, 50, 1.0)
    rewards = [x + 0.5 * y for x, y in zip(a, b)]
    expected = []
    for group in (rewards[:4], rewards[4:]):
        mean, std = statistics.mean(group), statistics.stdev(group)
        expected += [(r - mean) / (std + 1e-4) for r in group]
    assert out["advantages"].tolist() == pytest.approx(expected, abs=1e-5)
    assert expected[4:] == [0.0] * 4 and max(abs(e) for e in expected[:4]) > 1  # a tied group teaches nothing


def test_sft_labels_cover_only_the_completion(nano_model, tmp_path):
    """On a real batch from TRL's vision-language collator: every prompt token (system, user
    turn, image pads, the assistant header) is -100; the labelled tokens are the target text
    and the end of turn, nothing else."""
    config = build(sft.SFTStageConfig, dict(model=nano_model, output_dir=str(tmp_path), task="counting", paradigm="cot", n_train=3))
    trainer, processor, _, records = sft.build_trainer(config)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(3)])
    image_token = modeling.load_model(nano_model).config.image_token_id
    tok = processor.tokenizer
    for i, record in enumerate(records):
        ids, labels = batch["input_ids"][i], batch["labels"][i]
        assert (ids == image_token).sum() > 0 and (labels[ids == image_token] == -100).all()
        kept = labels[labels != -100]
        assert tok.decode(kept).strip() == data.sft_target(record, "cot").strip() + "<|im_end|>"
        first = int((labels != -100).nonzero()[0])
        assert (labels[:first] == -100).all() and tok.decode(ids[:first]).rstrip().endswith("<|im_start|>assistant")
        assert torch.equal(labels[first:][labels[first:] != -100], ids[first:][labels[first:] != -100])  # labels are the tokens themselves


def test_training_rows_and_generation_prompts_share_the_layout(nano_model, tmp_path):
    """Both layouts through TRL's real collator: the tokens before the first label are exactly
    the generation prompt (``user_message_with_images``), images first by default and the
    question first for a kind in ``question_first_kinds``, where no image pad precedes the question."""
    from reasonrft.tasks import perception

    config = build(sft.SFTStageConfig, dict(model=nano_model, output_dir=str(tmp_path), task="counting", paradigm="answer", n_train=1))
    trainer, processor, _, _ = sft.build_trainer(config)
    task, image_token = data.get_task("perception"), modeling.load_model(nano_model).config.image_token_id
    for question_first in (False, True):
        mix = perception.PerceptionConfig(kind_weights=(0, 0, 0, 0, 0, 0, 1, 0, 0), format_fraction=0.0, question_first_kinds=("count_filtered",) if question_first else ())
        records = [data.Record.from_sample("perception", task.sample("train", i, 5, mix)) for i in range(2)]
        rows = data.to_hf_dataset(data.sft_rows(task, records, "answer"))
        batch = trainer.data_collator([rows[i] for i in range(2)])
        for i, record in enumerate(records):
            ids, labels = batch["input_ids"][i], batch["labels"][i]
            first = int((labels != -100).nonzero()[0])
            prompt = processor.apply_chat_template([data.user_message_with_images(task, record, "answer")], add_generation_prompt=True, tokenize=False)
            assert ids[:first].tolist() == processor(text=[prompt], images=record.images, return_tensors="pt")["input_ids"][0].tolist()
            question = processor.tokenizer(record.problem, add_special_tokens=False)["input_ids"]
            text_at = next(at for at in range(first) if ids[at : at + len(question)].tolist() == question)
            assert bool((ids[:text_at] == image_token).any()) is not question_first
            assert bool((ids[text_at:first] == image_token).any()) is question_first


def test_experiment_feeds_each_paradigm_its_records_and_prompt_style(nano_model, tmp_path, monkeypatch):
    """Reason-RFT's stage 2 trains on the records after stage 1 (structure: on all of them), the
    full-data paradigms on every record, and each row is evaluated with its own prompt style."""
    from reasonrft.stages import evaluate, experiment

    for task, stage2_offset in (("counting", 3), ("structure", 0)):
        calls: dict[str, list] = {"sft": [], "grpo": [], "eval": []}

        def fake(kind):
            def run(cfg):
                calls[kind].append(cfg)
                if kind == "eval":
                    return {"splits": {s: {"accuracy": 0.0} for s in experiment.get_task(cfg.task).test_splits}, "average": 0.0}
                Path(cfg.output_dir).mkdir(parents=True, exist_ok=True)
                return Path(cfg.output_dir)

            return run

        monkeypatch.setattr(sft, "run", fake("sft"))
        monkeypatch.setattr(grpo, "run", fake("grpo"))
        monkeypatch.setattr(evaluate, "run", fake("eval"))
        monkeypatch.setattr(experiment, "_write_report", lambda *a, **k: None)  # the report is not under test
        out = tmp_path / task
        experiment.run_compare(experiment.CompareConfig(task=task, out=str(out), model=nano_model, n_train=8, stage1=3, n_eval=1))
        sfts = {Path(c.output_dir).name: c for c in calls["sft"]}
        grpos = {Path(c.output_dir).name: c for c in calls["grpo"]}
        assert {k: (c.paradigm, c.data_offset, c.data_limit) for k, c in sfts.items()} == {"ans-sft": ("answer", 0, 0), "cot-sft": ("cot", 0, 0), "stage1": ("cot", 0, 3)}
        assert {k: (c.data_offset, c.data_limit) for k, c in grpos.items()} == {"reason-rft-zero": (0, 0), "reason-rft": (stage2_offset, 0)}
        assert grpos["reason-rft"].model == str(out / "stage1") and grpos["reason-rft-zero"].model == nano_model
        train = data.load_dataset(Path(grpos["reason-rft"].data))
        _, stage2 = data.resolve_training_data(task, grpos["reason-rft"].data, 0, 0, stage2_offset, 0, out / "unused")
        assert [r.id for r in stage2] == [r.id for r in train[stage2_offset:]] and len(train) == 8
        styles = {Path(c.output_dir).name: c.prompt_style for c in calls["eval"]}
        assert styles == {"zero-shot": "zero-shot", "ans-sft": "answer", "cot-sft": "cot", "reason-rft-zero": "cot", "stage1": "cot", "reason-rft": "cot"}
        assert {Path(c.model).name for c in calls["eval"] if Path(c.output_dir).name == "reason-rft"} == {"reason-rft"}


def test_grpo_raises_the_accuracy_reward_and_negated_weights_lower_it(nano_model, colour_records, tmp_path):
    """A small learnable problem (the colour of a solid image, 8 colours): a briefly ANS-SFT'd
    model answers right some of the time; GRPO on the accuracy reward alone raises its training
    accuracy within a few steps, and the same run with the weight negated drives it to zero.
    Seeded, deterministic on a CPU."""
    rng = random.Random(0)
    data.write_dataset(tmp_path / "train", colour_records(160, "train", rng, 56))
    common = dict(task="perception", data=str(tmp_path / "train"), save_steps=10_000, logging_steps=1)
    start = sft.run(build(sft.SFTStageConfig, dict(common, model=nano_model, output_dir=str(tmp_path / "sft"), paradigm="answer", max_steps=8, per_device_train_batch_size=16, gradient_accumulation_steps=1, learning_rate=1e-3, lr_scheduler_type="constant", warmup_steps=0, freeze_vision=False)))
    curves = {}
    for sign in (1.0, -1.0):
        out = grpo.run(build(grpo.GRPOStageConfig, dict(common, model=str(start), output_dir=str(tmp_path / f"grpo{sign:+}"), rewards={"accuracy": sign}, prompts_per_device=4, num_generations=8, max_completion_length=4, max_steps=8, learning_rate=3e-4)))
        history = [h for h in json.loads((out / "trainer_state.json").read_text())["log_history"] if "loss" in h]
        curves[sign] = [h["rewards/accuracy_reward/mean"] for h in history]
    up, down = curves[1.0], curves[-1.0]
    assert len(up) == len(down) == 8
    first = statistics.mean(up[:2])  # both runs start from the same model and the same first batches
    assert statistics.mean(up[-3:]) > first + 0.1, curves
    assert statistics.mean(down[-3:]) < min(first, 0.05), curves
