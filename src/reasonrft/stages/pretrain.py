"""Pretraining the nano base model from scratch, in the role of Qwen2-VL-Instruct.

Run: ``reasonrft pretrain --out DIR [--config FILE.yaml] [key=value ...]``. Steps:
1. ``model init``: a random nano model whose tokenizer knows every task and the perception data
   (or ``init_model``; with ``fresh_language_model`` its vision tower under a new language model,
   with ``vision_from`` its language model over another run's vision tower);
2. with ``dense_steps > 0``, the dense phase (``reasonrft.dense_targets``): the vision tower
   (random, or ``init_model``'s) trained on per-patch targets from the scene graph through
   temporary heads, then dropped;
3. with ``text_steps > 0``, the text phase (``reasonrft.text_phase``): the language model alone
   on arithmetic and copying (or the perception kinds ``text_kinds``), in large batches;
4. ``n_train`` generic perception samples (``reasonrft.pretrain_data``, mix ``kind_weights``) written as a dataset;
5. answer-only SFT on them, the whole model trained (or, ``freeze_vision``, the language model only);
   ``max_steps=0`` skips 4 and 5: the run ends with its last phase's model (one rung of a
   curriculum of runs, each continuing the last through ``init_model``).

``resume=true`` continues from the newest checkpoint of whichever phase was running (the
same command starts and restarts a run).

``OUT`` ends as a complete model directory (the SFT stage's output) plus
``OUT/pretrain_config.yaml``, the exact config that reproduces it. Scratch:
``OUT/init-SIZE-sSEED`` (the random model), ``OUT/init-grafted-sSEED`` (``vision_from``), ``OUT/dense`` (the dense phase), ``OUT/text`` (the text phase), ``OUT/data`` (the dataset), ``OUT/checkpoint-*``
and ``OUT/runs``. ``reasonrft model ship --from OUT`` copies the model files, the config and the
training log (not the scratch) into the package's ``base`` folder: the shipped base, which the
demo and the experiments start from.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from reasonrft import data, dense_targets, modeling, pretrain_data, text_phase
from reasonrft.config import UserError, build, load_config, to_dict
from reasonrft.io import atomic_dir, atomic_write_text
from reasonrft.stages import sft
from reasonrft.tasks import perception

CONFIG_FILE = "pretrain_config.yaml"
MODEL_KEYS = ("vision_from", "init_model")  # the config keys that name another run's model (a chain lists the vision line first)
MAX_SHIPPED_BYTES = 30 * 2**20
NOT_SHIPPED = {"training_args.bin", "README.md"}  # besides every folder; README.md: TRL's generic card, replaced
CARD = """# The reasonrft nano base

A Qwen2-VL ({size}; {params:,} parameters) pretrained from scratch by `reasonrft pretrain` on
generic perception data (`reasonrft.tasks.perception`), never on the three tasks' question types.
It plays Qwen2-VL-Instruct's part: the demo and `reasonrft compare` start from it.

Reproduce (config in `pretrain_config.yaml`{earlier}, training log in `trainer_state.json`):

{commands}
    reasonrft model ship --from runs/{name}

