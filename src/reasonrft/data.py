"""Dataset files in the official Reason-RFT meta format, and their conversion to TRL rows.

A dataset directory holds ``data.json`` (a list of records ``{id, image, problem, cot,
answer}`` as in the published Reason-RFT-CoT-Dataset, plus ``task`` and ``meta``), the
images under ``images/`` with ``image`` paths relative to the directory (a list of two paths
for before/after tasks), and ``info.json`` (what generated it).

Every stage reads datasets through ``load_dataset``, which validates each record and names
the file and record of the first problem it finds.
"""

from __future__ import annotations

import functools
import json
import multiprocessing
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from PIL import Image

from reasonrft import png
from reasonrft.errors import UserError
from reasonrft.image_check import BadImage, check_image
from reasonrft.io import atomic_dir, atomic_write_json
from reasonrft.tasks import Sample, Task, get_task
from reasonrft.tasks.base import QUESTION_FIRST

DATA_FILE = "data.json"
INFO_FILE = "info.json"


@dataclass
class Record:
    """One problem: images as paths (from files) or PIL images (generated in memory)."""

    id: str
    images: list[Any]
    problem: str
    answer: str
    cot: str | None = None
    task: str | None = None
    meta: dict = field(default_factory=dict)

    @classmethod
    def from_sample(cls, task: str, sample: Sample) -> "Record":
        return cls(sample.id, list(sample.images), sample.problem, sample.answer, sample.cot, task, dict(sample.meta))

    def open_images(self) -> list[Image.Image]:
        return [img if isinstance(img, Image.Image) else _open_image(img) for img in self.images]


def _open_image(path: str | os.PathLike) -> Image.Image:
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except FileNotFoundError:
        raise UserError(f"{path}: image not found") from None
    except OSError as e:
        raise UserError(f"{path}: not a readable image ({e})") from None


# --------------------------------------------------------------------------- generate / write


def generate_records(task: Task, split: str, n: int, seed: int = 0, offset: int = 0, progress: bool = False) -> list[Record]:
    """Items ``offset .. offset+n-1`` of ``(task, split, seed)``, in memory."""
    return list(iter_records(task, split, n, seed, offset, progress))


def iter_records(task: Task, split: str, n: int, seed: int = 0, offset: int = 0, progress: bool = False) -> Iterator[Record]:
    """The same records one at a time (arguments checked now), for ``write_dataset`` to save
    each as it comes: memory stays flat however large ``n`` is (2,000 counting images held
    at once took 350 MB)."""
    if n < 0:
        raise UserError(f"the number of samples must be >= 0, got {n}")
    task.check_split(split)
    indices = range(offset, offset + n)
    if progress:
        from tqdm import tqdm

        indices = tqdm(indices, desc=f"{task.name}/{split}", unit="sample")
    return (Record.from_sample(task.name, task.sample(split, i, seed)) for i in indices)


def write_dataset(out: str | os.PathLike, records: Iterable[Record], info: dict | None = None) -> Path:
    """Write records (PIL images are saved as PNG) to ``out``, atomically."""
    out = Path(out)
    with atomic_dir(out) as tmp:
        (tmp / "images").mkdir()
        rows = _write_records(tmp, records)
        atomic_write_json(tmp / DATA_FILE, rows)
        atomic_write_json(tmp / INFO_FILE, {"count": len(rows), **(info or {})})
    return out


def write_dataset_in_chunks(out: str | os.PathLike, chunk_records: Callable[[int], Iterable[Record]], n_chunks: int, info: dict | None = None, workers: int = 0) -> Path:
    """``write_dataset`` of the records of chunks ``0 .. n_chunks - 1``, in that order, each
    chunk made and its images saved by one of ``workers`` processes (0: here): the same
    dataset, ``workers`` times faster. ``chunk_records`` must pickle (a module-level function
    or a ``functools.partial`` of one)."""
    out = Path(out)
    with atomic_dir(out) as tmp:
        (tmp / "images").mkdir()
        write_chunk = functools.partial(_write_chunk, tmp, chunk_records)
        if workers:
            with multiprocessing.Pool(workers) as pool:
                chunks = list(pool.imap(write_chunk, range(n_chunks)))
        else:
            chunks = [write_chunk(k) for k in range(n_chunks)]
        rows = [row for chunk in chunks for row in chunk]
        atomic_write_json(tmp / DATA_FILE, rows)
        atomic_write_json(tmp / INFO_FILE, {"count": len(rows), **(info or {})})
    return out


def _write_chunk(tmp: Path, chunk_records: Callable[[int], Iterable[Record]], k: int) -> list[dict]:
    return _write_records(tmp, chunk_records(k))


