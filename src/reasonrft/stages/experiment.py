"""The paper's experiment: five paradigms on one task (``compare``), and data efficiency (``sweep``).

``reasonrft compare --task T``: every paradigm gets the same training records (the first
``n_train`` of the task's training split) and is evaluated on every test split:
- Zero-shot: the base model, asked for the bare answer;
- ANS-SFT: answer-only SFT on all ``n_train`` records;
- CoT-SFT: CoT SFT on all ``n_train`` records;
- Reason-RFT-Zero: GRPO from the base on all records;
- Reason-RFT: CoT-SFT on the first ``stage1`` records (also reported alone, as the
  activation point), then GRPO on the rest (structure perception: on all of them, as in
  the paper, whose structure set is small).
GRPO on a CPU cannot take every prompt of a large set: it runs ``grpo_steps`` steps of
``grpo_prompts`` prompts over its records (``grpo_steps=0``: one pass over all of them).

Writes ``OUT/results.{md,json,csv}``, ``OUT/accuracy_bars.png`` and, per trained paradigm,
``OUT/curves-<paradigm>.png`` (rewards, completion length, KL, loss over steps). Every
accuracy carries n and a 95% interval over questions (``reasonrft.stats``); for tasks with
answer groups (structure: choice / non-choice) the tables break each split down by group.
A last row, the most-frequent-answer baseline (always the training set's most frequent
answer), shows the level a model must beat to read the image at all; for a task with partial
credit (transformation) a second one, the best constant answer (the one answer that scores
best on the training answers), is the higher bar. ``results.csv`` holds
one line per (row, split or average, group): n, accuracy, interval, method. The paper's
comparisons (Reason-RFT against CoT-SFT, ANS-SFT and its own stage 1; Reason-RFT-Zero against
zero-shot) are also made question by question: the difference per split and on the
domain-shift average with a paired bootstrap interval (``results.json["paired"]``), far
tighter than two overlapping intervals. ``results.json["grpo"]`` records what each GRPO row
saw (steps, prompts, completions, distinct records, learning rate).

A re-run reuses every finished model and evaluation with the same settings; a model in OUT
trained with other settings is refused with the keys that differ, never reported as the
new settings' result. A stage interrupted mid-training (a session's end) continues from its
newest complete checkpoint (one every ``checkpoint_steps`` steps), not from step 0. The wall
times a run reports (``total_s``, ``timings_s`` per paradigm) are that run's own: what it
reused or resumed was paid for by an earlier run, whose results record it.

``reasonrft sweep --task T --budgets 400,800,1600``: ``compare`` at each budget, then
``OUT/data_efficiency.png``: accuracy against training samples (log x), in-domain and
domain-shift panels, with the zero-shot level and the stage-1 activation point marked, and
``OUT/sweep.{json,md}``: per budget and paradigm (and the most-frequent-answer baseline),
in-domain and domain-shift accuracy with their intervals, drawn as error bars (the baselines,
most frequent and best constant, as dotted lines); and
``OUT/sweep_paired.json``: each budget's paired differences. The budgets share their test
sets and base, so the zero-shot row is evaluated once and copied to the later budgets
(``reuse_evals_from``; only where the settings and the test files are identical).

``reuse_models_from=OUT``: a compare that varies one stage's settings (GRPO's steps, its
learning rate) links every stage of the compare in OUT that was trained with exactly its
settings and data, and copies those stages' evaluations; only the changed stages train.
"""

from __future__ import annotations

import csv
import filecmp
import io
import json
import os
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from reasonrft import data, modeling, plots, stats
from reasonrft.config import build, to_dict
from reasonrft.errors import UserError
from reasonrft.io import atomic_dir, atomic_write_json, atomic_write_text
from reasonrft.report import markdown_table
from reasonrft.rewards import check_known
from reasonrft.stages import evaluate, grpo, sft
from reasonrft.tasks import Task, get_task

PARADIGMS = ("zero-shot", "ans-sft", "cot-sft", "reason-rft-zero", "reason-rft")
TITLES = {
    "zero-shot": "Zero-shot",
    "ans-sft": "ANS-SFT",
    "cot-sft": "CoT-SFT",
    "reason-rft-zero": "Reason-RFT-Zero",
    "stage1": "Reason-RFT stage 1 only",
    "reason-rft": "Reason-RFT",
    "most-frequent": "Most frequent answer",
    "best-constant": "Best constant answer",
}
RESULT_KEYS = {"most-frequent": "baseline", "best-constant": "best_constant"}  # results.json's key for each baseline row
EVAL_STYLE = {"zero-shot": "zero-shot", "ans-sft": "answer"}  # every other row: cot


