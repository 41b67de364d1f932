"""Spatial transformation (``transformation``): the TRANCE analogue.

Two images show a scene of 3 to 6 objects on a round ground plane before and after a
program of 1 to 4 transformations; the text lists the initial objects as tuples
``('object_id', 'shape', 'size', 'color', 'material')``. The model names the program as
calls ``func(object_id, value)``. Functions and their values:

    change_size      small, medium, large
    change_color     yellow, gray, cyan, blue, brown, green, red, purple
    change_material  glass, metal, rubber
    change_shape     cube, sphere, cylinder
    change_position  front, behind, left, right, front_left, front_right, behind_left, behind_right

Directions are in the world frame as the centre camera sees it (front = towards it, left =
its left); a position step moves an object a fixed distance. Programs are valid (after every
step each object stays on the plane and collides with none) and unambiguous: no step sets
an attribute to its current value, no two steps touch the same object and attribute, the
initial objects are pairwise distinguishable by their tuples, and no other matching of
initial to final objects explains the final scene with as few steps (``is_ambiguous``),
so the gold program is the unique shortest one. The answer lists the calls in a canonical
order (object id, then the function order above), comma-separated on one line; the chain of
thought walks through the objects comparing before and after.

Splits (as in TRANCE): ``train`` and ``test-id`` show both states from the centre camera;
``test-ood-left`` / ``test-ood-right`` show the final state from a camera moved left / right
by ``ood_azimuth`` degrees, so the model must relate two viewpoints.

Prompt styles: ``cot`` is the rule text, the problem and the <think>/<answer> instruction;
``zero-shot`` asks for the calls only; ``answer`` (ANS-SFT) is the rule text and the problem
without an instruction: the bare problem alone would never define the functions, values or
directions, which the answer-only model needs as much as the others.

Anatomy (shared by every family): ``TransformationConfig`` -> ``sample_scene`` -> ``render``
-> ``sample_program`` -> ``run_program`` -> ``generate`` -> ``prompt`` / scoring -> ``TASK``.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import asdict, dataclass, replace

from PIL import Image

from reasonrft import rewards
from reasonrft.tasks import camera, sprites
from reasonrft.tasks.base import Sample, Task, register

SHAPES = ("cube", "sphere", "cylinder")
SIZES = ("small", "medium", "large")
COLORS = ("yellow", "gray", "cyan", "blue", "brown", "green", "red", "purple")
MATERIALS = ("glass", "metal", "rubber")
TICK = 0.1  # positions are integers in ticks of 0.1 world units, so replay is exact
DIRECTIONS: dict[str, tuple[int, int]] = {  # (dx, dz) in ticks; +x right, +z front (towards the centre camera)
    "front": (0, 10),
    "behind": (0, -10),
    "left": (-10, 0),
    "right": (10, 0),
    "front_left": (-7, 7),
    "front_right": (7, 7),
    "behind_left": (-7, -7),
    "behind_right": (7, -7),
}
FUNCTIONS: dict[str, tuple[str, tuple[str, ...]]] = {  # function -> (attribute, values); also the canonical order
    "change_size": ("size", SIZES),
    "change_color": ("color", COLORS),
    "change_material": ("material", MATERIALS),
    "change_shape": ("shape", SHAPES),
    "change_position": ("position", tuple(DIRECTIONS)),
}
HALF_EXTENT = {"small": 0.3, "medium": 0.45, "large": 0.6}  # world units: cube half side, sphere/cylinder radius
PLANE_RADIUS_TICKS = 30  # object centres stay within this distance of the plane centre
SPLITS = ("train", "test-id", "test-ood-left", "test-ood-right")
FINAL_VIEW = {"train": "centre", "test-id": "centre", "test-ood-left": "left", "test-ood-right": "right"}


def _collision_radius(size: str) -> float:
    """In ticks: the circle around a cube's footprint, used for every shape
    so a shape change never makes a collision."""
    return HALF_EXTENT[size] / TICK * math.sqrt(2.0)


@dataclass(frozen=True)
class TransformationConfig:
    """Knobs of the transformation family. The final camera is fixed by the split name."""

    image_size: int = 224
    min_objects: int = 3
    max_objects: int = 6
    min_steps: int = 1
    max_steps: int = 4
    elevation: float = 45.0  # degrees, every camera
    ood_azimuth: float = 40.0  # degrees the OOD final camera moves left or right
    max_occlusion: float = 0.5  # reject views where nearer objects cover more of an object's box

    def __post_init__(self) -> None:
        if not 64 <= self.image_size <= 1024:
            raise ValueError(f"image_size must be in [64, 1024], got {self.image_size}")
        if not 2 <= self.min_objects <= self.max_objects <= 8:
            raise ValueError(f"need 2 <= min_objects <= max_objects <= 8, got {self.min_objects}, {self.max_objects}")
        if not 1 <= self.min_steps <= self.max_steps <= 4:
            raise ValueError(f"need 1 <= min_steps <= max_steps <= 4, got {self.min_steps}, {self.max_steps}")
        if not 15.0 <= self.elevation <= 75.0:
            raise ValueError(f"elevation must be in [15, 75] degrees, got {self.elevation}")
        if not 0.0 < self.ood_azimuth <= 90.0:
            raise ValueError(f"ood_azimuth must be in (0, 90] degrees, got {self.ood_azimuth}")
        if not 0.0 < self.max_occlusion <= 1.0:
            raise ValueError(f"max_occlusion must be in (0, 1], got {self.max_occlusion}")

    def camera(self, view: str) -> camera.Camera:
        azimuth = {"centre": 0.0, "left": -self.ood_azimuth, "right": self.ood_azimuth}[view]
        return camera.Camera(azimuth=azimuth, elevation=self.elevation)


@dataclass(frozen=True)
class Obj:
    """One object: its id, attributes, and its ground position in ticks (x right, z front)."""

    id: str
    shape: str
    size: str
    color: str
    material: str
    x: int
    z: int

    def describe(self) -> str:
        return f"{self.size} {self.color} {self.material} {self.shape}"

    def as_tuple(self) -> str:
        return f"('{self.id}', '{self.shape}', '{self.size}', '{self.color}', '{self.material}')"


Scene = tuple[Obj, ...]


# --------------------------------------------------------------------------- scene


def collides(a: Obj, b: Obj) -> bool:
    reach = _collision_radius(a.size) + _collision_radius(b.size) + 1.0  # one tick of air between
    return (a.x - b.x) ** 2 + (a.z - b.z) ** 2 < reach * reach


def on_plane(obj: Obj) -> bool:
    return obj.x * obj.x + obj.z * obj.z <= PLANE_RADIUS_TICKS * PLANE_RADIUS_TICKS


def is_valid(scene: Scene) -> bool:
    """Every object on the plane and no two colliding."""
    return all(on_plane(o) for o in scene) and not any(collides(a, b) for i, a in enumerate(scene) for b in scene[i + 1 :])


def sample_scene(rng: random.Random, n: int) -> Scene:
    """``n`` objects with pairwise different attribute tuples, placed without collision."""
    while True:
        placed: list[Obj] = []
        seen: list[tuple[str, str, str, str]] = []
        for i in range(n):
            while True:
                attrs = (rng.choice(SHAPES), rng.choice(SIZES), rng.choice(COLORS), rng.choice(MATERIALS))
                if attrs not in seen:
                    break
            for _attempt in range(50):
                x, z = rng.randint(-PLANE_RADIUS_TICKS, PLANE_RADIUS_TICKS), rng.randint(-PLANE_RADIUS_TICKS, PLANE_RADIUS_TICKS)
                obj = Obj(str(i), *attrs, x=x, z=z)
                if on_plane(obj) and not any(collides(obj, o) for o in placed):
                    placed.append(obj)
                    seen.append(attrs)
                    break
            else:
                break  # too crowded: start the scene again
        if len(placed) == n:
            return tuple(placed)


def solids(scene: Scene) -> list[camera.Solid]:
    return [camera.Solid(o.shape, o.x * TICK, o.z * TICK, HALF_EXTENT[o.size], sprites.COLORS[o.color], o.material) for o in scene]


def render(scene: Scene, view: camera.Camera, image_size: int) -> Image.Image:
    return camera.render(solids(scene), view, image_size)


def well_visible(scene: Scene, view: camera.Camera, image_size: int, max_occlusion: float) -> bool:
    """Every object inside the frame, and nearer objects' boxes cover at most ``max_occlusion``
    of its screen box (a cheap upper bound on how hidden it is)."""
    shapes = solids(scene)
    boxes = [camera.screen_box(view, s, image_size) for s in shapes]
    depths = [camera.depth(view, s) for s in shapes]
    for i, (left, top, right, bottom) in enumerate(boxes):
        if left < 0 or top < 0 or right > image_size or bottom > image_size:
            return False
        covered = 0.0
        for j, (l2, t2, r2, b2) in enumerate(boxes):
            if depths[j] < depths[i]:
                covered += max(0.0, min(right, r2) - max(left, l2)) * max(0.0, min(bottom, b2) - max(top, t2))
        if covered > max_occlusion * (right - left) * (bottom - top):
            return False
    return True


# --------------------------------------------------------------------------- program


@dataclass(frozen=True)
class Step:
    func: str
    object_id: str
    value: str

    def call(self) -> str:
        return f"{self.func}({self.object_id}, {self.value})"


class InvalidProgram(ValueError):
    """A program that breaks a rule: no-op step, repeated (object, attribute), off the plane, collision."""


def apply_step(scene: Scene, step: Step) -> Scene:
    """The scene after one step (no validity check; see ``run_program``)."""
    attribute = FUNCTIONS[step.func][0]
    out = []
    for obj in scene:
        if obj.id == step.object_id:
            if attribute == "position":
                dx, dz = DIRECTIONS[step.value]
                obj = replace(obj, x=obj.x + dx, z=obj.z + dz)
            else:
                obj = replace(obj, **{attribute: step.value})
        out.append(obj)
    return tuple(out)


def run_program(scene: Scene, steps: tuple[Step, ...]) -> Scene:
    """Execute ``steps`` in order; raise ``InvalidProgram`` on a rule broken at any step."""
    touched: list[tuple[str, str]] = []
    ids = [o.id for o in scene]
    for step in steps:
        if step.func not in FUNCTIONS or step.object_id not in ids:
            raise InvalidProgram(f"unknown function or object in {step.call()}")
        attribute, values = FUNCTIONS[step.func]
        if step.value not in values:
            raise InvalidProgram(f"{step.value!r} is not a value of {step.func}")
        if (step.object_id, attribute) in touched:
            raise InvalidProgram(f"{step.call()} touches object {step.object_id}'s {attribute} twice")
        touched.append((step.object_id, attribute))
        if attribute != "position" and getattr(scene[ids.index(step.object_id)], attribute) == step.value:
            raise InvalidProgram(f"{step.call()} changes nothing")
        scene = apply_step(scene, step)
        if not is_valid(scene):
            raise InvalidProgram(f"after {step.call()} an object is off the plane or collides")
    return scene


def canonical(steps: list[Step]) -> tuple[Step, ...]:
    """Order by object id, then by the function order of ``FUNCTIONS``."""
    order = list(FUNCTIONS)
    return tuple(sorted(steps, key=lambda s: (int(s.object_id), order.index(s.func))))


def _match_cost(before: Obj, after: Obj) -> float:
    """Fewest steps that turn ``before`` into ``after`` under the rules (inf if none)."""
    cost = sum(getattr(before, a) != getattr(after, a) for a in ("size", "color", "material", "shape"))
    delta = (after.x - before.x, after.z - before.z)
    if delta != (0, 0):
        if delta not in DIRECTIONS.values():
            return math.inf
        cost += 1
    return cost


def is_ambiguous(initial: Scene, final: Scene, length: int) -> bool:
    """True if the final scene, seen without ids (as in an image), is explained by another
    matching of initial to final objects in at most ``length`` steps: then a different program
    as short as the gold one (or shorter) gives the same picture."""
    n = len(initial)
    cost = [[_match_cost(a, b) for b in final] for a in initial]

    def search(i: int, used: list[bool], total: float, identity: bool) -> bool:
        if total > length:
            return False
        if i == n:
            return not identity
        for j in range(n):
            if not used[j] and cost[i][j] < math.inf:
                used[j] = True
                found = search(i + 1, used, total + cost[i][j], identity and i == j)
                used[j] = False
                if found:
                    return True
        return False

    return search(0, [False] * n, 0.0, True)


def sample_program(rng: random.Random, scene: Scene, n_steps: int) -> tuple[tuple[Step, ...], Scene] | None:
    """A valid, unambiguous program of ``n_steps`` steps and its final scene, or None if this
    draw breaks a rule (the caller draws again). Each (object, function) pair is equally likely."""
    pairs = [(obj, func) for obj in scene for func in FUNCTIONS]
    steps = []
    for obj, func in rng.sample(pairs, n_steps):
        attribute, values = FUNCTIONS[func]
        if attribute == "position":  # directions that are free in the initial scene (rechecked below)
            values = tuple(v for v in values if is_valid(apply_step(scene, Step(func, obj.id, v))))
            if not values:
                return None
        current = None if attribute == "position" else getattr(obj, attribute)
        steps.append(Step(func, obj.id, rng.choice([v for v in values if v != current])))
    program = canonical(steps)
    try:
        final = run_program(scene, program)
    except InvalidProgram:
        return None
    if is_ambiguous(scene, final, n_steps):
        return None
    return program, final


def answer_text(program: tuple[Step, ...]) -> str:
    return ", ".join(step.call() for step in program)


def chain_of_thought(initial: Scene, final: Scene, program: tuple[Step, ...]) -> str:
    lines = []
    for before, after in zip(initial, final):
        changes = [f"{a} changed from {getattr(before, a)} to {getattr(after, a)}" for a in ("size", "color", "material", "shape") if getattr(before, a) != getattr(after, a)]
        moved = [name for name, d in DIRECTIONS.items() if d == (after.x - before.x, after.z - before.z)]
        changes += [f"moved {moved[0]}"] if moved else []
        lines.append(f"Object {before.id} ({before.describe()}): {'; '.join(changes) if changes else 'no change'}.")
    lines.append(f"So the program is {answer_text(program)}.")
    return "\n".join(lines)


# --------------------------------------------------------------------------- sample, prompt


def generate(config: TransformationConfig, split: str, rng: random.Random, sample_id: str) -> Sample:
    n_steps = rng.randint(config.min_steps, config.max_steps)  # drawn first: lengths stay uniform
    centre, final_view = config.camera("centre"), config.camera(FINAL_VIEW[split])
    while True:
        scene = sample_scene(rng, rng.randint(config.min_objects, config.max_objects))
        if not well_visible(scene, centre, config.image_size, config.max_occlusion):
            continue
        for _attempt in range(20):
            drawn = sample_program(rng, scene, n_steps)
            if drawn is not None and well_visible(drawn[1], final_view, config.image_size, config.max_occlusion):
                break
        else:
            continue  # this scene leaves no room for such a program: draw another
        break
    program, final = drawn
    images = (render(scene, centre, config.image_size), render(final, final_view, config.image_size))
    problem = "Initial objects: " + ", ".join(o.as_tuple() for o in scene) + ". " + QUESTION
    return Sample(
        id=sample_id,
        images=images,
        problem=problem,
        cot=chain_of_thought(scene, final, program),
        answer=answer_text(program),
        meta={
            "scene_key": hashlib.blake2b(repr(scene).encode(), digest_size=8).hexdigest(),
            "length": len(program),
            "num_objects": len(scene),
            "final_view": FINAL_VIEW[split],
            "initial": [asdict(o) for o in scene],
            "final": [asdict(o) for o in final],
        },
    )


def scene_from_meta(objects: list[dict]) -> Scene:
    return tuple(Obj(**o) for o in objects)


QUESTION = "What transformations turn the first image into the second?"
RULES = (
    "The first image shows a scene in its initial state and the second image the same scene "
    "in its final state. A program of 1 to 4 transformations turns the initial scene into the final one: "
    "find it. Each initial object is given as ('object_id', 'shape', 'size', 'color', 'material'). "
    "The functions, each called as func(object_id, value), and their values:\n"
    + "\n".join(f"{func}: {', '.join(values)}" for func, (_, values) in FUNCTIONS.items())
    + "\nchange_position moves an object one fixed step. Directions are fixed in the scene as the camera "
    "of the first image sees it: front is towards that camera, behind is away from it, left and right "
    "are its left and right, front_left is front and left together, and so on. The second image may be "
    "taken from another viewpoint. Each attribute of an object changes at most once. "
    "Write the calls separated by commas, e.g. change_color(0, red), change_position(2, front_left)."
)
COT_INSTRUCTION = (
    "Output the thinking process in <think> </think> and the final answer (the function calls) in <answer> </answer> tags."
)
ZERO_SHOT_INSTRUCTION = "Answer with the function calls only."


def prompt(problem: str, answer: str, style: str) -> str:
    if style == "cot":
        return f"{RULES}\n{problem}\n{COT_INSTRUCTION}"
    if style == "zero-shot":
        return f"{RULES}\n{problem}\n{ZERO_SHOT_INSTRUCTION}"
    return f"{RULES}\n{problem}"


def score(text: str, answer: str) -> float:
    """The paper's evaluation score: partial function-sequence credit, no repeat penalty."""
    return rewards.func_sequence_score(text, answer, partial=True, repeat_penalty=False)


def length_group(answer: str) -> tuple[str, ...]:
    return (f"L{len(rewards.parse_calls(answer))}",)


TASK = register(
    Task(
        name="transformation",
        splits=SPLITS,
        config_cls=TransformationConfig,
        generate=generate,
        prompt=prompt,
        accuracy_reward="func_accuracy",
        score=score,
        groups=length_group,
        num_images=2,
        partial_credit=True,
        corpus=lambda: [RULES, QUESTION, COT_INSTRUCTION, ZERO_SHOT_INSTRUCTION, " ".join(SHAPES + SIZES + COLORS + MATERIALS + tuple(DIRECTIONS) + tuple(FUNCTIONS))],
    )
)
