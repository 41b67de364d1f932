"""Structure perception (``structure``): geometry diagrams, the GeoMath / Geometry3K analogue.

Each problem is a symbolic plane figure (named points in figure units, drawn to scale) with
given values and one unknown. A solver per family computes the answer from the given values
(by the theorem, not from coordinates) and writes the steps; the tests check every family's
answer against a measurement of the drawn coordinates. About half the problems are multiple
choice: four options, three distractors from typical mistakes (forgetting to halve, adding
instead of subtracting, the supplement instead of the angle), the correct letter uniform.
The rest ask for a number with a stated rounding. Each drawable given is written either on
the diagram or in the text, and at least one only on the diagram, so the image must be read.

Families (``FAMILIES``): in-domain ``triangle_angles``, ``isosceles``, ``parallel_lines``,
``pythagoras``, ``circle_angles``, ``circle_measure``, ``area`` (rectangles, triangles);
held out for the domain shift: ``exterior_angle``, ``trapezoid``, ``similar_triangles``.

Splits:
- ``train``, ``test-id``: in-domain families, upright textbook style (mirrored half the time).
  A problem (family, kind, given values, unknown) belongs to ``test-id`` iff its key hash is
  0 modulo ``holdout_modulus``, so no test-id problem ever appears in training.
- ``test-ood``: the held-out families, drawn in another style (line width, font size,
  colours) at any rotation, mirrored half the time.

Anatomy: ``StructureConfig`` -> a family builder (``geometry_families``; scene: figure and
givens; solver: answer, steps, typical mistakes; a ``Problem`` of ``geometry_model``) ->
``geometry_draw.render`` -> question text, options -> ``generate`` -> ``prompt`` -> ``TASK``.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass, replace

from reasonrft import rewards
from reasonrft.tasks.base import Sample, Task, register
from reasonrft.tasks.geometry_draw import Figure, Style, render
from reasonrft.tasks.geometry_families import RELATIONS, area, circle_angles, circle_measure, exterior_angle, isosceles, parallel_lines, pythagoras, similar_triangles, trapezoid, triangle_angles
from reasonrft.tasks.geometry_model import Given, Problem, fmt, num

SPLITS = ("train", "test-id", "test-ood")
ID_FAMILIES = ("triangle_angles", "isosceles", "parallel_lines", "pythagoras", "circle_angles", "circle_measure", "area")
OOD_FAMILIES = ("exterior_angle", "trapezoid", "similar_triangles")
FAMILIES = ID_FAMILIES + OOD_FAMILIES
LETTERS = ("A", "B", "C", "D")
ROUNDING = {0: "Round to the nearest integer.", 1: "Round to one decimal place."}
ID_STYLE = Style()
OOD_STYLE = Style(line_width=2.4, font_size=15, background=(250, 246, 232), line=(25, 35, 90), label=(25, 35, 90), value=(165, 25, 25), mark=(20, 120, 60))


@dataclass(frozen=True)
class StructureConfig:
    """Knobs of the structure family. The held-out families and styles are fixed by the split."""

    image_size: int = 224
    p_choice: float = 0.5  # multiple choice (four options) rather than a number
    p_text_given: float = 0.3  # a drawable given is stated in the text instead of the diagram
    p_x: float = 0.5  # the unknown is marked "x" on the diagram rather than named in the text
    holdout_modulus: int = 10  # 1 in this many problem keys is reserved for test-id

    def __post_init__(self) -> None:
        if not 128 <= self.image_size <= 1024:
            raise ValueError(f"image_size must be in [128, 1024], got {self.image_size}")
        for name in ("p_choice", "p_text_given", "p_x"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 2 <= self.holdout_modulus <= 1000:
            raise ValueError(f"holdout_modulus must be in [2, 1000], got {self.holdout_modulus}")


BUILDERS = {f.__name__: f for f in (triangle_angles, isosceles, parallel_lines, pythagoras, circle_angles, circle_measure, area, exterior_angle, trapezoid, similar_triangles)}


# --------------------------------------------------------------------------- question, options, sample


def problem_key(problem: Problem) -> str:
    """Hash of what makes the problem: family, kind, given values, kind of unknown (not names)."""
    values = tuple((g.measure[0], round(g.value, 6)) for g in problem.givens)
    payload = repr((problem.family, problem.kind, values, problem.target.measure[0]))
    return hashlib.blake2b(payload.encode(), digest_size=8).hexdigest()


def describe(measure: tuple[str, ...], figure: Figure) -> str:
    kind = measure[0]
    if kind == "angle":
        return "angle " + "".join(measure[1:])
    if kind == "length":
        return "".join(measure[1:])
    if kind in ("area", "perimeter"):
        return f"the {kind} of {measure[1]} {''.join(measure[2:])}"
    circle = "the circle" if measure[1] in figure.unlabeled else f"circle {measure[1]}"
    return f"the {'circumference' if kind == 'circumference' else 'area'} of {circle}"


def statement(given: Given, figure: Figure) -> str:
    return f"{describe(given.measure, figure)} {'=' if given.drawable else 'is'} {num(given.value)}"


def join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def options(rng: random.Random, value: float, decimals: int, mistakes: list[float], limit: float) -> tuple[list[str], int]:
    """Four options: three distractors from typical mistakes (scaled values if too few are
    distinct and in (0, limit)), the correct one at a uniform position."""
    correct = fmt(value, decimals)

    def fits(text: str, taken: list[str]) -> bool:
        return 0 < float(text) < limit and text != correct and text not in taken

    pool: list[str] = []
    for m in mistakes:
        if 0 < m < limit and fits(fmt(m, decimals), pool):
            pool.append(fmt(m, decimals))
    chosen = rng.sample(pool, min(3, len(pool)))
    for factor in (1.5, 0.5, 1.25, 0.75, 2.0, 0.25, 0.9, 1.1):
        if len(chosen) < 3 and fits(fmt(value * factor, decimals), chosen):
            chosen.append(fmt(value * factor, decimals))
    k = 1
    while len(chosen) < 3:  # neighbours, for values too small for the factors to differ
        for near in (fmt(value + k * 10.0**-decimals, decimals), fmt(max(value - k * 10.0**-decimals, 0.0), decimals)):
            if len(chosen) < 3 and fits(near, chosen):
                chosen.append(near)
        k += 1
    rng.shuffle(chosen)
    position = rng.randrange(4)
    return chosen[:position] + [correct] + chosen[position:], position


def draw_value(figure: Figure, given: Given, text: str) -> None:
    if given.measure[0] == "angle":
        figure.angles.append((*given.measure[1:], text + "\u00b0", 1))
    else:
        figure.lengths.append((*given.measure[1:], text, given.side))


def generate(config: StructureConfig, split: str, rng: random.Random, sample_id: str) -> Sample:
    ood = split == "test-ood"
    build = BUILDERS[rng.choice(OOD_FAMILIES if ood else ID_FAMILIES)]
    while True:  # test-id owns the keys that hash to 0 mod holdout_modulus; train the rest
        problem = build(rng)
        key = problem_key(problem)
        if ood or (int(key, 16) % config.holdout_modulus == 0) == (split == "test-id"):
            break
    fig, target, value, decimals = problem.figure, problem.target, problem.target.value, problem.decimals
    in_text = [not g.drawable or rng.random() < config.p_text_given for g in problem.givens]
    drawable = [i for i, g in enumerate(problem.givens) if g.drawable]
    if drawable and all(in_text[i] for i in drawable):
        in_text[rng.choice(drawable)] = False  # at least one given only in the image
    x_mode = target.drawable and (not drawable or rng.random() < config.p_x)
    for given, text_only in zip(problem.givens, in_text):
        if not text_only:
            draw_value(fig, given, num(given.value))
    if x_mode:
        draw_value(fig, target, "x")
    style = OOD_STYLE if ood else ID_STYLE
    style = replace(style, rotation=rng.uniform(0, 360) if ood else 0.0, mirror=rng.random() < 0.5)
    image = render(fig, config.image_size, style)

    stated = [statement(g, fig) for g, t in zip(problem.givens, in_text) if t]
    if x_mode:
        question = "find x"
    elif target.measure[0] in ("angle", "length"):
        question = f"find the {'measure' if target.measure[0] == 'angle' else 'length'} of {describe(target.measure, fig)}"
    else:
        question = f"find {describe(target.measure, fig)}"
    text = f"If {join(stated)}, {question}." if stated else question[0].upper() + question[1:] + "."
    choice = rng.random() < config.p_choice
    cot = []
    shown = [statement(g, fig) for g, t in zip(problem.givens, in_text) if not t]
    if shown:
        cot.append(f"The figure shows {join(shown)}.")
    if x_mode:
        cot.append(f"x is {describe(target.measure, fig)}.")
    cot += problem.steps
    if choice:
        opts, position = options(rng, value, decimals, problem.mistakes, 180.0 if target.measure[0] == "angle" else math.inf)
        answer = LETTERS[position]
        suffix = "Choices: " + " ".join(f"{letter}. {o}" for letter, o in zip(LETTERS, opts))
        cot.append(f"{opts[position]} is choice {answer}.")
    else:
        opts, answer, suffix = [], fmt(value, decimals), ROUNDING[decimals]
    cot.append(f"So the answer is {answer}.")
    return Sample(
        id=sample_id,
        images=(image,),
        problem=" ".join(problem.facts + [text, suffix]),
        cot="\n".join(cot),
        answer=answer,
        meta={"scene_key": key, "family": problem.family, "kind": problem.kind, "choice": choice, "options": opts,
              "value": round(value, 6), "decimals": decimals, "x_mode": x_mode, "diagram_givens": in_text.count(False)},
    )


CHOICE_INSTRUCTION = "Output the thinking process in <think> </think> and final answer (the letter A, B, C or D of the correct choice) in <answer> </answer> tags."
NUMBER_INSTRUCTION = "Output the thinking process in <think> </think> and final answer (a float or int number) in <answer> </answer> tags."
ZERO_SHOT_CHOICE = "Answer with the letter of the correct choice only."
ZERO_SHOT_NUMBER = "Answer with a single number only."


def is_choice(answer: str) -> bool:
    return answer.strip() in LETTERS


def prompt(problem: str, answer: str, style: str) -> str:
    """``cot``: the choice or non-choice instruction, picked by the answer; ``zero-shot``: ask
    for the bare letter or number; ``answer``: the bare problem (ANS-SFT)."""
    if style == "cot":
        return f"{problem} {CHOICE_INSTRUCTION if is_choice(answer) else NUMBER_INSTRUCTION}"
    if style == "zero-shot":
        return f"{problem} {ZERO_SHOT_CHOICE if is_choice(answer) else ZERO_SHOT_NUMBER}"
    return problem


def corpus() -> list[str]:
    """Fixed text of the family, so the tokenizer knows every word a sample may use."""
    words = "If find x the measure length of angle triangle rectangle trapezoid circle area perimeter circumference is = degrees Choices: A. B. C. D."
    steps = [
        "The figure shows angle ABC = 65 and AB = 5.", "x is angle ACB.", "The angles of a triangle sum to 180.",
        "An exterior angle equals the sum of the two remote interior angles.", "Area of a triangle = base x height / 2.",
        "Area of a rectangle = length x width.", "Perimeter of a rectangle = 2 x (length + width).",
        "Area of a trapezoid = (sum of the bases) x height / 2.", "The circumference is 2 x pi x r, so r = C / (2 x pi).",
        "An inscribed angle is half the central angle on the same arc.", "A central angle is twice the inscribed angle on the same arc.",
        "All three sides are equal.", "The legs are equal.", "sqrt(5^2 + 12^2) = sqrt(169) = 13, about 13.0.",
        "is a right angle, so the other two angles sum to 90.", "is a diameter, so", "is parallel to", "is similar to triangle",
        "so they are equal supplementary.", "is choice", "So the answer is",
    ]
    return [CHOICE_INSTRUCTION, NUMBER_INSTRUCTION, ZERO_SHOT_CHOICE, ZERO_SHOT_NUMBER, *ROUNDING.values(), words, " ".join(r[0] for r in RELATIONS), *steps]


TASK = register(
    Task(
        name="structure",
        splits=SPLITS,
        config_cls=StructureConfig,
        generate=generate,
        prompt=prompt,
        accuracy_reward="math_accuracy",
        score=rewards.answer_match_score,  # the official evaluator's scorer (not the training reward)
        groups=lambda answer: ("choice",) if is_choice(answer) else ("non-choice",),
        num_images=1,
        corpus=corpus,
    )
)
