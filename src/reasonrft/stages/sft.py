"""Supervised fine-tuning: ANS-SFT (answer only) or CoT-SFT (``<think>``/``<answer>`` target).

Run: ``reasonrft sft --config FILE.yaml model=DIR output_dir=OUT [key=value ...]``.
Loss covers the assistant turn only (TRL prompt-completion rows). Following the paper, the
vision tower and projector are frozen by default (``freeze_vision``); a model whose vision
tower has never been trained (a fresh ``model init``) wants ``freeze_vision=false``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from reasonrft import data, modeling
from reasonrft.config import to_dict
from reasonrft.stages.common import TrainingConfig, freeze_vision, load_training_model, lora_config, main_process_first, resume_checkpoint, save_final, saved_dtype, trainer_common_args


@dataclass(kw_only=True)
class SFTStageConfig(TrainingConfig):
    """ANS-SFT / CoT-SFT. Paper values (section 6): lr 1e-5, cosine, 100 warmup steps,
    weight decay 0.1, global batch 16, 1 epoch, vision frozen; the defaults here are those,
    with a learning rate and warm-up scaled for the nano model (see ``TrainingConfig``)."""

    stage = "sft"
    paradigm: str = "cot"  # "cot" (CoT-SFT) or "answer" (ANS-SFT)
    per_device_train_batch_size: int = 8
    gradient_accumulation_steps: int = 2

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.paradigm not in ("cot", "answer"):
            raise ValueError(f"paradigm must be 'cot' or 'answer', got {self.paradigm!r}")
        if self.per_device_train_batch_size < 1:
            raise ValueError("per_device_train_batch_size must be >= 1")


def run(config: SFTStageConfig) -> Path:
    trainer, processor, checkpoint, records = build_trainer(config)
    trainer.train(resume_from_checkpoint=checkpoint)
    stage = {"stage": "sft", **to_dict(config), "records": len(records)}
    return save_final(trainer, processor, config.output_dir, stage, dtype=saved_dtype(config))


def build_trainer(config: SFTStageConfig):
    """The TRL ``SFTTrainer`` of a run, ready to ``train``, with what ``run`` needs after it:
    ``(trainer, processor, checkpoint to resume from or None, training records)``. Separate so
    that tests can inspect the real trainer (its config, collator, batches) without training."""
    from trl import SFTConfig, SFTTrainer

    from reasonrft import console

    processor = modeling.load_processor(config.model, config.min_pixels, config.max_pixels)
    with main_process_first():  # one process generates OUT/data, the others then read it
        task, records = data.resolve_training_data(config.task, config.data, config.n_train, config.seed, config.data_offset, config.data_limit, Path(config.output_dir) / "data")
    train_set = data.to_hf_dataset(data.sft_rows(task, records, config.paradigm))
    checkpoint = resume_checkpoint(config.output_dir, config.resume)
    model = load_training_model(config, checkpoint)  # fp32 master weights
    if config.freeze_vision:
        freeze_vision(model)
    args = SFTConfig(**trainer_common_args(config), max_length=None, completion_only_loss=True, remove_unused_columns=False)
    trainer = SFTTrainer(model=model, args=args, train_dataset=train_set, processing_class=processor, peft_config=lora_config(config))
    console.attach(trainer, "sft", model=config.model, data=config.data, records=len(records), paradigm=config.paradigm, out=config.output_dir)
    return trainer, processor, checkpoint, records