@dataclass
class CompareConfig:
    stage = "compare"
    task: str = "counting"
    out: str = "runs/compare"
    model: str = ""  # the base; empty: the shipped base if the package has one, else a fresh nano model
    paradigms: list[str] = field(default_factory=lambda: list(PARADIGMS))
    seed: int = 0
    n_train: int = 3200
    stage1: int = 1600
    n_eval: int = 200
    sft_epochs: float = 1.0
    stage1_epochs: float = 0.0  # Reason-RFT's stage 1; 0: sft_epochs, as in the paper (half CoT-SFT's steps on half its records)
    sft_learning_rate: float = 1e-3
    freeze_vision: bool | None = None  # None: frozen as in the paper, unless the base is freshly built (random vision tower)
    grpo_steps: int = 100
    grpo_prompts: int = 2
    grpo_learning_rate: float = 2e-5
    grpo_rewards: dict = field(default_factory=dict)  # GRPO's rewards and weights ({strict_format: 1, func_accuracy: 1}); empty: format + the task's accuracy, 1 each
    num_generations: int = 8
    max_new_tokens: int = 200  # room for the longest gold CoT (162 tokens; tests/test_tasks_contract.py)
    reuse_evals_from: str = ""  # an earlier compare's OUT: its evaluation of the same model on byte-identical test sets is copied, not redone
    reuse_models_from: str = ""  # an earlier compare's OUT: each of its stages trained with exactly this stage's settings (its training data byte for byte) is linked, not retrained, and its evaluation copied
    checkpoint_steps: int = 50  # each training stage saves a checkpoint this often; a re-run resumes an unfinished stage from the newest

    def __post_init__(self) -> None:
        unknown = [p for p in self.paradigms if p not in PARADIGMS]
        if unknown:
            raise ValueError(f"unknown paradigm(s) {', '.join(unknown)}; choose from {', '.join(PARADIGMS)}")
        if not 0 < self.stage1 < self.n_train:
            raise ValueError(f"need 0 < stage1 < n_train (got stage1={self.stage1}, n_train={self.n_train})")
        if self.sft_epochs <= 0 or self.stage1_epochs < 0:
            raise ValueError(f"need sft_epochs > 0 and stage1_epochs >= 0 (0: sft_epochs), got {self.sft_epochs} and {self.stage1_epochs}")
        check_known(self.grpo_rewards, "grpo_rewards")
        if self.n_eval < 1 or self.grpo_steps < 0 or self.grpo_prompts < 1 or self.checkpoint_steps < 1:
            raise ValueError("need n_eval >= 1, grpo_steps >= 0, grpo_prompts >= 1, checkpoint_steps >= 1")


def run_compare(config: CompareConfig) -> dict:
    # setup: base model, training records, test sets (shared by every paradigm)
    started = time.time()
    task = get_task(config.task)
    out = Path(config.out)
    base, fresh = modeling.starting_model(config.model, out / "base", "nano", config.seed)
    if config.freeze_vision is None:
        config = replace(config, freeze_vision=not fresh)
    train_dir = out / "data" / task.train_split
    if not (train_dir / data.DATA_FILE).is_file():
        data.write_dataset(train_dir, data.iter_records(task, task.train_split, config.n_train, config.seed, progress=True), {"task": task.name, "split": task.train_split, "seed": config.seed})
    for split in task.test_splits:
        if not (out / "data" / split / data.DATA_FILE).is_file():
            data.write_dataset(out / "data" / split, data.iter_records(task, split, config.n_eval, config.seed), {"task": task.name, "split": split, "seed": config.seed})

    # train and evaluate each paradigm
    rows: dict[str, dict] = {}
    timings: dict[str, float] = {}
    for paradigm in config.paradigms:
        t0 = time.time()
        for name, model_dir in _train(paradigm, config, task, base, train_dir, out):
            rows[name] = _evaluate(model_dir, name, config, task, out)
        timings[paradigm] = round(time.time() - t0, 1)
        print(f"[compare] {paradigm}: {timings[paradigm]} s", flush=True)

    # report
    test_sets = {s: data.load_dataset(out / "data" / s)[: config.n_eval] for s in task.test_splits}
    train_answers = [r.answer for r in data.load_dataset(train_dir)[: config.n_train]]
    baselines = evaluate.constant_answer_baselines(task, train_answers, test_sets, config.seed)
    grpo_rows = {name: seen for name in ("reason-rft-zero", "reason-rft") if name in rows and (seen := _grpo_exposure(Path(rows[name]["model"])))}
    paired = _paired_differences(out, rows, task)
    rows = {name: {**row, "model": _portable(row["model"])} for name, row in rows.items()}
    result = {"task": task.name, "base": _portable(base), "rows": rows, **{RESULT_KEYS[name]: _row(summary, "") for name, summary in baselines.items()}, "paired": paired, "grpo": grpo_rows, "timings_s": timings, "total_s": round(time.time() - started, 1), "config": vars(config)}
    _write_report(result, task, out)
    return result


