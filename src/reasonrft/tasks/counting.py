"""Visual counting (``counting``): the CLEVR-Math analogue.

A scene of 3 to 10 objects (cube, sphere, cylinder; 8 colors; small or large; rubber or
metal) stands on a floor. A question program of 1 to 3 steps ("subtract all red cubes",
"add 2 small blue metal spheres") is applied to the objects, then asks how many are left.
The answer and the chain of thought (counts before and after each step) come from running
the program on the symbolic scene.

Splits:
- ``train``, ``test-id``: the distribution above.
- ``test-ood-d`` (appearance shift, like Super-CLEVR for DS-D): striped textures, another
  light and floor, and cones among the shapes.
- ``test-ood-m`` (structure shift, like DS-M): 4 or 5 program steps over 8 to 13 objects.

Anatomy (shared by every family): ``CountingConfig`` -> ``sample_scene`` -> ``render`` ->
``sample_program`` -> ``run_program`` -> ``generate`` -> ``prompt`` / scoring -> ``TASK``.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from PIL import Image

from reasonrft import rewards
from reasonrft.tasks import sprites
from reasonrft.tasks.base import Sample, Task, register

SHAPES = ("cube", "sphere", "cylinder")
OOD_SHAPES = SHAPES + ("cone",)
COLORS = tuple(sprites.COLORS)
SIZES = ("small", "large")
MATERIALS = ("rubber", "metal")
ATTRIBUTES = ("size", "color", "material", "shape")  # the order in which a phrase names them
VALUES = {"size": SIZES, "color": COLORS, "material": MATERIALS, "shape": SHAPES}  # each attribute's in-domain values, in ATTRIBUTES' order
ATTRIBUTE_VALUES = tuple((name, value) for name in ATTRIBUTES for value in VALUES[name])  # the 15 (attribute, value) pairs a filter can name
SPLITS = ("train", "test-id", "test-ood-d", "test-ood-m")
SIZE_SCALE = {"small": 0.58, "large": 1.0}


@dataclass(frozen=True)
class CountingConfig:
    """Knobs of the counting family. Split-specific shifts are fixed by the split name."""

    image_size: int = 224
    min_objects: int = 3
    max_objects: int = 10
    min_steps: int = 1
    max_steps: int = 3
    ood_min_objects: int = 8
    ood_max_objects: int = 13
    ood_min_steps: int = 4
    ood_max_steps: int = 5
    p_add: float = 0.25  # probability that a step adds objects instead of subtracting

    def __post_init__(self) -> None:
        if not 64 <= self.image_size <= 1024:
            raise ValueError(f"image_size must be in [64, 1024], got {self.image_size}")
        if not 1 <= self.min_objects <= self.max_objects <= 16:
            raise ValueError(f"need 1 <= min_objects <= max_objects <= 16, got {self.min_objects}, {self.max_objects}")
        if not 1 <= self.ood_min_objects <= self.ood_max_objects <= 16:
            raise ValueError("need 1 <= ood_min_objects <= ood_max_objects <= 16")
        if not 1 <= self.min_steps <= self.max_steps <= 8 or not 1 <= self.ood_min_steps <= self.ood_max_steps <= 8:
            raise ValueError("step ranges must satisfy 1 <= min <= max <= 8")
        if not 0.0 <= self.p_add <= 1.0:
            raise ValueError(f"p_add must be in [0, 1], got {self.p_add}")


@dataclass(frozen=True)
class Obj:
    """One object: attributes, and its place on the floor (x in [-1, 1] left to right,
    z in [0, 1] far to near)."""

    shape: str
    color: str
    size: str
    material: str
    x: float = 0.0
    z: float = 0.0

    def get(self, attribute: str) -> str:
        return getattr(self, attribute)


# --------------------------------------------------------------------------- scene


def _screen_geometry(obj: Obj, image_size: int) -> tuple[float, float, int]:
    """Centre x, base y and sprite width in pixels: a simple perspective (far is smaller, higher)."""
    depth_scale = 0.62 + 0.38 * obj.z
    pixels = max(8, round(image_size * 0.2 * SIZE_SCALE[obj.size] * depth_scale))
    cx = image_size / 2 + obj.x * image_size * 0.40 * (0.8 + 0.2 * obj.z)
    base_y = image_size * (0.40 + 0.52 * obj.z)
    return cx, base_y, pixels


def screen_box(obj: Obj, image_size: int) -> tuple[float, float, float, float]:
    """The object's sprite box in pixels: (left, top, right, bottom)."""
    cx, base_y, px = _screen_geometry(obj, image_size)
    return cx - px / 2, base_y - px, cx + px / 2, base_y


