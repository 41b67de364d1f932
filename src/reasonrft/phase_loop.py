"""What the base's own training loops share (``dense_targets``, ``text_phase``): the learning
rate's schedule, the JSON-lines log, and the checkpoint that lets a phase resume exactly.

Each loop keeps its own batches, loss and held-out measure; only these pieces are common. The
config they read is any object with ``steps``, ``warmup_steps`` and ``learning_rate``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Callable


def lr_at(step: int, config: Any) -> float:
    """Linear warm-up over ``warmup_steps``, then a cosine decay to 0 at ``steps``."""
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.learning_rate * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def set_lr(optimizer: Any, step: int, config: Any) -> float:
    """Give every parameter group of ``optimizer`` the rate of ``step``; returns it."""
    lr = lr_at(step, config)
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr


def write_record(path: Path, record: dict, log: Callable = print) -> None:
    """Append ``record`` to the JSON-lines log at ``path`` and show it."""
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
    log(json.dumps(record), flush=True)


def load_checkpoint(path: Path) -> dict | None:
    """The state saved by ``save_checkpoint`` at ``path``, or None when there is none (loaded
    onto the CPU: ``load_state_dict`` then copies it to wherever the model is, so a run saved
    on a GPU resumes on a CPU and back)."""
    import torch

    return torch.load(path, weights_only=True, map_location="cpu") if path.is_file() else None


def save_checkpoint(path: Path, state: dict) -> None:
    """Save ``state`` to ``path`` through a temporary file and a rename: a crash while saving
    leaves the previous checkpoint whole."""
    import torch

    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
