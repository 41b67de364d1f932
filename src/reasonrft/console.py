"""What a user sees of a run: per stage one header line, one progress bar, one summary line.

- ``header`` / ``done`` print the stage's first and last lines (``[sft] model=... -> OUT``,
  ``[sft] done in 5m50s: loss 2.31 -> 0.41 ...``); ``bar`` is the one progress bar, with an
  ETA and the few figures that matter in its postfix.
- ``attach(trainer, stage, ...)`` puts ``ConsoleCallback`` on a TRL trainer in place of the
  Trainer's own ``ProgressCallback`` / ``PrinterCallback``, whose ``on_log`` prints every
  step's raw dict of some 30 metrics. The callback drives the bar and writes every step's
  full metrics to ``OUT/log.jsonl`` (TensorBoard still gets them through ``report_to``).
- ``quiet_libraries()`` silences what a user cannot act on: the "Loading weights" / "Writing
  model shards" / "Casting the dataset" bars that interleave with ours, TRL's call of the
  deprecated ``is_gradient_checkpointing``, and DeepSpeed's "Setting accelerator to CPU"
  (printed on import, on every CPU machine, when DeepSpeed is installed). The
  ``gradient_checkpointing`` argument warning is removed at its source: ``stages/common.py``
  passes ``activation_checkpointing``.

``--verbose`` or ``REASONRFT_VERBOSE=1`` brings everything back: the libraries' bars, dicts
and warnings, with ``log.jsonl`` still written.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from reasonrft.io import truncate_jsonl

VERBOSE_ENV = "REASONRFT_VERBOSE"
LOG_FILE = "log.jsonl"
MAX_COLUMNS = 120  # bars never wrap on a terminal this wide or wider

# The figures of each training stage's bar, as (log key, short name); GRPO adds one per reward.
SFT_FIGURES = (("loss", "loss"), ("mean_token_accuracy", "tok_acc"))
GRPO_FIGURES = (("kl", "kl"), ("completions/mean_length", "len"))


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def set_verbose(on: bool) -> None:
    """``--verbose``: through the environment, so that ``accelerate launch`` workers see it too."""
    if on:
        os.environ[VERBOSE_ENV] = "1"


def quiet_libraries() -> None:
    """Turn off library output a user cannot act on (nothing when verbose). Call it before
    models load; safe to call again."""
    if verbose():
        return
    warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning)
    logging.getLogger("DeepSpeed").addFilter(_drop_cpu_accelerator_note)  # the logger object outlives its set-up
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # for processes started from this one
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    from transformers.utils import logging as hf_logging  # and in this one, where the libraries may be imported already

    hf_logging.disable_progress_bar()
    import datasets

    datasets.disable_progress_bars()


def _drop_cpu_accelerator_note(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("Setting accelerator to CPU")


def columns() -> int:
    """The width of a bar: the terminal's less one (a full-width line wraps on some
    terminals), at most MAX_COLUMNS."""
    return max(40, min(MAX_COLUMNS, shutil.get_terminal_size((MAX_COLUMNS, 24)).columns) - 1)


def short_path(path: Any) -> str:
    """A path as the user would type it: relative to the working directory when below it."""
    p = Path(str(path))
    if not p.exists():
        return str(p)
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p)


def header(stage: str, **fields: Any) -> float:
    """Print ``[stage] key=value ... -> out`` and return the start time for ``done``.
    ``records=N`` goes with ``data`` (``data=DIR (N)``, or ``data=N generated``)."""
    out = fields.pop("out", None)
    if "records" in fields:
        records = fields.pop("records")
        fields["data"] = f"{short_path(fields['data'])} ({records})" if fields.get("data") else f"{records} generated"
    parts = [f"{k}={short_path(v) if k == 'model' else v}" for k, v in fields.items() if v not in (None, "")]
    print(f"[{stage}] " + " ".join(parts) + (f" -> {short_path(out)}" if out else ""), flush=True)
    return time.time()


def done(stage: str, started: float, text: str) -> None:
    print(f"[{stage}] done in {duration(time.time() - started)}: {text}", flush=True)


def accuracy_line(summary: dict[str, Any]) -> str:
    """An evaluation summary in one line: AVG, then each split's accuracy, then where it is."""
    splits = ", ".join(f"{s} {e['accuracy']:.1f}" for s, e in summary["splits"].items())
    where = f" -> {short_path(summary['output_dir'])}" if summary.get("output_dir") else ""
    return f"AVG {summary['average']:.2f}% ({splits}){where}"


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds} s" if seconds < 60 else f"{seconds // 60}m{seconds % 60:02d}s"


def bar(total: int, desc: str, unit: str = "step", initial: int = 0, **kwargs: Any):
    """The stage's one progress bar (tqdm): counts, elapsed<remaining, then the figures as postfix."""
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit, ncols=columns(), dynamic_ncols=False, leave=True, **kwargs)


