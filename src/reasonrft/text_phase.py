"""A text phase for the base's language model: arithmetic and copying, on their own.

In the reading phase (answer-only SFT on the perception mix) the text kinds are a fraction of
each batch of 16, at the mix's learning rate, and the language model barely learns them: run E
of docs/results.md (half its 24,000 items arithmetic, lr 3e-4) fitted 16% of its own training
sums. Alone, in batches of 64 at lr 1e-3, the same nano language model fits 85% of the sums and
differences up to 30 in 750 steps (``benchmarks/probe_text_sums.py``). This phase gives the text
skills those steps before the reading phase, which then keeps them by replay (the text kinds
stay in its mix).

Items are the perception family's own kinds (by default its text kinds,
``perception.TEXT_KINDS``: arithmetic, copying; ``kinds`` may name any of ``perception.KINDS``,
so the same loop can give counting or attribute questions their many large-batch steps) on its
``train`` split, each with the image the reading phase and the skills benchmark give it (the
text kinds: a blank one), so the prompt is token for token what those see. The loss covers the
answer only, as TRL's prompt-completion SFT does (loss on the whole sequence was measured too:
the questions' random numbers and words dominate it, and it learned less). Only the language
model trains (the vision tower is frozen). Item ``i`` of step ``s`` comes from its own RNG, so a
run resumed from ``OUT/text-checkpoint.pt`` sees exactly the batches of an uninterrupted one.
The held-out log (every ``eval_every`` steps) measures the skills of ``reasonrft.base_skills``
that belong to the phase's kinds, on the skills benchmark's own items.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from reasonrft import base_skills, phase_loop
from reasonrft.data import Record, user_message_with_images
from reasonrft.io import truncate_jsonl
from reasonrft.pretrain_data import TASK_NAME, target
from reasonrft.stages.common import freeze_vision
from reasonrft.tasks import get_task, perception
from reasonrft.tasks.base import item_rng

CHECKPOINT = "text-checkpoint.pt"
LOG = "text-log.jsonl"
IGNORE = -100


@dataclass(frozen=True)
class TextConfig:
    """The text phase: steps, batch, learning rate (linear warm-up then cosine), the kinds and their mix."""

    steps: int = 3000
    batch_size: int = 64
    learning_rate: float = 1e-3
    warmup_steps: int = 50
    weight_decay: float = 0.01
    kinds: tuple[str, ...] = perception.TEXT_KINDS  # any of perception.KINDS
    kind_weights: tuple[int, ...] = (2, 1)  # one per kind
    # the items' ``perception.PerceptionConfig`` overrides, e.g. {"attribute_max_objects": 3}
    # for a curriculum's first rung (the held-out log keeps the benchmark's own items)
    perception: dict = field(default_factory=dict)
    # items asked in the think/answer format (target: the tagged thought and answer), drawn
    # apart from the rest so that 0 keeps the items of every earlier run
    format_fraction: float = 0.0
    save_steps: int = 100
    eval_every: int = 250
    eval_items: int = 50  # per held-out skill
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = [k for k in self.kinds if k not in perception.KINDS]
        if unknown or not self.kinds:
            raise ValueError(f"text kinds must be a non-empty list of {', '.join(perception.KINDS)}; got {list(self.kinds)}")
        if len(self.kind_weights) != len(self.kinds) or min(self.kind_weights) < 0 or sum(self.kind_weights) <= 0:
            raise ValueError(f"text kind_weights needs {len(self.kinds)} weights >= 0 ({', '.join(self.kinds)}), not all 0")
        self.perception_config()  # validates the overrides
        if not 0 <= self.format_fraction <= 1:
            raise ValueError(f"text format_fraction must be in [0, 1], got {self.format_fraction}")

    def perception_config(self) -> perception.PerceptionConfig:
        return perception.PerceptionConfig.from_overrides(self.perception, "text perception override")


def item(split: str, seed: int, step: int, index: int, config: TextConfig) -> Record:
    """Item ``index`` of batch ``step``: a kind drawn by ``kind_weights``."""
    key = step * 1_000_003 + index
    rng = item_rng("text-phase", split, seed, key)
    kind = rng.choices(config.kinds, weights=config.kind_weights)[0]
    ask_format = config.format_fraction > 0 and item_rng("text-phase-format", split, seed, key).random() < config.format_fraction
    return base_skills.as_record(perception.make_sample(config.perception_config(), kind, split, rng, f"text-{split}-{step}-{index}", ask_format=ask_format))


def batch_tensors(processor, records: list[Record]) -> dict:
    """The model's inputs for ``records``, with labels on the answer (and its end-of-turn) only."""
    task = get_task(TASK_NAME)
    prompts = [processor.apply_chat_template([user_message_with_images(task, r, "answer")], tokenize=False, add_generation_prompt=True) for r in records]
    completions = [f"{target(r)}<|im_end|>\n" for r in records]
    inputs = processor(text=[p + c for p, c in zip(prompts, completions)], images=[im for r in records for im in r.images], padding=True, padding_side="right", return_tensors="pt")
    labels = inputs["input_ids"].clone()
    lengths = inputs["attention_mask"].sum(1).tolist()
    for row, (completion, length) in enumerate(zip(completions, lengths)):
        answer_tokens = len(processor.tokenizer(completion, add_special_tokens=False)["input_ids"])
        labels[row, : length - answer_tokens] = IGNORE
        labels[row, length:] = IGNORE
    inputs["labels"] = labels
    return inputs


def evaluate(model, processor, model_dir: str, config: TextConfig) -> dict[str, float]:
    """Held-out exact match (greedy, the skills benchmark's items) on each skill of the phase's kinds."""
    result = {}
    for skill in base_skills.skills_of(config.kinds):
        _, _, scores = base_skills.measure(model, processor, model_dir, skill, config.eval_items, batch_size=25)
        result[skill] = round(100 * sum(scores) / len(scores), 1)
    return result


def train(model, processor, model_dir: str, out: str | os.PathLike, config: TextConfig, log=print) -> dict[str, float]:
    """Train ``model``'s language model on the text kinds for ``config.steps`` steps, resuming
    from ``OUT/text-checkpoint.pt`` when present; returns the last held-out accuracies. The
    model is changed in place; ``model_dir`` is where it was loaded from (for the eval config)."""
    import torch

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    freeze_vision(model)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    start = 0
    checkpoint = out / CHECKPOINT
    if (state := phase_loop.load_checkpoint(checkpoint)) is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start = state["step"]
        log(f"text: resuming from step {start}", flush=True)
    truncate_jsonl(out / LOG, start)  # a fresh start (0) or a resume: no records past it
    model.train()
    started, record = time.time(), {}
    for step in range(start, config.steps):
        inputs = batch_tensors(processor, [item("train", config.seed, step, i, config) for i in range(config.batch_size)])
        lr = phase_loop.set_lr(optimizer, step, config)
        loss = model(**inputs).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        done = step + 1
        record = {"step": done, "loss": round(loss.item(), 4), "lr": lr, "seconds": round(time.time() - started, 1)}
        if done % config.eval_every == 0 or done == config.steps:
            model.eval()
            record["heldout"] = evaluate(model, processor, model_dir, config)
            model.train()
        if done % 10 == 0 or "heldout" in record:
            phase_loop.write_record(out / LOG, record, log)
        if done % config.save_steps == 0 or done == config.steps:
            phase_loop.save_checkpoint(checkpoint, {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": done})
    model.eval()
    return record.get("heldout", {})
