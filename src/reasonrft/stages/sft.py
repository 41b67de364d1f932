"""Supervised fine-tuning: ANS-SFT (answer only) or CoT-SFT (``<think>``/``<answer>`` target).

Run: ``reasonrft sft --config FILE.yaml model=DIR output_dir=OUT [key=value ...]``.
Loss covers the assistant turn only (TRL prompt-completion rows). Following the paper, the
vision tower and projector are frozen by default (``freeze_vision``); a model whose vision
tower has never been trained (a fresh ``model init``) wants ``freeze_vision=false``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from reasonrft import data, modeling
from reasonrft.config import to_dict
from reasonrft.stages.common import LORA_TARGETS, check_lora_fields, freeze_vision, lora_config, main_process_first, resume_checkpoint, save_final, trainer_common_args


@dataclass
class SFTStageConfig:
    """ANS-SFT / CoT-SFT. Paper values (section 6): lr 1e-5, cosine, 100 warmup steps,
    weight decay 0.1, global batch 16, 1 epoch, vision frozen; the defaults here are those,
    with a learning rate and warm-up scaled for the nano model."""

    stage = "sft"
    model: str
    output_dir: str
    task: str = "counting"
    paradigm: str = "cot"  # "cot" (CoT-SFT) or "answer" (ANS-SFT)
    data: str = ""  # a dataset directory; empty: generate n_train items of the train split
    n_train: int = 1000
    data_offset: int = 0  # skip this many records (the stage-2 remainder starts at 1600)
    data_limit: int = 0  # keep at most this many (0: all); stage 1 of Reason-RFT uses 1600
    seed: int = 0
    learning_rate: float = 5e-4
    lr_scheduler_type: str = "cosine"
    warmup_steps: int = 10
    weight_decay: float = 0.1
    num_train_epochs: float = 1.0
    max_steps: int = -1
    per_device_train_batch_size: int = 8
    gradient_accumulation_steps: int = 2
    freeze_vision: bool = True
    logging_steps: int = 5
    save_steps: int = 500
    bf16: bool = True  # on a GPU only
    gradient_checkpointing: bool = False
    resume: bool = False
    lora: bool = False  # train a LoRA adapter (merged into the weights at save time)
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target_modules: list[str] = field(default_factory=lambda: list(LORA_TARGETS))  # language-model layers only

    def __post_init__(self) -> None:
        check_lora_fields(self)
        if self.paradigm not in ("cot", "answer"):
            raise ValueError(f"paradigm must be 'cot' or 'answer', got {self.paradigm!r}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.per_device_train_batch_size < 1 or self.gradient_accumulation_steps < 1:
            raise ValueError("batch sizes must be >= 1")
        if self.n_train < 1:
            raise ValueError(f"n_train must be >= 1, got {self.n_train}")


def run(config: SFTStageConfig) -> Path:
    from trl import SFTConfig, SFTTrainer

    # setup
    processor = modeling.load_processor(config.model)
    with main_process_first():  # one process generates OUT/data, the others then read it
        task, records = data.resolve_training_data(config.task, config.data, config.n_train, config.seed, config.data_offset, config.data_limit, Path(config.output_dir) / "data")
    train_set = data.to_hf_dataset(data.sft_rows(task, records, config.paradigm))
    model = modeling.load_model(config.model)
    if config.freeze_vision:
        freeze_vision(model)
    args = SFTConfig(**trainer_common_args(config), max_length=None, completion_only_loss=True, remove_unused_columns=False)

    # train
    trainer = SFTTrainer(model=model, args=args, train_dataset=train_set, processing_class=processor, peft_config=lora_config(config))
    trainer.train(resume_from_checkpoint=resume_checkpoint(config.output_dir, config.resume))

    # save
    return save_final(trainer, processor, config.output_dir, {"stage": "sft", **to_dict(config), "records": len(records)})
