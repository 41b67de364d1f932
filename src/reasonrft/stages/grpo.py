"""GRPO: sample G completions per prompt, reward format + accuracy, update on group advantages.

Run: ``reasonrft grpo --config FILE.yaml model=DIR output_dir=OUT [key=value ...]``, from any
model directory (a base model for Reason-RFT-Zero, a stage-1 SFT output for Reason-RFT).
Rewards are summed with weights (``rewards: {format: 1.0, accuracy: 1.0}``); the default
accuracy reward is the task's own (``accuracy``, ``math_accuracy`` or ``func_accuracy``).
TensorBoard logs (``OUT/runs``) carry each reward's mean (the accuracy reward's mean is the
training accuracy), completion length and KL.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from reasonrft import data, lora_rollouts, modeling, shared_prefix, vision_dedup
from reasonrft.config import to_dict
from reasonrft.errors import UserError
from reasonrft.rewards import REWARDS, check_known
from reasonrft.stages.common import TrainingConfig, freeze_vision, is_main_process, load_training_model, lora_config, main_process_first, on_gpu, resume_checkpoint, save_final, saved_dtype, source_dtype, trainer_common_args


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
    # the reference trainer's plain k3 KL (TRL 1.16 defaults to True: k3 times the importance ratio)
    use_bias_correction_kl: bool = False
    use_vllm: bool = False
    vllm_mode: str = "colocate"
    # TRL 1.16 defaults to True (reweights vLLM samples by trainer/vLLM probability ratios); the
    # reference trainer has no such correction
    vllm_importance_sampling_correction: bool = False
    log_completions: bool = False
    dedup_images: bool = True  # encode each distinct image once per pass (reasonrft.vision_dedup; exact)
    share_prompt_prefix: bool = True  # log-prob passes run each prompt once for its G completions (reasonrft.shared_prefix; exact)
    # with lora=true, sample rollouts from merged adapters in eval mode (reasonrft.lora_rollouts);
    # false: TRL's way (unmerged, in training mode, so with lora_dropout)
    lora_merged_rollouts: bool = True
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
        check_known(self.rewards, "reward(s)")
        if self.max_completion_length < 1 or self.prompts_per_device < 1:
            raise ValueError("max_completion_length and prompts_per_device must be >= 1")

    @property
    def per_device_train_batch_size(self) -> int:
        return self.prompts_per_device * self.num_generations


def reward_weights(config: GRPOStageConfig, task) -> dict[str, float]:
    """The rewards GRPO sums, with their weights: ``config.rewards``, or the format reward and
    the task's accuracy reward, 1 each."""
    return config.rewards or {"format": 1.0, task.accuracy_reward: 1.0}


def run(config: GRPOStageConfig) -> Path:
    trainer, processor, checkpoint, weights, records = build_trainer(config)
    trainer.train(resume_from_checkpoint=checkpoint)
    stage = {"stage": "grpo", **to_dict(config), "rewards": weights, "records": len(records), "device": "cuda" if on_gpu() else "cpu"}
    return save_final(trainer, processor, config.output_dir, stage, dtype=saved_dtype(config))


