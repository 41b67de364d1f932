"""The published Reason-RFT-CoT-Dataset in and out: import it into dataset directories, export ours.

Import (``reasonrft data import --from DIR --out OUT``) reads the official layout::

    DIR/train_jsons/A3-Visual-Counting-train-35k-cot.json   (Meta-JSON: id, image, problem, cot, answer)
    DIR/test_jsons/Visual-Counting-id-test-1k.json          (image, problem, answer or solution, ...)
    DIR/images/train_images/..., DIR/images/test_images/...

and writes one dataset directory (``load_dataset`` format) per task and split::

    OUT/counting/train    all training records: ANS-SFT, CoT-SFT and Reason-RFT-Zero (GRPO) data
    OUT/counting/stage1   the first 1,600 of them: Reason-RFT stage 1 (CoT-SFT)
    OUT/counting/stage2   the rest (structure perception: all of them): Reason-RFT stage 2 (GRPO)
    OUT/counting/test-id, OUT/counting/test-ood-d, ...   evaluation (``eval data_root=OUT/counting``)

Super-CLEVR's file holds both of the paper's counting shifts: it is split by each record's
``level`` into ``test-ood-d`` (DS-D) and ``test-ood-m`` (DS-M), see ``LEVEL_SPLITS``.

``OFFICIAL_FILES`` maps the official file names to (task, split); other files (the optional
ablation sets) are ignored unless mapped with ``--map NAME=TASK/SPLIT`` (``NAME`` is the file
name without ``.json``; ``--map NAME=-`` ignores a file). Every record is validated
(``data.parse_record``); the first bad one stops the import with one line naming the file and
record, or, with ``skip_bad``, is counted and left out. The whole of OUT is written through
``io.atomic_dir``: a failed import leaves nothing there. Images are hard-linked into each
dataset directory when OUT is on the same file system as DIR, copied otherwise.

Export (``reasonrft data export --data DIR --out OUT``) writes any of our dataset directories in
the official formats: the Meta-JSON, ShareGPT files for ANS-SFT and CoT-SFT, and the RL file,
with image paths relative to ``OUT/images`` (see ``export_dataset``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reasonrft import data
from reasonrft.errors import UserError
from reasonrft.io import atomic_dir, atomic_write_json
from reasonrft.rewards import extract_answer
from reasonrft.tasks import get_task

OFFICIAL_FILES: dict[str, tuple[str, str]] = {
    # train_jsons/: the three Meta-JSON files of the main tasks
    "A1-Spatial-Transformation-train-60k-cot": ("transformation", "train"),
    "A2-Structure-Perception-train-4k5-cot": ("structure", "train"),
    "A3-Visual-Counting-train-35k-cot": ("counting", "train"),
    # test_jsons/: the seven evaluation files
    "Spatial-Transformation-id-test-1k": ("transformation", "test-id"),
    "Spatial-Transformation-ood-left-test-1k": ("transformation", "test-ood-left"),
    "Spatial-Transformation-ood-right-test-1k": ("transformation", "test-ood-right"),
    "Structure-Perception-id-test-820": ("structure", "test-id"),
    "Structure-Perception-ood-test-800": ("structure", "test-ood"),
    "Visual-Counting-id-test-1k": ("counting", "test-id"),
    # Super-CLEVR: the paper reports it as DS-D and DS-M, which the file holds both of; it is
    # imported as test-ood-d and test-ood-m by each record's ``level`` (LEVEL_SPLITS), so only
    # the task of this entry counts
    "Visual-Counting-ood-test-1k": ("counting", "test-ood-d"),
}
"""Official file name (without ``.json``) -> (task, split)."""

LEVEL_SPLITS: dict[str, dict[str, str]] = {
    "Visual-Counting-ood-test-1k": {"d": "test-ood-d", "m": "test-ood-m"},
}
"""Files whose records go to a split by their ``level`` field: file name -> {level: split}.

