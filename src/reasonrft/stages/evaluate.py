"""Evaluation: generate one answer per test question, score it, summarise per split.

Run: ``reasonrft eval --model DIR --task counting [--splits test-id,test-ood-d] [key=value ...]``.
Writes ``OUT/predictions.jsonl`` (one row per question: the test record plus ``pred``, the
completion, as the official evaluator does, and its score) and ``OUT/summary.{json,md}``
(accuracy per split, per breakdown group, their average over splits and over the
domain-shift splits, all as 100 x mean score, each with n and a 95% interval: ``stats``).

Order of work: every test record is loaded and checked first, then the model; a bad dataset
fails before any model load or generation. With ``data_root`` and no ``splits``, the splits
found there are evaluated and the missing ones named in one line.

Paper protocol (reason-rft.md section 6; the reference evaluator's vLLM sampling): one sample
per question, temperature 0.1, top_p 0.9, top_k 50, no repetition penalty, up to 768 new
tokens (the nano default: 200). ``generate()`` receives every field that shapes the
next-token distribution explicitly (``generation_kwargs``), so a checkpoint's
``generation_config.json`` (a ``repetition_penalty`` of 1.05, say) cannot slip into the protocol.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reasonrft import data, modeling, rewards, stats
from reasonrft.errors import UserError
from reasonrft.io import atomic_write_json, atomic_write_jsonl, atomic_write_text
from reasonrft.tasks import Task, get_task


@dataclass
class EvalConfig:
    stage = "eval"
    model: str
    task: str = "counting"
    splits: list[str] = field(default_factory=list)  # empty: every test split of the task (with data_root: those it holds)
    n: int = 200  # questions per split (generated); with data_root, at most this many (0: all)
    seed: int = 0
    data_root: str = ""  # directory with one dataset directory per split, e.g. ROOT/test-id/data.json
    output_dir: str = ""  # default: MODEL/eval-TASK
    prompt_style: str = "cot"  # cot | answer | zero-shot (match how the model was trained)
    batch_size: int = 32
    max_new_tokens: int = 200  # room for the longest gold CoT (162 tokens; tests/test_tasks_contract.py)
    temperature: float = 0.1  # 0: greedy
    top_p: float = 0.9
    top_k: int = 50  # 0: no top-k cut
    repetition_penalty: float = 1.0  # 1.0: none (the reference evaluator's)
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
        if not 0 < self.top_p <= 1 or self.top_k < 0 or self.repetition_penalty <= 0:
            raise ValueError(f"need 0 < top_p <= 1, top_k >= 0 and repetition_penalty > 0 (got {self.top_p}, {self.top_k}, {self.repetition_penalty})")
        modeling.check_pixel_limits(self.min_pixels, self.max_pixels)


def run(config: EvalConfig) -> dict[str, Any]:
    import torch

    # setup: every test record first (a bad dataset fails before the model loads), then the model
    task = get_task(config.task)
    test_sets, missing = load_test_sets(task, config)
    if missing:
        print(f"reasonrft: note: {config.data_root} has no {', '.join(missing)} (no {data.DATA_FILE}); evaluating {', '.join(test_sets)}", file=sys.stderr, flush=True)
    out = Path(config.output_dir or Path(config.model) / f"eval-{task.name}")
    from reasonrft import console

    started = console.header("eval", model=config.model, data=f"{task.name} {','.join(test_sets)}", records=sum(map(len, test_sets.values())), out=out)
    processor = modeling.load_processor(config.model, config.min_pixels, config.max_pixels)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = modeling.load_model(config.model, dtype=torch.bfloat16 if device == "cuda" else torch.float32).to(device).eval()

    # generate and score, split by split
    rows: list[dict] = []
    for split, records in test_sets.items():
        scores: list[float] = []
        completions = generate(model, processor, task, records, config, device, desc=f"eval {task.name}/{split}", scores=scores)
        rows.extend(score_row(task, split, rec, text, score) for rec, text, score in zip(records, completions, scores, strict=True))

    # report
    summary = summarize(task, rows, list(test_sets), seed=config.seed)
    summary["missing_splits"] = missing
    summary["model"] = str(config.model)
    summary["config"] = {k: v for k, v in vars(config).items()}
    atomic_write_jsonl(out / "predictions.jsonl", rows)
    atomic_write_json(out / "summary.json", summary)
    atomic_write_text(out / "summary.md", summary_markdown(summary))
    summary["output_dir"] = str(out)
    console.done("eval", started, console.accuracy_line(summary))
    return summary


def load_test_sets(task: Task, config: EvalConfig) -> tuple[dict[str, list[data.Record]], list[str]]:
    """The records of every split to evaluate, loaded and validated, and the default splits
    that ``data_root`` lacks. A split asked for by name must exist; with no ``splits``, those
    of ``data_root`` are taken (at least one must be there)."""
    asked = [task.check_split(s) for s in config.splits]
    if not config.data_root:
        if config.n == 0:
            raise UserError("n=0 needs data_root (generated test sets must have a size)")
        return {s: data.generate_records(task, s, config.n, config.seed) for s in (asked or task.test_splits)}, []
    root = Path(config.data_root)
    splits = asked or [s for s in task.test_splits if (root / s / data.DATA_FILE).is_file()]
    missing = [] if asked else [s for s in task.test_splits if s not in splits]
    if not splits:
        raise UserError(f"{root}: no test split of task {task.name!r} there (expected {', '.join(f'{s}/{data.DATA_FILE}' for s in task.test_splits)})")
    test_sets = {}
    for split in splits:
        records = data.load_dataset(root / split, task=task.name)  # the image count a record without 'task' must have
        test_sets[split] = records[: config.n] if config.n else records
    return test_sets, missing


# Every generation field that changes the next-token distribution or the decoding, at its
# neutral value. transformers fills each field generate() is not given from the checkpoint's
# generation_config.json, so each is given; only EvalConfig's own settings then apply.
NEUTRAL_GENERATION: dict[str, Any] = dict(
    num_beams=1, num_return_sequences=1, repetition_penalty=1.0, encoder_repetition_penalty=1.0,
    no_repeat_ngram_size=0, encoder_no_repeat_ngram_size=0, bad_words_ids=None, sequence_bias=None,
    min_length=0, min_new_tokens=None, forced_bos_token_id=None, forced_eos_token_id=None,
    suppress_tokens=None, begin_suppress_tokens=None, exponential_decay_length_penalty=None,
    guidance_scale=None, renormalize_logits=False, remove_invalid_values=False, watermarking_config=None,
    min_p=None, typical_p=1.0, epsilon_cutoff=0.0, eta_cutoff=0.0, top_h=None, stop_strings=None, max_time=None,
)


def generation_kwargs(config: EvalConfig) -> dict[str, Any]:
    """The keyword arguments of ``model.generate``: the neutral fields, then the config's
    sampling (temperature, top_p, top_k; greedy at temperature 0), repetition penalty and length."""
    from transformers import GenerationConfig

    known = GenerationConfig()
    kwargs = {k: v for k, v in NEUTRAL_GENERATION.items() if hasattr(known, k)}
    kwargs.update(max_new_tokens=config.max_new_tokens, use_cache=True, repetition_penalty=config.repetition_penalty)
    if config.temperature > 0:
        kwargs.update(do_sample=True, temperature=config.temperature, top_p=config.top_p, top_k=config.top_k)
    else:
        kwargs.update(do_sample=False)
    return kwargs


def generate(model: Any, processor: Any, task: Task, records: list[data.Record], config: EvalConfig, device: str, desc: str = "eval", scores: list[float] | None = None, in_place_cache: bool = True) -> list[str]:
    """One completion per record, in batches, with the KV cache (left padding). Each is scored
    as it comes, for the bar's running accuracy; pass ``scores`` to receive those scores.
    ``in_place_cache``: the cache's layers append each token in place (``rollout_cache``: the
    same logits bitwise, no copy of the whole cache per token); False: transformers' own."""
    import torch
    from tqdm import tqdm

    from reasonrft import console

    torch.manual_seed(config.sample_seed)
    kwargs = generation_kwargs(config)
    completions: list[str] = []
    batches = range(0, len(records), config.batch_size)
    bar = tqdm(batches, desc=desc, unit="batch", disable=not config.progress, leave=console.verbose(), ncols=console.columns())
    scores = [] if scores is None else scores
    for start in bar:
        batch = records[start : start + config.batch_size]
        texts = [
            processor.apply_chat_template([data.user_message_with_images(task, rec, config.prompt_style)], add_generation_prompt=True, tokenize=False)
            for rec in batch
        ]
        inputs = processor(text=texts, images=[rec.open_images() for rec in batch], padding=True, return_tensors="pt").to(device)
        with torch.inference_mode():
            output = model.generate(**inputs, **kwargs, **({"past_key_values": _in_place_cache(model)} if in_place_cache else {}))
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        completions.extend(processor.batch_decode(new_tokens, skip_special_tokens=True))
        scores.extend(task.score(text, rec.answer) for rec, text in zip(batch, completions[start:]))
        bar.set_postfix_str(f"acc={100 * sum(scores) / len(scores):.1f}%")  # the running accuracy
    return completions


