"""Pieces every training stage shares: device choice, freezing, saving the final model."""

from __future__ import annotations

import json
import os
import shutil
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reasonrft.errors import UserError
from reasonrft.modeling import check_pixel_limits, load_model


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
    dataloader_num_workers: int = 0  # processes that decode and collate batches (0: the training process; on a GPU box, several keep it fed)
    report_to: list[str] = field(default_factory=lambda: ["tensorboard"])  # trackers: tensorboard, wandb, trackio ([] or none: only OUT/log.jsonl)
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
    # dtype of the saved weights. Training always runs on fp32 master weights; "float32" keeps
    # them exactly (a bf16 cast rounds away updates below 2^-8 of a weight: at lr 1e-5, every
    # RMSNorm weight of a 10-step run); "auto": the starting model's dtype (bf16 for real
    # Qwen2-VL, half the size); or "bfloat16" / "float16".
    save_dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.save_dtype not in ("float32", "auto", "bfloat16", "float16"):
            raise ValueError(f"save_dtype must be float32, auto, bfloat16 or float16; got {self.save_dtype!r}")
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
        if self.dataloader_num_workers < 0:
            raise ValueError(f"dataloader_num_workers must be >= 0, got {self.dataloader_num_workers}")
        check_trackers(self.report_to)
        check_pixel_limits(self.min_pixels, self.max_pixels)


TRACKERS = {"tensorboard": "tensorboard", "wandb": "wandb", "trackio": "trackio"}
"""The trackers ``report_to`` passes through to the trainers, by the package each needs."""


def check_trackers(names: list[str]) -> None:
    """Fail before any work on a tracker that is unknown or not installed (the Trainer itself
    would fail only after loading the model, with a long traceback)."""
    import importlib.util

    for name in names:
        if name == "none":
            continue
        if name not in TRACKERS:
            raise ValueError(f"report_to: unknown tracker {name!r}; choose from {', '.join(TRACKERS)} (or none)")
        if importlib.util.find_spec(TRACKERS[name]) is None:
            raise ValueError(f"report_to: {name} is not installed (pip install {TRACKERS[name]}), or leave it out of report_to")


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
        report_to=[t for t in config.report_to if t != "none"] or "none",
        seed=config.seed,
        bf16=gpu and config.bf16,
        use_cpu=not gpu,
        **{_checkpointing_arg(): config.gradient_checkpointing},
        dataloader_num_workers=config.dataloader_num_workers,
        disable_tqdm=False,
        log_level="warning",
    )


def _checkpointing_arg() -> str:
    """The TrainingArguments name of activation (gradient) checkpointing: newer transformers
    call it ``activation_checkpointing`` and warn, once per trainer, on the old name."""
    import dataclasses

    from transformers import TrainingArguments

    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    return "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"


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
    """The newest complete ``checkpoint-N`` under ``output_dir`` when resuming, else None.

    A run killed while writing a checkpoint leaves a half-written one (no ``trainer_state.json``,
    a truncated weights file): it is skipped, with one line naming it, and the newest complete
    one is used instead, so ``--resume`` after a crash continues from the last good state."""
    if not resume:
        return None
    checkpoints = sorted(Path(output_dir).glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]) if p.name.split("-")[-1].isdigit() else -1)
    if not checkpoints:
        raise UserError(f"{output_dir}: --resume given but no checkpoint-N directory to resume from")
    for checkpoint in reversed(checkpoints):
        problem = checkpoint_problem(checkpoint)
        if problem is None:
            return str(checkpoint)
        if is_main_process():
            print(f"reasonrft: skipping half-written checkpoint {checkpoint} ({problem})", file=sys.stderr, flush=True)
    raise UserError(f"{output_dir}: --resume given but no checkpoint-N directory is complete (each lacks a file or has a truncated one)")


def checkpoint_problem(checkpoint: Path) -> str | None:
    """Why ``checkpoint`` cannot be resumed from (a missing or truncated file), or None when it
    is complete. Cheap: reads only headers (safetensors) and zip directories (``torch.save``)."""
    state = checkpoint / "trainer_state.json"
    if not state.is_file():
        return "missing trainer_state.json"
    try:
        json.loads(state.read_text())
    except (OSError, ValueError):
        return "truncated trainer_state.json"
    weights = sorted(checkpoint.glob("*.safetensors"))
    if not weights:
        return "no weights file (*.safetensors)"
    for path in weights:
        if not _complete_safetensors(path):
            return f"truncated {path.name}"
    for path in checkpoint.glob("*.pt"):  # optimizer.pt, scheduler.pt: torch.save writes zip files
        if not zipfile.is_zipfile(path):
            return f"truncated {path.name}"
    return None


