"""GRPO rollouts for people: at sampled steps, one prompt's G completions with each reward.

``RolloutLog.wrap(reward_funcs)`` returns the reward functions, each wrapped so that it also
hands its prompts, completions and rewards to the log; the wrappers keep the functions'
names, so TRL's metric keys (``rewards/format_reward/mean``) do not change. When the last
reward of a batch is in, the log appends one line to ``OUT/rollouts.jsonl``:

    {"step": 5, "problem_id": ..., "problem": ..., "solution": ..., "images": [data URI],
     "completions": [{"text": ..., "rewards": {"format": 1.0, "accuracy": 0.0}, "total": 1.0}, ...]}

Bounded in size: about ``max_lines`` steps per run (every ``ceil(max_steps / max_lines)``-th
step, plus the first), one group of G per step, completion text cut at ``max_chars``, the
image(s) as JPEG thumbnails of at most ``THUMB`` pixels. Only the main process writes (under
``accelerate launch`` each process scores its own slice; the main one's first group is kept).
The wrapper is the cleanest hook TRL offers: a reward function sees the prompts, the
completions and the dataset columns; TRL's own ``log_completions`` prints to the console and
writes parquet, without the images.
"""

from __future__ import annotations

import base64
import functools
import io
import json
import math
from pathlib import Path
from typing import Any, Callable

ROLLOUT_FILE = "rollouts.jsonl"
THUMB = 160


class RolloutLog:
    def __init__(self, output_dir: str | Path, weights: dict[str, float], num_generations: int, max_lines: int = 20, max_chars: int = 2000, resume: bool = False) -> None:
        self.path = Path(output_dir) / ROLLOUT_FILE
        self.weights = dict(weights)
        self.group = num_generations
        self.max_lines = max_lines
        self.max_chars = max_chars
        self.resume = resume
        self._main: bool | None = None
        self._pending: dict[str, list[float]] = {}
        self._logged_steps: set[int] = set()

    def wrap(self, funcs: dict[str, Callable[..., list[float]]]) -> list[Callable[..., list[float]]]:
        """The reward functions (by name, in ``weights`` order), each also reporting to the log."""
        names = list(funcs)
        return [self._wrapped(name, funcs[name], last=(i == len(names) - 1)) for i, name in enumerate(names)]

    def _wrapped(self, name: str, fn: Callable[..., list[float]], last: bool) -> Callable[..., list[float]]:
        @functools.wraps(fn)
        def reward(prompts=None, completions=None, **kwargs):
            values = fn(prompts=prompts, completions=completions, **kwargs)
            self._collect(name, last, prompts, completions, values, kwargs)
            return values

        return reward

    def _due(self, state: Any) -> int | None:
        """The step this batch trains, if it is one to log (and not logged yet)."""
        if state is None:
            return None
        step = int(state.global_step) + 1
        every = max(1, math.ceil(max(1, int(state.max_steps or 1)) / self.max_lines))
        if step in self._logged_steps or not (step == 1 or step % every == 0):
            return None
        return step

    def _is_main(self) -> bool:
        if self._main is None:
            from accelerate import PartialState

            self._main = PartialState().is_main_process
            if self._main and not self.resume:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.path.write_text("")
        return self._main

    def _collect(self, name: str, last: bool, prompts, completions, values, kwargs) -> None:
        step = self._due(kwargs.get("trainer_state"))
        if step is None or not self._is_main() or not completions:
            return
        self._pending[name] = [float("nan") if v is None else float(v) for v in values[: self.group]]
        if not last:
            return
        rewards, self._pending = self._pending, {}
        self._logged_steps.add(step)
        n = min(self.group, len(completions))
        rows = []
        for j in range(n):
            per = {key: rewards[key][j] for key in rewards if j < len(rewards[key])}
            total = sum(self.weights.get(k, 1.0) * v for k, v in per.items() if not math.isnan(v))
            rows.append({"text": _text(completions[j])[: self.max_chars], "rewards": per, "total": round(total, 4)})
        line = {
            "step": step,
            "problem_id": _first(kwargs.get("problem_id")),
            "problem": _text(prompts[0] if prompts else ""),
            "solution": _first(kwargs.get("solution")),
            "images": [_thumbnail(img) for img in _images(kwargs)],
            "completions": rows,
        }
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(line, ensure_ascii=False) + "\n")


def _first(column: Any) -> Any:
    return column[0] if isinstance(column, (list, tuple)) and column else None


def _text(message: Any) -> str:
    """The text of a completion or prompt: a string, or chat messages whose content is a
    string or a list of parts (``{"type": "text", "text": ...}``, image parts skipped)."""
    if isinstance(message, str):
        return message
    parts = []
    for m in message if isinstance(message, list) else [message]:
        content = m.get("content", "") if isinstance(m, dict) else m
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts += [c.get("text", "") for c in content if isinstance(c, dict) and c.get("type") == "text"]
    return "\n".join(p for p in parts if p)


def _images(kwargs: dict) -> list[Any]:
    for key in ("images", "image"):
        column = kwargs.get(key)
        if isinstance(column, (list, tuple)) and column:
            first = column[0]
            return list(first) if isinstance(first, (list, tuple)) else [first]
    return []


def _thumbnail(image: Any) -> str | None:
    """A JPEG data URI of at most THUMB pixels a side (None for what is not an image)."""
    from PIL import Image

    if isinstance(image, dict) and image.get("path"):  # a datasets Image column left undecoded
        image = image["path"]
    if isinstance(image, (str, Path)):
        try:
            image = Image.open(image)
        except OSError:
            return None
    if not isinstance(image, Image.Image):
        return None
    return jpeg_data_uri(image, THUMB)


def jpeg_data_uri(image: Any, size: int, quality: int = 85) -> str:
    """``image`` downscaled to at most ``size`` pixels a side, as a JPEG data URI."""
    thumb = image.convert("RGB")
    thumb.thumbnail((size, size))
    buf = io.BytesIO()
    thumb.save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