def _in_place_cache(model: Any):
    """An empty ``DynamicCache`` for ``model`` whose plain layers grow in place (``rollout_cache``)."""
    from transformers.cache_utils import DynamicCache

    from reasonrft.rollout_cache import grow_in_place

    cache = DynamicCache(config=model.config)
    grow_in_place(cache)
    return cache


def score_row(task: Task, split: str, record: data.Record, completion: str, score: float | None = None) -> dict:
    """The predictions.jsonl row of one completion; ``score`` when already computed."""
    return {
        "id": record.id,
        "split": split,
        "image": [str(p) for p in record.images] if not _in_memory(record) else None,
        "problem": record.problem,
        "answer": record.answer,
        "pred": completion,
        "pred_answer": rewards.extract_answer(completion),
        "score": task.score(completion, record.answer) if score is None else score,
        "format": rewards.format_score(completion),
        "groups": list(task.groups(record.answer)),
    }


def _in_memory(record: data.Record) -> bool:
    return bool(record.images) and not isinstance(record.images[0], str)


def summarize(task: Task, rows: list[dict], splits: list[str], seed: int = 0) -> dict[str, Any]:
    """Per split: n, accuracy (100 x mean score) with its 95% interval, the same per group
    (structure: choice / non-choice), format rate; then AVG over the splits and the
    domain-shift average (the task's test splits after the in-domain one) with their
    intervals (``stats``)."""
    per_split: dict[str, Any] = {}
    scores: dict[str, list[float]] = {}
    for split in splits:
        mine = [r for r in rows if r["split"] == split]
        if not mine:
            continue
        scores[split] = [r["score"] for r in mine]
        entry = {
            **stats.accuracy_interval(scores[split], seed),
            "format": _pct(r["format"] for r in mine),
            "mean_completion_chars": round(sum(len(r["pred"]) for r in mine) / len(mine), 1),
        }
        groups = sorted({g for r in mine for g in r["groups"]})
        if groups:
            entry["groups"] = {g: stats.accuracy_interval([r["score"] for r in mine if g in r["groups"]], seed) for g in groups}
        per_split[split] = entry
    average = stats.average_interval(list(scores.values()), seed)
    shift = [s for s in task.test_splits[1:] if s in scores]
    shift_average = stats.average_interval([scores[s] for s in shift], seed) if shift else None
    return {
        "task": task.name,
        "splits": per_split,
        "average": average["accuracy"],
        "average_ci95": average["ci95"],
        "average_ci_method": average["ci_method"],
        "shift_splits": shift,
        "shift_average": shift_average["accuracy"] if shift_average else None,
        "shift_average_ci95": shift_average["ci95"] if shift_average else None,
        "shift_average_ci_method": shift_average["ci_method"] if shift_average else None,
    }