def _train(paradigm: str, config: CompareConfig, task: Task, base: Path, train_dir: Path, out: Path):
    """Yield (row name, model directory) for each model the paradigm produces."""
    if paradigm == "zero-shot":
        yield "zero-shot", base
    elif paradigm in ("ans-sft", "cot-sft"):
        yield paradigm, _sft(config, task, base, train_dir, out / paradigm, "answer" if paradigm == "ans-sft" else "cot", 0, 0)
    elif paradigm == "reason-rft-zero":
        yield paradigm, _grpo(config, task, base, train_dir, out / paradigm, 0, 0)
    else:  # reason-rft: stage 1 on the first records, stage 2 on the rest (structure: all)
        stage1 = _sft(config, task, base, train_dir, out / "stage1", "cot", 0, config.stage1, config.stage1_epochs)
        yield "stage1", stage1
        offset = 0 if task.name == "structure" else config.stage1
        yield "reason-rft", _grpo(config, task, stage1, train_dir, out / "reason-rft", offset, 0)


def _sft(config: CompareConfig, task: Task, model: Path, train_dir: Path, out: Path, paradigm: str, offset: int, limit: int, epochs: float = 0.0) -> Path:
    """Train (or reuse) one SFT stage; ``epochs`` 0: ``sft_epochs``."""
    settings = dict(model=str(model), output_dir=str(out), task=task.name, data=str(train_dir), paradigm=paradigm, data_offset=offset, data_limit=limit, num_train_epochs=epochs or config.sft_epochs, learning_rate=config.sft_learning_rate, freeze_vision=config.freeze_vision, seed=config.seed, **_checkpointing(config, out))
    stage_config = build(sft.SFTStageConfig, settings)
    return out if _linked_earlier(stage_config, config.reuse_models_from) or _trained_with(stage_config) else sft.run(_resumable(stage_config))


def _grpo(config: CompareConfig, task: Task, model: Path, train_dir: Path, out: Path, offset: int, limit: int) -> Path:
    settings = dict(model=str(model), output_dir=str(out), task=task.name, data=str(train_dir), data_offset=offset, data_limit=limit, max_steps=config.grpo_steps or -1, learning_rate=config.grpo_learning_rate, rewards=dict(config.grpo_rewards), prompts_per_device=config.grpo_prompts, num_generations=config.num_generations, max_completion_length=config.max_new_tokens, seed=config.seed, logging_steps=5, **_checkpointing(config, out))
    stage_config = build(grpo.GRPOStageConfig, settings)
    resolved = {"rewards": grpo.reward_weights(stage_config, task)}
    return out if _linked_earlier(stage_config, config.reuse_models_from, **resolved) or _trained_with(stage_config, **resolved) else grpo.run(_resumable(stage_config, **resolved))