def _complete_safetensors(path: Path) -> bool:
    """True when the file is as long as its own header says: 8 bytes of header length, the JSON
    header, then the tensor data, whose end is the largest ``data_offsets`` end."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if n <= 0 or 8 + n > size:
                return False
            header = json.loads(f.read(n))
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return size == 8 + n + end


def is_main_process() -> bool:
    """Whether this is world process zero, from the launcher's ``RANK`` (no process group needed)."""
    return os.environ.get("RANK", "0") == "0"


def load_training_model(config: Any, checkpoint: str | None) -> Any:
    """The model to train, with fp32 parameters whatever the checkpoint's dtype.

    ``from_pretrained`` keeps a bf16 checkpoint in bf16 (``dtype="auto"``), and AdamW steps on
    bf16 weights mostly round back to the same value at the paper's learning rates (1e-5, 1e-6):
    so the weights are loaded as fp32 master weights, and bf16 on a GPU is autocast
    (``bf16=True``), as DeepSpeed does it. ``save_final`` casts the result back to the starting
    model's dtype only when ``save_dtype`` asks for it (the default keeps fp32).

    ``config._name_or_path`` is set to the run's starting model (``config.model``) even when the
    weights come from a checkpoint: TRL's GRPOTrainer builds its KL reference model (and vLLM
    its engine) from that path, and a resumed run must keep the same reference as before."""
    import torch

    model = load_model(weights_source(config, checkpoint), dtype=torch.float32)
    model.config._name_or_path = str(config.model)
    return model


def saved_dtype(config: Any) -> str:
    """The dtype ``save_final`` writes: ``config.save_dtype``, with "auto" the starting model's."""
    return source_dtype(config.model) if config.save_dtype == "auto" else config.save_dtype


def source_dtype(model_dir: str) -> str:
    """The dtype a model directory's weights are stored in (its ``config.json``), e.g. ``bfloat16``."""
    try:
        cfg = json.loads((Path(model_dir) / "config.json").read_text())
    except (OSError, ValueError):
        return "float32"
    dtype = cfg.get("dtype") or cfg.get("torch_dtype") or cfg.get("text_config", {}).get("dtype") or "float32"
    return str(dtype).removeprefix("torch.")


def cast_saved_weights(directory: Path, dtype: str) -> None:
    """Rewrite the floating-point tensors of every ``*.safetensors`` file in ``directory`` as
    ``dtype``, and record it in ``config.json``: a model trained in fp32 from a bf16 checkpoint is
    saved in bf16, the size and type it came in. A no-op for ``float32``."""
    import torch
    from safetensors.torch import load_file, save_file

    if dtype == "float32":
        return
    target = getattr(torch, dtype)
    total = 0
    for path in sorted(directory.glob("*.safetensors")):
        tensors = {k: (v.to(target) if v.is_floating_point() else v) for k, v in load_file(str(path)).items()}
        save_file(tensors, str(path), metadata={"format": "pt"})
        total += sum(v.numel() * v.element_size() for v in tensors.values())
    index_path = directory / "model.safetensors.index.json"
    if index_path.is_file():  # a sharded model: its index records the total size in bytes
        index = json.loads(index_path.read_text())
        index.setdefault("metadata", {})["total_size"] = total
        index_path.write_text(json.dumps(index, indent=2) + "\n")
    config_path = directory / "config.json"
    if config_path.is_file():
        cfg = json.loads(config_path.read_text())
        cfg["dtype"] = dtype
        for sub in ("text_config", "vision_config"):
            if isinstance(cfg.get(sub), dict) and "dtype" in cfg[sub]:
                cfg[sub]["dtype"] = dtype
        config_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


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


def save_final(trainer: Any, processor: Any, output_dir: str, stage_config: dict, dtype: str = "float32") -> Path:
    """Save model + processor into ``output_dir``; ``config.json`` is moved in last, so a
    directory with a ``config.json`` is always a complete model. Training ran on fp32 master
    weights; they are written as ``dtype`` (``saved_dtype``: fp32 unless ``save_dtype`` asks for
    the starting model's or a 16-bit type), and ``reasonrft_stage.json`` records both, with
    the starting model's own dtype.

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
        cast_saved_weights(tmp, dtype)
        processor.save_pretrained(str(tmp))
        trainer.state.save_to_json(str(tmp / "trainer_state.json"))  # the log history, for plots
        (tmp / "reasonrft_stage.json").write_text(json.dumps({**stage_config, "source_dtype": source_dtype(stage_config.get("model", "")), "trained_dtype": "float32", "saved_dtype": dtype}, indent=2, default=str))
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