def _write_records(tmp: Path, records: Iterable[Record]) -> list[dict]:
    """Save each record's images under ``tmp/images``; its ``data.json`` rows."""
    rows = []
    for rec in records:
        paths = []
        for k, img in enumerate(rec.images):
            rel = f"images/{rec.id}.png" if len(rec.images) == 1 else f"images/{rec.id}_{k}.png"
            if isinstance(img, Image.Image):
                png.save(img, tmp / rel)  # Pillow's pixels, twice as fast (png.py)
            else:
                shutil.copyfile(img, tmp / rel)
            paths.append(rel)
        row = {"id": rec.id, "image": paths[0] if len(paths) == 1 else paths, "problem": rec.problem, "cot": rec.cot or "", "answer": rec.answer}
        if rec.task:
            row["task"] = rec.task
        if rec.meta:
            row["meta"] = rec.meta
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- load / validate

_REQUIRED = {"id": (str, int), "image": (str, list), "problem": (str,)}


def load_dataset(directory: str | os.PathLike, check_images: bool = True, task: str | None = None) -> list[Record]:
    """Read and validate ``directory/data.json``; image paths become absolute.

    Every check runs here, before a stage loads a model or trains a step, so that bad data
    stops a run at once with one line naming the file, the record and the image, rather than
    a traceback mid-run: the fields and their types (the answer must be a string), the number
    of images a record's task takes (the record's ``task``, else ``task``, the stage's), and,
    with ``check_images``, that every image exists and decodes in full
    (``image_check.check_image``, about 0.3 ms per 224 px PNG)."""
    directory = Path(directory)
    path = directory / DATA_FILE if directory.is_dir() else directory
    base = path.parent
    if not path.is_file():
        raise UserError(f"{path}: dataset file not found (expected a directory with {DATA_FILE})")
    records = []
    for i, row in enumerate(read_json_list(path)):
        record = parse_record(row, i, path, base, check_images=False, string_answer=True)
        where = f"{path}: record {i} (id {record.id!r})"
        _check_image_count(record, record.task or task, where)
        if check_images:
            for image in record.images:
                try:
                    check_image(image)
                except BadImage as e:
                    raise UserError(f"{where}: image {image}: {e}") from None
        records.append(record)
    return records


def _check_image_count(record: Record, task_name: str | None, where: str) -> None:
    """One image per problem, two for before/after tasks; a family that mixes kinds
    (pretraining's ``perception``) takes from one up to its ``num_images``."""
    if not task_name:
        return
    try:
        task = get_task(task_name)
    except UserError as e:
        raise UserError(f"{where}: {e}") from None
    n = len(record.images)
    if n != task.num_images and not (task.pretraining and 1 <= n <= task.num_images):
        raise UserError(f"{where}: {n} image(s), but task {task.name!r} takes {task.num_images}")


def read_json_list(path: Path) -> list:
    """A JSON file holding a list (of records), or one ``UserError`` line naming the problem."""
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    if not isinstance(rows, list):
        raise UserError(f"{path}: expected a JSON list of records, got {type(rows).__name__}")
    return rows


def parse_record(row: Any, index: int, path: Path, base: Path, check_images: bool = True, string_answer: bool = False) -> Record:
    """Validate one official-format record; ``answer`` may also come as ``solution``. The
    published files may hold numeric answers (``string_answer=False``, the importer's case:
    they become strings); a dataset directory holds strings only (``load_dataset``)."""
    where = f"{path}: record {index}"
    if not isinstance(row, dict):
        raise UserError(f"{where}: expected an object, got {type(row).__name__}")
    if "id" in row:
        where += f" (id {row['id']!r})"
    for key, types in _REQUIRED.items():
        if key not in row:
            raise UserError(f"{where}: missing field {key!r}")
        if not isinstance(row[key], types):
            raise UserError(f"{where}: field {key!r} must be {' or '.join(t.__name__ for t in types)}, got {type(row[key]).__name__}")
    answer = row.get("answer", row.get("solution"))
    if answer is None:
        raise UserError(f"{where}: missing field 'answer' (or 'solution')")
    if string_answer and not isinstance(answer, str):
        raise UserError(f"{where}: field 'answer' must be a string, got {type(answer).__name__}")
    if not isinstance(answer, (str, int, float)):
        raise UserError(f"{where}: field 'answer' must be a string or a number, got {type(answer).__name__}")
    images = row["image"] if isinstance(row["image"], list) else [row["image"]]
    if not images or not all(isinstance(p, str) for p in images):
        raise UserError(f"{where}: field 'image' must be a path or a non-empty list of paths")
    resolved = [str((base / p).resolve()) if not os.path.isabs(p) else p for p in images]
    if check_images:
        for p in resolved:
            if not os.path.isfile(p):
                raise UserError(f"{where}: image not found: {p}")
    cot = row.get("cot")
    if cot is not None and not isinstance(cot, str):
        raise UserError(f"{where}: field 'cot' must be a string, got {type(cot).__name__}")
    return Record(str(row["id"]), resolved, row["problem"], str(answer), cot, row.get("task"), row.get("meta") or {})


