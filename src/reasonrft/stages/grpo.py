"""GRPO: sample G completions per prompt, reward format + accuracy, update on group advantages.

Run: ``reasonrft grpo --config FILE.yaml model=DIR output_dir=OUT [key=value ...]``, from any
model directory (a base model for Reason-RFT-Zero, a stage-1 SFT output for Reason-RFT).
Rewards are summed with weights (``rewards: {format: 1.0, accuracy: 1.0}``); the default
accuracy reward is the task's own (``accuracy``, ``math_accuracy`` or ``func_accuracy``).
TensorBoard logs (``OUT/runs``) carry each reward's mean (the accuracy reward's mean is the
training accuracy), completion length and KL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from reasonrft import data, modeling
from reasonrft.config import to_dict
from reasonrft.errors import UserError
from reasonrft.rewards import REWARDS
from reasonrft.stages.common import TrainingConfig, freeze_vision, lora_config, main_process_first, on_gpu, resume_checkpoint, save_final, weights_source, trainer_common_args


@dataclass(kw_only=True)
class GRPOStageConfig(TrainingConfig):
    """GRPO. Paper values (section 6): G=8, beta=0.04 (k3 KL), lr 1e-6 with linear decay,
    temperature 0.9, top_p 0.9, top_k 50, max 512 completion tokens, one update per batch,
    loss averaged per sequence then over sequences (TRL ``loss_type="grpo"``), whole model
    trained. Defaults here are those, with the learning rate and completion length scaled for
    the nano model; recipes for real models set the paper's values."""

    stage = "grpo"
    rewards: dict[str, float] = field(default_factory=dict)  # empty: {format: 1, <task accuracy>: 1}
    num_generations: int = 8
    beta: float = 0.04
    temperature: float = 0.9
    top_p: float = 0.9
    top_k: int = 50
    max_completion_length: int = 200  # room for the longest gold CoT (162 tokens)
    loss_type: str = "grpo"
    scale_rewards: str = "group"
    epsilon: float = 0.2
    prompts_per_device: int = 2  # prompts per micro-batch; completions = prompts * num_generations
    use_vllm: bool = False
    vllm_mode: str = "colocate"
    log_completions: bool = False
    # defaults that differ from SFT
    learning_rate: float = 2e-5
    lr_scheduler_type: str = "linear"
    warmup_steps: int = 0
    weight_decay: float = 0.0
    freeze_vision: bool = False  # the paper trains the whole model in GRPO

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_generations < 2:
            raise ValueError(f"num_generations must be >= 2 (GRPO compares completions), got {self.num_generations}")
        if self.beta < 0 or self.temperature <= 0 or not 0 < self.top_p <= 1:
            raise ValueError("need beta >= 0, temperature > 0 and 0 < top_p <= 1")
        if self.loss_type not in ("grpo", "dr_grpo", "dapo", "bnpo"):
            raise ValueError(f"loss_type must be one of grpo, dr_grpo, dapo, bnpo; got {self.loss_type!r}")
        unknown = sorted(set(self.rewards) - set(REWARDS))
        if unknown:
            raise ValueError(f"unknown reward(s) {', '.join(unknown)}; choose from {', '.join(REWARDS)}")
        if self.max_completion_length < 1 or self.prompts_per_device < 1:
            raise ValueError("max_completion_length and prompts_per_device must be >= 1")

    @property
    def per_device_train_batch_size(self) -> int:
        return self.prompts_per_device * self.num_generations


def run(config: GRPOStageConfig) -> Path:
    from trl import GRPOConfig, GRPOTrainer

    # setup
    if config.use_vllm:
        _check_vllm()  # before any loading: fail at once
    processor = modeling.load_processor(config.model, config.min_pixels, config.max_pixels)
    if config.use_vllm:
        _check_vllm_pixels(config.model, processor)
    with main_process_first():  # one process generates OUT/data, the others then read it
        task, records = data.resolve_training_data(config.task, config.data, config.n_train, config.seed, config.data_offset, config.data_limit, Path(config.output_dir) / "data")
    train_set = data.to_hf_dataset(data.grpo_rows(task, records))
    weights = config.rewards or {"format": 1.0, task.accuracy_reward: 1.0}
    checkpoint = resume_checkpoint(config.output_dir, config.resume)
    model = modeling.load_model(weights_source(config, checkpoint))
    if config.freeze_vision:
        freeze_vision(model)
    args = GRPOConfig(
        **trainer_common_args(config),
        num_generations=config.num_generations,
        beta=config.beta,
        temperature=config.temperature,
        top_p=config.top_p,
        top_k=config.top_k,
        max_completion_length=config.max_completion_length,
        loss_type=config.loss_type,
        scale_rewards=config.scale_rewards,
        epsilon=config.epsilon,
        num_iterations=1,
        reward_weights=list(weights.values()),
        use_vllm=config.use_vllm,
        vllm_mode=config.vllm_mode,
        log_completions=config.log_completions,
        remove_unused_columns=False,
    )

    # train
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[REWARDS[name] for name in weights],
        args=args,
        train_dataset=train_set,
        processing_class=processor,
        peft_config=lora_config(config),
    )
    trainer.train(resume_from_checkpoint=checkpoint)

    # save
    stage = {"stage": "grpo", **to_dict(config), "rewards": weights, "records": len(records), "device": "cuda" if on_gpu() else "cpu"}
    return save_final(trainer, processor, config.output_dir, stage)


def _check_vllm() -> None:
    try:
        import vllm  # noqa: F401
    except ImportError:
        raise UserError("use_vllm=true but vLLM is not installed; `pip install reasonrft[vllm]` on a CUDA machine, or set use_vllm=false") from None


def _check_vllm_pixels(model_dir: str, processor) -> None:
    """vLLM resizes the rollout images with the model directory's own processor, while the
    image tokens of the prompts it is given come from ``processor``: their bounds must agree."""
    own = modeling.pixel_limits(modeling.load_processor(model_dir))
    if modeling.pixel_limits(processor) != own:
        raise UserError(
            f"use_vllm=true: vLLM sizes images by {model_dir}'s own min_pixels {own[0]} / max_pixels {own[1]}, "
            "not by the min_pixels/max_pixels keys; set them in its image-processor config instead (recipes/README.md), or use_vllm=false"
        )