def build_trainer(config: GRPOStageConfig):
    """The TRL ``GRPOTrainer`` of a run, ready to ``train``, with what ``run`` needs after it:
    ``(trainer, processor, checkpoint or None, reward weights, training records)``. Separate so
    that tests can check what reached TRL (``trainer.args``, its generation config) and call
    its real scoring path without training.

    The reference protocol (TRL 0.15-era GRPO) is pinned here, not left to TRL 1.16 defaults:
    ``beta`` with the plain k3 KL (``use_bias_correction_kl``), no vLLM importance-sampling
    correction, one update per batch (``num_iterations=1``), truncated completions kept in the
    loss (``mask_truncated_completions=False``), dropout as the model has it (but LoRA rollouts
    are sampled without it: ``lora_merged_rollouts``), and the weighted
    reward sum normalised per group (``multi_objective_aggregation="sum_then_normalize"``)."""
    from trl import GRPOConfig, GRPOTrainer

    from reasonrft import console
    from reasonrft.rollouts import RolloutLog

    if config.use_vllm:
        _check_vllm()  # before any loading: fail at once
    processor = modeling.load_processor(config.model, config.min_pixels, config.max_pixels)
    if config.use_vllm and config.vllm_mode == "server" and modeling.pixel_limits(processor) != modeling.pixel_limits(modeling.load_processor(config.model)):
        raise UserError(f"use_vllm=true with vllm_mode=server: the vLLM server sizes images by its own model directory's bounds, not by min_pixels/max_pixels; put them in {config.model}'s image-processor config (recipes/README.md), or use vllm_mode=colocate")
    with main_process_first():  # one process generates OUT/data, the others then read it
        task, records = data.resolve_training_data(config.task, config.data, config.n_train, config.seed, config.data_offset, config.data_limit, Path(config.output_dir) / "data")
    train_set = data.to_hf_dataset(data.grpo_rows(task, records))
    weights = reward_weights(config, task)
    checkpoint = resume_checkpoint(config.output_dir, config.resume)
    model = load_training_model(config, checkpoint)  # fp32 masters; the KL reference is config.model
    if config.use_vllm and config.vllm_mode == "colocate":  # vLLM (and the reference model) load from this path: the same weights, our image bounds
        with main_process_first():
            model.config._name_or_path = vllm_model_dir(config.model, processor, Path(config.output_dir) / "vllm-model")
    if config.freeze_vision:
        freeze_vision(model)
    # the reference model is not trained: on a GPU it keeps the checkpoint's own dtype (bf16 for
    # real models, as in the reference trainer); on a CPU fp32, which is what CPUs compute well
    ref_dtype = source_dtype(config.model) if on_gpu() else "float32"
    args = GRPOConfig(
        **trainer_common_args(config),
        num_generations=config.num_generations,
        beta=config.beta,
        temperature=config.temperature,
        top_p=config.top_p,
        top_k=config.top_k,
        repetition_penalty=1.0,  # overrides any repetition_penalty in the checkpoint's generation config
        max_completion_length=config.max_completion_length,
        loss_type=config.loss_type,
        scale_rewards=config.scale_rewards,
        multi_objective_aggregation="sum_then_normalize",
        epsilon=config.epsilon,
        num_iterations=1,
        mask_truncated_completions=False,
        disable_dropout=False,
        use_bias_correction_kl=config.use_bias_correction_kl,
        reward_weights=list(weights.values()),
        use_vllm=config.use_vllm,
        vllm_mode=config.vllm_mode,
        vllm_importance_sampling_correction=config.vllm_importance_sampling_correction,
        log_completions=config.log_completions,
        remove_unused_columns=False,
        model_init_kwargs={"dtype": ref_dtype} if ref_dtype != "float32" else None,  # the reference model's only (the policy is given)
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=RolloutLog(config.output_dir, weights, config.num_generations, resume=config.resume).wrap({name: REWARDS[name] for name in weights}),  # also OUT/rollouts.jsonl
        args=args,
        train_dataset=train_set,
        processing_class=processor,
        peft_config=lora_config(config),
    )
    if config.dedup_images:
        vision_dedup.install(trainer)
    if config.share_prompt_prefix:
        shared_prefix.install(trainer)
    if config.lora and config.lora_merged_rollouts:
        lora_rollouts.install(trainer)
    console.attach(trainer, "grpo", model=config.model, data=config.data, records=len(records), rewards="+".join(weights), out=config.output_dir)
    return trainer, processor, checkpoint, weights, records


def _check_vllm() -> None:
    try:
        import vllm  # noqa: F401
    except ImportError:
        raise UserError("use_vllm=true but vLLM is not installed; `pip install reasonrft[vllm]` on a CUDA machine, or set use_vllm=false") from None


PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")


def vllm_model_dir(model_dir: str, processor, view: Path) -> str:
    """The directory vLLM should load: ``model_dir`` itself when its own image bounds are the
    run's, else ``view``, a copy of it made of symlinks (weights, tokenizer, config) whose image
    processor files carry the run's ``min_pixels`` / ``max_pixels``. vLLM resizes rollout images
    with the processor of the directory it loads, while the prompts' image tokens come from
    ``processor``: without this, ``max_pixels: 480000`` (the paper's GRPO bound) would give vLLM
    prompts whose image tokens do not match its images. The user's directory is never written."""
    low, high = modeling.pixel_limits(processor)
    if modeling.pixel_limits(modeling.load_processor(model_dir)) == (low, high):
        return model_dir
    if not is_main_process():
        return str(view)  # the main process wrote it (main_process_first)
    source = Path(model_dir).resolve()
    shutil.rmtree(view, ignore_errors=True)
    view.mkdir(parents=True)
    for entry in source.iterdir():
        if entry.name in PROCESSOR_FILES:
            settings = json.loads(entry.read_text())
            target = settings.get("image_processor", settings) if entry.name == "processor_config.json" else settings
            target.update(min_pixels=low, max_pixels=high, size={"shortest_edge": low, "longest_edge": high})
            (view / entry.name).write_text(json.dumps(settings, indent=2))
        else:
            (view / entry.name).symlink_to(entry)
    if modeling.pixel_limits(modeling.load_processor(view)) != (low, high):
        raise UserError(f"use_vllm=true: could not give vLLM the image bounds {low}/{high} (the image-processor files of {model_dir} are not in a layout this project knows); set them in those files, or use_vllm=false")
    return str(view)