How well it sees: `python benchmarks/bench_base.py`; measured figures in docs/results.md.
"""


@dataclass
class PretrainConfig:
    """The base model's pretraining. Defaults: the shipped nano base."""

    stage = "pretrain"
    out: str
    size: str = "nano"
    seed: int = 0
    n_train: int = 30000
    epochs: float = 1.0
    learning_rate: float = 1e-3
    lr_scheduler_type: str = "cosine"
    warmup_steps: int = 50
    weight_decay: float = 0.1
    per_device_train_batch_size: int = 16
    gradient_accumulation_steps: int = 1
    max_steps: int = -1  # > 0: stop after this many optimiser steps (quick runs, tests); 0: no reading phase
    logging_steps: int = 10
    save_steps: int = 500
    resume: bool = False
    # the perception mix: one weight per kind of perception.KINDS; empty: the family's default
    kind_weights: list[int] = field(default_factory=list)
    # kinds of the reading set asked with the question before the image (``perception.PerceptionConfig``);
    # the benchmark asks them so with ``bench_base.py --question-first``
    question_first_kinds: list[str] = field(default_factory=list)
    # the reading set's other ``perception.PerceptionConfig`` overrides, e.g. {question_weights: [1, 1, 3, 3, 1, 1]}
    reading_perception: dict = field(default_factory=dict)
    # phase 1, dense per-patch targets for the vision tower (``dense_targets``); 0 steps: none
    dense_steps: int = 0
    dense_learning_rate: float = 2e-3
    dense_batch_size: int = 16
    dense_curriculum_steps: int = 300  # scenes grow from 1 to 13 objects over these steps
    dense_diagram_fraction: float = 0.0  # images that are diagrams with per-cell character targets
    dense_filtered_counts: bool = False  # a head counting each attribute value and pair of values in the scene
    # the side the dense phase renders its scenes at (a multiple of 28: a (side / 28)^2 grid of
    # merged cells, 8 x 8 at 224). Another side also sets the phase's processor to resize every
    # image to side x side (min = max = side^2 pixels), which its saved model keeps: later
    # phases and stages then see the tasks' 224 px images enlarged to it, more tokens per image
    dense_image_size: int = dense_targets.IMAGE_SIZE
    # phase 2, the text phase (``text_phase``): arithmetic and copying alone (or ``text_kinds``); 0 steps: none
    text_steps: int = 0
    text_learning_rate: float = 1e-3
    text_batch_size: int = 64
    text_kinds: list[str] = field(default_factory=list)  # perception kinds; empty: the text kinds (arithmetic, copy)
    text_kind_weights: list[int] = field(default_factory=list)  # one per kind; empty: the phase's default (text kinds only)
    text_perception: dict = field(default_factory=dict)  # the text phase's scene settings, e.g. {attribute_max_objects: 3}
    text_format_fraction: float = 0.0  # text-phase items asked in the think/answer format (0: none, as every earlier run)
    freeze_vision: bool = False  # phase 3 (answer-only SFT) trains only the language model
    # processes that render data beside the training process: the dense phase's batches, the
    # reading set, the reading phase's batches (0: none; a GPU box wants most of its cores)
    workers: int = 0
    # a model directory (an earlier pretraining output) to continue from instead of a random
    # init (with dense_steps, its vision tower trains on, through new temporary heads); give a
    # new ``seed`` so that the data are new samples
    init_model: str = ""
    # with init_model: keep its vision tower (and tokenizer) but start a fresh ``size`` language
    # model, which binds a phrase to its object faster than a trained one (docs/results.md 4.1)
    fresh_language_model: bool = False
    # with init_model: keep its language model (arithmetic, copying, the format) and tokenizer
    # but take the vision tower and merger of this model directory, of any depth and width
    # (``modeling.graft_vision``): a trained language model learns to read a better tower
    vision_from: str = ""

    def __post_init__(self) -> None:
        if self.size not in modeling.SIZES:
            raise ValueError(f"size must be one of {', '.join(modeling.SIZES)}, got {self.size!r}")
        if self.n_train < 1 or self.epochs <= 0 or self.learning_rate <= 0:
            raise ValueError("need n_train >= 1, epochs > 0 and learning_rate > 0")
        if self.per_device_train_batch_size < 1 or self.gradient_accumulation_steps < 1 or self.dense_batch_size < 1:
            raise ValueError("batch sizes must be >= 1")
        if self.dense_steps < 0 or self.dense_learning_rate <= 0 or not 0 <= self.dense_diagram_fraction <= 1:
            raise ValueError("need dense_steps >= 0, dense_learning_rate > 0 and dense_diagram_fraction in [0, 1]")
        dense_targets.check_image_size(self.dense_image_size, "dense_image_size")
        self.perception_config()  # validates kind_weights, question_first_kinds and reading_perception
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")
        if self.text_steps < 0 or self.text_learning_rate <= 0 or self.text_batch_size < 1:
            raise ValueError("need text_steps >= 0, text_learning_rate > 0 and text_batch_size >= 1")
        self.text_config()  # validates text_kinds, text_kind_weights and text_perception
        if self.fresh_language_model and not self.init_model:
            raise ValueError("fresh_language_model keeps init_model's vision tower: it needs init_model (a random init is fresh already)")
        if self.vision_from and (not self.init_model or self.fresh_language_model):
            raise ValueError("vision_from grafts a vision tower onto init_model's language model: it needs init_model, and a fresh language model would not keep it")
        if self.max_steps == 0 and not (self.dense_steps or self.text_steps):
            raise ValueError("max_steps=0 skips the reading phase: it needs a dense or text phase to run (dense_steps or text_steps > 0)")
        if self.max_steps < -1:
            raise ValueError(f"max_steps must be -1 (the epochs decide), 0 (no reading phase) or a step count, got {self.max_steps}")

    def text_config(self) -> text_phase.TextConfig:
        mix = {}  # empty: the phase's default kinds and weights
        if self.text_kinds:
            mix = {"kinds": tuple(self.text_kinds), "kind_weights": tuple(self.text_kind_weights or [1] * len(self.text_kinds))}
        elif self.text_kind_weights:
            mix = {"kind_weights": tuple(self.text_kind_weights)}
        return text_phase.TextConfig(steps=max(1, self.text_steps), batch_size=self.text_batch_size, learning_rate=self.text_learning_rate,
                                     save_steps=min(100, max(1, self.text_steps)), seed=self.seed, perception=dict(self.text_perception), format_fraction=self.text_format_fraction, **mix)

    def perception_config(self) -> perception.PerceptionConfig:
        """The reading set's mix: ``reading_perception`` with ``kind_weights`` and ``question_first_kinds``."""
        mix = {"kind_weights": self.kind_weights} if self.kind_weights else {}
        if clash := sorted(set(self.reading_perception) & {"kind_weights", "question_first_kinds"}):
            raise ValueError(f"reading_perception: {', '.join(clash)} is a pretrain key of its own; set it there")
        return perception.PerceptionConfig.from_overrides({**self.reading_perception, **mix, "question_first_kinds": self.question_first_kinds}, "reading_perception:")