def _pct(values) -> float:
    values = list(values)
    return round(100.0 * sum(values) / len(values), 2) if values else 0.0


def summary_markdown(summary: dict[str, Any]) -> str:
    """The summary as markdown: a split table (with AVG and the domain-shift average) and, for
    tasks with breakdown groups, a group table that also repeats each split's overall accuracy."""
    lines = [f"# Evaluation: {summary['task']}", "", f"model: `{summary.get('model', '?')}`", "", "| split | n | accuracy | format | 95% CI |", "|---|---|---|---|---|"]
    for split, e in summary["splits"].items():
        lines.append(f"| {split} | {e['n']} | {e['accuracy']:.2f} | {e['format']:.2f} | {_ci(e.get('ci95'))} |")
    lines.append(f"| **AVG** | | **{summary['average']:.2f}** | | {_ci(summary.get('average_ci95'))} |")
    if summary.get("shift_average") is not None:
        lines.append(f"| domain-shift AVG ({', '.join(summary['shift_splits'])}) | | {summary['shift_average']:.2f} | | {_ci(summary.get('shift_average_ci95'))} |")
    grouped = [(s, e) for s, e in summary["splits"].items() if "groups" in e]
    if grouped:
        lines += ["", "| split | group | n | accuracy | 95% CI |", "|---|---|---|---|---|"]
        for split, e in grouped:
            lines += [f"| {split} | {g} | {v['n']} | {v['accuracy']:.2f} | {_ci(v.get('ci95'))} |" for g, v in e["groups"].items()]
            lines.append(f"| {split} | overall | {e['n']} | {e['accuracy']:.2f} | {_ci(e.get('ci95'))} |")
    if summary.get("missing_splits"):
        lines += ["", f"Not evaluated (not in the data root): {', '.join(summary['missing_splits'])}."]
    lines += ["", "Accuracy: 100 x mean score; 95% CI over questions: Wilson for 0/1 scores, else a seeded bootstrap; AVG rows: the splits' Wilson intervals combined (MOVER), or the bootstrap for partial scores."]
    return "\n".join(lines) + "\n"


