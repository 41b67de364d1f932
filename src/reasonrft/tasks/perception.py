"""Generic perception (``perception``): the pretraining data of the nano base model.

The paper starts from Qwen2-VL-Instruct, a model that can already see: it names objects,
their colours and materials, reads labels off a diagram. This family plays that part for
the nano model. It draws scenes with the three task families' own renderers and asks
perception questions about them, never the tasks' own question types (no subtract/add
programs, no geometry to solve, no transformation programs). Five kinds, drawn with
``kind_weights`` (``single`` twice as often as each other kind by default):

- ``single``: one object alone; its colour, shape or material. The easy rung of the
  curriculum: a model trained from scratch learns to read pixels here first. In ``train``
  the image is a zoom: a square crop around the object, its side log-uniform between
  1.6 object widths and the whole image, resized back. Large objects teach the vision tower
  colour and shape at once; the whole-image end of the range is the real difficulty (measured
  from random weights, 300 steps of one-object questions: colour 84% on whole images with
  zooms, 10-13% without). ``test`` images are never zoomed.
- ``describe``: a counting-style scene of 2 to 5 objects, listed left to right with their
  attributes and coarse place (left / middle / right, back / front), after the total.
- ``attribute``: a counting-style scene of 3 to 10 objects; the colour, shape, material or
  size of an object named by a phrase that picks it out alone ("What color is the large
  metal cylinder?"), or, a minority, how many objects (of one attribute value) there are.
- ``diagram``: a geometry diagram from the structure family's figure builders (in-domain
  families and style only, so its domain-shift split stays unseen; never a structure
  ``test-id`` figure): the point labels, the numbers written on it, or the shape drawn.
- ``two_images``: the transformation family's before/after pair from the centre camera;
  each image described, objects left to right.

Answers are short (well under 60 tokens) and come from the symbolic scene, never from
pixels. A fraction ``format_fraction`` of the items asks for the think/answer format (the
question plus the standard instruction; ``cot`` holds what is seen, and the pretraining target
is ``<think>`` cot ``</think>`` ``<answer>`` answer ``</answer>``): Qwen2-VL-Instruct follows such instructions, so the
base must too, or GRPO from it (Reason-RFT-Zero) would start with zero reward everywhere.
The thought is perception only (the objects, the figure drawn), never a task's reasoning. Splits ``train`` and ``test``: a scene belongs to ``test`` iff its key hashes to 0
modulo ``holdout_modulus``, so the two never share a scene. Prompts: ``answer`` and
``zero-shot`` are the bare question (pretraining uses ``answer``); ``cot`` appends the
standard think/answer instruction so the family keeps the registry's prompt contract.

Anatomy: ``PerceptionConfig`` -> one generator per kind (scene -> render -> question ->
answer) -> ``generate`` -> ``prompt`` / ``score`` -> ``TASK`` (``pretraining=True``: not a
reasoning task, so the experiments and the training tests leave it out).
"""

from __future__ import annotations

import hashlib
import itertools
import math
import random
from dataclasses import dataclass, replace

from PIL import Image

from reasonrft import rewards
from reasonrft.tasks import counting, structure, transformation
from reasonrft.tasks.base import QUESTION_FIRST, Sample, Task, register

SPLITS = ("train", "test")
KINDS = ("single", "describe", "attribute", "diagram", "two_images", "count", "count_filtered", "arithmetic", "copy")
TEXT_KINDS = ("arithmetic", "copy")  # no scene: a blank image (TRL's vision collator wants one per row)
SINGLE_WEIGHTS = {"color": 3, "shape": 2, "material": 1}  # size needs a reference object
# attribute-question types and their weights: counts are kept a minority (< 1/4 of the kind)
QUESTION_WEIGHTS = {"color": 3, "shape": 2, "material": 1, "size": 1, "count": 1, "count_filtered": 1}
QUESTION_TYPES = tuple(QUESTION_WEIGHTS)
DESCRIBE_QUESTION = "Describe the objects in the image."
TWO_IMAGES_QUESTION = "Describe each of the two images."
DIAGRAM_QUESTIONS = {
    "labels": "What are the labels of the points?",
    "numbers": "What numbers are written in the diagram?",
    "shape": "What shape is drawn?",
}
GEOMETRY_FAMILIES = structure.ID_FAMILIES  # the held-out families stay unseen, like the domain shift
SHAPE_NAMES = {  # (family, kind) -> the figure drawn; kind None: any kind of the family
    ("triangle_angles", None): "triangle",
    ("isosceles", None): "isosceles triangle",
    ("parallel_lines", None): "two parallel lines and a transversal",
    ("pythagoras", None): "right triangle",
    ("circle_angles", None): "circle",
    ("circle_measure", None): "circle",
    ("area", "triangle_area"): "triangle",
    ("area", None): "rectangle",
    ("exterior_angle", None): "triangle",
    ("trapezoid", None): "trapezoid",
    ("similar_triangles", None): "two triangles",
}
COT_INSTRUCTION = "Output the thinking process in <think> </think> and final answer in <answer> </answer> tags."


