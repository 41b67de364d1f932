"""The demo: the whole Reason-RFT pipeline on one task, from nothing, on a CPU.

Run: ``reasonrft demo [--out runs/demo] [key=value ...]``. Steps:
1. start from the base model shipped in the package (``reasonrft/base``), or, where the
   package has none, build a fresh nano model (``model init``);
2. generate the training set and every test split as dataset directories;
3. evaluate the untrained model;
4. stage 1, CoT-SFT (reasoning activation), then evaluate;
5. stage 2, GRPO (reasoning reinforcement) from the SFT model, then evaluate;
6. write ``OUT/results.{md,json}``, ``OUT/grpo_curves.png`` and ``OUT/report.html`` (the
   predictions of every model side by side, with the images, and GRPO's rollouts), and print
   the table.

The console shows one header line, one progress bar and one summary line per stage
(``reasonrft.console``); ``--verbose`` shows everything the libraries print.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from reasonrft import console, data, html_report, modeling, plots, stats
from reasonrft.config import build
from reasonrft.io import atomic_write_json, atomic_write_text
from reasonrft.report import markdown_table
from reasonrft.stages import evaluate, grpo, sft
from reasonrft.tasks import get_task


# each constant-answer baseline (``evaluate.constant_answer_baselines``): its table title and results.json key
BASELINES = {"most-frequent": ("most frequent training answer", "most_frequent_answer"), "best-constant": ("best constant answer on the training answers", "best_constant_answer")}


@dataclass
class DemoConfig:
    stage = "demo"
    out: str = "runs/demo"
    task: str = "counting"
    model: str = ""  # start from this model directory; empty: the shipped base, else a fresh nano model
    size: str = "nano"
    seed: int = 0
    n_train: int = 2000
    n_eval: int = 100
    sft_epochs: float = 2.0
    sft_learning_rate: float = 1e-3
    grpo_steps: int = 60
    grpo_learning_rate: float = 2e-5
    grpo_prompts: int = 2
    num_generations: int = 8
    max_new_tokens: int = 200  # room for the longest gold CoT (162 tokens; tests/test_tasks_contract.py)

    def __post_init__(self) -> None:
        if self.n_train < 16 or self.n_eval < 1:
            raise ValueError("need n_train >= 16 and n_eval >= 1")
        if self.grpo_steps < 1 or self.sft_epochs <= 0:
            raise ValueError("need grpo_steps >= 1 and sft_epochs > 0")


def run(config: DemoConfig) -> dict:
    started = time.time()
    out = Path(config.out)
    task = get_task(config.task)
    timings: dict[str, float] = {}

    def lap(name: str, t0: float) -> None:
        timings[name] = round(time.time() - t0, 1)

    # 1-2. model and data
    t0 = time.time()
    base, fresh = modeling.starting_model(config.model, out / "model-init", config.size, config.seed)  # fresh: vision tower untrained
    console.header("demo", task=task.name, model="a freshly built nano model" if fresh else base, train=config.n_train, test=f"{config.n_eval} per split", out=out)
    train_dir = data.write_dataset(out / "data" / task.train_split, data.iter_records(task, task.train_split, config.n_train, config.seed, progress=True), {"task": task.name, "split": task.train_split, "seed": config.seed})
    for split in task.test_splits:
        data.write_dataset(out / "data" / split, data.iter_records(task, split, config.n_eval, config.seed), {"task": task.name, "split": split, "seed": config.seed})
    lap("model and data", t0)
    console.done("data", t0, f"{config.n_train} {task.train_split} + {config.n_eval} x {len(task.test_splits)} test problems -> {console.short_path(out / 'data')}")

    def evaluate_model(model_dir: Path, name: str) -> dict:
        t = time.time()
        cfg = build(evaluate.EvalConfig, dict(model=str(model_dir), task=task.name, data_root=str(out / "data"), n=config.n_eval, output_dir=str(out / "eval" / name), max_new_tokens=config.max_new_tokens))
        summary = evaluate.run(cfg)
        lap(f"eval {name}", t)
        return summary

    results = {"before training": evaluate_model(base, "init")}

    # 4. stage 1: CoT-SFT
    t0 = time.time()
    sft_cfg = build(sft.SFTStageConfig, dict(model=str(base), output_dir=str(out / "cot-sft"), task=task.name, data=str(train_dir), paradigm="cot", num_train_epochs=config.sft_epochs, learning_rate=config.sft_learning_rate, freeze_vision=not fresh, seed=config.seed, save_steps=10_000))
    sft_dir = sft.run(sft_cfg)
    lap("CoT-SFT", t0)
    results["CoT-SFT"] = evaluate_model(sft_dir, "cot-sft")

    # 5. stage 2: GRPO
    t0 = time.time()
    grpo_cfg = build(grpo.GRPOStageConfig, dict(model=str(sft_dir), output_dir=str(out / "grpo"), task=task.name, data=str(train_dir), max_steps=config.grpo_steps, learning_rate=config.grpo_learning_rate, prompts_per_device=config.grpo_prompts, num_generations=config.num_generations, max_completion_length=config.max_new_tokens, seed=config.seed, save_steps=10_000, logging_steps=2))
    grpo_dir = grpo.run(grpo_cfg)
    lap("GRPO", t0)
    results["Reason-RFT (CoT-SFT + GRPO)"] = evaluate_model(grpo_dir, "grpo")

    # 6. report
    splits = list(task.test_splits)
    test_sets = {split: data.load_dataset(out / "data" / split, task=task.name) for split in splits}
    train_answers = [r.answer for r in data.load_dataset(train_dir, task=task.name)]
    baselines = evaluate.constant_answer_baselines(task, train_answers, test_sets, config.seed)
    named = [*results.items(), *((f"always the {BASELINES[name][0]} ({b['answer']})", b) for name, b in baselines.items())]
    rows = [[name] + [stats.format_ci(s["splits"][sp]) for sp in splits] + [stats.format_ci({"accuracy": s["average"], "ci95": s.get("average_ci95")})] for name, s in named]
    table = markdown_table(["model"] + splits + ["AVG"], rows)
    curves = plots.training_curves(Path(grpo_dir) / "trainer_state.json", out / "grpo_curves.png", title=f"GRPO on {task.name}")
    total = round(time.time() - started, 1)
    laps = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in timings.items())
    text = f"# reasonrft demo: {task.name}\n\nAccuracy (%) with its 95% interval (Wilson; AVG: MOVER), {config.n_eval} questions per split.\n\n{table}\nWall time: {total:.0f} s ({laps}).\n"
    atomic_write_text(out / "results.md", text)
    atomic_write_json(out / "results.json", {"task": task.name, "results": {k: {"splits": v["splits"], "average": v["average"], "average_ci95": v.get("average_ci95")} for k, v in results.items()}, **{BASELINES[name][1]: {"answer": b["answer"], "splits": b["splits"], "average": b["average"]} for name, b in baselines.items()}, "timings_s": timings, "total_s": total, "config": vars(config)})
    print("\n" + text)
    if curves:
        print(f"GRPO training curves: {curves}")
    html_report.report_when_done(out)
    return results