# --------------------------------------------------------------------------- TRL rows


def sft_target(record: Record, paradigm: str) -> str:
    """The assistant text: ``<think>/<answer>``-tagged CoT (``cot``) or the bare answer (``answer``)."""
    if paradigm == "answer":
        return record.answer
    if not record.cot:
        raise UserError(f"record {record.id!r}: CoT-SFT needs a non-empty 'cot' field")
    return f"<think>\n{record.cot}\n</think>\n<answer>\n{record.answer}\n</answer>"


def prompt_problem(record: Record, style: str) -> str:
    """The problem text a prompt style asks: for the bare styles (``answer``, ``zero-shot``)
    the record's ``problem_no_prompt`` when it carries one (the published GeoMath records hold
    the problem with and without the dataset's own instruction; the reference evaluator asks
    the bare one there), else ``problem``. The importer keeps that field in ``meta``."""
    bare = record.meta.get("problem_no_prompt") if style != "cot" else None
    return bare if isinstance(bare, str) and bare.strip() else record.problem


def user_content(task: Task, record: Record, style: str) -> list[dict]:
    """The user turn's parts: every image first, then the prompt text, the layout TRL builds
    and the paper's; or the text first where ``record.meta["layout"]`` is ``QUESTION_FIRST``
    (a pretraining option: there every image token can read the question)."""
    images: list[dict] = [{"type": "image"} for _ in record.images]
    text = [{"type": "text", "text": task.build_prompt(prompt_problem(record, style), record.answer, style)}]
    return text + images if record.meta.get("layout") == QUESTION_FIRST else images + text


def user_message_with_images(task: Task, record: Record, style: str) -> dict:
    """The user turn for generation, laid out as ``user_content`` lays out training rows (so
    evaluation prompts match training prompts token for token)."""
    return {"role": "user", "content": user_content(task, record, style)}


def sft_rows(task: Task, records: list[Record], paradigm: str) -> list[dict]:
    """Rows for TRL's SFTTrainer in prompt-completion form, so the loss covers only the
    assistant turn. The user turn's parts come from ``user_content``, with image placeholders
    that TRL fills from the ``images`` column in order."""
    style = "cot" if paradigm == "cot" else "answer"
    return [
        {
            "images": rec.images,
            "prompt": [{"role": "user", "content": user_content(task, rec, style)}],
            "completion": [{"role": "assistant", "content": sft_target(rec, paradigm)}],
        }
        for rec in records
    ]


def grpo_rows(task: Task, records: list[Record]) -> list[dict]:
    """Rows for TRL's GRPOTrainer: the prompt, the images, and the ``solution`` column that
    the accuracy rewards read (plus ``problem_id`` for logging)."""
    return [
        {
            "prompt": [{"role": "user", "content": task.build_prompt(rec.problem, rec.answer, "cot")}],
            "images": rec.images,
            "solution": rec.answer,
            "problem_id": rec.id,
        }
        for rec in records
    ]


def to_hf_dataset(rows: list[dict]):
    """A ``datasets.Dataset`` whose ``images`` column decodes lazily from paths (or holds PIL)."""
    import datasets

    ds = datasets.Dataset.from_list(rows)
    if rows and isinstance(rows[0]["images"][0], str):
        ds = ds.cast_column("images", datasets.Sequence(datasets.Image()))
    return ds


def resolve_training_data(task_name: str, data: str, n_train: int, seed: int, offset: int, limit: int, scratch: Path) -> tuple[Task, list[Record]]:
    """The training records of a stage: from ``data`` (a dataset directory) when given, else
    generated (``n_train`` items of the task's training split, written under ``scratch``)."""
    task = get_task(task_name)
    if data:
        records = load_dataset(data, task=task.name)
    else:
        out = scratch / f"{task.name}-{task.train_split}-s{seed}-n{n_train}"
        if not (out / DATA_FILE).is_file():
            write_dataset(out, iter_records(task, task.train_split, n_train, seed, progress=True), {"task": task.name, "split": task.train_split, "seed": seed})
        records = load_dataset(out, task=task.name)
    if offset < 0 or limit < 0:
        raise UserError(f"data_offset and data_limit must be >= 0 (got {offset}, {limit})")
    records = records[offset : offset + limit if limit else None]
    if not records:
        raise UserError(f"no training records left after data_offset={offset}, data_limit={limit}")
    return task, records