The paper reports Super-CLEVR as DS-D (750 questions) and DS-M (250), and the official
evaluator scores that file per ``level``; no published text says which ``level`` values the
file uses. The default reads a level as its letter, case and a ``DS-`` prefix ignored
(``D``, ``ds-d``, ``DS_D`` -> test-ood-d; ``M`` ... -> test-ood-m): a guess, not a fact. A level
it does not know stops the import with one line that lists the file's levels and their
counts; ``--levels VALUE=SPLIT,...`` (``import_official(levels=...)``) maps them instead. A
file mapped with ``--map`` is imported whole, unsplit."""

PREDICTION_FILES: dict[str, tuple[str, str]] = {
    "clevr-math": ("counting", "test-id"),
    "super-clevr": ("counting", "test-ood-d"),  # its records' ``level`` names DS-D or DS-M: see level_split
    "geomath": ("structure", "test-id"),
    "geometry3k": ("structure", "test-ood"),
    "trance": ("transformation", "test-id"),
    "trance-left": ("transformation", "test-ood-left"),
    "trance-right": ("transformation", "test-ood-right"),
}
"""The official evaluator's output files (``eval_result/NAME.json``) -> (task, split)."""

STAGE1_SIZE = 1600
STAGE2_TAKES_ALL = frozenset({"structure"})  # too few samples (4.5k) to hold the stage-1 part out
JSON_DIRS = ("train_jsons", "test_jsons")
_CORE_FIELDS = {"id", "image", "problem", "cot", "answer", "solution", "task", "meta"}


def official_split(path: str | os.PathLike) -> tuple[str, str] | None:
    """(task, split) of an official data or prediction file, from its name; None if unknown."""
    stem = Path(path).stem
    return OFFICIAL_FILES.get(stem) or PREDICTION_FILES.get(stem.replace("_", "-"))


def normalise_level(level: Any) -> str:
    """A ``level`` value as LEVEL_SPLITS keys it: lower case, stripped, ``ds-``/``ds_`` dropped."""
    text = str(level).strip().lower()
    return text[3:] if text[:3] in ("ds-", "ds_") else text


def level_split(level: Any, levels: dict[str, str]) -> str | None:
    """The split a record's ``level`` belongs to under ``levels`` (exact value first, then
    the normalised one), or None if it names none."""
    return levels.get(str(level)) or {normalise_level(k): v for k, v in levels.items()}.get(normalise_level(level))


def parse_levels(text: str | None, task_name: str = "counting") -> dict[str, str] | None:
    """``"D=test-ood-d,M=test-ood-m"`` -> ``{"D": "test-ood-d", "M": "test-ood-m"}``, checked; None if empty."""
    if not text:
        return None
    task = get_task(task_name)
    levels = {}
    for item in text.split(","):
        level, sep, split = item.partition("=")
        if not sep or not level.strip() or not split.strip():
            raise UserError(f"--levels {text!r}: expected LEVEL=SPLIT[,LEVEL=SPLIT...], e.g. D=test-ood-d,M=test-ood-m")
        levels[level.strip()] = task.check_split(split.strip())
    return levels


def parse_mapping(items: list[str] | None) -> dict[str, tuple[str, str] | None]:
    """``["NAME=TASK/SPLIT", "NAME=-"]`` -> ``{NAME: (task, split) or None (ignore)}``, checked."""
    mapping: dict[str, tuple[str, str] | None] = {}
    for item in items or []:
        name, sep, target = item.partition("=")
        name = name.strip().removesuffix(".json")
        if not sep or not name or not target:
            raise UserError(f"--map {item!r}: expected NAME=TASK/SPLIT (or NAME=- to ignore a file)")
        if target.strip() == "-":
            mapping[name] = None
            continue
        task_name, slash, split = target.strip().partition("/")
        if not slash:
            raise UserError(f"--map {item!r}: expected NAME=TASK/SPLIT, e.g. {name}=counting/train")
        mapping[name] = (get_task(task_name).name, get_task(task_name).check_split(split))
    return mapping


# --------------------------------------------------------------------------- import


@dataclass
class ImportReport:
    """What an import wrote: record counts per ``task/split``, and what it left out."""

    out: Path
    counts: dict[str, int] = field(default_factory=dict)
    skipped: int = 0
    first_skipped: str = ""
    ignored_files: list[str] = field(default_factory=list)
    missing_files: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"{key}: {n} records" for key, n in sorted(self.counts.items())]
        if self.skipped:
            out.append(f"skipped {self.skipped} bad record(s); the first: {self.first_skipped}")
        if self.ignored_files:
            out.append(f"ignored (not in the file table; use --map NAME=TASK/SPLIT): {', '.join(self.ignored_files)}")
        if self.missing_files:
            out.append(f"not found (not imported): {', '.join(self.missing_files)}")
        return out


