"""Every file under recipes/ loads: stage YAMLs through our config loader (unknown keys and wrong
types fail), accelerate configs through accelerate's own loader; and each says what it must: every
key arrives in the stage config as written, the paper's hyperparameters (reason-rft.md section 6)
and the reference protocol's GRPO settings are there, and each accelerate config has its backend,
ZeRO stage or sharding, precision and process count. A typo in a recipe fails CI."""

from __future__ import annotations

from pathlib import Path

import pytest

from reasonrft.config import load_config
from reasonrft.stages.evaluate import EvalConfig
from reasonrft.stages.grpo import GRPOStageConfig
from reasonrft.stages.sft import SFTStageConfig

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
STAGES = {"sft-ans": SFTStageConfig, "sft-cot": SFTStageConfig, "grpo": GRPOStageConfig, "eval": EvalConfig}
STAGE_FILES = sorted(p for p in RECIPES.rglob("*.yaml") if p.parent.name not in ("accelerate", "pretrain"))
PRETRAIN_FILES = sorted((RECIPES / "pretrain").glob("*.yaml"))
ACCELERATE_FILES = sorted((RECIPES / "accelerate").glob("*.yaml"))
PAPER = {  # reason-rft.md section 6
    SFTStageConfig: dict(learning_rate=1e-5, lr_scheduler_type="cosine", warmup_steps=100, weight_decay=0.1, num_train_epochs=1.0, freeze_vision=True, bf16=True, max_pixels=512 * 512),
    GRPOStageConfig: dict(
        num_generations=8, beta=0.04, learning_rate=1e-6, lr_scheduler_type="linear", warmup_steps=0, weight_decay=0.0, num_train_epochs=1.0,
        temperature=0.9, top_p=0.9, top_k=50, max_completion_length=512, loss_type="grpo", scale_rewards="group", epsilon=0.2, rewards={},
        use_bias_correction_kl=False, vllm_importance_sampling_correction=False, max_pixels=480000,
        freeze_vision=False, use_vllm=True, prompts_per_device=1, gradient_accumulation_steps=2, bf16=True, lora=False,
    ),
    EvalConfig: dict(temperature=0.1, top_p=0.9, max_new_tokens=768, n=0),
}


def test_every_model_has_the_four_stage_files():
    models = {p.parent.name for p in STAGE_FILES}
    assert models == {"qwen2-vl-2b", "qwen2-vl-7b", "qwen2.5-vl-3b", "qwen2.5-vl-7b"}
    for model in models:
        assert {p.stem for p in (RECIPES / model).glob("*.yaml")} == set(STAGES)


@pytest.mark.parametrize("path", PRETRAIN_FILES, ids=lambda p: p.name)
def test_pretrain_recipe_loads_every_key_as_written(path):
    """The configs of the base runs in docs/results.md 4.1 (recipes/pretrain/) stay loadable."""
    import dataclasses

    import yaml

    from reasonrft.stages.pretrain import PretrainConfig

    config = load_config(PretrainConfig, str(path), [])
    raw = yaml.safe_load(path.read_text())
    assert set(raw) <= {f.name for f in dataclasses.fields(PretrainConfig)}
    for key, value in raw.items():
        assert getattr(config, key) == value, key
    # a run of 4.1 continuing another (or F as shipped), or a vision tower's dense phase from random weights (N0)
    assert config.init_model.startswith(("runs/pt-", "src/reasonrft/base")) or (not config.init_model and config.dense_steps > 0)
    assert config.resume and (not config.vision_from or config.vision_from.startswith("runs/pt-"))


@pytest.mark.parametrize("path", STAGE_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_stage_recipe_loads_with_the_paper_values(path):
    import dataclasses

    import yaml

    cls = STAGES[path.stem]
    config = load_config(cls, str(path), ["model=/models/override"])
    assert config.model == "/models/override"
    raw = yaml.safe_load(path.read_text())
    fields = {f.name for f in dataclasses.fields(cls)}
    assert set(raw) <= fields, set(raw) - fields  # every key is a stage key ...
    for key, value in raw.items():  # ... and arrives as written
        if key != "model":
            assert getattr(config, key) == value, key
    for key, value in PAPER[cls].items():
        assert getattr(config, key) == value, key
    if cls is SFTStageConfig:
        assert config.per_device_train_batch_size * config.gradient_accumulation_steps * 8 == 16  # global batch 16 on 8 GPUs
        assert config.paradigm == ("answer" if path.stem == "sft-ans" else "cot")


ACCELERATE = {  # what each accelerate config must say (recipes/README.md)
    "zero2": dict(distributed_type="DEEPSPEED", num_processes=8, mixed_precision="bf16", deepspeed=dict(zero_stage=2, offload_optimizer_device="none", offload_param_device="none")),
    "zero3": dict(distributed_type="DEEPSPEED", num_processes=8, mixed_precision="bf16", deepspeed=dict(zero_stage=3, zero3_init_flag=True, zero3_save_16bit_model=True)),
    "fsdp": dict(distributed_type="FSDP", num_processes=8, mixed_precision="bf16", fsdp=dict(fsdp_sharding_strategy="FULL_SHARD", fsdp_state_dict_type="FULL_STATE_DICT", fsdp_use_orig_params=True)),
    "cpu_2proc": dict(distributed_type="MULTI_GPU", num_processes=2, mixed_precision="no"),
}


@pytest.mark.parametrize("path", ACCELERATE_FILES, ids=lambda p: p.name)
def test_accelerate_config_loads_with_its_settings(path):
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(path))
    want = ACCELERATE[path.stem]
    assert str(config.distributed_type).split(".")[-1] == want["distributed_type"]
    assert (config.num_processes, str(config.mixed_precision).split(".")[-1].lower()) == (want["num_processes"], want["mixed_precision"])
    assert {k: config.deepspeed_config.get(k) for k in want.get("deepspeed", {})} == want.get("deepspeed", {})
    assert {k: config.fsdp_config.get(k) for k in want.get("fsdp", {})} == want.get("fsdp", {})


def test_the_accelerate_configs_are_there():
    assert {p.stem for p in ACCELERATE_FILES} == {"zero2", "zero3", "fsdp", "cpu_2proc"}
