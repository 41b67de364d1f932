"""Dense per-patch targets for the vision tower: the first phase of the base's pretraining.

One answer token per image teaches a from-scratch vision tower little per step. The symbolic
scene says which object covers each merged patch (a 28 x 28 px cell of a 224 px image: the
tower's 8 x 8 merged outputs; 12 x 12 at ``image_size`` 336), so a temporary head on those outputs can learn, for every
cell, whether an object covers it and that object's colour, shape, size and material, and
how many object centres it holds; a second head reads the number of objects off the mean of
the cells, and with ``filtered_counts`` a third reads off it, for every attribute value and
every pair of values of two attributes, how many objects have it (87 counts: "how many large
green objects" is then in the features for the language model to read, as the count is). On structure diagrams (a fraction ``diagram_fraction`` of the images) the cell
targets are the characters of the label or number drawn there. Both heads are dropped afterwards: only the vision tower (and its merger) keeps
what it learned, and the saved model is a plain ``Qwen2VLForConditionalGeneration``. The
language model then learns to read those features (answer-only SFT, ``stages/pretrain``).

Scenes are counting-style (plain renderer, in-domain shapes) from the perception family's
``train`` split (``perception.in_split``: no benchmark scene is ever trained on), 1 to
``max_objects`` objects; the curriculum raises ``max_objects`` from 1 to 13 over
``curriculum_steps``. Item ``i`` of step ``s`` comes from its own RNG, so a resumed run sees
exactly the batches a run without interruption would (``train`` saves a checkpoint every
``save_steps`` and continues from the newest one), and ``workers`` processes rendering the
batches ahead (a GPU trains faster than one core renders) change nothing but the speed.
On a machine with a GPU the tower and heads train there.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reasonrft import modeling, phase_loop
from reasonrft.config import UserError
from reasonrft.io import truncate_jsonl
from reasonrft.tasks import counting, geometry_draw, perception
from reasonrft.tasks.base import item_rng

CELL_HEADS = {"color": counting.COLORS, "shape": counting.SHAPES, "size": counting.SIZES, "material": counting.MATERIALS}
CHARACTERS = " 0123456789.ABCDEFGHIJKLMNOPQRSTUVWXYZx°?"  # " ": no character in that slot; "?": any other
TEXT_SLOTS = 5  # characters of the text centred in a cell ("12.5°" is five)
MAX_CENTRES = 2  # centres per cell, classes 0, 1, 2+
MAX_COUNT = 13
IGNORE = -100
VALUE_FILTERS = [(pair,) for pair in counting.ATTRIBUTE_VALUES] + [
    ((first, a), (second, b)) for i, first in enumerate(counting.ATTRIBUTES) for second in counting.ATTRIBUTES[i + 1 :]
    for a in counting.VALUES[first] for b in counting.VALUES[second]]  # 15 values and 72 pairs: the filters the filtered-count head counts
CELL_PX = 28  # one merged cell of the tower's output: 2 x 2 patches of 14 px
IMAGE_SIZE = 224  # the tasks' own side: an 8 x 8 grid of cells
CHECKPOINT = "dense-checkpoint.pt"
LOG = "dense-log.jsonl"


@dataclass(frozen=True)
class DenseConfig:
    """The dense phase: steps, batch, learning rate (linear warm-up then cosine), curriculum."""

    steps: int = 600
    batch_size: int = 16
    learning_rate: float = 2e-3
    warmup_steps: int = 30
    weight_decay: float = 0.01
    curriculum_steps: int = 300  # max objects per scene rises from 1 to 13 over these steps
    diagram_fraction: float = 0.0  # items that are structure diagrams with character targets
    save_steps: int = 100
    eval_every: int = 100
    eval_images: int = 64
    seed: int = 0
    workers: int = 0  # processes rendering batches ahead of the training step (0: the training process)
    filtered_counts: bool = False  # a head on the mean cell counting the objects of each of VALUE_FILTERS
    image_size: int = IMAGE_SIZE  # scenes rendered at this side, a (side / CELL_PX)^2 grid of cells: the processor must resize to it

    def __post_init__(self) -> None:
        check_image_size(self.image_size)


def check_image_size(side: int, name: str = "image_size") -> None:
    """A side the dense targets fit: whole cells (a side not a multiple of ``CELL_PX`` would be
    resized by the processor to one, and its cells would not be the targets'), 4 to 32 of them."""
    if side % CELL_PX or not 4 * CELL_PX <= side <= 32 * CELL_PX:
        raise ValueError(f"{name} must be a multiple of {CELL_PX} in [{4 * CELL_PX}, {32 * CELL_PX}] (one merged cell is {CELL_PX} px), got {side}")


# --------------------------------------------------------------------------- targets


def cell_targets(scene: list[counting.Obj], image_size: int, grid: int, min_cover: float = 0.2) -> dict[str, np.ndarray]:
    """Per-cell targets of a ``grid`` x ``grid`` image: ``present`` (0/1), each attribute's
    class index (IGNORE where no object), ``centres`` (object centres in the cell, capped).
    A cell belongs to the nearest object covering at least ``min_cover`` of it (objects drawn
    far to near, so near ones occlude); boxes are shrunk by 10% a side to the sprite's body."""
    owner = np.full((image_size, image_size), -1, dtype=np.int16)
    for index in sorted(range(len(scene)), key=lambda i: scene[i].z):  # far first: near overwrites
        left, top, right, bottom = counting.screen_box(scene[index], image_size)
        dx, dy = 0.1 * (right - left), 0.1 * (bottom - top)
        owner[max(0, round(top + dy)) : max(0, round(bottom - dy)), max(0, round(left + dx)) : max(0, round(right - dx))] = index
    cell = image_size // grid
    cells = owner[: cell * grid, : cell * grid].reshape(grid, cell, grid, cell).transpose(0, 2, 1, 3).reshape(grid * grid, cell * cell)
    targets = {"present": np.zeros(grid * grid, dtype=np.int64), "centres": np.zeros(grid * grid, dtype=np.int64)}
    targets.update({name: np.full(grid * grid, IGNORE, dtype=np.int64) for name in CELL_HEADS})
    for k, pixels in enumerate(cells):
        covered = pixels[pixels >= 0]
        if covered.size >= min_cover * pixels.size:
            obj = scene[int(np.bincount(covered).argmax())]
            targets["present"][k] = 1
            for name, values in CELL_HEADS.items():
                targets[name][k] = values.index(obj.get(name))
    for obj in scene:
        left, top, right, bottom = counting.screen_box(obj, image_size)
        col, row = min(grid - 1, int((left + right) / 2 // cell)), min(grid - 1, int((top + bottom) / 2 // cell))
        targets["centres"][row * grid + col] = min(MAX_CENTRES, targets["centres"][row * grid + col] + 1)
    return targets


def text_targets(texts: list[tuple[tuple[float, float], str]], image_size: int, grid: int) -> dict[str, np.ndarray]:
    """Per-cell character targets of a diagram: slot ``j`` of a cell is the ``j``-th character
    of the text centred in that cell (" " past its end). Cells without text are IGNORE: with
    them as a "blank" class the heads learned to answer blank everywhere (0% on text cells
    after 700 steps, docs/results.md)."""
    cell = image_size // grid
    targets = {f"char{j}": np.full(grid * grid, IGNORE, dtype=np.int64) for j in range(TEXT_SLOTS)}
    for (x, y), text in texts:
        k = min(grid - 1, int(y // cell)) * grid + min(grid - 1, int(x // cell))
        if targets["char0"][k] != IGNORE:
            continue  # one text per cell: the first drawn
        for j in range(TEXT_SLOTS):
            char = text[j] if j < len(text) else " "
            targets[f"char{j}"][k] = CHARACTERS.index(char) if char in CHARACTERS else CHARACTERS.index("?")
    return targets


@contextmanager
def recorded_texts():
    """The texts the geometry renderer draws, with their centres in output pixels: it wraps
    ``geometry_draw._Canvas.text`` (the one place every label and number is drawn) for the
    duration, so the figure builders and the renderer stay as they are."""
    texts: list[tuple[tuple[float, float], str]] = []
    original = geometry_draw._Canvas.text

    def text(canvas, at, value, color):
        texts.append(((at[0] / canvas.k, at[1] / canvas.k), value))
        original(canvas, at, value, color)

    geometry_draw._Canvas.text = text
    try:
        yield texts
    finally:
        geometry_draw._Canvas.text = original


def scene_item(split: str, seed: int, step: int, i: int, max_objects: int, image_size: int = IMAGE_SIZE, diagram_fraction: float = 0.0, filtered_counts: bool = False):
    """Image, per-cell targets and object count of item ``i`` of batch ``step``: a counting-style
    scene of 1 to ``max_objects`` objects, or (``diagram_fraction`` of items) a structure diagram
    with its character targets; with ``filtered_counts``, the targets hold the scene's count of
    each of ``VALUE_FILTERS`` too. Targets a kind of image does not have are IGNORE."""
    rng = item_rng("dense", split, seed, step * 10_000 + i)
    config = perception.PerceptionConfig(image_size=image_size)
    grid = image_size // CELL_PX
    if rng.random() < diagram_fraction:
        with recorded_texts() as texts:
            (image,), *_ = perception.diagram(config, split, rng)
        targets = {name: np.full(grid * grid, IGNORE, dtype=np.int64) for name in ("present", "centres", *CELL_HEADS)}
        if filtered_counts:
            targets["filtered_counts"] = np.full(len(VALUE_FILTERS), IGNORE, dtype=np.int64)
        return image, {**targets, **text_targets(texts, image_size, grid)}, IGNORE
    while True:
        scene = counting.sample_scene(rng, rng.randint(1, max_objects), counting.SHAPES, image_size)
        if perception.in_split(perception.scene_key("dense", scene), split, config):
            break
    targets = cell_targets(scene, image_size, grid)
    targets.update({f"char{j}": np.full(grid * grid, IGNORE, dtype=np.int64) for j in range(TEXT_SLOTS)})
    if filtered_counts:
        targets["filtered_counts"] = np.array([sum(counting.matches(obj, flt) for obj in scene) for flt in VALUE_FILTERS], dtype=np.int64)
    return counting.render(scene, image_size, "plain"), targets, len(scene)


def curriculum(step: int, config: DenseConfig) -> int:
    """Max objects per scene at ``step``: 1 at first, 13 from ``curriculum_steps`` on."""
    if config.curriculum_steps <= 0:
        return MAX_COUNT
    return min(MAX_COUNT, 1 + (MAX_COUNT - 1) * step // config.curriculum_steps)


class Batches:
    """The training batch of each step, ``batch_tensors`` of its items: a map-style dataset
    (index = step) that ``torch.utils.data.DataLoader`` can render in worker processes."""

    def __init__(self, processor, config: DenseConfig) -> None:
        self.processor, self.config = processor, config

    def __len__(self) -> int:
        return self.config.steps

    def __getitem__(self, step: int):
        config = self.config
        items = [scene_item("train", config.seed, step, i, curriculum(step, config), config.image_size, diagram_fraction=config.diagram_fraction, filtered_counts=config.filtered_counts) for i in range(config.batch_size)]
        return batch_tensors(self.processor, items)


def batches_from(start: int, processor, config: DenseConfig):
    """The batches of steps ``start .. steps - 1`` in order, rendered by ``config.workers``
    processes (or, with 0, here)."""
    from torch.utils.data import DataLoader

    batches = Batches(processor, config)
    if config.workers == 0:
        return (batches[step] for step in range(start, config.steps))
    return DataLoader(batches, batch_size=None, sampler=range(start, config.steps), num_workers=config.workers, prefetch_factor=4)


# --------------------------------------------------------------------------- the temporary head


def make_head(width: int, filtered_counts: bool = False):
    """Linear per-cell heads (present, attributes, centres) and an MLP count head on the mean
    cell; with ``filtered_counts``, an MLP on the mean cell with a count per ``VALUE_FILTERS``."""
    import torch.nn as nn

    cells = nn.ModuleDict({"present": nn.Linear(width, 2), "centres": nn.Linear(width, MAX_CENTRES + 1)})
    cells.update({name: nn.Linear(width, len(values)) for name, values in CELL_HEADS.items()})
    cells.update({f"char{j}": nn.Linear(width, len(CHARACTERS)) for j in range(TEXT_SLOTS)})
    count = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, MAX_COUNT + 1))
    heads = {"cells": cells, "count": count}
    if filtered_counts:
        heads["filtered_counts"] = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, len(VALUE_FILTERS) * (MAX_COUNT + 1)))
    return nn.ModuleDict(heads)


def batch_tensors(processor, items):
    import torch

    inputs = processor.image_processor(images=[image for image, _, _ in items], return_tensors="pt")
    targets = {name: torch.as_tensor(np.stack([t[name] for _, t, _ in items])) for name in items[0][1]}
    targets["count"] = torch.as_tensor([n for _, _, n in items])
    return inputs["pixel_values"], inputs["image_grid_thw"], targets


def forward(visual, head, pixel_values, grid_thw, batch: int):
    """Merged vision outputs (batch, cells, width) and every head's logits."""
    features = visual(pixel_values, grid_thw=grid_thw).pooler_output.view(batch, -1, head["count"][0].in_features)
    logits = {name: layer(features) for name, layer in head["cells"].items()}
    mean_cell = features.mean(1)
    logits["count"] = head["count"](mean_cell)
    if "filtered_counts" in head:
        logits["filtered_counts"] = head["filtered_counts"](mean_cell).view(batch, len(VALUE_FILTERS), MAX_COUNT + 1)
    return logits


def loss_of(logits, targets):
    import torch.nn.functional as F

    total = 0.0
    for name, value in logits.items():
        target = targets[name]
        if not (target != IGNORE).any():
            continue  # no image of this batch has that target (cross_entropy would be NaN)
        total = total + F.cross_entropy(value.reshape(-1, value.shape[-1]), target.reshape(-1), ignore_index=IGNORE)
    return total


def evaluate(visual, head, processor, config: DenseConfig) -> dict[str, float]:
    """Held-out accuracy (``test`` scenes of 1-13 objects): per attribute over object cells,
    ``present`` over all cells, ``count`` exact, ``filtered_counts`` exact over every filter
    (most are 0 or 1) and ``filtered_counts_present`` over the filters some object matches."""
    import torch

    items = [scene_item("test", config.seed, 0, i, MAX_COUNT, config.image_size, diagram_fraction=config.diagram_fraction, filtered_counts=config.filtered_counts) for i in range(config.eval_images)]
    pixel_values, grid_thw, targets = batch_tensors(processor, items)
    device = next(visual.parameters()).device
    pixel_values, grid_thw = pixel_values.to(device), grid_thw.to(device)
    targets = {name: t.to(device) for name, t in targets.items()}
    with torch.no_grad():
        logits = forward(visual, head, pixel_values, grid_thw, len(items))
    result = {}
    for name, value in logits.items():
        target = targets[name]
        keep = target != IGNORE  # attributes: object cells; characters: text cells
        if keep.any():
            result[name] = round(100 * float((value.argmax(-1)[keep] == target[keep]).float().mean()), 1)
    if "char0" in targets and (targets["char0"] != IGNORE).any():  # whole texts: every slot of a text cell right
        text_cells = targets["char0"] != IGNORE
        right = torch.stack([logits[f"char{j}"].argmax(-1) == targets[f"char{j}"] for j in range(TEXT_SLOTS)]).all(0)
        result["text"] = round(100 * float(right[text_cells].float().mean()), 1)
    if "filtered_counts" in logits:
        target = targets["filtered_counts"]
        matched = (target != IGNORE) & (target > 0)
        if matched.any():
            result["filtered_counts_present"] = round(100 * float((logits["filtered_counts"].argmax(-1)[matched] == target[matched]).float().mean()), 1)
    return result


# --------------------------------------------------------------------------- training


def train(model, processor, out: str | os.PathLike, config: DenseConfig, log=print) -> dict[str, float]:
    """Train ``model``'s vision tower with the temporary heads for ``config.steps`` steps,
    resuming from ``OUT/dense-checkpoint.pt`` when present; returns the held-out accuracies.
    The model is changed in place (vision tower only); the heads live in the checkpoint."""
    import torch

    low, high = modeling.pixel_limits(processor)
    if not low <= config.image_size**2 <= high:  # it would resize the scenes, and the cells would not be the targets'
        raise UserError(f"the dense phase renders {config.image_size} px scenes, but the processor resizes images to {low}-{high} pixels")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)  # the heads' initial weights: a resumed run must match an uninterrupted one
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        torch.set_float32_matmul_precision("high")  # TF32 matmuls
    visual = model.model.visual.to(device)
    head = make_head(model.config.text_config.hidden_size if hasattr(model.config, "text_config") else model.config.hidden_size, config.filtered_counts).to(device)
    params = list(visual.parameters()) + list(head.parameters())
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    start = 0
    checkpoint = out / CHECKPOINT
    if (state := phase_loop.load_checkpoint(checkpoint)) is not None:
        visual.load_state_dict(state["visual"])
        head.load_state_dict(state["head"])
        optimizer.load_state_dict(state["optimizer"])
        start = state["step"]
        log(f"dense: resuming from step {start}", flush=True)
    truncate_jsonl(out / LOG, start)  # a fresh start (0) or a resume: no records past it
    visual.train()
    started = time.time()
    for step, (pixel_values, grid_thw, targets) in enumerate(batches_from(start, processor, config), start):
        pixel_values, grid_thw = pixel_values.to(device), grid_thw.to(device)
        targets = {name: t.to(device) for name, t in targets.items()}
        lr = phase_loop.set_lr(optimizer, step, config)
        loss = loss_of(forward(visual, head, pixel_values, grid_thw, config.batch_size), targets)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        done = step + 1
        record = {"step": done, "loss": round(loss.item(), 4), "lr": lr, "max_objects": curriculum(step, config), "seconds": round(time.time() - started, 1)}
        if done % config.eval_every == 0 or done == config.steps:
            visual.eval()
            record["heldout"] = evaluate(visual, head, processor, config)
            visual.train()
        if done % 10 == 0 or "heldout" in record:
            phase_loop.write_record(out / LOG, record, log)
        if done % config.save_steps == 0 or done == config.steps:
            phase_loop.save_checkpoint(checkpoint, {"visual": visual.state_dict(), "head": head.state_dict(), "optimizer": optimizer.state_dict(), "step": done})
    visual.eval()
    model.to("cpu")  # the phase's model is saved and handed on as the CPU loaded it
    head.to("cpu")
    if start >= config.steps and checkpoint.is_file():
        return evaluate(visual, head, processor, config)
    return record.get("heldout", {}) if start < config.steps else {}
