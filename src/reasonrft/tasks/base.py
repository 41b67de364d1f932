"""The contract every task family follows, and the registry that holds them.

A task family is a module with the same anatomy each time (see ``counting.py``):

    Config dataclass  -> sample a symbolic scene  -> render it to image(s)
                      -> sample a question program -> execute it on the scene -> answer, CoT

Everything the model must learn comes from the symbolic scene and the question program,
never from pixels: images are only a rendering of the scene. Item ``idx`` of
``(task, split, seed)`` is generated from its own RNG, keyed by all four, so any item can be
rebuilt alone and two splits (or two seeds) never share a random stream.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from PIL import Image

from reasonrft.errors import UserError

PROMPT_STYLES = ("cot", "answer", "zero-shot")
"""How a question is put to the model: ``cot`` asks for <think>/<answer> (CoT-SFT and RL),
``answer`` is the bare question (ANS-SFT), ``zero-shot`` asks for the bare answer."""

QUESTION_FIRST = "question_first"
"""``meta["layout"]`` of a sample whose prompt puts its text before its images (a pretraining
option; every task and every prompt elsewhere puts the images first, as TRL and the paper do)."""


@dataclass(frozen=True)
class Sample:
    """One generated problem, in the fields of the official meta format plus metadata.

    ``images`` holds one image (two for before/after tasks). ``meta`` holds what the
    generator knows and the text does not say (program length, scene signature, ...); it
    must be JSON-serialisable. ``meta["scene_key"]`` identifies the scene (split disjointness).
    """

    id: str
    images: tuple[Image.Image, ...]
    problem: str
    cot: str
    answer: str
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Task:
    """A task family, assembled from pure functions (composition, not a class hierarchy).

    Fields:
        name: registry name (``counting``, ``structure``, ``transformation``).
        splits: split names; the first is the training split, the rest are test splits,
            in-domain first.
        config_cls: the family's config dataclass; its ``__post_init__`` validates and
            raises ``ValueError``.
        generate: ``(config, split, rng, sample_id) -> Sample``; pure given the RNG.
        prompt: ``(problem, answer, style) -> str``: the user text for a prompt style.
            ``answer`` is passed because some families pick a prompt variant from it.
        accuracy_reward: name in ``reasonrft.rewards.REWARDS`` used by GRPO by default.
        score: ``(completion, answer) -> float`` in [0, 1]: the evaluation scorer.
        groups: ``(answer) -> tuple[str, ...]``: breakdown keys for the evaluation summary
            (e.g. ``choice`` / ``non-choice``, ``L1`` .. ``L4``); empty for none.
        num_images: images per problem (1, or 2 for before/after); for a family that mixes
            kinds (``perception``), the most a problem has.
        corpus: ``() -> list[str]``: extra text the tokenizer should know (value lists,
            rule text) beyond what generated samples contain.
        pretraining: True for a family that only feeds the base model's pretraining
            (``perception``): ``task_names()`` leaves it out of the reasoning tasks.
        partial_credit: True when ``score`` gives partial credit (transformation): the best
            constant answer is then not the most frequent one, and ``compare`` reports both.
    """

    name: str
    splits: tuple[str, ...]
    config_cls: type
    generate: Callable[[Any, str, random.Random, str], Sample]
    prompt: Callable[[str, str, str], str]
    accuracy_reward: str
    score: Callable[[str, str], float]
    groups: Callable[[str], tuple[str, ...]] = lambda answer: ()
    num_images: int = 1
    corpus: Callable[[], list[str]] = lambda: []
    pretraining: bool = False
    partial_credit: bool = False

    @property
    def train_split(self) -> str:
        return self.splits[0]

    @property
    def test_splits(self) -> tuple[str, ...]:
        return self.splits[1:]

    def check_split(self, split: str) -> str:
        if split not in self.splits:
            raise UserError(f"unknown split {split!r} for task {self.name!r}; choose from {', '.join(self.splits)}")
        return split

    def sample(self, split: str, idx: int, seed: int = 0, config: Any = None) -> Sample:
        """Item ``idx`` of ``(split, seed)``: the same bytes every time, whatever was generated before."""
        self.check_split(split)
        if idx < 0 or seed < 0:
            raise UserError(f"idx and seed must be >= 0 (got idx={idx}, seed={seed})")
        config = config if config is not None else self.config_cls()
        sample_id = f"{self.name}-{split}-s{seed}-{idx:06d}"
        return self.generate(config, split, item_rng(self.name, split, seed, idx), sample_id)

    def build_prompt(self, problem: str, answer: str, style: str) -> str:
        if style not in PROMPT_STYLES:
            raise UserError(f"unknown prompt style {style!r}; choose from {', '.join(PROMPT_STYLES)}")
        return self.prompt(problem, answer, style)


def item_rng(task: str, split: str, seed: int, idx: int) -> random.Random:
    """An RNG keyed by (task, split, seed, idx) through a hash, so streams never overlap
    (unlike ``seed + idx``, where item 1 of seed 0 is item 0 of seed 1)."""
    key = f"{task}\x1f{split}\x1f{seed}\x1f{idx}".encode()
    return random.Random(int.from_bytes(hashlib.blake2b(key, digest_size=16).digest(), "big"))


TASKS: dict[str, Task] = {}


def register(task: Task) -> Task:
    if task.name in TASKS:
        raise ValueError(f"task {task.name!r} registered twice")
    TASKS[task.name] = task
    return task


def get_task(name: str) -> Task:
    from reasonrft import tasks as _  # noqa: F401  (importing the package registers every family)

    if name not in TASKS:
        raise UserError(f"unknown task {name!r}; choose from {', '.join(sorted(TASKS))}")
    return TASKS[name]


def task_names(include_pretraining: bool = False) -> list[str]:
    """The registered reasoning tasks; with ``include_pretraining``, the pretraining families too."""
    from reasonrft import tasks as _  # noqa: F401

    return sorted(name for name, task in TASKS.items() if include_pretraining or not task.pretraining)
