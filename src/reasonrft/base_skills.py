"""The base model's skills: held-out items per skill, and their exact-match accuracy.

One table for every place that measures the base: ``benchmarks/bench_base.py`` (the skills
benchmark, by hand) and the pretraining phases' held-out logs (``reasonrft.text_phase``).
Each skill's items come from the task families' own renderers at their own image size
(224 px), built by the perception family's generators on its ``test`` split, whose scenes
(and expressions, and phrases) are never in pretraining data. None is a task's own question
type (no add/subtract programs, no geometry to solve, no transformation program):

- ``count/test-id``, ``count/test-ood-d``: how many objects, 3-13; plain scenes, and
  test-ood-d-looking scenes (striped textures, new light and floor, cones), never trained on;
- ``count_filtered/1``, ``count_filtered/2``: objects matching one or two attribute values;
- ``attribute/color|shape|size|material``: of an object picked out by a phrase;
- ``diagram/labels``, ``diagram/numbers``: every point label / every number written on a
  structure diagram, the whole list exact;
- ``two_images``: both images of a transformation pair described, every object exact;
- ``arithmetic/sum_difference`` (up to 30), ``arithmetic/product_quotient_square_root``: each
  held-out fact once (91 and 46 of them), not as often as pretraining would draw it;
- ``copy``: a phrase of the question repeated exactly;
- ``format``: asked for the think/answer format (items of every kind), the completion has it.

The list-valued skills (diagram labels and numbers, two-image descriptions) also get partial
credit (``partial_scores``), since exact match on a list of 3-8 items hides what a model
reads: how many of the items it names (F1 over the multiset), whether it has the list's
length, and for the two images how many attribute words sit on the right object.
"""

from __future__ import annotations

import collections
import re

from reasonrft import rewards
from reasonrft.data import Record
from reasonrft.tasks import counting, get_task, perception
from reasonrft.tasks.base import Sample, item_rng

# skill -> (perception kind, generator options (a tuple: one drawn per item), max new tokens)
SKILLS: dict[str, tuple[str, dict, int]] = {
    "count/test-id": ("count", {"style": "plain"}, 16),
    "count/test-ood-d": ("count", {"style": "textured"}, 16),
    "count_filtered/1": ("count_filtered", {"n_attributes": 1}, 16),
    "count_filtered/2": ("count_filtered", {"n_attributes": 2}, 16),
    **{f"attribute/{q}": ("attribute", {"qtype": q}, 16) for q in ("color", "shape", "size", "material")},
    "diagram/labels": ("diagram", {"qtype": "labels"}, 48),
    "diagram/numbers": ("diagram", {"qtype": "numbers"}, 48),
    "two_images": ("two_images", {}, 128),
    "arithmetic/sum_difference": ("arithmetic", {"family": ("sum", "difference")}, 16),
    "arithmetic/product_quotient_square_root": ("arithmetic", {"family": ("product", "quotient", "square", "root")}, 16),
    "copy": ("copy", {}, 64),
    "format": ("", {}, 200),
}
CHANCE = {"attribute/color": 1 / len(counting.COLORS), "attribute/shape": 1 / len(counting.SHAPES), "attribute/size": 1 / len(counting.SIZES), "attribute/material": 1 / len(counting.MATERIALS)}
FORMAT_KINDS = ("count", "count_filtered", "attribute", "diagram", "arithmetic", "copy", "single", "describe")


def skills_of(kinds: tuple[str, ...]) -> list[str]:
    """The skills that measure the perception kinds ``kinds`` (the format skill aside)."""
    return [skill for skill, (kind, _, _) in SKILLS.items() if kind in kinds]


def skill_records(skill: str, n: int, seed: int = 0, question_first: bool = False) -> list[Record]:
    """``n`` held-out items of ``skill``; item ``i`` from its own RNG, so any one rebuilds alone
    (the arithmetic skills: each held-out fact once, ``fact_records``, so at most their number).
    ``question_first``: the same items, asked with the question before the image(s)."""
    kind, options, _ = SKILLS[skill]
    config = perception.PerceptionConfig(question_first_kinds=perception.KINDS if question_first else ())
    if kind == "arithmetic":
        return fact_records(skill, options["family"], n, seed, config)
    records = []
    for i in range(n):
        rng = item_rng(f"bench-base/{skill}", "test", seed, i)
        item_options = {k: rng.choice(v) if isinstance(v, tuple) else v for k, v in options.items()}
        item_kind = kind or rng.choice(FORMAT_KINDS)
        sample = perception.make_sample(config, item_kind, "test", rng, f"{skill}-{i}", ask_format=skill == "format", **item_options)
        records.append(as_record(sample))
    return records


def fact_records(skill: str, families: tuple[str, ...], n: int, seed: int, config: perception.PerceptionConfig) -> list[Record]:
    """An arithmetic skill's items: each held-out fact of its ``families`` once, at most ``n`` of
    them (the first ``n`` of a seeded shuffle; fewer when there are fewer facts). Drawn the way
    pretraining draws them, a few facts would carry the score: in 300 draws "29 + 1" came 26
    times, and the 300 items held 82 distinct sums and differences."""
    facts = [(family, fact) for family in families for fact in perception.arithmetic_facts(family)
             if perception.in_split(perception.scene_key("arithmetic", fact[0]), "test", config)]
    item_rng(f"bench-base/{skill}", "test", seed, 0).shuffle(facts)  # a smaller n takes a prefix
    return [as_record(perception.make_sample(config, "arithmetic", "test", None, f"{skill}-{i}", family=family, fact=fact))
            for i, (family, fact) in enumerate(facts[:n])]