def _linked_earlier(stage_config, earlier: str, **resolved) -> bool:
    """Whether the stage's output directory is a link to the same stage of the compare in
    ``earlier``, made now if that one finished training with this stage's very settings, its
    training data byte for byte: a compare that varies one stage (GRPO's steps, say) retrains
    only that stage and what comes after it (stage 2 starts from a linked stage 1 only if
    stage 1 was linked). The link is relative; its evaluation is then copied as the zero-shot
    row's is. A link left by an earlier run of this compare is checked again."""
    out = Path(stage_config.output_dir)
    if out.is_symlink():
        theirs = out.resolve()
    elif out.exists() or not earlier:
        return False
    else:
        theirs = Path(earlier) / out.name
    settings = {**to_dict(stage_config), **resolved}
    if not _same_stage(theirs, settings):
        if out.is_symlink():
            raise UserError(f"{out}: links to {theirs}, trained with other settings or data; delete the link or choose another --out")
        return False
    if not out.is_symlink():
        out.parent.mkdir(parents=True, exist_ok=True)
        out.symlink_to(os.path.relpath(theirs.resolve(), out.parent.resolve()), target_is_directory=True)
        print(f"[compare] {out.name}: linked to {theirs} (trained with the same settings and data)", flush=True)
    return True


def _same_stage(trained: Path, settings: dict) -> bool:
    """Whether ``trained`` holds a finished stage trained with ``settings``, paths aside: its
    training data the same files, byte for byte."""
    record = trained / "reasonrft_stage.json"
    if not ((trained / "config.json").is_file() and record.is_file()):
        return False
    recorded = json.loads(record.read_text())
    data_dir = Path(recorded.get("data", ""))
    if not data_dir.is_dir() or not _same_files(data_dir, Path(settings["data"])):
        return False
    return not _differences(recorded, {**settings, "data": recorded["data"]})


def _checkpointing(config: CompareConfig, out: Path) -> dict:
    """A stage's checkpoint settings: save every ``checkpoint_steps``; resume when an earlier,
    interrupted run of it left a checkpoint (the stage itself picks the newest complete one)."""
    return dict(save_steps=config.checkpoint_steps, resume=any(out.glob("checkpoint-*")))


RESUME_SETTINGS = "compare_stage_settings.json"  # what an unfinished stage was started with


def _resumable(stage_config, **resolved):
    """``stage_config``, about to train: a fresh start records its settings in the output
    directory; a resumed one must match them, or the checkpoints of an interrupted run with
    other settings would be continued under the new ones (``_trained_with``'s rule, before the
    model is finished)."""
    out = Path(stage_config.output_dir)
    settings = {**to_dict(stage_config), **resolved}
    record = out / RESUME_SETTINGS
    if stage_config.resume and record.is_file():
        differ = _differences(json.loads(record.read_text()), settings)
        if differ:
            raise UserError(f"{out}: holds checkpoints of an interrupted run with other settings ({'; '.join(differ)}); delete it or choose another --out")
    elif not stage_config.resume:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(record, settings)
    return stage_config


PAIRS = (("reason-rft", "cot-sft"), ("reason-rft", "ans-sft"), ("reason-rft", "stage1"), ("reason-rft-zero", "zero-shot"))


def _paired_differences(out: Path, rows: dict, task: Task) -> dict:
    """The paper's comparisons on the same questions: for each pair in ``PAIRS`` that ran, the
    first row's accuracy minus the second's per split and on the domain-shift average, in
    points, with a paired bootstrap interval (``stats.paired_difference``)."""
    files = {name: out / "eval" / name / "predictions.jsonl" for name in rows}
    scores = {name: _scores_by_question(f) for name, f in files.items() if f.is_file()}
    result = {}
    for first, second in PAIRS:
        if first not in scores or second not in scores:
            continue
        common = [i for i in scores[second] if i in scores[first]]
        by_split = {s: [i for i in common if scores[first][i][0] == s] for s in task.test_splits}

        def difference(splits: list[str]) -> dict:
            return stats.paired_difference(*([[scores[name][i][1] for i in by_split[s]] for s in splits] for name in (second, first)))

        result[f"{first} - {second}"] = {**{s: difference([s]) for s in task.test_splits}, "OOD AVG": difference(list(task.test_splits[1:]))}
    return result


def _scores_by_question(predictions: Path) -> dict[str, tuple[str, float]]:
    records = (json.loads(line) for line in predictions.read_text().splitlines() if line.strip())
    return {r["id"]: (r["split"], float(r["score"])) for r in records}