def import_official(
    source: str | os.PathLike,
    out: str | os.PathLike,
    *,
    skip_bad: bool = False,
    stage1: int = STAGE1_SIZE,
    mapping: dict[str, tuple[str, str] | None] | None = None,
    levels: dict[str, str] | None = None,
    progress: bool = True,
) -> ImportReport:
    """Import the official dataset at ``source`` into ``out`` (see the module docstring).
    ``levels`` replaces LEVEL_SPLITS' {level: split} for the Super-CLEVR file."""
    source, out = Path(source), Path(out)
    if stage1 < 1:
        raise UserError(f"the stage-1 size must be >= 1, got {stage1}")
    if not source.is_dir():
        raise UserError(f"{source}: dataset directory not found")
    table = {**OFFICIAL_FILES, **(mapping or {})}
    files = sorted(p for d in JSON_DIRS if (source / d).is_dir() for p in (source / d).glob("*.json"))
    report = ImportReport(out)
    report.ignored_files = [p.name for p in files if table.get(p.stem) is None]
    chosen = [(p, table[p.stem]) for p in files if table.get(p.stem) is not None]
    present = {p.stem for p, _ in chosen}
    report.missing_files = [f"{name}.json" for name, target in OFFICIAL_FILES.items() if target and table.get(name) and name not in present]
    if not chosen:
        raise UserError(f"{source}: no known data file in {' or '.join(JSON_DIRS)}/ (expected e.g. {next(iter(OFFICIAL_FILES))}.json; map other names with --map NAME=TASK/SPLIT)")

    # read and validate everything first: a bad record stops the import before any write
    grouped: dict[tuple[str, str], list[data.Record]] = {}
    sources: dict[tuple[str, str], list[str]] = {}
    read = [(path, target, _read_official_file(path, source, target[0], skip_bad, report, progress)) for path, target in chosen]
    for path, target, records in read:  # then split Super-CLEVR by level (LEVEL_SPLITS)
        by_level = path.stem in LEVEL_SPLITS and path.stem not in (mapping or {})
        for split, part in (_split_by_level(path, records, levels or LEVEL_SPLITS[path.stem]) if by_level else {target[1]: records}).items():
            grouped.setdefault((target[0], split), []).extend(part)
            sources.setdefault((target[0], split), []).append(path.name)

    # derive the Reason-RFT stage splits from each training set
    datasets: dict[tuple[str, str], list[data.Record]] = {}
    for (task, split), records in grouped.items():
        datasets[(task, split)] = records
        if split == get_task(task).train_split:
            datasets[(task, "stage1")] = records[:stage1]
            datasets[(task, "stage2")] = records if task in STAGE2_TAKES_ALL else records[stage1:]

    with atomic_dir(out) as tmp:
        linker = _Linker()
        for (task, split), records in sorted(datasets.items()):
            if not records:
                continue
            origin = sources.get((task, split)) or sources[(task, get_task(task).train_split)]
            _write_records(tmp / task / split, records, source, linker, {"task": task, "split": split, "source": origin, "official": True, "stage1_size": stage1})
            report.counts[f"{task}/{split}"] = len(records)
        atomic_write_json(tmp / "import.json", {"source": str(source), "stage1_size": stage1, "counts": report.counts, "skipped": report.skipped, "ignored_files": report.ignored_files, "missing_files": report.missing_files})
    return report


def _split_by_level(path: Path, records: list[data.Record], levels: dict[str, str]) -> dict[str, list[data.Record]]:
    """Records of one file by the split their ``level`` names; one line naming every level of
    the file (and how many records have it) when a record has none or an unmapped one."""
    parts: dict[str, list[data.Record]] = {}
    unknown = []
    for rec in records:
        split = level_split(rec.meta["level"], levels) if "level" in rec.meta else None
        if split is None:
            unknown.append(rec)
        else:
            parts.setdefault(split, []).append(rec)
    if unknown:
        counts: dict[str, int] = {}
        for rec in records:
            key = repr(rec.meta["level"]) if "level" in rec.meta else "(no level)"
            counts[key] = counts.get(key, 0) + 1
        found = ", ".join(f"{k} ({n})" for k, n in counts.items())
        raise UserError(f"{path}: record id {unknown[0].id!r}: level {unknown[0].meta.get('level', '(none)')!r} names no split; the file's levels: {found}; map them with --levels LEVEL=SPLIT,... (e.g. D=test-ood-d,M=test-ood-m)")
    return parts