def _ci(ci: list[float] | None) -> str:
    return f"[{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "-"


def most_frequent_answer_baseline(task: Task, train_answers: list[str], test_sets: dict[str, list[data.Record]], seed: int = 0) -> dict[str, Any]:
    """The summary of always answering the training set's most frequent answer (scored by
    the task's own scorer, per split and group, with intervals): the level a model must beat
    to show it reads the image at all. ``summary["answer"]`` is that answer."""
    return _constant_answer_summary(task, stats.most_frequent_answer(train_answers), test_sets, seed)


def best_constant_answer_baseline(task: Task, train_answers: list[str], test_sets: dict[str, list[data.Record]], seed: int = 0) -> dict[str, Any]:
    """Like ``most_frequent_answer_baseline``, for the constant answer that scores best on the
    training answers (``stats.best_constant_answer``; chosen without the test sets). Under a
    partial-credit scorer (``task.partial_credit``) it is the higher bar: always giving one
    long made-up program beats always giving the most frequent one-call program."""
    return _constant_answer_summary(task, stats.best_constant_answer(train_answers, task.score), test_sets, seed)


def constant_answer_baselines(task: Task, train_answers: list[str], test_sets: dict[str, list[data.Record]], seed: int = 0) -> dict[str, dict[str, Any]]:
    """The levels a model must beat, by row name: always the most frequent training answer
    (``most-frequent``) and, where the task gives partial credit, always the best constant
    answer (``best-constant``; under 0/1 scores it would be the most frequent one again)."""
    baselines = {"most-frequent": most_frequent_answer_baseline(task, train_answers, test_sets, seed)}
    if task.partial_credit:
        baselines["best-constant"] = best_constant_answer_baseline(task, train_answers, test_sets, seed)
    return baselines


def _constant_answer_summary(task: Task, answer: str, test_sets: dict[str, list[data.Record]], seed: int) -> dict[str, Any]:
    rows = [score_row(task, split, rec, answer) for split, records in test_sets.items() for rec in records]
    summary = summarize(task, rows, list(test_sets), seed)
    summary["answer"] = answer
    return summary


def rescore_predictions(path: str, task_name: str) -> dict[str, Any]:
    """Re-score a predictions file in the official evaluator's format (test records with a
    ``pred`` field, as a JSON list or JSON lines) with this project's scorers. Super-CLEVR's
    file (``super-clevr.json``) is split by its records' ``level`` into DS-D and DS-M."""
    task = get_task(task_name)
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: predictions file not found")
    text = p.read_text(encoding="utf-8")
    try:
        records = json.loads(text) if text.lstrip().startswith("[") else [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as e:
        raise UserError(f"{p}: not valid JSON / JSON lines (line {e.lineno}: {e.msg})") from None
    from reasonrft import official

    known = official.official_split(p)  # an official file name (e.g. trance-left.json) names its split
    default_split = known[1] if known and known[0] == task.name else "all"
    levels = official.LEVEL_SPLITS["Visual-Counting-ood-test-1k"] if known == official.PREDICTION_FILES["super-clevr"] and task.name == "counting" else None
    rows = []
    for i, rec in enumerate(records):
        if not isinstance(rec, dict) or "pred" not in rec or ("answer" not in rec and "solution" not in rec):
            raise UserError(f"{p}: record {i}: needs 'pred' and 'answer' (or 'solution') fields")
        answer = str(rec.get("answer", rec.get("solution")))
        pred = str(rec["pred"])
        split = rec.get("split") or default_split
        if levels and "level" in rec:  # an unmapped level is reported under its own name
            split = official.level_split(rec["level"], levels) or f"level {rec['level']}"
        rows.append({"id": rec.get("id", i), "split": split, "answer": answer, "pred": pred, "score": task.score(pred, answer), "format": rewards.format_score(pred), "groups": list(task.groups(rewards.extract_answer(answer)))})
    order = {s: k for k, s in enumerate(task.splits)}
    splits = sorted({r["split"] for r in rows}, key=lambda s: (order.get(s, len(order)), s))
    return summarize(task, rows, splits)