def _grpo_exposure(model_dir: Path) -> dict:
    """What a GRPO row's training saw: its steps, prompts per step and completions per prompt,
    the prompts seen in all, and how many distinct records those were (a CPU run takes far
    fewer prompts than the records it is given)."""
    files = model_dir / "reasonrft_stage.json", model_dir / "trainer_state.json"
    if not all(f.is_file() for f in files):
        return {}  # not a model this project trained: nothing recorded to report
    stage = json.loads(files[0].read_text())
    steps = json.loads(files[1].read_text())["global_step"]
    prompts = steps * stage["prompts_per_device"] * stage["gradient_accumulation_steps"]  # one process, as compare runs
    return {"steps": steps, "prompts_per_step": prompts // max(steps, 1), "completions_per_prompt": stage["num_generations"], "prompts_seen": prompts, "distinct_records": min(prompts, stage["records"]), "records": stage["records"], "learning_rate": stage["learning_rate"], "rewards": stage.get("rewards", {})}


BOOKKEEPING = ("output_dir", "logging_steps", "save_steps", "report_to", "resume", "log_completions")  # settings that do not change the model


def _trained_with(stage_config, **resolved) -> bool:
    """Whether the stage's output directory already holds a model trained with this stage
    config (an experiment can be re-run to fill in what is missing). Every recorded setting
    counts, the ones compare passes and the stage's own defaults alike (a default changed in
    the code since is a change too), except logging and saving. A model there that was trained
    with other settings is an error: reusing it would report the old settings' numbers under
    the new ones. ``resolved``: settings the stage records as resolved, not as given (GRPO's
    reward weights)."""
    out = Path(stage_config.output_dir)
    if not (out / "config.json").is_file():
        return False
    stage_file = out / "reasonrft_stage.json"
    if not stage_file.is_file():
        return True  # trained before stages recorded their settings
    differ = _differences(json.loads(stage_file.read_text()), {**to_dict(stage_config), **resolved})
    if differ:
        raise UserError(f"{out}: already trained with other settings ({'; '.join(differ)}); delete it or choose another --out")
    return True


def _differences(recorded: dict, settings: dict) -> list[str]:
    """The settings, other than bookkeeping, that ``recorded`` has with another value ("key: old there, new now")."""
    paths = ("model", "data")
    return [
        f"{key}: {recorded[key]!r} there, {value!r} now"
        for key, value in settings.items()
        if key in recorded and key not in BOOKKEEPING
        and not (_same_path(recorded[key], value) if key in paths else recorded[key] == value)
    ]


def _evaluate(model_dir: Path, name: str, config: CompareConfig, task: Task, out: Path) -> dict:
    cfg = build(evaluate.EvalConfig, dict(model=str(model_dir), task=task.name, data_root=str(out / "data"), n=config.n_eval, output_dir=str(out / "eval" / name), prompt_style=EVAL_STYLE.get(name, "cot"), max_new_tokens=config.max_new_tokens, seed=config.seed))
    summary = _finished_eval(cfg) or _copied_eval(cfg, config.reuse_evals_from, name, task) or _copied_eval(cfg, config.reuse_models_from, name, task) or evaluate.run(cfg)
    return _row(summary, str(model_dir))


def _copied_eval(cfg: evaluate.EvalConfig, earlier: str, name: str, task: Task) -> dict | None:
    """Copy row ``name``'s evaluation from the compare in ``earlier`` when it is this very
    evaluation: the same model, every setting but the paths equal, and test sets identical
    file for file (records and images). A sweep passes its previous budget, so the zero-shot
    row, the base on the same test sets at every budget, is evaluated once; a trained row is
    copied only when its model is the earlier compare's own, linked (``reuse_models_from``). The copy says where it came from
    (``copied_from``), and its predictions keep the image paths it was made with."""
    if not earlier:
        return None
    source = Path(earlier) / "eval" / name
    theirs = replace(cfg, output_dir=str(source), data_root=str(Path(earlier) / "data"))
    summary = _finished_eval(theirs)
    if summary is None or not all(_same_files(Path(theirs.data_root) / s, Path(cfg.data_root) / s) for s in task.test_splits):
        return None
    summary = {**summary, "config": {**summary["config"], "output_dir": cfg.output_dir, "data_root": cfg.data_root}, "copied_from": str(source)}
    with atomic_dir(cfg.output_dir) as tmp:
        for item in source.iterdir():
            if item.is_file() and item.name != "summary.json":
                shutil.copy2(item, tmp / item.name)
        atomic_write_json(tmp / "summary.json", summary)
    print(f"[compare] {name}: evaluation copied from {source} (same model, settings and test sets)", flush=True)
    return summary


def _same_files(a: Path, b: Path) -> bool:
    """Whether two directories hold the same files with the same bytes."""
    def listing(root: Path) -> list[Path]:
        return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())

    names = listing(a)
    return names == listing(b) and all(filecmp.cmp(a / n, b / n, shallow=False) for n in names)