def _read_official_file(path: Path, root: Path, task: str, skip_bad: bool, report: ImportReport, progress: bool) -> list[data.Record]:
    rows = data.read_json_list(path)
    is_test = path.parent.name == "test_jsons"
    indices: Any = range(len(rows))
    if progress:
        from tqdm import tqdm

        indices = tqdm(indices, desc=f"import {path.stem}", unit="record", mininterval=1.0, disable=None)  # None: off when not a terminal
    records = []
    for i in indices:
        row = rows[i]
        try:
            if is_test and isinstance(row, dict) and "id" not in row:  # test files may carry no id
                row = {**row, "id": f"{path.stem}-{i:06d}"}
            records.append(_official_record(row, i, path, root, task))
        except UserError as e:
            if not skip_bad:
                raise
            report.skipped += 1
            report.first_skipped = report.first_skipped or str(e)
    return records


def _official_record(row: Any, index: int, path: Path, root: Path, task: str) -> data.Record:
    record = data.parse_record(row, index, path, root, check_images=False)
    images = row["image"] if isinstance(row["image"], list) else [row["image"]]
    record.images = [_find_image(p, root, f"{path}: record {index} (id {row['id']!r})") for p in images]
    record.answer = extract_answer(record.answer)  # a few files wrap it as <answer>...</answer>
    record.task = task
    record.meta = {k: v for k, v in row.items() if k not in _CORE_FIELDS}  # e.g. level, type
    return record


def _find_image(rel: str, root: Path, where: str) -> str:
    """The image file a record names: ``rel`` under DIR/images, DIR/images/{train,test}_images or DIR."""
    candidates = [Path(rel)] if os.path.isabs(rel) else [root / "images" / rel, root / "images" / "train_images" / rel, root / "images" / "test_images" / rel, root / rel]
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate)
    raise UserError(f"{where}: image not found: {rel} (looked under {root / 'images'} and {root})")


class _Linker:
    """Puts a file at a destination by hard link (no extra space), else by copy."""

    def __init__(self) -> None:
        self.hardlinks = True

    def place(self, src: str, dst: Path) -> None:
        if dst.exists():
            return
        dst.parent.mkdir(parents=True, exist_ok=True)
        if self.hardlinks:
            try:
                os.link(src, dst)
                return
            except OSError:
                self.hardlinks = False
        shutil.copyfile(src, dst)


def _image_key(path: str, *roots: Path) -> str:
    """A relative path for an image file: its path under the first root that holds it."""
    for root in roots:
        try:
            rel = Path(os.path.abspath(path)).relative_to(os.path.abspath(root))
        except ValueError:
            continue
        return rel.as_posix()
    return f"external/{Path(path).name}"


def _write_records(directory: Path, records: list[data.Record], root: Path, linker: _Linker, info: dict) -> None:
    rows = []
    for rec in records:
        paths = []
        for img in rec.images:
            rel = "images/" + _image_key(img, root / "images", root)
            linker.place(img, directory / rel)
            paths.append(rel)
        row = {"id": rec.id, "image": paths[0] if len(paths) == 1 else paths, "problem": rec.problem, "cot": rec.cot or "", "answer": rec.answer, "task": rec.task}
        if rec.meta:
            row["meta"] = rec.meta
        rows.append(row)
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_json(directory / data.DATA_FILE, rows)
    atomic_write_json(directory / data.INFO_FILE, {"count": len(rows), **info})


# --------------------------------------------------------------------------- export


