"""Two processes (``accelerate launch`` on the CPU, over gloo) train SFT (from the nano model)
and GRPO (from the shipped base) and save the same checkpoint format as one process: a plain
model directory that ``transformers`` loads and generates with, holding weights that moved.

Backends: plain DDP (``recipes/accelerate/cpu_2proc.yaml``) and DeepSpeed ZeRO-2 (the settings of
``recipes/accelerate/zero2.yaml``, two processes, no bf16). FSDP does not run on a CPU: accelerate's
FSDP plugin wants an accelerator device, and the stages say so in one line.

The DDP runs also generate their training set under ``OUT/data`` (no ``data=``), the path where
both processes would otherwise write the same files at once.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
ACCELERATE_CONFIG = ROOT / "recipes" / "accelerate" / "cpu_2proc.yaml"
SFT = ["sft", "n_train=8", "max_steps=2", "per_device_train_batch_size=2", "gradient_accumulation_steps=1", "freeze_vision=false", "save_steps=10000", "logging_steps=1"]
GRPO = ["grpo", "n_train=8", "max_steps=2", "prompts_per_device=2", "num_generations=4", "max_completion_length=24", "save_steps=10000", "logging_steps=1"]
# GRPO starts from the shipped base: it answers some counting questions right, so the rewards of
# a group differ and the policy gradient is not zero (from a fresh or 2-step SFT model every
# reward is 0, the gradient is exactly 0, and nothing but weight decay would move the weights).
MODEL_FILES = {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "processor_config.json", "trainer_state.json", "reasonrft_stage.json"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(args: list[str], processes: int, config: Path = ACCELERATE_CONFIG, ok: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    accelerate = str(Path(sys.executable).with_name("accelerate"))
    cmd = [accelerate, "launch", "--config_file", str(config), "--num_processes", str(processes), "--main_process_port", str(_free_port()), "-m", "reasonrft.cli", *args]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)
    if ok:
        assert result.returncode == 0, result.stderr[-4000:]
    return result


def _cpu_variant(recipe: str, tmp_path: Path) -> Path:
    """``recipes/accelerate/RECIPE`` with two processes and no bf16 (the CPU has no bf16 autocast
    in these stages), every other setting as the recipe has it."""
    import yaml

    config = yaml.safe_load((ROOT / "recipes" / "accelerate" / recipe).read_text())
    config.update(num_processes=2, mixed_precision="no")
    out = tmp_path / f"cpu-{recipe}"
    out.write_text(yaml.safe_dump(config))
    return out


def _base() -> Path:
    from reasonrft import modeling

    base = modeling.shipped_base()
    assert base is not None, "the package ships no base model"
    return base


def _weights(model_dir: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(model_dir / "model.safetensors"))


def _assert_loads_and_moved(trained: Path, start: Path) -> None:
    """``trained`` loads with plain transformers, holds every tensor of ``start``, and most of
    its language-model tensors changed (GRPO freezes the vision tower)."""
    from transformers import AutoModelForImageTextToText

    AutoModelForImageTextToText.from_pretrained(trained)
    before, after = _weights(start), _weights(trained)
    assert set(after) == set(before)
    language = [k for k in before if "visual" not in k]
    moved = [k for k in language if not (after[k] == before[k]).all()]
    assert len(moved) > len(language) // 2, f"only {len(moved)} of {len(language)} language-model tensors changed"


def _files(out: Path) -> set[str]:
    return {p.name for p in out.iterdir() if p.is_file() and not p.name.startswith(".")}


def test_two_processes_train_sft_then_grpo_and_save_a_plain_model(nano_model, tmp_path):
    import torch
    from transformers import AutoModelForImageTextToText

    from reasonrft import cli, modeling

    sft2, grpo2, sft1 = tmp_path / "sft-2proc", tmp_path / "grpo-2proc", tmp_path / "sft-1proc"
    _run([*SFT, f"model={nano_model}", f"output_dir={sft2}"], processes=2)
    _run([*GRPO, f"model={_base()}", f"output_dir={grpo2}"], processes=2)
    assert cli.main([*SFT, f"model={nano_model}", f"output_dir={sft1}"]) == 0  # one process (this one): the files to match

    assert MODEL_FILES <= _files(sft1)
    assert _files(sft2) == _files(sft1) and MODEL_FILES <= _files(grpo2)
    _assert_loads_and_moved(sft2, Path(nano_model))
    _assert_loads_and_moved(grpo2, _base())  # GRPO saved its trained weights, not a copy of its input
    assert not list(tmp_path.glob("*/.final-tmp"))
    assert len(list((sft2 / "data").iterdir())) == 1  # generated once, by one process

    # two processes saw twice the samples per step: one epoch of 8 samples in 2 steps of 2 x 2
    import json

    history = json.loads((sft2 / "trainer_state.json").read_text())["log_history"]
    assert [h["epoch"] for h in history if "loss" in h][-1] == pytest.approx(1.0)

    processor = modeling.load_processor(grpo2)
    model = AutoModelForImageTextToText.from_pretrained(grpo2).eval()
    text = processor.apply_chat_template([{"role": "user", "content": [{"type": "text", "text": "How many objects?"}]}], add_generation_prompt=True, tokenize=False)
    inputs = processor(text=[text], return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert out.shape[1] > inputs["input_ids"].shape[1]


def test_deepspeed_zero2_on_two_cpu_processes(nano_model, tmp_path):
    """SFT then GRPO under DeepSpeed ZeRO-2 (optimizer state and gradients sharded over two
    processes), each saving a plain model directory with trained weights."""
    pytest.importorskip("deepspeed", reason="the deepspeed extra is not installed (scripts/bootstrap.sh installs it)")
    from reasonrft import data
    from reasonrft.tasks import get_task

    config = _cpu_variant("zero2.yaml", tmp_path)
    train = data.write_dataset(tmp_path / "data", data.generate_records(get_task("counting"), "train", 8))
    sft, grpo = tmp_path / "sft-zero2", tmp_path / "grpo-zero2"
    _run([*SFT, f"model={nano_model}", f"output_dir={sft}", f"data={train}", "save_steps=2"], processes=2, config=config)
    shards = {p.name for p in sft.glob("checkpoint-2/global_step2/*optim_states.pt")}
    assert {"zero_pp_rank_0_mp_rank_00_optim_states.pt", "zero_pp_rank_1_mp_rank_00_optim_states.pt"} <= shards  # ZeRO, on two ranks
    _run([*GRPO, f"model={_base()}", f"output_dir={grpo}", f"data={train}"], processes=2, config=config)
    assert MODEL_FILES <= _files(sft) and MODEL_FILES <= _files(grpo)
    _assert_loads_and_moved(sft, Path(nano_model))
    _assert_loads_and_moved(grpo, _base())


def test_fsdp_on_a_cpu_is_one_clear_line(nano_model, tmp_path):
    """FSDP needs GPUs. With ``recipes/accelerate/fsdp.yaml``'s settings accelerate raises from
    every process, and with ``fsdp_sync_module_states: false`` it would silently train plain DDP
    (it applies FSDP on accelerator devices only): the stage refuses, naming what runs instead."""
    config = _cpu_variant("fsdp.yaml", tmp_path)
    out = tmp_path / "sft-fsdp"
    result = _run([*SFT, f"model={nano_model}", f"output_dir={out}"], processes=2, config=config, ok=False)
    assert result.returncode != 0
    assert "reasonrft: error: FSDP needs GPUs" in result.stderr and "cpu_2proc.yaml" in result.stderr
    assert "no available devices" not in result.stderr  # stopped by the stage, before accelerate's own error
    assert not out.exists()