def _same_path(recorded, wanted) -> bool:
    """Whether two recorded paths name the same place (relative to here; empty is here)."""
    return Path(str(recorded or ".")).resolve() == Path(str(wanted or ".")).resolve()


def _portable(model: str | Path) -> str:
    """How results name a model: the shipped base by its place in the package, not by this
    machine's path to it (results are shared and committed); any other directory as given."""
    shipped = modeling.shipped_base()
    return SHIPPED_BASE if shipped is not None and Path(model).resolve() == shipped.resolve() else str(model)


SHIPPED_BASE = "reasonrft/base (the shipped base)"


def _row(summary: dict, model: str) -> dict:
    """What a results row keeps of an evaluation summary."""
    keys = ("splits", "average", "average_ci95", "average_ci_method", "shift_splits", "shift_average", "shift_average_ci95", "shift_average_ci_method", "answer")
    return {**{k: summary[k] for k in keys if k in summary}, "model": model}


def _finished_eval(cfg: evaluate.EvalConfig) -> dict | None:
    """The summary of an earlier evaluation with the same settings, newer than the model's
    weights (a re-run, or a sweep budget linked to a finished compare, skips it); else None."""
    done = Path(cfg.output_dir) / "summary.json"
    weights = Path(cfg.model) / "model.safetensors"
    if not (done.is_file() and weights.is_file()) or done.stat().st_mtime < weights.stat().st_mtime:
        return None
    summary = json.loads(done.read_text())
    if "average_ci95" not in summary:  # written before summaries had intervals
        return None
    paths = ("model", "output_dir", "data_root")
    same = all(_same_path(summary["config"].get(k), getattr(cfg, k)) for k in paths)
    same = same and all(summary["config"].get(k) == v for k, v in vars(cfg).items() if k not in paths)
    return summary if same else None


def _write_report(result: dict, task: Task, out: Path) -> None:
    splits = list(task.test_splits)
    named = [(TITLES[name], row) for name, row in result["rows"].items()]
    baselines = [(f"{TITLES[name]} ({row['answer']!r} always)", row) for name, row in baseline_rows(result).items()]
    header = ["paradigm"] + splits + ["AVG", "ID", "OOD AVG"]
    cells = [[title] + [stats.format_ci(row["splits"][s]) for s in splits] + [_fmt(row, "average"), stats.format_ci(row["splits"][splits[0]]), _fmt(row, "shift_average")] for title, row in named + baselines]
    n = {s: result["baseline"]["splits"][s]["n"] for s in splits}
    md = (
        f"# {task.name}: five paradigms\n\nAccuracy (%) with its 95% interval over questions "
        f"({', '.join(f'{s}: n = {n[s]}' for s in splits)}); training budget {result['config']['n_train']} samples. "
        "Intervals: Wilson for 0/1 scores, else a seeded bootstrap over questions; AVG and OOD AVG (the domain-shift splits' mean): "
        "the splits' Wilson intervals combined (MOVER), or the bootstrap for partial scores.\n\n" + markdown_table(header, cells)
    )
    if "best_constant" in result:
        md += ("\nBest constant answer: the one answer that, given to every question, scores best on the training answers "
               "(the task's partial credit; chosen without the test sets). A model below it reads nothing a constant guess does not.\n")
    groups = _groups(result["baseline"], splits)
    if groups:
        group_header = ["paradigm"] + [f"{s} {g} (n = {result['baseline']['splits'][s]['groups'][g]['n']})" for s, g in groups] + [f"{s} overall" for s in splits]
        group_cells = [[title] + [stats.format_ci(row["splits"][s].get("groups", {}).get(g)) for s, g in groups] + [stats.format_ci(row["splits"][s]) for s in splits] for title, row in named + baselines]
        md += "\nBy group (structure: choice / non-choice answers; transformation: program length):\n\n" + markdown_table(group_header, group_cells)
    if result.get("paired"):
        pair_header = ["difference (points)"] + splits + ["OOD AVG"]
        pair_cells = [[" - ".join(TITLES[n] for n in key.split(" - "))] + [stats.format_ci(entry[s], "difference", signed=True) for s in splits + ["OOD AVG"]] for key, entry in result["paired"].items()]
        md += ("\nPaired differences on the same questions (percentage points; paired bootstrap 95% interval; "
               "an interval that holds 0 is no difference):\n\n" + markdown_table(pair_header, pair_cells))
    for name, seen in result.get("grpo", {}).items():
        md += (f"\n{TITLES[name]}'s GRPO: {seen['steps']} steps x {seen['prompts_per_step']} prompts x {seen['completions_per_prompt']} completions, "
               f"lr {seen['learning_rate']}{_rewards_text(seen)}: {seen['prompts_seen']} prompts seen, {seen['distinct_records']} distinct of its {seen['records']} records.\n")
    atomic_write_text(out / "results.md", md + f"\nWall time of this run: {result['total_s']} s ({_time_spent(result['timings_s'])}). "
                      "Stages and evaluations reused from an earlier run, or resumed from a checkpoint, count only the time spent in this one.\n")
    atomic_write_json(out / "results.json", result)
    buf = io.StringIO()
    csv.writer(buf).writerows(_csv_lines(named + baselines, splits))
    atomic_write_text(out / "results.csv", buf.getvalue())
    numbers = [[title] + [row["splits"][s]["accuracy"] for s in splits] + [row["average"], row["splits"][splits[0]]["accuracy"], row["shift_average"]] for title, row in named]
    plots.accuracy_bars(numbers, header, out / "accuracy_bars.png", title=f"{task.name}: accuracy by paradigm")
    for name in (n for n in result["rows"] if n != "zero-shot"):  # the base's own log is not this experiment's
        state = Path(result["rows"][name]["model"]) / "trainer_state.json"
        plots.training_curves(state, out / f"curves-{name}.png", title=f"{TITLES[name]} on {task.name}")
    print("\n" + md)