@dataclass(frozen=True)
class PerceptionConfig:
    """Knobs of the perception family."""

    image_size: int = 224
    describe_min_objects: int = 2
    describe_max_objects: int = 5  # a description lists every object: keep it short
    attribute_min_objects: int = 3
    attribute_max_objects: int = 10
    two_images_max_objects: int = 4
    holdout_modulus: int = 10  # 1 in this many scene keys belongs to the test split
    kind_weights: tuple[int, ...] = (2, 1, 1, 1, 1, 0, 0, 0, 0)  # relative frequency of each of KINDS (the shipped base's mix)
    count_min_objects: int = 3  # the ``count`` and ``count_filtered`` kinds: a counting task's whole range and more
    count_max_objects: int = 13
    single_min_zoom_widths: float = 1.6  # train zoom crops: the smallest side, in object widths
    format_fraction: float = 0.2  # items asked in the think/answer format
    question_first_kinds: tuple[str, ...] = ()  # kinds asked with the question before the image(s)
    question_weights: tuple[int, ...] = tuple(QUESTION_WEIGHTS.values())  # the attribute kind's question types (QUESTION_TYPES)

    def __post_init__(self) -> None:
        if len(self.kind_weights) != len(KINDS) or min(self.kind_weights) < 0 or sum(self.kind_weights) <= 0:
            raise ValueError(f"kind_weights needs {len(KINDS)} weights >= 0 ({', '.join(KINDS)}), not all 0")
        if unknown := [k for k in self.question_first_kinds if k not in KINDS]:
            raise ValueError(f"question_first_kinds: unknown kind(s) {', '.join(unknown)}; choose from {', '.join(KINDS)}")
        if len(self.question_weights) != len(QUESTION_TYPES) or min(self.question_weights) < 0 or sum(self.question_weights) <= 0:
            raise ValueError(f"question_weights needs {len(QUESTION_TYPES)} weights >= 0 ({', '.join(QUESTION_TYPES)}), not all 0")
        if not 0 <= self.format_fraction <= 1:
            raise ValueError(f"format_fraction must be in [0, 1], got {self.format_fraction}")
        if self.single_min_zoom_widths < 1:
            raise ValueError(f"single_min_zoom_widths must be >= 1, got {self.single_min_zoom_widths}")
        if not 128 <= self.image_size <= 1024:
            raise ValueError(f"image_size must be in [128, 1024], got {self.image_size}")
        if not 1 <= self.describe_min_objects <= self.describe_max_objects <= 8:
            raise ValueError("need 1 <= describe_min_objects <= describe_max_objects <= 8")
        if not 2 <= self.attribute_min_objects <= self.attribute_max_objects <= 12:
            raise ValueError("need 2 <= attribute_min_objects <= attribute_max_objects <= 12")
        if not 1 <= self.count_min_objects <= self.count_max_objects <= 13:
            raise ValueError("need 1 <= count_min_objects <= count_max_objects <= 13")
        if not 2 <= self.two_images_max_objects <= 6:
            raise ValueError(f"two_images_max_objects must be in [2, 6], got {self.two_images_max_objects}")
        if not 2 <= self.holdout_modulus <= 1000:
            raise ValueError(f"holdout_modulus must be in [2, 1000], got {self.holdout_modulus}")

    @classmethod
    def from_overrides(cls, overrides: dict, what: str) -> "PerceptionConfig":
        """The family's defaults with ``overrides`` (a config file's mapping: lists become
        tuples); an unknown key is a ValueError naming ``what`` and the known keys."""
        unknown = sorted(set(overrides) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"{what} {', '.join(unknown)}: unknown key(s); the keys are {', '.join(cls.__dataclass_fields__)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()})


def scene_key(kind: str, content: object) -> str:
    return hashlib.blake2b(repr((kind, content)).encode(), digest_size=8).hexdigest()


def in_split(key: str, split: str, config: PerceptionConfig) -> bool:
    return (int(key, 16) % config.holdout_modulus == 0) == (split == "test")


def join(parts: list[str]) -> str:
    return ", ".join(parts)


# --------------------------------------------------------------------------- counting-style scenes


def place(obj: counting.Obj) -> str:
    """Coarse place in the image: back/front (z far to near), left/middle/right."""
    across = "left" if obj.x < -1 / 3 else "right" if obj.x > 1 / 3 else "middle"
    return f"{'front' if obj.z >= 0.5 else 'back'} {across}"


def clear_of_borders(obj: counting.Obj) -> bool:
    """Far enough from the place borders that the coarse place is plain to see."""
    return min(abs(obj.x + 1 / 3), abs(obj.x - 1 / 3)) > 0.08 and abs(obj.z - 0.5) > 0.06


def object_name(obj) -> str:
    return f"{obj.size} {obj.color} {obj.material} {obj.shape}"


def sample_counting_scene(config: PerceptionConfig, split: str, rng: random.Random, lo: int, hi: int, kind: str, clear: bool = False) -> tuple[list[counting.Obj], str]:
    """A counting-family scene of the split (plain style, in-domain shapes) and its key."""
    while True:
        scene = counting.sample_scene(rng, rng.randint(lo, hi), counting.SHAPES, config.image_size)
        key = scene_key(kind, scene)
        if in_split(key, split, config) and (not clear or all(clear_of_borders(o) for o in scene)):
            return scene, key


def describe(config: PerceptionConfig, split: str, rng: random.Random) -> tuple[tuple, str, str, dict]:
    scene, key = sample_counting_scene(config, split, rng, config.describe_min_objects, config.describe_max_objects, "describe", clear=True)
    ordered = sorted(scene, key=lambda o: o.x)
    n = len(scene)
    answer = f"{n} object{'s' if n != 1 else ''}: " + "; ".join(f"{object_name(o)}, {place(o)}" for o in ordered)
    image = counting.render(scene, config.image_size, "plain")
    return (image,), DESCRIBE_QUESTION, answer, {"scene_key": key, "objects": [_counting_dict(o) for o in scene]}


def single(config: PerceptionConfig, split: str, rng: random.Random) -> tuple[tuple, str, str, dict]:
    qtype = rng.choices(list(SINGLE_WEIGHTS), weights=list(SINGLE_WEIGHTS.values()))[0]
    scene, key = sample_counting_scene(config, split, rng, 1, 1, "single", clear=True)
    meta = {"scene_key": key, "question": qtype, "objects": [_counting_dict(o) for o in scene]}
    image = counting.render(scene, config.image_size, "plain")
    if split == "train":
        image, meta["zoom"] = zoom_on(image, counting.screen_box(scene[0], config.image_size), config.single_min_zoom_widths, rng)
    return (image,), f"What {qtype} is the object?", scene[0].get(qtype), meta


def zoom_on(image: Image.Image, box: tuple[float, float, float, float], min_widths: float, rng: random.Random) -> tuple[Image.Image, float]:
    """A square crop around ``box`` (side log-uniform in [min_widths * box width, image side]),
    resized back to the image size; and the zoom factor (image side / crop side)."""
    size = image.width
    left, top, right, bottom = box
    side = math.exp(rng.uniform(math.log(min(size, min_widths * (right - left))), math.log(size)))
    x0 = min(max((left + right) / 2 - side / 2, 0), size - side)
    y0 = min(max((top + bottom) / 2 - side / 2, 0), size - side)
    crop = image.crop((round(x0), round(y0), round(x0 + side), round(y0 + side)))
    return crop.resize((size, size), Image.BICUBIC), round(size / side, 3)


def identifying_filter(rng: random.Random, scene: list[counting.Obj], target: counting.Obj, asked: str) -> tuple[tuple[str, str], ...] | None:
    """The fewest attributes (other than ``asked``) that match ``target`` and nothing else."""
    others = [a for a in counting.ATTRIBUTES if a != asked]
    for k in range(1, len(others) + 1):
        subsets = list(itertools.combinations(others, k))
        rng.shuffle(subsets)
        for subset in subsets:
            flt = tuple((a, target.get(a)) for a in counting.ATTRIBUTES if a in subset)
            if sum(counting.matches(o, flt) for o in scene) == 1:
                return flt
    return None


def attribute(config: PerceptionConfig, split: str, rng: random.Random, qtype: str | None = None) -> tuple[tuple, str, str, dict]:
    """``qtype`` (one of QUESTION_WEIGHTS) fixes the question type (the skills benchmark); else drawn."""
    qtype = qtype or rng.choices(QUESTION_TYPES, weights=config.question_weights)[0]
    while True:
        scene, key = sample_counting_scene(config, split, rng, config.attribute_min_objects, config.attribute_max_objects, "attribute")
        meta = {"scene_key": key, "question": qtype, "objects": [_counting_dict(o) for o in scene]}
        if qtype == "count":
            question, answer = "How many objects are there?", str(len(scene))
            break
        if qtype == "count_filtered":
            name = rng.choice(counting.ATTRIBUTES)
            value = rng.choice(scene).get(name) if rng.random() < 0.8 else rng.choice(_values(name))
            flt = ((name, value),)
            question = f"How many {counting.phrase(flt, plural=True)} are there?"
            answer = str(sum(counting.matches(o, flt) for o in scene))
            meta["filter"] = [list(f) for f in flt]
            break
        order = list(range(len(scene)))
        rng.shuffle(order)
        found = next(((i, f) for i in order if (f := identifying_filter(rng, scene, scene[i], qtype)) is not None), None)
        if found is None:
            continue  # no object can be named alone without the asked attribute: another scene
        index, flt = found
        question = attribute_question(qtype, flt)
        answer = scene[index].get(qtype)
        meta.update(target=index, filter=[list(f) for f in flt])
        break
    return (counting.render(scene, config.image_size, "plain"),), question, answer, meta


def attribute_question(qtype: str, flt: tuple[tuple[str, str], ...]) -> str:
    """'What color is the large rubber cylinder?': ``qtype`` of the one object ``flt`` names."""
    return f"What {qtype} is the {counting.phrase(flt, plural=False)}?"


def _values(attribute_name: str) -> tuple[str, ...]:
    return counting.VALUES[attribute_name]


def _counting_dict(obj: counting.Obj) -> dict:
    return {"shape": obj.shape, "color": obj.color, "size": obj.size, "material": obj.material, "x": obj.x, "z": obj.z, "place": place(obj)}


def count(config: PerceptionConfig, split: str, rng: random.Random, style: str = "plain") -> tuple[tuple, str, str, dict]:
    """How many objects: a counting-style scene of ``count_min_objects`` to ``count_max_objects``
    (3-13: the counting task's in-domain and test-ood-m range). ``style="textured"`` (striped
    textures, cones among the shapes: the test-ood-d look) is for the benchmark only, never trained."""
    shapes = counting.OOD_SHAPES if style == "textured" else counting.SHAPES
    while True:
        scene = counting.sample_scene(rng, rng.randint(config.count_min_objects, config.count_max_objects), shapes, config.image_size)
        key = scene_key("count", (style, scene))
        if in_split(key, split, config):
            break
    meta = {"scene_key": key, "question": "count", "style": style, "objects": [_counting_dict(o) for o in scene]}
    return (counting.render(scene, config.image_size, style),), "How many objects are there?", str(len(scene)), meta


def count_filtered(config: PerceptionConfig, split: str, rng: random.Random, n_attributes: int | None = None) -> tuple[tuple, str, str, dict]:
    """How many objects match one or two attribute values ("How many large green objects are
    there?"); the values come from an object of the scene 85% of the time (else the answer may be 0)."""
    n_attributes = n_attributes or rng.choice((1, 2))
    while True:
        scene = counting.sample_scene(rng, rng.randint(config.count_min_objects, config.count_max_objects), counting.SHAPES, config.image_size)
        key = scene_key("count_filtered", scene)
        if in_split(key, split, config):
            break
    names = sorted(rng.sample(counting.ATTRIBUTES, n_attributes), key=counting.ATTRIBUTES.index)
    source = rng.choice(scene)
    flt = tuple((name, source.get(name) if rng.random() < 0.85 else rng.choice(_values(name))) for name in names)
    meta = {"scene_key": key, "question": f"count_filtered{n_attributes}", "filter": [list(f) for f in flt], "objects": [_counting_dict(o) for o in scene]}
    question = f"How many {counting.phrase(flt, plural=True)} are there?"
    return (counting.render(scene, config.image_size, "plain"),), question, str(sum(counting.matches(o, flt) for o in scene)), meta


# --------------------------------------------------------------------------- text only: arithmetic, copying

ARITHMETIC_FAMILIES = ("sum", "difference", "product", "quotient", "square", "root")
COPY_QUESTION = "Copy this phrase exactly:"


def blank_image() -> Image.Image:
    """The image of a text-only item: 56 px of grey (4 image tokens after merging)."""
    return Image.new("RGB", (56, 56), (128, 128, 128))


def arithmetic(config: PerceptionConfig, split: str, rng: random.Random, family: str | None = None, fact: tuple[str, int] | None = None) -> tuple[tuple, str, str, dict]:
    """One operation on the numbers the tasks use, as text: sums and differences up to 30 (the
    counting task's steps), products, exact quotients, squares and roots (behind structure's
    answers). A bare expression, never a task's question (no objects, no figure). ``fact``: this
    (question, answer) of ``arithmetic_facts(family)`` instead of a drawn one (it must be in ``split``)."""
    family = family or rng.choice(ARITHMETIC_FAMILIES)
    while True:
        question, answer = fact or _draw_fact(family, rng)
        key = scene_key("arithmetic", question)
        if in_split(key, split, config):
            break
        if fact:
            raise ValueError(f"arithmetic: {question!r} is not in the {split} split")
    return (blank_image(),), question, str(answer), {"scene_key": key, "question": family}


def _draw_fact(family: str, rng: random.Random) -> tuple[str, int]:
    """One fact of ``family`` as pretraining draws it: the first operand uniform, then the second
    (so a sum with a large first term, "29 + 1", is drawn far more often than "5 + 4")."""
    if family == "sum":
        a = rng.randint(0, 30); b = rng.randint(0, 30 - a)
        return f"What is {a} + {b}?", a + b
    if family == "difference":
        a = rng.randint(0, 30); b = rng.randint(0, a)
        return f"What is {a} - {b}?", a - b
    if family == "product":
        a, b = rng.randint(2, 20), rng.randint(2, 12)
        return f"What is {a} * {b}?", a * b
    if family == "quotient":
        b, answer = rng.randint(2, 12), rng.randint(2, 20)
        return f"What is {answer * b} / {b}?", answer
    if family == "square":
        a = rng.randint(2, 30)
        return f"What is {a} squared?", a * a
    answer = rng.randint(2, 30)
    return f"What is the square root of {answer * answer}?", answer


def arithmetic_facts(family: str) -> list[tuple[str, int]]:
    """Every (question, answer) ``_draw_fact(family, ...)`` can give, once each, in a fixed order:
    the skills benchmark scores each held-out fact once, not in proportion to how often it is drawn."""
    ranges = {"sum": [(a, b) for a in range(31) for b in range(31 - a)], "difference": [(a, b) for a in range(31) for b in range(a + 1)],
              "product": [(a, b) for a in range(2, 21) for b in range(2, 13)], "quotient": [(b, q) for b in range(2, 13) for q in range(2, 21)],
              "square": [(a,) for a in range(2, 31)], "root": [(a,) for a in range(2, 31)]}
    if family not in ranges:
        raise ValueError(f"unknown arithmetic family {family!r}; choose from {', '.join(ARITHMETIC_FAMILIES)}")
    return [_draw_fact(family, _Fixed(pair)) for pair in ranges[family]]


class _Fixed:
    """A stand-in for ``random.Random`` whose ``randint`` returns the given values in turn:
    ``arithmetic_facts`` enumerates through ``_draw_fact`` itself, so the two cannot disagree."""

    def __init__(self, values: tuple[int, ...]):
        self._values = list(values)

    def randint(self, low: int, high: int) -> int:
        value = self._values.pop(0)
        assert low <= value <= high, (value, low, high)
        return value


def copy_phrase(config: PerceptionConfig, split: str, rng: random.Random) -> tuple[tuple, str, str, dict]:
    """A phrase of the tasks' words (object names, numbers, point labels) to repeat exactly."""
    while True:
        words = []
        for _ in range(rng.randint(1, 3)):
            part = rng.choice(("object", "object", "number", "label"))
            if part == "object":
                words.append(" ".join(rng.choice(_values(a)) for a in counting.ATTRIBUTES))
            elif part == "number":
                words.append(str(rng.randint(0, 200)))
            else:
                words.append("".join(rng.sample("ABCDEFGHKMNOPQRS", rng.randint(1, 3))))
        phrase = ", ".join(words)
        key = scene_key("copy", phrase)
        if in_split(key, split, config):
            break
    return (blank_image(),), f'{COPY_QUESTION} "{phrase}"', phrase, {"scene_key": key, "question": "copy"}


# --------------------------------------------------------------------------- geometry diagrams


def shape_name(family: str, kind: str) -> str:
    return SHAPE_NAMES.get((family, kind)) or SHAPE_NAMES[(family, None)]


def diagram(config: PerceptionConfig, split: str, rng: random.Random, qtype: str | None = None) -> tuple[tuple, str, str, dict]:
    """A structure-family figure with some of its givens drawn; a question about what is drawn
    (``qtype``, one of DIAGRAM_QUESTIONS, or drawn)."""
    qtype = qtype or rng.choice(tuple(DIAGRAM_QUESTIONS))
    holdout = structure.StructureConfig().holdout_modulus
    while True:
        family = rng.choice(GEOMETRY_FAMILIES)
        problem = structure.BUILDERS[family](rng)
        if int(structure.problem_key(problem), 16) % holdout == 0:
            continue  # that figure belongs to the structure family's test-id split
        drawable = [g for g in problem.givens if g.drawable]
        drawn = [g for g in drawable if rng.random() < 0.7] or drawable[:1]
        mirror = rng.random() < 0.5
        mark_x = problem.target.drawable and rng.random() < 0.3
        key = scene_key("diagram", (family, problem.kind, sorted(problem.figure.points.items()), [(g.measure, g.value) for g in drawn], mark_x, mirror))
        if in_split(key, split, config) and (drawn or qtype != "numbers"):
            break
    figure = problem.figure
    numbers = [structure.num(g.value) for g in drawn]
    for given, text in zip(drawn, numbers):
        structure.draw_value(figure, given, text)
    if mark_x:
        structure.draw_value(figure, problem.target, "x")
    labels = sorted(p for p in figure.points if p not in figure.unlabeled)
    answers = {
        "labels": join(labels),
        "numbers": join(sorted(numbers, key=float)),
        "shape": shape_name(family, problem.kind),
    }
    image = structure.render(figure, config.image_size, replace(structure.ID_STYLE, mirror=mirror))
    meta = {"scene_key": key, "question": qtype, "family": family, "figure_kind": problem.kind, "labels": labels, "numbers": numbers, "shape": answers["shape"]}
    return (image,), DIAGRAM_QUESTIONS[qtype], answers[qtype], meta


# --------------------------------------------------------------------------- two images


def left_to_right(scene: transformation.Scene, config: transformation.TransformationConfig) -> list[transformation.Obj]:
    """The objects in the order the centre camera sees them from left to right."""
    view, size = config.camera("centre"), config.image_size
    boxes = [transformation.camera.screen_box(view, s, size) for s in transformation.solids(scene)]
    return [obj for _, obj in sorted(zip(boxes, scene), key=lambda pair: (pair[0][0] + pair[0][2]) / 2)]


def two_images(config: PerceptionConfig, split: str, rng: random.Random) -> tuple[tuple, str, str, dict]:
    """A transformation-family before/after pair (centre camera), each image described."""
    tconfig = transformation.TransformationConfig(image_size=config.image_size, min_objects=2, max_objects=config.two_images_max_objects, max_steps=2)
    while True:
        sample = transformation.generate(tconfig, "train", rng, "")
        key = scene_key("two_images", (sample.meta["initial"], sample.meta["final"]))
        if in_split(key, split, config):
            break
    scenes = [transformation.scene_from_meta(sample.meta[state]) for state in ("initial", "final")]
    answer = " ".join(f"Image {k}: " + join([object_name(o) for o in left_to_right(s, tconfig)]) + "." for k, s in enumerate(scenes, 1))
    return sample.images, TWO_IMAGES_QUESTION, answer, {"scene_key": key, "initial": sample.meta["initial"], "final": sample.meta["final"]}


# --------------------------------------------------------------------------- sample, prompt


GENERATORS = {"single": single, "describe": describe, "attribute": attribute, "diagram": diagram, "two_images": two_images,
              "count": count, "count_filtered": count_filtered, "arithmetic": arithmetic, "copy": copy_phrase}


def thought(kind: str, meta: dict) -> str:
    """What is seen, for the think block of a format item: the objects left to right, the
    figure and its labels, or how many objects each image holds."""
    if kind == "arithmetic":
        return "The question is one operation on two numbers." if meta["question"] in ("sum", "difference", "product", "quotient") else "The question is about one number."
    if kind == "copy":
        return "The answer repeats the phrase."
    if kind == "diagram":
        return f"The diagram shows a {meta['shape']} with the points {join(meta['labels'])}."
    if kind == "two_images":
        counts = [len(meta[state]["objects"]) if isinstance(meta[state], dict) else len(meta[state]) for state in ("initial", "final")]
        return f"Image 1 shows {counts[0]} objects and image 2 shows {counts[1]} objects."
    objects = sorted(meta["objects"], key=lambda o: o["x"])
    names = "; ".join(f"{o['size']} {o['color']} {o['material']} {o['shape']}" for o in objects)
    return f"I see {len(objects)} object{'s' if len(objects) != 1 else ''}: {names}."


def generate(config: PerceptionConfig, split: str, rng: random.Random, sample_id: str) -> Sample:
    kind = rng.choices(KINDS, weights=config.kind_weights)[0]
    images, problem, answer, meta = GENERATORS[kind](config, split, rng)
    return _sample(config, sample_id, kind, images, problem, answer, meta, ask_format=rng.random() < config.format_fraction)


def make_sample(config: PerceptionConfig, kind: str, split: str, rng: random.Random, sample_id: str = "", ask_format: bool = False, **options) -> Sample:
    """One item of a given kind (``options``: the generator's fixed choices, e.g. ``qtype``),
    asked in the think/answer format when ``ask_format``: the skills benchmark's items."""
    images, problem, answer, meta = GENERATORS[kind](config, split, rng, **options)
    return _sample(config, sample_id, kind, images, problem, answer, meta, ask_format)


def _sample(config: PerceptionConfig, sample_id: str, kind: str, images, problem: str, answer: str, meta: dict, ask_format: bool) -> Sample:
    """A generator's item as a sample: in the think/answer format when ``ask_format``, with the
    question first when its kind is one of ``config.question_first_kinds``."""
    cot = ""
    if ask_format:
        problem, cot = f"{problem} {COT_INSTRUCTION}", thought(kind, meta)
        meta["format"] = True
    if kind in config.question_first_kinds:
        meta["layout"] = QUESTION_FIRST
    return Sample(id=sample_id, images=tuple(images), problem=problem, cot=cot, answer=answer, meta={"kind": kind, **meta})


def prompt(problem: str, answer: str, style: str) -> str:
    """The bare question for ``answer`` and ``zero-shot``; ``cot`` adds the think/answer instruction."""
    return f"{problem} {COT_INSTRUCTION}" if style == "cot" else problem


def score(text: str, answer: str) -> float:
    """Exact match of the stripped answer (block or whole text). No math_verify fallback: it
    would equate two descriptions that merely start with the same count."""
    return 1.0 if rewards.extract_answer(text) == rewards.extract_answer(answer) else 0.0


def corpus() -> list[str]:
    """Fixed text of the family: every question template and attribute value."""
    values = counting.SHAPES + counting.COLORS + counting.SIZES + counting.MATERIALS + transformation.SIZES + transformation.MATERIALS
    places = [f"{d} {a}" for d in ("back", "front") for a in ("left", "middle", "right")]
    return [DESCRIBE_QUESTION, TWO_IMAGES_QUESTION, COT_INSTRUCTION, *DIAGRAM_QUESTIONS.values(), "How many objects are there?",
            *(f"What {q} is the object?" for q in ("color", "shape", "material", "size")), " ".join(values), "; ".join(places), *sorted(set(SHAPE_NAMES.values()))]


TASK = register(
    Task(
        name="perception",
        splits=SPLITS,
        config_cls=PerceptionConfig,
        generate=generate,
        prompt=prompt,
        accuracy_reward="accuracy",
        score=score,
        num_images=2,  # the most: only the two_images kind has two
        corpus=corpus,
        pretraining=True,
    )
)