def figure(value: float) -> str:
    value = float(value)
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"


def stage_figures(stage: str, logs: dict[str, Any]) -> dict[str, float]:
    """The few figures of a log entry a person wants on the bar: SFT loss and token accuracy;
    GRPO each reward's mean (the accuracy reward's mean is the training accuracy), KL and
    completion length."""
    if stage == "grpo":
        pairs = [(k, k[len("rewards/") : -len("/mean")].removesuffix("_reward")) for k in logs if k.startswith("rewards/") and k.endswith("/mean")]
        pairs += list(GRPO_FIGURES)
    else:
        pairs = list(SFT_FIGURES)
    return {name: float(logs[key]) for key, name in pairs if isinstance(logs.get(key), (int, float))}


class ConsoleCallback(TrainerCallback):
    """Header, one bar and a summary for a trainer; every log entry to ``OUT/log.jsonl``.

    Writes only on the world's main process (``accelerate launch`` runs one per device).
    A fresh run empties ``log.jsonl``; a resumed one (``global_step > 0`` at the start) drops
    the entries past its checkpoint, then appends to it."""

    def __init__(self, stage: str, show: bool = True, **header_fields: Any) -> None:
        self.stage = stage
        self.show = show
        self.header_fields = header_fields
        self.bar = None
        self.first: dict[str, float] = {}
        self.last: dict[str, float] = {}
        self.started = time.time()
        self.log_path: Path | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        self.log_path = Path(args.output_dir) / LOG_FILE
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if state.global_step == 0:
            self.log_path.write_text("")
        else:  # resumed: the steps after the checkpoint are logged again
            truncate_jsonl(self.log_path, state.global_step)
        self.started = header(self.stage, **self.header_fields)  # the bar shows the steps
        if self.show:
            self.bar = bar(state.max_steps, f"[{self.stage}]", initial=state.global_step)

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        entry = {"step": state.global_step, "epoch": state.epoch, "time": round(time.time() - self.started, 2), **logs}
        if self.log_path is not None:
            with self.log_path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(entry, default=_jsonable) + "\n")
        shown = stage_figures(self.stage, logs)
        if shown:
            for name, value in shown.items():
                self.first.setdefault(name, value)
            self.last.update(shown)
            if self.bar is not None:
                self.bar.set_postfix_str(" ".join(f"{k}={figure(v)}" for k, v in shown.items()), refresh=True)

    def on_train_end(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        changes = [f"{k} {figure(self.first[k])} -> {figure(v)}" for k, v in self.last.items()]
        done(self.stage, self.started, f"{state.global_step} steps; " + (", ".join(changes) or "nothing logged"))


def _jsonable(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def attach(trainer: Any, stage: str, **header_fields: Any) -> ConsoleCallback:
    """Give ``trainer`` the project's console: ``ConsoleCallback`` in place of the Trainer's
    ``ProgressCallback`` / ``PrinterCallback`` (kept when verbose, next to ``log.jsonl``)."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    loud = verbose()
    if not loud:
        trainer.remove_callback(ProgressCallback)
        trainer.remove_callback(PrinterCallback)
    callback = ConsoleCallback(stage, show=not loud, **header_fields)
    trainer.add_callback(callback)
    return callback