CSV_HEADER = ["paradigm", "split", "group", "n", "accuracy", "ci95_low", "ci95_high", "ci_method"]


def _csv_lines(rows: list[tuple[str, dict]], splits: list[str]) -> list[list]:
    """One line per (row, split, group) of ``CSV_HEADER``; ``split`` AVG / OOD AVG for the averages."""
    lines: list[list] = [CSV_HEADER]
    for title, row in rows:
        for split in splits:
            entry = row["splits"][split]
            for group, e in [("all", entry)] + sorted(entry.get("groups", {}).items()):
                lines.append([title, split, group, e["n"], e["accuracy"], *(e["ci95"] or ["", ""]), e["ci_method"]])
        n_all = sum(row["splits"][s]["n"] for s in splits)
        n_shift = sum(row["splits"][s]["n"] for s in row["shift_splits"])
        lines.append([title, "AVG", "all", n_all, row["average"], *(row["average_ci95"] or ["", ""]), row.get("average_ci_method", "")])
        lines.append([title, "OOD AVG", "all", n_shift, row["shift_average"], *(row["shift_average_ci95"] or ["", ""]), row.get("shift_average_ci_method", "")])
    return lines


def _time_spent(timings: dict[str, float]) -> str:
    """"cot-sft 873.1 s, reason-rft 0.3 s": each paradigm's share of a run's wall time."""
    return ", ".join(f"{name} {seconds} s" for name, seconds in timings.items())


def _rewards_text(seen: dict) -> str:
    """", rewards format 1 + accuracy 1" for a GRPO row's summary line (empty if not recorded)."""
    rewards = seen.get("rewards") or {}
    return ", rewards " + " + ".join(f"{name} {weight:g}" for name, weight in rewards.items()) if rewards else ""


def _groups(row: dict, splits: list[str]) -> list[tuple[str, str]]:
    return [(s, g) for s in splits for g in row["splits"][s].get("groups", {})]


def _fmt(row: dict, key: str) -> str:
    """An average of a row (``average`` or ``shift_average``) with its interval."""
    return stats.format_ci({"accuracy": row[key], "ci95": row.get(f"{key}_ci95")}) if row.get(key) is not None else "-"


@dataclass
class SweepConfig:
    stage = "sweep"
    task: str = "counting"
    out: str = "runs/sweep"
    budgets: list[int] = field(default_factory=lambda: [800, 1600, 3200])
    compare: dict = field(default_factory=dict)  # CompareConfig keys applied at every budget

    def __post_init__(self) -> None:
        if not self.budgets or any(b < 2 for b in self.budgets):
            raise ValueError("budgets must be a non-empty list of sample counts >= 2")


