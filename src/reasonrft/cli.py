"""The ``reasonrft`` command: one subcommand per stage, each a thin shell over a library call.

Bad input (unknown task/split/key, missing file, broken YAML, ...) prints one line,
``reasonrft: error: ...``, and exits 2; heavy libraries are imported only after the
arguments have been checked, so those errors come fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable

from reasonrft import modeling  # light: its heavy imports are inside its functions
from reasonrft.errors import UserError


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _stage_parser(sub, name: str, help: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help, description=help)
    p.add_argument("--config", help="YAML file of config keys")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, applied after --config")
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reasonrft", description="Reason-RFT: reinforcement fine-tuning for visual reasoning (Qwen2-VL family).")
    sub = parser.add_subparsers(dest="command", required=True)

    model = sub.add_parser("model", help="build models").add_subparsers(dest="action", required=True)
    init = model.add_parser("init", help="build a nano-family Qwen2-VL with its own tokenizer")
    init.add_argument("--size", default="nano", choices=list(modeling.SIZES))
    init.add_argument("--out", required=True)
    init.add_argument("--seed", type=_positive_int, default=0)
    ship = model.add_parser("ship", help="copy a `reasonrft pretrain` output into the package as the shipped base")
    ship.add_argument("--from", dest="source", required=True, help="the pretraining output directory")
    ship.add_argument("--to", dest="dest", help="another destination (default: the package's base folder)")

    dat = sub.add_parser("data", help="generate, show, import and export datasets").add_subparsers(dest="action", required=True)
    gen = dat.add_parser("generate", help="write N samples of a task split to DIR (official meta format)")
    gen.add_argument("--task", required=True)
    gen.add_argument("--split", required=True)
    gen.add_argument("--n", type=_positive_int, required=True)
    gen.add_argument("--seed", type=_positive_int, default=0)
    gen.add_argument("--out", required=True)
    show = dat.add_parser("show", help="draw a contact sheet of samples with questions and answers")
    show.add_argument("--task", required=True)
    show.add_argument("--split", required=True)
    show.add_argument("--n", type=_positive_int, default=6)
    show.add_argument("--seed", type=_positive_int, default=0)
    show.add_argument("--data", help="a dataset directory to show instead of generating")
    show.add_argument("--out", required=True)
    imp = dat.add_parser("import", help="import the published Reason-RFT-CoT-Dataset (train_jsons/, test_jsons/, images/) into OUT/TASK/SPLIT")
    imp.add_argument("--from", dest="source", required=True, metavar="DIR", help="the official dataset directory")
    imp.add_argument("--out", required=True)
    imp.add_argument("--skip-bad", action="store_true", help="leave out bad records (and report how many) instead of stopping")
    imp.add_argument("--stage1", type=_positive_int, default=1600, help="size of the Reason-RFT stage-1 split (default 1600)")
    imp.add_argument("--map", action="append", default=[], metavar="NAME=TASK/SPLIT", help="map another file (name without .json) to a task split; NAME=- ignores it")
    imp.add_argument("--levels", metavar="LEVEL=SPLIT,...", help="Super-CLEVR: which split each record's `level` goes to (default: D=test-ood-d,M=test-ood-m, case and a DS- prefix ignored)")
    exp = dat.add_parser("export", help="write a dataset directory in the official Meta-JSON, ShareGPT (ANS/CoT-SFT) and RL formats")
    exp.add_argument("--data", required=True, help="a dataset directory")
    exp.add_argument("--out", required=True)
    exp.add_argument("--task", default="", help="the task (default: from the dataset)")
    exp.add_argument("--name", default="", help="file name stem (default: TASK-SPLIT)")

    sft = _stage_parser(sub, "sft", "supervised fine-tuning (ANS-SFT or CoT-SFT)")
    sft.add_argument("--resume", action="store_true", help="resume from the newest checkpoint in output_dir")
    grpo = _stage_parser(sub, "grpo", "GRPO reinforcement fine-tuning")
    grpo.add_argument("--resume", action="store_true", help="resume from the newest checkpoint in output_dir")

    ev = _stage_parser(sub, "eval", "generate, score and summarise on test splits")
    ev.add_argument("--model")
    ev.add_argument("--task")
    ev.add_argument("--splits", help="comma-separated split names (default: every test split)")
    ev.add_argument("--predictions", help="re-score a predictions file (official format: records with 'pred') instead")

    demo = _stage_parser(sub, "demo", "the whole pipeline on visual counting, from nothing, with a results table")
    demo.add_argument("--out", default="runs/demo")
    pretrain = _stage_parser(sub, "pretrain", "pretrain the nano base model from scratch on generic perception data")
    pretrain.add_argument("--out", help="output model directory (the config key out)")
    compare = _stage_parser(sub, "compare", "the five paradigms on one task: table, curves and bar chart")
    compare.add_argument("--task")
    compare.add_argument("--out")
    sweep = _stage_parser(sub, "sweep", "data efficiency: compare at increasing training budgets, plotted")
    sweep.add_argument("--task")
    sweep.add_argument("--budgets", help="comma-separated training-set sizes, e.g. 400,800,1600")
    sweep.add_argument("--out")
    seeds = sub.add_parser("seeds", help="the spread of one compare over seeds: per row each seed's accuracy, mean, range; paired gaps by seed")
    seeds.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="compare output directories of the same experiment at different seeds")
    seeds.add_argument("--out", help="write OUT/seeds.json, seeds.md and seeds.png (default: print the tables only)")
    rep = sub.add_parser("report", help="write RUN_DIR/report.html: tables, plots, predictions with images, GRPO rollouts")
    rep.add_argument("run_dir", metavar="RUN_DIR", help="a demo, compare, sweep, eval or GRPO output directory")
    rep.add_argument("--n", type=_positive_int, default=24, help="questions shown per split (default 24)")
    _add_verbose(parser)
    return parser


def _add_verbose(parser: argparse.ArgumentParser, top: bool = True) -> None:
    """``--verbose`` on the command and on every subcommand (``reasonrft --verbose demo`` and
    ``reasonrft demo --verbose`` both work); a subcommand's default does not hide the top one."""
    parser.add_argument("--verbose", action="store_true", default=False if top else argparse.SUPPRESS, help="show every library message, bar and warning (also: REASONRFT_VERBOSE=1)")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _add_verbose(child, top=False)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.verbose:
        os.environ["REASONRFT_VERBOSE"] = "1"  # reasonrft.console.VERBOSE_ENV; accelerate workers inherit it
    try:
        COMMANDS[(args.command, getattr(args, "action", None))](args)
    except UserError as e:
        print(f"reasonrft: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("reasonrft: interrupted", file=sys.stderr)
        return 130
    return 0


# --------------------------------------------------------------------------- commands


def _model_init(args) -> None:
    from reasonrft import modeling

    out = modeling.init_model(args.size, args.out, seed=args.seed)
    print(f"model written to {out}")


def _model_ship(args) -> None:
    from reasonrft.stages import pretrain

    print(f"base shipped to {pretrain.ship(args.source, args.dest)}")


def _data_generate(args) -> None:
    from reasonrft import data
    from reasonrft.tasks import get_task

    task = get_task(args.task)
    task.check_split(args.split)
    records = data.iter_records(task, args.split, args.n, args.seed, progress=True)  # each image saved as drawn
    out = data.write_dataset(args.out, records, {"task": task.name, "split": args.split, "seed": args.seed})
    print(f"{args.n} samples written to {out}/data.json")


def _data_show(args) -> None:
    from reasonrft import report
    from reasonrft.tasks import get_task

    task = get_task(args.task)
    task.check_split(args.split)
    path = report.contact_sheet(task, args.split, args.n, args.seed, args.out, data_dir=args.data)
    print(f"contact sheet written to {path}")


def _data_import(args) -> None:
    from reasonrft import official

    report = official.import_official(args.source, args.out, skip_bad=args.skip_bad, stage1=args.stage1, mapping=official.parse_mapping(args.map), levels=official.parse_levels(args.levels))
    print("\n".join(report.lines()))
    print(f"imported into {report.out} (one dataset directory per task/split; summary in import.json)")


def _data_export(args) -> None:
    from reasonrft import official

    result = official.export_dataset(args.data, args.out, task_name=args.task, name=args.name)
    print(f"{result['count']} records written to {result['out']}: {', '.join(result['files'])}")
    print(f"re-import with: reasonrft data import --from {result['out']} --out DIR --map {result['import_map']}")


def _stage(module: str, config_cls: str, extra: Callable | None = None) -> Callable:
    def command(args) -> None:
        import importlib

        from reasonrft.config import load_config

        mod = importlib.import_module(f"reasonrft.stages.{module}")
        overrides = list(args.overrides)
        if extra:
            overrides += extra(args)
        config = load_config(getattr(mod, config_cls), args.config, overrides)
        _check_paths(config)
        _check_backend()
        _quiet()
        result = mod.run(config)
        if isinstance(result, dict) and "output_dir" in result:
            from reasonrft.html_report import report_when_done
            from reasonrft.stages.evaluate import summary_markdown

            print(summary_markdown(result))
            print(f"predictions and summary in {result['output_dir']}")
            report_when_done(result["output_dir"])
        elif result is not None:
            print(f"done: {result}")

    return command


def _quiet() -> None:
    """Once the input is checked, before any model loads: silence library noise (not with --verbose)."""
    from reasonrft import console

    console.quiet_libraries()


def _report(args) -> None:
    from reasonrft.html_report import write_report

    print(f"report written to {write_report(args.run_dir, per_split=args.n)}")


def _seeds(args) -> None:
    from reasonrft import seeds

    result = seeds.spread(seeds.load_runs(args.run_dirs))
    print(seeds.markdown(result))
    if args.out:
        print(f"written to {seeds.write(result, args.out)}")


def _check_backend() -> None:
    """FSDP (``accelerate launch`` with an FSDP config) needs GPUs: on a CPU accelerate either
    raises from every process (``fsdp_sync_module_states``) or silently trains plain DDP. Say so
    in one line instead; DDP (``cpu_2proc.yaml``) and DeepSpeed ZeRO-2 do run on a CPU."""
    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() != "true":
        return
    import torch

    if not torch.accelerator.is_available():
        raise UserError("FSDP needs GPUs, and this machine has none; on a CPU use recipes/accelerate/cpu_2proc.yaml (DDP) or zero2.yaml (DeepSpeed ZeRO-2) with mixed_precision 'no'")


def _check_paths(config) -> None:
    """Fail before any work when an input path does not exist."""
    from pathlib import Path

    model = getattr(config, "model", "")
    if model and not (Path(model) / "config.json").is_file():
        raise UserError(f"{model}: model directory not found (no config.json)")
    data = getattr(config, "data", "")
    if data and not Path(data).exists():
        raise UserError(f"{data}: dataset directory not found")


def _resume_flag(args) -> list[str]:
    return ["resume=true"] if args.resume else []


def _eval_flags(args) -> list[str]:
    flags = []
    if args.model:
        flags.append(f"model={args.model}")
    if args.task:
        flags.append(f"task={args.task}")
    if args.splits:
        flags.append(f"splits=[{args.splits}]")
    return flags


def _eval(args) -> None:
    if args.predictions:
        from reasonrft.stages.evaluate import rescore_predictions, summary_markdown

        summary = rescore_predictions(args.predictions, args.task or "counting")
        summary["model"] = args.predictions
        print(summary_markdown(summary))
        return
    _stage("evaluate", "EvalConfig", _eval_flags)(args)


def _demo(args) -> None:
    from reasonrft.config import load_config
    from reasonrft.stages import demo

    config = load_config(demo.DemoConfig, args.config, list(args.overrides), out=args.out)
    _quiet()
    demo.run(config)


def _pretrain(args) -> None:
    import json

    from reasonrft.config import load_config
    from reasonrft.stages import pretrain

    overrides = list(args.overrides) + ([f"out={json.dumps(args.out)}"] if args.out else [])  # a JSON string is a YAML string
    config = load_config(pretrain.PretrainConfig, args.config, overrides)
    _quiet()
    out = pretrain.run(config)
    print(f"base model written to {out} (config: {out / pretrain.CONFIG_FILE})")


def _experiment(kind: str) -> Callable:
    def command(args) -> None:
        from reasonrft.config import load_config
        from reasonrft.stages import experiment

        flags = {"task": args.task, "out": args.out, "budgets": getattr(args, "budgets", None)}
        overrides = list(args.overrides) + [f"{k}=[{v}]" if k == "budgets" else f"{k}={v}" for k, v in flags.items() if v]
        from pathlib import Path

        from reasonrft.html_report import report_when_done

        if kind == "compare":
            config = load_config(experiment.CompareConfig, args.config, overrides)
            _quiet()
            experiment.run_compare(config)
        else:
            config = load_config(experiment.SweepConfig, args.config, overrides)
            _quiet()
            experiment.run_sweep(config)
            for budget in sorted(config.budgets):  # each budget is a compare with its own report
                report_when_done(Path(config.out) / f"n{budget}", announce=False)
        report_when_done(config.out)

    return command


COMMANDS: dict[tuple[str, str | None], Callable] = {
    ("model", "init"): _model_init,
    ("model", "ship"): _model_ship,
    ("data", "generate"): _data_generate,
    ("data", "show"): _data_show,
    ("data", "import"): _data_import,
    ("data", "export"): _data_export,
    ("sft", None): _stage("sft", "SFTStageConfig", _resume_flag),
    ("grpo", None): _stage("grpo", "GRPOStageConfig", _resume_flag),
    ("eval", None): _eval,
    ("demo", None): _demo,
    ("pretrain", None): _pretrain,
    ("compare", None): _experiment("compare"),
    ("sweep", None): _experiment("sweep"),
    ("report", None): _report,
    ("seeds", None): _seeds,
}

if __name__ == "__main__":
    sys.exit(main())