def run(config: PretrainConfig) -> Path:
    # setup: the config that reproduces the run, a random model, the perception data
    for key in MODEL_KEYS:
        if getattr(config, key) and not (Path(getattr(config, key)) / "config.json").is_file():
            raise UserError(f"{key} {getattr(config, key)}: not a model directory (no config.json)")
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / CONFIG_FILE, yaml.safe_dump(to_dict(config), sort_keys=False))
    init = Path(config.init_model) if config.init_model else out / f"init-{config.size}-s{config.seed}"
    if not (init / "config.json").is_file():
        modeling.init_model(config.size, init, seed=config.seed)
    if config.fresh_language_model:
        fresh = out / f"init-{config.size}-lm-s{config.seed}"
        if not (fresh / "config.json").is_file():
            modeling.fresh_language_model(init, config.size, fresh, seed=config.seed)
        init = fresh
    if config.vision_from:
        grafted = out / f"init-grafted-s{config.seed}"
        if not (grafted / "config.json").is_file():
            modeling.graft_vision(init, config.vision_from, grafted)
        init = grafted
    if config.dense_steps:
        init = dense_phase(config, init, out / "dense")
    if config.text_steps:
        init = text_phase_run(config, init, out / "text")
    if config.max_steps == 0:  # no reading phase: the last phase's model is the run's output
        return _publish(init, out)
    mix = "-w" + "-".join(map(str, config.kind_weights)) if config.kind_weights else ""
    mix += "-qf-" + "-".join(config.question_first_kinds) if config.question_first_kinds else ""
    mix += "-p" + hashlib.sha1(json.dumps(config.reading_perception, sort_keys=True).encode()).hexdigest()[:8] if config.reading_perception else ""
    dataset = out / "data" / f"perception-train-s{config.seed}-n{config.n_train}{mix}"
    if not (dataset / data.DATA_FILE).is_file():
        chunks = -(-config.n_train // READING_CHUNK)
        data.write_dataset_in_chunks(dataset, functools.partial(_reading_chunk, config), chunks, {"task": pretrain_data.TASK_NAME, "split": "train", "seed": config.seed}, config.workers)

    # train: answer-only SFT of the whole model on the perception set
    stage = build(
        sft.SFTStageConfig,
        dict(
            model=str(init),
            output_dir=str(out),
            task=pretrain_data.TASK_NAME,
            paradigm="answer",
            data=str(dataset),
            n_train=config.n_train,
            seed=config.seed,
            learning_rate=config.learning_rate,
            lr_scheduler_type=config.lr_scheduler_type,
            warmup_steps=config.warmup_steps,
            weight_decay=config.weight_decay,
            num_train_epochs=config.epochs,
            max_steps=config.max_steps,
            per_device_train_batch_size=config.per_device_train_batch_size,
            gradient_accumulation_steps=config.gradient_accumulation_steps,
            freeze_vision=config.freeze_vision,
            dataloader_num_workers=config.workers,
            logging_steps=config.logging_steps,
            save_steps=config.save_steps,
            resume=config.resume and any(out.glob("checkpoint-*")),  # a restart still in an earlier phase has none yet
        ),
        source="pretrain",
    )
    return sft.run(stage)


READING_CHUNK = 500  # records of the reading set one worker makes at a time


def _reading_chunk(config: PretrainConfig, k: int):
    """Records ``500 k ..`` of the reading set (item ``i`` is the same whichever chunk makes it)."""
    n = min(READING_CHUNK, config.n_train - k * READING_CHUNK)
    return pretrain_data.iter_pretrain_records(n, config.seed, offset=k * READING_CHUNK, perception_config=config.perception_config())


def _publish(model_dir: Path, out: Path) -> Path:
    """Copy a phase's finished model files into ``out`` (which then loads as a model directory),
    each written atomically; the model's weights last, so a half-copied ``out`` never has them."""
    files = sorted((f for f in model_dir.iterdir() if f.is_file()), key=lambda f: f.suffix == ".safetensors")
    for file in files:
        tmp = out / f".{file.name}.tmp"
        shutil.copyfile(file, tmp)
        os.replace(tmp, out / file.name)
    return out


def dense_phase(config: PretrainConfig, init: Path, work: Path) -> Path:
    """Phase 1: the vision tower of ``init`` (random, or ``init_model``'s to refine) trained on
    dense per-patch targets; returns ``WORK/model``, a plain Qwen2-VL directory (the temporary heads stay in
    ``WORK/dense-checkpoint.pt``)."""
    dense = dense_targets.DenseConfig(steps=config.dense_steps, batch_size=config.dense_batch_size, learning_rate=config.dense_learning_rate,
                                      curriculum_steps=config.dense_curriculum_steps, diagram_fraction=config.dense_diagram_fraction, filtered_counts=config.dense_filtered_counts, save_steps=min(100, config.dense_steps), eval_every=min(100, config.dense_steps), seed=config.seed,
                                      workers=config.workers, image_size=config.dense_image_size)
    pixels = None if config.dense_image_size == dense_targets.IMAGE_SIZE else config.dense_image_size**2  # 224: the model's own bounds, as every earlier run
    return _phase(config, init, work, lambda model, processor: dense_targets.train(model, processor, work, dense), pixels)


def text_phase_run(config: PretrainConfig, init: Path, work: Path) -> Path:
    """Phase 2: the language model of ``init`` trained on the text kinds alone (the loop's
    checkpoint is ``WORK/text-checkpoint.pt``); returns ``WORK/model``."""
    return _phase(config, init, work, lambda model, processor: text_phase.train(model, processor, str(init), work, config.text_config()))


def _phase(config: PretrainConfig, init: Path, work: Path, train, pixels: int | None = None) -> Path:
    """A phase that changes the model of ``init`` in place (``train(model, processor)``) and
    saves it as ``WORK/model``. With ``resume`` it reuses a finished ``WORK/model``, or lets
    ``train`` continue from its checkpoint in ``WORK``; without, it starts over. ``pixels``:
    every image resized to that many pixels (the processor's min and max), saved with the model."""
    import torch

    model_dir = work / "model"
    if config.resume and (model_dir / "config.json").is_file():
        return model_dir
    if not config.resume:
        shutil.rmtree(work, ignore_errors=True)
    torch.manual_seed(config.seed)
    model, processor = modeling.load_model(init), modeling.load_processor(init, min_pixels=pixels, max_pixels=pixels)
    train(model, processor)
    with atomic_dir(model_dir) as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
    return model_dir


STAGE_FILE = "reasonrft_stage.json"


def _machine_free(value: Any, source: Path) -> Any:
    """An absolute path inside ``source`` as ``runs/NAME/...`` (what ``pretrain --out runs/NAME``
    writes); any other absolute path as its last component; anything else as it is."""
    if not isinstance(value, str) or not os.path.isabs(value):
        return value
    path, root = Path(value).resolve(), source.resolve()
    if path == root or root in path.parents:
        return str(Path("runs", root.name, path.relative_to(root)))
    return path.name


def ship(source: str | Path, dest: str | Path | None = None) -> Path:
    """Copy a finished pretraining output's model files, ``pretrain_config.yaml`` and
    ``trainer_state.json`` to ``dest`` (default: the package's ``base`` folder), atomically."""
    source = Path(source)
    dest = Path(dest) if dest else Path(modeling.__file__).parent / "base"
    for needed in ("config.json", "model.safetensors", CONFIG_FILE):
        if not (source / needed).is_file():
            raise UserError(f"{source}: not a finished pretraining output (no {needed})")
    files = sorted(f for f in source.iterdir() if f.is_file() and f.name not in NOT_SHIPPED)
    size = sum(f.stat().st_size for f in files)
    if size > MAX_SHIPPED_BYTES:
        raise UserError(f"{source}: {size / 2**20:.1f} MB of model files, over the {MAX_SHIPPED_BYTES // 2**20} MB a shipped base may take")
    chain = _chain(source)  # (run name, its config, the file it came from, its parents' names), each after its parents
    commands = "\n".join(f"    reasonrft pretrain --out runs/{name}{_overrides(config, parents)}" for name, config, _, parents in chain)
    # every config as the chain names it: an init_model of the package's base folder would
    # mean this new base once shipped, and the chain would come back to itself
    configs = {(f"pretrain_config-{name}.yaml" if k < len(chain) - 1 else CONFIG_FILE): _portable_config(file, parents)
               for k, (name, _, file, parents) in enumerate(chain)}
    earlier = [name for name in configs if name != CONFIG_FILE]
    params = modeling.count_parameters(modeling.load_model(source))
    with atomic_dir(dest) as tmp:
        for f in files:
            shutil.copy2(f, tmp / f.name)
        for name, text in configs.items():
            (tmp / name).write_text(text)
        if (tmp / STAGE_FILE).is_file():  # the package must not carry this machine's paths
            stage = json.loads((tmp / STAGE_FILE).read_text())
            (tmp / STAGE_FILE).write_text(json.dumps({k: _machine_free(v, source) for k, v in stage.items()}, indent=2))
        card = CARD.format(size=_size_words(chain), params=params, commands=commands, name=source.name,
                           earlier=f"; of the runs it continued, in {', '.join(f'`{n}`' for n in earlier)}" if earlier else "")
        (tmp / "README.md").write_text(card)
    return dest


def _chain(source: Path) -> list[tuple[str, PretrainConfig, Path, dict[str, str]]]:
    """The pretraining runs that made ``source``, each before the runs that continue it: (run
    name, config, config file, the names of the runs its ``init_model`` and ``vision_from``
    come from). Through ``init_model`` a run continues one run; a run with ``vision_from``
    also takes another run's vision tower, whose chain comes first. (An ``init_model`` path is
    relative to where that run was started, like ``out``.) A shipped base continued
    (``init_model: src/reasonrft/base``) brings its own chain, from the
    ``pretrain_config-NAME.yaml`` files it was shipped with. A run may continue another's
    phase model (``runs/NAME/text/model``): that run's whole command makes it."""
    chain: list[tuple[str, PretrainConfig, Path, dict[str, str]]] = []
    shipped: dict[str, Path] = {}  # run name -> an earlier run's config, as a shipped base keeps it

    def visit(run: Path, file: Path, path: tuple[Path, ...], name: str = "") -> str:
        """Add ``run`` (named by its config's ``out`` unless ``name``) after its parents; ``path``:
        the config files of the runs that continue it, for finding a cycle."""
        config = load_config(PretrainConfig, str(file))
        name = name or Path(config.out).name
        shipped.update({f.name.removeprefix("pretrain_config-").removesuffix(".yaml"): f for f in run.glob("pretrain_config-*.yaml")})
        parents = {}
        for key in MODEL_KEYS:
            if not getattr(config, key):
                continue
            parent = _run_of(getattr(config, key))
            # a config shipped with a base is the record of what made it; a local run folder of
            # the same name may be older, or name the package's base, which is now another model
            parent_file = shipped.get(parent.name) or (parent / CONFIG_FILE if (parent / CONFIG_FILE).is_file() else None)
            if parent_file is None:
                raise UserError(f"{source}: continues {getattr(config, key)}, which has no {CONFIG_FILE} here to reproduce it from")
            if any(parent_file.resolve() == f.resolve() for f in (*path, file)):
                raise UserError(f"{source}: its chain of init_model runs comes back to {parent} (a cycle); a run cannot continue itself")
            parents[key] = visit(parent, parent_file, (*path, file))
        if all(name != done for done, *_ in chain):  # a run two lines share is made once
            chain.append((name, config, file, parents))
        return name

    visit(source, source / CONFIG_FILE, (), name=source.name)
    return chain


def _size_words(chain: list[tuple[str, PretrainConfig, Path, dict[str, str]]]) -> str:
    """The shipped model's size for its card: the last run's ``size``, or, where its language
    model's line took a vision tower from another run (``vision_from``), both sizes."""
    runs = {name: (config, parents) for name, config, _, parents in chain}
    language, name = chain[-1][1].size, chain[-1][0]
    while name:
        config, parents = runs[name]
        if "vision_from" in parents:
            tower = runs[parents["vision_from"]][0].size
            return f"the `{language}` size" if tower == language else f"a `{language}` language model over a `{tower}` vision tower"
        name = parents.get("init_model", "")
    return f"the `{language}` size"


PHASES = ("dense", "text")  # a run's phase models, OUT/PHASE/model, can be continued too


def _phase_of(init_model: str) -> tuple[str, ...]:
    """``("text", "model")`` when ``init_model`` is a phase's model inside a run, else ``()``."""
    parts = Path(init_model).parts
    return parts[-2:] if len(parts) > 2 and parts[-1] == "model" and parts[-2] in PHASES else ()


def _run_of(init_model: str) -> Path:
    """The run folder ``init_model`` comes from: itself, or the run whose phase model it is."""
    return Path(init_model).parents[1] if _phase_of(init_model) else Path(init_model)


def _portable_model(model: str, run_name: str = "") -> str:
    """A model path (``init_model``, ``vision_from``) as ``runs/NAME`` (``run_name``, the run it
    comes from; by default its folder's name), keeping a phase model's ``text/model`` or ``dense/model``."""
    return Path("runs", run_name or _run_of(model).name, *_phase_of(model)).as_posix()


def _portable_config(file: Path, parents: dict[str, str]) -> str:
    """The YAML of the config at ``file`` with its model paths as ``runs/PARENT``."""
    raw = yaml.safe_load(file.read_text())
    for key in MODEL_KEYS:
        if raw.get(key):
            raw[key] = _portable_model(raw[key], parents.get(key, ""))
    return yaml.safe_dump(raw, sort_keys=False)


def _overrides(config: PretrainConfig, parents: dict[str, str] | None = None) -> str:
    """The ``key=value`` arguments that make ``config`` from the defaults (``init_model`` and
    ``vision_from`` as ``runs/NAME``, the run each comes from as ``parents`` names it, or
    ``runs/NAME/text/model``, that run's phase model)."""
    defaults = to_dict(PretrainConfig(out=config.out))
    changed = {k: v for k, v in to_dict(config).items() if k not in ("out", "resume") and v != defaults[k]}
    for key in MODEL_KEYS:
        if changed.get(key):
            changed[key] = _portable_model(changed[key], (parents or {}).get(key, ""))
    # lists and mappings as JSON (which the override parser reads as YAML), each argument
    # shell-quoted where it must be: a mapping's braces and commas would brace-expand
    rendered = {k: json.dumps(v, separators=(",", ":")) if isinstance(v, (list, dict)) else v for k, v in changed.items()}
    return "".join(f" {shlex.quote(f'{k}={v}')}" for k, v in rendered.items())