def export_dataset(data_dir: str | os.PathLike, out: str | os.PathLike, task_name: str = "", name: str = "") -> dict[str, Any]:
    """Write dataset directory ``data_dir`` in the official formats, under ``out``::

        OUT/images/...                     the images (hard links or copies)
        OUT/train_jsons/NAME.json          Meta-JSON {id, image, problem, cot, answer}
                                           (test_jsons/ for a test split), importable again
        OUT/NAME-ans-sft.json              ShareGPT {id, image, images, messages}: bare answer
        OUT/NAME-cot-sft.json              ShareGPT: <think>/<answer> target (records with a CoT)
        OUT/NAME-rl.json                   RL {id, image, problem, solution} (+ answer: structure)
        OUT/dataset_info.json              LLaMA-Factory entries for the two ShareGPT files

    ``image`` paths are relative to ``OUT/images`` (a list of two for before/after tasks). The
    user turn is ``"<image>" * n_images + prompt`` (the images first, as in our training), where
    the prompt is the task's ANS-SFT or CoT prompt around the problem; ``images`` repeats the
    paths as a list, the column LLaMA-Factory reads. NAME defaults to ``TASK-SPLIT``.
    """
    data_dir, out = Path(data_dir), Path(out)
    records = data.load_dataset(data_dir)
    info = _read_info(data_dir)
    task = get_task(task_name or info.get("task") or (records[0].task if records else "") or _missing_task(data_dir))
    split = str(info.get("split") or "train")
    name = name or f"{task.name}-{split}"
    if not re.fullmatch(r"[\w.+-]+", name):
        raise UserError(f"export name {name!r}: use letters, digits, '.', '_', '+' or '-'")
    base = data_dir if data_dir.is_dir() else data_dir.parent
    has_cot = all(rec.cot for rec in records)
    written: dict[str, Any] = {"out": str(out), "count": len(records), "files": []}
    with atomic_dir(out) as tmp:
        linker = _Linker()
        meta, ans, cot, rl = [], [], [], []
        for rec in records:
            keys = []
            for img in rec.images:
                key = _image_key(img, base / "images", base)
                linker.place(img, tmp / "images" / key)
                keys.append(key)
            image = keys[0] if len(keys) == 1 else keys
            meta.append({"id": rec.id, "image": image, "problem": rec.problem, "cot": rec.cot or "", "answer": rec.answer})
            tokens = "<image>" * len(keys)
            ans.append(_sharegpt(rec.id, image, keys, tokens + task.build_prompt(data.prompt_problem(rec, "answer"), rec.answer, "answer"), rec.answer))
            if has_cot:
                cot.append(_sharegpt(rec.id, image, keys, tokens + task.build_prompt(rec.problem, rec.answer, "cot"), data.sft_target(rec, "cot")))
            row = {"id": rec.id, "image": image, "problem": rec.problem, "solution": rec.answer}
            if task.name == "structure":  # picks the choice / non-choice prompt in the reference RL code
                row["answer"] = rec.answer
            rl.append(row)
        meta_dir = "test_jsons" if split.startswith("test") else "train_jsons"
        files = {f"{meta_dir}/{name}.json": meta, f"{name}-ans-sft.json": ans, f"{name}-rl.json": rl}
        if has_cot:
            files[f"{name}-cot-sft.json"] = cot
        for rel, rows in files.items():
            atomic_write_json(tmp / rel, rows)
        sharegpt = {"formatting": "sharegpt", "columns": {"messages": "messages", "images": "images"}, "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}}
        atomic_write_json(tmp / "dataset_info.json", {f"{name}-{kind}": {"file_name": f"{name}-{kind}.json", **sharegpt} for kind in (["ans-sft", "cot-sft"] if has_cot else ["ans-sft"])})
        written["files"] = sorted(files)
        written["meta"] = f"{meta_dir}/{name}.json"
        written["cot_sft"] = has_cot
        written["import_map"] = f"{name}={task.name}/{split if split in task.splits else task.train_split}"
    return written


def _sharegpt(record_id: str, image: Any, images: list[str], user: str, assistant: str) -> dict:
    return {"id": record_id, "image": image, "images": images, "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]}


def _read_info(data_dir: Path) -> dict:
    path = (data_dir if data_dir.is_dir() else data_dir.parent) / data.INFO_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def _missing_task(data_dir: Path) -> str:
    raise UserError(f"{data_dir}: the records name no task; pass --task")
