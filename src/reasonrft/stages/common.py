"""Pieces every training stage shares: device choice, freezing, saving the final model."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reasonrft.errors import UserError
from reasonrft.modeling import check_pixel_limits


LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
"""Default LoRA targets: every linear layer of Qwen2-VL's language model."""


@dataclass(kw_only=True)
class TrainingConfig:
    """Fields every training stage shares (inputs, data, optimisation, logging, LoRA), declared
    once. A stage config subclasses it to add its own fields and to restate the defaults it
    changes (plain dataclass field inheritance: the one place this project subclasses)."""

    model: str  # a model directory: ours, or a local Qwen2-VL / Qwen2.5-VL checkpoint
    output_dir: str
    task: str = "counting"
    data: str = ""  # a dataset directory; empty: generate n_train items of the train split
    n_train: int = 1000
    data_offset: int = 0  # skip this many records (Reason-RFT's stage-2 remainder starts at 1600)
    data_limit: int = 0  # keep at most this many (0: all); Reason-RFT's stage 1 uses 1600
    seed: int = 0
    learning_rate: float = 5e-4
    lr_scheduler_type: str = "cosine"
    warmup_steps: int = 10
    weight_decay: float = 0.1
    num_train_epochs: float = 1.0
    max_steps: int = -1  # > 0 overrides num_train_epochs
    gradient_accumulation_steps: int = 1
    freeze_vision: bool = True  # freeze the vision tower and projector
    logging_steps: int = 5
    save_steps: int = 500
    bf16: bool = True  # on a GPU only
    gradient_checkpointing: bool = False
    resume: bool = False  # continue from the newest checkpoint-N in output_dir
    lora: bool = False  # train a LoRA adapter (merged into the weights at save time)
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target_modules: list[str] = field(default_factory=lambda: list(LORA_TARGETS))  # language-model layers only
    # Image-size bounds in pixels (Qwen2-VL's min_pixels / max_pixels; None: the model directory's
    # own). Images are resized into [min, max], which bounds their image tokens (pixels / 28^2).
    # The processor is saved with the trained model, so later stages and eval inherit the bounds.
    min_pixels: int | None = None
    max_pixels: int | None = None

    def __post_init__(self) -> None:
        if self.lora_r < 1 or self.lora_alpha <= 0 or not 0 <= self.lora_dropout < 1:
            raise ValueError("need lora_r >= 1, lora_alpha > 0 and 0 <= lora_dropout < 1")
        if self.lora and not self.lora_target_modules:
            raise ValueError("lora=true needs at least one name in lora_target_modules")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.gradient_accumulation_steps < 1:
            raise ValueError("gradient_accumulation_steps must be >= 1")
        if self.n_train < 1:
            raise ValueError(f"n_train must be >= 1, got {self.n_train}")
        check_pixel_limits(self.min_pixels, self.max_pixels)


def on_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def trainer_common_args(config: Any) -> dict[str, Any]:
    """TrainingArguments shared by SFT and GRPO, with the CPU-friendly settings of stack.md."""
    gpu = on_gpu()
    return dict(
        output_dir=config.output_dir,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler_type,
        warmup_steps=config.warmup_steps,
        weight_decay=config.weight_decay,
        num_train_epochs=config.num_train_epochs,
        max_steps=config.max_steps,
        per_device_train_batch_size=config.per_device_train_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        logging_steps=config.logging_steps,
        save_steps=config.save_steps,
        save_total_limit=2,
        report_to=["tensorboard"],
        seed=config.seed,
        bf16=gpu and config.bf16,
        use_cpu=not gpu,
        gradient_checkpointing=config.gradient_checkpointing,
        dataloader_num_workers=0,
        disable_tqdm=False,
        log_level="warning",
    )


def freeze_vision(model: Any) -> int:
    """Freeze the vision tower and its projector (merger); returns how many tensors were frozen."""
    visual = getattr(getattr(model, "model", model), "visual", None)
    if visual is None:
        raise UserError("the model has no vision tower to freeze (expected a Qwen2-VL-family model)")
    frozen = 0
    for p in visual.parameters():
        p.requires_grad_(False)
        frozen += 1
    return frozen


def resume_checkpoint(output_dir: str, resume: bool) -> str | None:
    """The newest ``checkpoint-N`` under ``output_dir`` when resuming, else None."""
    if not resume:
        return None
    checkpoints = sorted(Path(output_dir).glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    if not checkpoints:
        raise UserError(f"{output_dir}: --resume given but no checkpoint-N directory to resume from")
    return str(checkpoints[-1])


def main_process_first():
    """A context in which the main process runs first and the others wait for it (a no-op in
    one process): for work that writes shared files, such as generating the training set
    under ``OUT/data``, which two processes of ``accelerate launch`` must not write at once."""
    from accelerate import PartialState

    return PartialState(cpu=not on_gpu()).main_process_first()


def lora_config(config: Any) -> Any:
    """A ``peft.LoraConfig`` from a stage config's ``lora_*`` fields, or None when LoRA is off.
    The target module names apply to the language model only (a regex over module paths), so
    the vision tower's own ``qkv``/``proj``/MLP layers stay as they are."""
    if not config.lora:
        return None
    from peft import LoraConfig

    names = "|".join(config.lora_target_modules)
    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=rf".*language_model.*\.({names})",
        task_type="CAUSAL_LM",
    )


def weights_source(config: Any, checkpoint: str | None) -> str:
    """Where the model's weights come from: the checkpoint when resuming a full fine-tune.

    The Trainer's own checkpoint loading would restore optimizer, scheduler and step but not
    the weights of a Qwen2-VL model: checkpoints are written with the legacy key names
    (``model.layers.*``, ``visual.*``) that ``from_pretrained`` maps back and the Trainer's
    non-strict loader silently skips. A LoRA checkpoint holds only the adapter, which the
    Trainer restores itself, so the base weights then still come from ``config.model``.
    """
    return checkpoint if checkpoint and not config.lora else config.model


def save_final(trainer: Any, processor: Any, output_dir: str, stage_config: dict) -> Path:
    """Save model + processor into ``output_dir``; ``config.json`` is moved in last, so a
    directory with a ``config.json`` is always a complete model.

    Safe under ``accelerate launch``: every process takes part in ``save_model`` (ZeRO-3 and
    FSDP gather the weights there), only world process zero writes files, and all processes
    leave together. A LoRA adapter is merged into the weights first, so the directory is a
    plain model that ``transformers`` loads without ``peft``."""
    out = Path(output_dir)
    tmp = out / ".final-tmp"
    main = trainer.is_world_process_zero()
    if main:
        shutil.rmtree(tmp, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    model = trainer.accelerator.unwrap_model(trainer.model)
    if _is_peft(model):
        if main:
            model.merge_and_unload().save_pretrained(str(tmp))
    else:
        trainer.save_model(str(tmp))
    if main:
        processor.save_pretrained(str(tmp))
        trainer.state.save_to_json(str(tmp / "trainer_state.json"))  # the log history, for plots
        (tmp / "reasonrft_stage.json").write_text(json.dumps(stage_config, indent=2, default=str))
        names = sorted(os.listdir(tmp), key=lambda n: n == "config.json")
        for name in names:
            os.replace(tmp / name, out / name)
        shutil.rmtree(tmp, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    return out


def _is_peft(model: Any) -> bool:
    try:
        from peft import PeftModel
    except ImportError:
        return False
    return isinstance(model, PeftModel)
