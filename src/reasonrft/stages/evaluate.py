"""Evaluation: generate one answer per test question, score it, summarise per split.

Run: ``reasonrft eval --model DIR --task counting [--splits test-id,test-ood-d] [key=value ...]``.
Writes ``OUT/predictions.jsonl`` (one row per question: the test record plus ``pred``, the
completion, as the official evaluator does, and its score) and ``OUT/summary.{json,md}``
(accuracy per split, per breakdown group, and their average, all as 100 x mean score).
Paper protocol (section 6): temperature 0.1, top_p 0.9, up to 768 new tokens; the nano
default generates at most 160.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reasonrft import data, modeling, rewards
from reasonrft.errors import UserError
from reasonrft.io import atomic_write_json, atomic_write_jsonl, atomic_write_text
from reasonrft.tasks import Task, get_task


@dataclass
class EvalConfig:
    stage = "eval"
    model: str
    task: str = "counting"
    splits: list[str] = field(default_factory=list)  # empty: every test split of the task
    n: int = 200  # questions per split (generated); with data_root, at most this many (0: all)
    seed: int = 0
    data_root: str = ""  # directory with one dataset directory per split, e.g. ROOT/test-id/data.json
    output_dir: str = ""  # default: MODEL/eval-TASK
    prompt_style: str = "cot"  # cot | answer | zero-shot (match how the model was trained)
    batch_size: int = 32
    max_new_tokens: int = 200  # room for the longest gold CoT (162 tokens; tests/test_tasks_contract.py)
    temperature: float = 0.1
    top_p: float = 0.9
    sample_seed: int = 0
    progress: bool = True
    # image-size bounds in pixels, as in training (None: the model directory's own, which a
    # model trained here already carries); set them only to evaluate at another resolution
    min_pixels: int | None = None
    max_pixels: int | None = None

    def __post_init__(self) -> None:
        if self.n < 0:
            raise ValueError(f"n must be >= 0, got {self.n}")
        if self.batch_size < 1 or self.max_new_tokens < 1:
            raise ValueError("batch_size and max_new_tokens must be >= 1")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        modeling.check_pixel_limits(self.min_pixels, self.max_pixels)


def run(config: EvalConfig) -> dict[str, Any]:
    import torch

    # setup
    task = get_task(config.task)
    splits = [task.check_split(s) for s in (config.splits or task.test_splits)]
    out = Path(config.output_dir or Path(config.model) / f"eval-{task.name}")
    processor = modeling.load_processor(config.model, config.min_pixels, config.max_pixels)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = modeling.load_model(config.model, dtype=torch.bfloat16 if device == "cuda" else torch.float32).to(device).eval()

    # generate and score, split by split
    rows: list[dict] = []
    for split in splits:
        records = _test_records(task, split, config)
        completions = generate(model, processor, task, records, config, device, desc=f"eval {task.name}/{split}")
        rows.extend(score_row(task, split, rec, text) for rec, text in zip(records, completions))

    # report
    summary = summarize(task, rows, splits)
    summary["model"] = str(config.model)
    summary["config"] = {k: v for k, v in vars(config).items()}
    atomic_write_jsonl(out / "predictions.jsonl", rows)
    atomic_write_json(out / "summary.json", summary)
    atomic_write_text(out / "summary.md", summary_markdown(summary))
    summary["output_dir"] = str(out)
    return summary


def _test_records(task: Task, split: str, config: EvalConfig) -> list[data.Record]:
    if config.data_root:
        records = data.load_dataset(Path(config.data_root) / split)
        return records[: config.n] if config.n else records
    if config.n == 0:
        raise UserError("n=0 needs data_root (generated test sets must have a size)")
    return data.generate_records(task, split, config.n, config.seed)


def generate(model: Any, processor: Any, task: Task, records: list[data.Record], config: EvalConfig, device: str, desc: str = "eval") -> list[str]:
    """One completion per record, in batches, with the KV cache (left padding)."""
    import torch
    from tqdm import tqdm

    torch.manual_seed(config.sample_seed)
    completions: list[str] = []
    batches = range(0, len(records), config.batch_size)
    for start in tqdm(batches, desc=desc, unit="batch", disable=not config.progress):
        batch = records[start : start + config.batch_size]
        texts = [
            processor.apply_chat_template([data.user_message_with_images(task, rec, config.prompt_style)], add_generation_prompt=True, tokenize=False)
            for rec in batch
        ]
        inputs = processor(text=texts, images=[rec.open_images() for rec in batch], padding=True, return_tensors="pt").to(device)
        sampling = dict(do_sample=True, temperature=config.temperature, top_p=config.top_p, top_k=None) if config.temperature > 0 else dict(do_sample=False)
        with torch.inference_mode():
            output = model.generate(**inputs, max_new_tokens=config.max_new_tokens, use_cache=True, **sampling)
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        completions.extend(processor.batch_decode(new_tokens, skip_special_tokens=True))
    return completions


def score_row(task: Task, split: str, record: data.Record, completion: str) -> dict:
    return {
        "id": record.id,
        "split": split,
        "image": [str(p) for p in record.images] if not _in_memory(record) else None,
        "problem": record.problem,
        "answer": record.answer,
        "pred": completion,
        "pred_answer": rewards.extract_answer(completion),
        "score": task.score(completion, record.answer),
        "format": rewards.format_score(completion),
        "groups": list(task.groups(record.answer)),
    }


def _in_memory(record: data.Record) -> bool:
    return bool(record.images) and not isinstance(record.images[0], str)


def summarize(task: Task, rows: list[dict], splits: list[str]) -> dict[str, Any]:
    """Accuracy (100 x mean score) per split and per group, format rate, and AVG over splits."""
    per_split: dict[str, Any] = {}
    for split in splits:
        mine = [r for r in rows if r["split"] == split]
        if not mine:
            continue
        entry = {
            "n": len(mine),
            "accuracy": _pct(r["score"] for r in mine),
            "format": _pct(r["format"] for r in mine),
            "mean_completion_chars": round(sum(len(r["pred"]) for r in mine) / len(mine), 1),
        }
        groups = sorted({g for r in mine for g in r["groups"]})
        if groups:
            entry["groups"] = {g: {"n": sum(g in r["groups"] for r in mine), "accuracy": _pct(r["score"] for r in mine if g in r["groups"])} for g in groups}
        per_split[split] = entry
    accuracies = [e["accuracy"] for e in per_split.values()]
    return {"task": task.name, "splits": per_split, "average": round(sum(accuracies) / len(accuracies), 2) if accuracies else 0.0}


def _pct(values) -> float:
    values = list(values)
    return round(100.0 * sum(values) / len(values), 2) if values else 0.0


def summary_markdown(summary: dict[str, Any]) -> str:
    lines = [f"# Evaluation: {summary['task']}", "", f"model: `{summary.get('model', '?')}`", "", "| split | n | accuracy | format |", "|---|---|---|---|"]
    for split, e in summary["splits"].items():
        lines.append(f"| {split} | {e['n']} | {e['accuracy']:.2f} | {e['format']:.2f} |")
    lines.append(f"| **AVG** | | **{summary['average']:.2f}** | |")
    grouped = [(s, e["groups"]) for s, e in summary["splits"].items() if "groups" in e]
    if grouped:
        lines += ["", "| split | group | n | accuracy |", "|---|---|---|---|"]
        for split, groups in grouped:
            lines += [f"| {split} | {g} | {v['n']} | {v['accuracy']:.2f} |" for g, v in groups.items()]
    return "\n".join(lines) + "\n"


def rescore_predictions(path: str, task_name: str) -> dict[str, Any]:
    """Re-score a predictions file in the official evaluator's format (test records with a
    ``pred`` field, as a JSON list or JSON lines) with this project's scorers."""
    task = get_task(task_name)
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: predictions file not found")
    text = p.read_text(encoding="utf-8")
    try:
        records = json.loads(text) if text.lstrip().startswith("[") else [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as e:
        raise UserError(f"{p}: not valid JSON / JSON lines (line {e.lineno}: {e.msg})") from None
    from reasonrft.official import official_split

    known = official_split(p)  # an official file name (e.g. trance-left.json) names its split
    default_split = known[1] if known and known[0] == task.name else "all"
    rows = []
    for i, rec in enumerate(records):
        if not isinstance(rec, dict) or "pred" not in rec or ("answer" not in rec and "solution" not in rec):
            raise UserError(f"{p}: record {i}: needs 'pred' and 'answer' (or 'solution') fields")
        answer = str(rec.get("answer", rec.get("solution")))
        pred = str(rec["pred"])
        rows.append({"id": rec.get("id", i), "split": rec.get("split", default_split), "answer": answer, "pred": pred, "score": task.score(pred, answer), "format": rewards.format_score(pred), "groups": list(task.groups(rewards.extract_answer(answer)))})
    splits = sorted({r["split"] for r in rows})
    return summarize(task, rows, splits)