def as_record(sample: Sample) -> Record:
    """A perception item as a record with its image(s) (the think text only where it was asked)."""
    return Record(sample.id, list(sample.images), sample.problem, sample.answer, sample.cot or None, "perception", dict(sample.meta))


def score(skill: str, prediction: str, record: Record) -> float:
    """1.0 for an exact answer (the format skill: for a completion in the think/answer format)."""
    if skill == "format":
        return rewards.format_score(prediction)
    return get_task("perception").score(prediction, record.answer)


LIST_SKILLS = ("diagram/labels", "diagram/numbers", "two_images")
_IMAGE_HEADER = re.compile(r"Image (\d+):")


def answer_lists(skill: str, text: str) -> list[list[str]]:
    """The items of a list answer, one list per image (diagrams: one list): ``"G, J, K"`` ->
    ``[["G", "J", "K"]]``; ``"Image 1: a, b. Image 2: c."`` -> ``[["a", "b"], ["c"]]``."""
    text = rewards.extract_answer(text)
    if skill != "two_images":
        return [[item.strip() for item in text.split(",") if item.strip()]]
    parts = _IMAGE_HEADER.split(text)  # [before, "1", first image's text, "2", second's, ...]
    lists: dict[int, list[str]] = {}
    for number, body in zip(parts[1::2], parts[2::2]):
        lists.setdefault(int(number), [item.strip(" .") for item in body.split(",") if item.strip(" .")])
    return [lists.get(k, []) for k in (1, 2)]


OBJECT_NAME_ORDER = ("size", "color", "material", "shape")  # the words of an object phrase (``perception.object_name``)


def partial_scores(skill: str, prediction: str, record: Record) -> dict[str, float]:
    """Partial credit on a list-valued skill, each in [0, 1] and 1.0 for the gold answer:
    ``item_f1`` (F1 of the predicted items against the gold's, as multisets; for two images an
    item is an object phrase of its image), ``length_right`` (every list has the gold's
    length) and, for two images, ``attributes_right`` (of the gold objects' attribute words,
    the share the predicted object at the same place in the same image has at the same place;
    and that share for each attribute alone, ``size_right`` .. ``shape_right``)."""
    gold, predicted = answer_lists(skill, record.answer), answer_lists(skill, prediction)
    gold_items = [(k, item) for k, items in enumerate(gold) for item in items]  # an item is tagged by its image
    predicted_items = [(k, item) for k, items in enumerate(predicted) for item in items]
    scores = {"item_f1": item_f1(gold_items, predicted_items), "length_right": float(all(len(g) == len(p) for g, p in zip(gold, predicted)))}
    if skill == "two_images":
        pairs = [(phrase.split(), guesses[i].split() if i < len(guesses) else []) for phrases, guesses in zip(gold, predicted) for i, phrase in enumerate(phrases)]
        total = sum(len(words) for words, _ in pairs)
        scores["attributes_right"] = sum(a == b for words, guess in pairs for a, b in zip(words, guess)) / total if total else 0.0
        for k, attribute in enumerate(OBJECT_NAME_ORDER):  # the same, one attribute at a time
            scores[f"{attribute}_right"] = sum(len(guess) > k and words[k] == guess[k] for words, guess in pairs) / len(pairs) if pairs else 0.0
    return scores


def item_f1(gold, predicted) -> float:
    """F1 of the ``predicted`` items against the ``gold`` ones, as multisets (0.0 if none match)."""
    gold, predicted = collections.Counter(gold), collections.Counter(predicted)
    matched = sum((gold & predicted).values())
    return 2 * matched / (sum(gold.values()) + sum(predicted.values())) if matched else 0.0


def measure(model, processor, model_dir: str, skill: str, n: int, batch_size: int = 16, question_first: bool = False) -> tuple[list[Record], list[str], list[float]]:
    """Greedy answers of ``model`` to ``n`` held-out items of ``skill`` (bare prompts), with
    their scores: ``(records, predictions, scores)``. ``model_dir`` is where it was loaded from."""
    records = skill_records(skill, n, question_first=question_first)
    predictions = greedy_answers(model, processor, model_dir, records, SKILLS[skill][2], batch_size)
    return records, predictions, [score(skill, p, r) for p, r in zip(predictions, records)]


def greedy_answers(model, processor, model_dir: str, records: list[Record], max_new_tokens: int, batch_size: int = 16) -> list[str]:
    """``model``'s greedy answers to perception ``records`` with bare prompts (no format asked
    beyond the question's own), on the model's device: how every base measure asks."""
    from reasonrft.config import build
    from reasonrft.stages import evaluate

    config = build(evaluate.EvalConfig, dict(model=model_dir, task="perception", prompt_style="answer", temperature=0.0, max_new_tokens=max_new_tokens, batch_size=batch_size, progress=False))
    return evaluate.generate(model, processor, get_task("perception"), records, config, model.device.type)
