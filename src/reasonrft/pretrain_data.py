"""Generic perception data for pretraining the nano base model (the Qwen2-VL-Instruct role).

The samples come from the ``perception`` task family (``reasonrft.tasks.perception``): scene
descriptions, attribute and count questions about counting-style scenes, point labels,
numbers and shapes of geometry diagrams, and descriptions of transformation-style image
pairs; never the three tasks' own question types. Item ``idx`` of ``(split, seed)`` comes
from ``item_rng("perception", split, seed, idx)``, so any item can be rebuilt alone.

``pretrain_records(n, seed)`` gives the training mix as ``data.Record`` objects (PIL images,
``problem`` the instruction, ``answer`` the whole target for answer-only SFT: the bare answer,
or for the format items the ``<think>``/``<answer>``-tagged text; no CoT); ``corpus()`` gives
text for the tokenizer (``modeling.training_corpus`` picks it up).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Iterator

from reasonrft.data import Record, sft_target
from reasonrft.tasks import get_task
from reasonrft.tasks.base import Sample
from reasonrft.tasks.perception import PerceptionConfig

TASK_NAME = "perception"
CORPUS_SAMPLES = 300


def pretrain_records(n: int, seed: int = 0, split: str = "train", offset: int = 0, perception_config: PerceptionConfig | None = None) -> list[Record]:
    """Items ``offset .. offset+n-1`` of the perception mix (kinds drawn with ``PerceptionConfig.kind_weights``;
    ``perception_config``: another mix, default the family's own)."""
    return list(iter_pretrain_records(n, seed, split, offset, perception_config))


def iter_pretrain_records(n: int, seed: int = 0, split: str = "train", offset: int = 0, perception_config: PerceptionConfig | None = None) -> Iterator[Record]:
    """The same records one at a time (20,000 in memory as PIL images would take gigabytes)."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    task = get_task(TASK_NAME)
    for idx in range(offset, offset + n):
        sample = task.sample(split, idx, seed, perception_config)
        yield Record(sample.id, list(sample.images), sample.problem, target(sample), None, TASK_NAME, dict(sample.meta))


def target(item: Sample | Record) -> str:
    """What the base learns to say: the answer, tagged with the thought for format items (the
    reading set's samples and the text phase's records alike)."""
    if item.meta.get("format"):
        return sft_target(Record(item.id, [], item.problem, item.answer, item.cot), "cot")
    return item.answer


def corpus() -> list[str]:
    """Instructions and targets of a few hundred training samples, plus the family's fixed text."""
    return list(_corpus())


@lru_cache(maxsize=1)
def _corpus() -> tuple[str, ...]:
    task = get_task(TASK_NAME)
    texts = list(task.corpus())
    for idx in range(CORPUS_SAMPLES):
        sample = task.sample("train", idx, seed=10_000)  # another stream than the training data's seeds
        texts += [sample.problem, sample.answer]
    return tuple(texts)