def run_sweep(config: SweepConfig) -> dict:
    results = {}
    earlier = ""  # the previous budget: its zero-shot evaluation is this budget's too
    for budget in sorted(config.budgets):
        values = dict(config.compare, task=config.task, out=str(Path(config.out) / f"n{budget}"), n_train=budget)
        values.setdefault("stage1", min(1600, budget // 2))
        values.setdefault("reuse_evals_from", earlier)
        results[budget] = run_compare(build(CompareConfig, values, source="sweep"))
        earlier = values["out"]
    in_domain = get_task(config.task).test_splits[0]
    summary = {str(b): {name: _sweep_entry(row, in_domain, _samples(name, r["config"])) for name, row in {**r["rows"], **baseline_rows(r)}.items()} for b, r in results.items()}
    paired = {str(b): r.get("paired", {}) for b, r in results.items()}
    atomic_write_json(Path(config.out) / "sweep.json", summary)
    atomic_write_json(Path(config.out) / "sweep_paired.json", paired)
    atomic_write_text(Path(config.out) / "sweep.md", _sweep_markdown(summary, config.task) + _sweep_paired_markdown(paired, in_domain))
    plots.data_efficiency(summary, Path(config.out) / "data_efficiency.png", title=f"{config.task}: accuracy vs training samples")
    return summary


def baseline_rows(result: dict) -> dict[str, dict]:
    """A compare's constant-answer baselines by row name (``evaluate.constant_answer_baselines``),
    read back from its results."""
    return {name: result[key] for name, key in RESULT_KEYS.items() if key in result}


def _sweep_entry(row: dict, in_domain: str, samples: int) -> dict:
    """A sweep point: ``row_point`` at the samples the row trained on."""
    return {**row_point(row, in_domain), "samples": samples}


def row_point(row: dict, in_domain: str) -> dict:
    """A row of a compare in two numbers: in-domain and domain-shift accuracy, each with n and
    its 95% interval (``id``, ``id_ci95``, ``id_n``, ``ood``, ...; sweeps and ``reasonrft.seeds``)."""
    entry = row["splits"][in_domain]
    n_shift = sum(row["splits"][s]["n"] for s in row["shift_splits"])
    return {"id": entry["accuracy"], "id_ci95": entry["ci95"], "id_n": entry["n"], "ood": row["shift_average"], "ood_ci95": row["shift_average_ci95"], "ood_n": n_shift}


def _point(entry: dict | None, key: str) -> str:
    return stats.format_ci({"accuracy": entry[key], "ci95": entry[f"{key}_ci95"]}) if entry else "-"


def _sweep_markdown(summary: dict, task_name: str) -> str:
    names = [n for n in TITLES if any(n in rows for rows in summary.values())]
    header = ["budget"] + [f"{TITLES[n]} {kind}" for n in names for kind in ("ID", "OOD")]
    cells = [[b] + [_point(rows.get(n), k) for n in names for k in ("id", "ood")] for b, rows in summary.items()]
    return f"# {task_name}: accuracy (%) against training samples\n\nIn-domain (ID) and domain-shift average (OOD), each with its 95% interval over questions.\n\n" + markdown_table(header, cells)


def _sweep_paired_markdown(paired: dict, in_domain: str) -> str:
    """Per budget, the paper's comparisons question by question (``compare``'s paired differences)."""
    pairs = list(dict.fromkeys(p for entries in paired.values() for p in entries))
    if not pairs:
        return ""
    titles = [" - ".join(TITLES[n] for n in pair.split(" - ")) for pair in pairs]
    header = ["budget"] + [f"{t} {kind}" for t in titles for kind in ("ID", "OOD")]
    cells = [[b] + [stats.format_ci(entries[p][k], "difference", signed=True) if p in entries else "-" for p in pairs for k in (in_domain, "OOD AVG")] for b, entries in paired.items()]
    return "\nPaired differences on the same questions (percentage points, paired bootstrap 95% interval; one holding 0 is no difference):\n\n" + markdown_table(header, cells)


def _samples(name: str, config: dict) -> int:
    """Training samples a row's model learned from: stage 1 alone saw only its share."""
    return {"zero-shot": 0, "stage1": config["stage1"]}.get(name, config["n_train"])  # the baselines: the training set's answers