def sample_scene(rng: random.Random, n: int, shapes: tuple[str, ...], image_size: int) -> list[Obj]:
    """``n`` objects with random attributes, placed so that no two overlap heavily."""
    while True:
        placed: list[Obj] = []
        boxes: list[tuple[float, float, int]] = []  # the placed objects' screen geometry, computed once each
        for _ in range(n):
            attrs = dict(shape=rng.choice(shapes), color=rng.choice(COLORS), size=rng.choice(SIZES), material=rng.choice(MATERIALS))
            for _attempt in range(60):
                obj = Obj(**attrs, x=round(rng.uniform(-1, 1), 3), z=round(rng.uniform(0, 1), 3))
                box = _screen_geometry(obj, image_size)
                if all(_apart(box, other) for other in boxes):
                    placed.append(obj)
                    boxes.append(box)
                    break
            else:
                break  # this layout is too crowded: start the scene again
        if len(placed) == n:
            return placed


def _apart(a: tuple[float, float, int], b: tuple[float, float, int]) -> bool:
    (ax, ay, ap), (bx, by, bp) = a, b
    dy = (ay - ap / 2) - (by - bp / 2)
    return ((ax - bx) ** 2 + dy**2) ** 0.5 >= 0.62 * (ap + bp) / 2


def render(scene: list[Obj], image_size: int, style: str) -> Image.Image:
    """The scene as an RGB image: floor, soft shadows, then objects far to near."""
    canvas = sprites.ground(image_size, image_size, style).copy()
    placements = []
    for obj in sorted(scene, key=lambda o: o.z):
        cx, base_y, px = _screen_geometry(obj, image_size)
        shadow = sprites.shadow_sprite(px + px // 3)
        placements.append((shadow, round(cx - shadow.width / 2 + px * 0.12), round(base_y - shadow.height * 0.6)))
        sprite = sprites.object_sprite(obj.shape, obj.color, obj.material, px, style)
        placements.append((sprite, round(cx - px / 2), round(base_y - px)))
    return sprites.composite(canvas, placements)


# --------------------------------------------------------------------------- question program


@dataclass(frozen=True)
class Step:
    """``subtract`` removes every object matching ``filter``; ``add`` adds ``count`` copies of
    a fully specified object (fully, so that later filters are never ambiguous about it)."""

    op: str
    filter: tuple[tuple[str, str], ...]
    count: int = 0


def phrase(filter: tuple[tuple[str, str], ...], plural: bool) -> str:
    """'small red cubes', 'metal objects', 'large blue rubber sphere'."""
    values = dict(filter)
    words = [values[a] for a in ATTRIBUTES[:3] if a in values]
    noun = values.get("shape", "object")
    return " ".join(words + [noun + ("s" if plural else "")])


def step_text(step: Step) -> str:
    if step.op == "subtract":
        return f"Subtract all {phrase(step.filter, plural=True)}."
    return f"Add {step.count} {phrase(step.filter, plural=step.count != 1)}."


def matches(obj: Obj, filter: tuple[tuple[str, str], ...]) -> bool:
    return all(obj.get(attribute) == value for attribute, value in filter)


def run_program(scene: list[Obj], steps: list[Step]) -> list[tuple[int, int, int]]:
    """Execute the program; per step (count before, objects affected, count after)."""
    current = list(scene)
    trace = []
    for step in steps:
        before = len(current)
        if step.op == "subtract":
            kept = [o for o in current if not matches(o, step.filter)]
            affected = before - len(kept)
            current = kept
        else:
            current = current + [Obj(**dict(step.filter))] * step.count
            affected = step.count
        trace.append((before, affected, len(current)))
    return trace


def sample_program(rng: random.Random, scene: list[Obj], n_steps: int, shapes: tuple[str, ...], p_add: float) -> list[Step]:
    """``n_steps`` steps; a subtraction names attributes of an object still present (so it
    removes at least one), except rarely, to keep "nothing matches" in the distribution."""
    current = list(scene)
    steps: list[Step] = []
    while len(steps) < n_steps:
        if rng.random() < p_add or not current:
            full = (("size", rng.choice(SIZES)), ("color", rng.choice(COLORS)), ("material", rng.choice(MATERIALS)), ("shape", rng.choice(shapes)))
            step = Step("add", full, count=rng.randint(1, 3))
        else:
            if rng.random() < 0.08:
                reference = Obj(rng.choice(shapes), rng.choice(COLORS), rng.choice(SIZES), rng.choice(MATERIALS))
            else:
                reference = rng.choice(current)
            chosen = rng.sample(ATTRIBUTES, rng.choice((1, 1, 2, 2, 3)))
            step = Step("subtract", tuple((a, reference.get(a)) for a in ATTRIBUTES if a in chosen))
        if step in steps:
            continue  # a repeated step is degenerate
        steps.append(step)
        current = _apply(current, step)
    return steps


def _apply(current: list[Obj], step: Step) -> list[Obj]:
    if step.op == "subtract":
        return [o for o in current if not matches(o, step.filter)]
    return current + [Obj(**dict(step.filter))] * step.count


def chain_of_thought(n_objects: int, steps: list[Step], trace: list[tuple[int, int, int]]) -> str:
    lines = [f"There are {n_objects} objects in the image."]
    for step, (before, affected, after) in zip(steps, trace):
        if step.op == "subtract":
            name = phrase(step.filter, plural=affected != 1)
            lines.append(f"Subtract all {phrase(step.filter, plural=True)}: there {'is' if affected == 1 else 'are'} {affected} {name}, {before} - {affected} = {after}.")
        else:
            lines.append(f"{step_text(step)[:-1]}: {before} + {affected} = {after}.")
    lines.append(f"So {trace[-1][2]} objects are left.")
    return "\n".join(lines)


# --------------------------------------------------------------------------- sample, prompt


def generate(config: CountingConfig, split: str, rng: random.Random, sample_id: str) -> Sample:
    shifted_structure = split == "test-ood-m"
    shifted_look = split == "test-ood-d"
    shapes = OOD_SHAPES if shifted_look else SHAPES
    lo, hi = (config.ood_min_objects, config.ood_max_objects) if shifted_structure else (config.min_objects, config.max_objects)
    s_lo, s_hi = (config.ood_min_steps, config.ood_max_steps) if shifted_structure else (config.min_steps, config.max_steps)
    scene = sample_scene(rng, rng.randint(lo, hi), shapes, config.image_size)
    steps = sample_program(rng, scene, rng.randint(s_lo, s_hi), shapes, config.p_add)
    trace = run_program(scene, steps)
    image = render(scene, config.image_size, "textured" if shifted_look else "plain")
    problem = " ".join(step_text(s) for s in steps) + " How many objects are left?"
    scene_key = hashlib.blake2b(repr(scene).encode(), digest_size=8).hexdigest()
    return Sample(
        id=sample_id,
        images=(image,),
        problem=problem,
        cot=chain_of_thought(len(scene), steps, trace),
        answer=str(trace[-1][2]),
        meta={"num_objects": len(scene), "num_steps": len(steps), "scene_key": scene_key},
    )


COT_INSTRUCTION = "Output the thinking process in <think> </think> and final answer (number) in <answer> </answer> tags."
ZERO_SHOT_INSTRUCTION = "Answer with a single number."


def prompt(problem: str, answer: str, style: str) -> str:
    if style == "cot":
        return f"{problem} {COT_INSTRUCTION}"
    if style == "zero-shot":
        return f"{problem} {ZERO_SHOT_INSTRUCTION}"
    return problem


TASK = register(
    Task(
        name="counting",
        splits=SPLITS,
        config_cls=CountingConfig,
        generate=generate,
        prompt=prompt,
        accuracy_reward="accuracy",
        score=rewards.answer_match_score,  # the official evaluator's scorer (not the training reward)
        corpus=lambda: [COT_INSTRUCTION, ZERO_SHOT_INSTRUCTION, " ".join(SHAPES + OOD_SHAPES + COLORS + SIZES + MATERIALS)],
    )
)
