"""Two processes (``accelerate launch``, DDP over gloo on the CPU) train SFT then GRPO on the nano
model and save the same checkpoint format as one process: a plain model directory that
``transformers`` loads and generates with.

The two-process runs also generate their training set under ``OUT/data`` (no ``data=``), the
path where both processes would otherwise write the same files at once.
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
GRPO = ["grpo", "n_train=8", "max_steps=2", "prompts_per_device=1", "num_generations=2", "max_completion_length=8", "save_steps=10000", "logging_steps=1"]
MODEL_FILES = {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "processor_config.json", "trainer_state.json", "reasonrft_stage.json"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(args: list[str], processes: int) -> None:
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    if processes == 1:
        cmd = [sys.executable, "-m", "reasonrft.cli", *args]
    else:
        accelerate = str(Path(sys.executable).with_name("accelerate"))
        cmd = [accelerate, "launch", "--config_file", str(ACCELERATE_CONFIG), "--num_processes", str(processes), "--main_process_port", str(_free_port()), "-m", "reasonrft.cli", *args]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-4000:]


def _files(out: Path) -> set[str]:
    return {p.name for p in out.iterdir() if p.is_file() and not p.name.startswith(".")}


def test_two_processes_train_sft_then_grpo_and_save_a_plain_model(nano_model, tmp_path):
    import torch
    from transformers import AutoModelForImageTextToText

    from reasonrft import modeling

    sft2, grpo2, sft1 = tmp_path / "sft-2proc", tmp_path / "grpo-2proc", tmp_path / "sft-1proc"
    _run([*SFT, f"model={nano_model}", f"output_dir={sft2}"], processes=2)
    _run([*GRPO, f"model={sft2}", f"output_dir={grpo2}"], processes=2)
    _run([*SFT, f"model={nano_model}", f"output_dir={sft1}"], processes=1)

    assert MODEL_FILES <= _files(sft1)
    assert _files(sft2) == _files(sft1) == _files(grpo2)
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
