"""Does a base's vision tower see the attributes of a transformation pair's objects, as it sees a counting scene's?

Run by hand: ``.venv/bin/python benchmarks/probe_object_cells.py [--model DIR] [--n-train 1500]
[--n-test 300] [--epochs 60] [--readers transformation,counting]`` (``--readers``: the looks).

The skills benchmark's ``two_images`` asks for both images of a transformation pair described
(each object's size, colour, material and shape, left to right); the shipped base (N2) gets
the number and order of the objects right about 70% of the time but only 45-47% of the
attribute words. The transformation renderer draws another look than the counting scenes the
dense phase trained the tower on (a camera, three sizes, glass), so is that look in the
features? This probe freezes the tower and merger and, for each object of an image, takes the
merged vector of the cell holding the centre of its bounding box (the 8 x 8 grid of
``dense_targets.cell_targets``); one small MLP per attribute says the object's value from it.
Trained on the objects of train-split images, measured on test-split ones, for two looks:

- ``transformation``: both images of the perception family's ``two_images`` pairs (2-4 objects);
- ``counting``: the counting scenes of the ``attribute`` kind (3-10 objects), whose look the
  dense phase trained: the reference.

Accuracy per attribute with its 95% Wilson interval over objects, and the most frequent
value's share. If the transformation look reads near the counting one, the tower sees it and
the description's reading limits the skill; far below, the tower. (A cell can hold a nearer
object's pixels: the figures are a floor of what the features hold.) Nothing is saved: a
probe. One JSON line per look.
"""

from __future__ import annotations

import json
import random
import time

from probe_count_features import features, fit, probe_arguments, standardizer  # benchmarks/, beside this file

from reasonrft import modeling, stats
from reasonrft.io import portable_path
from reasonrft.tasks import camera, counting, perception, transformation

GRID = 8  # merged cells a side of a 224 px image
LOOKS = {"transformation": {"size": transformation.SIZES, "color": transformation.COLORS, "material": transformation.MATERIALS, "shape": transformation.SHAPES},
         "counting": {name: counting.VALUES[name] for name in ("size", "color", "material", "shape")}}


def centre_cell(box: tuple[float, float, float, float], image_size: int) -> int:
    """The index of the merged cell (row-major over the grid) that holds the box's centre."""
    cell = image_size / GRID
    left, top, right, bottom = box
    col, row = (min(GRID - 1, max(0, int(v / cell))) for v in ((left + right) / 2, (top + bottom) / 2))
    return row * GRID + col


def images_and_objects(look: str, split: str, n: int, seed: int) -> tuple[list, list[tuple[int, int, dict]]]:
    """``n`` images of ``look`` and their objects: (image index, centre cell, attribute -> value)."""
    config = perception.PerceptionConfig()
    rng = random.Random(f"probe-object-cells-{look}-{split}-{seed}")
    images, objects = [], []
    view = transformation.TransformationConfig().camera("centre")  # the two_images kind's camera
    while len(images) < n:
        if look == "transformation":
            pair, _, _, meta = perception.two_images(config, split, rng)
            for image, state in zip(pair, ("initial", "final")):
                scene = transformation.scene_from_meta(meta[state])
                for obj, solid in zip(scene, transformation.solids(scene)):
                    objects.append((len(images), centre_cell(camera.screen_box(view, solid, image.width), image.width), {a: getattr(obj, a) for a in LOOKS[look]}))
                images.append(image)
        else:
            scene, _ = perception.sample_counting_scene(config, split, rng, config.attribute_min_objects, config.attribute_max_objects, "attribute")
            for obj in scene:
                objects.append((len(images), centre_cell(counting.screen_box(obj, config.image_size), config.image_size), {a: obj.get(a) for a in LOOKS[look]}))
            images.append(counting.render(scene, config.image_size, "plain"))
    return images[:n], [o for o in objects if o[0] < n]


def object_vectors(x, objects):
    """Each object's centre-cell vector: (objects, width)."""
    import torch

    return torch.stack([x[image, cell] for image, cell, _ in objects])


def train_heads(v_train, labels: dict, epochs: int, seed: int, lr: float = 1e-3):
    """One MLP per attribute on the standardised vector, trained together by cross-entropy."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.manual_seed(seed)
    mean, std = v_train.mean(0), v_train.std(0) + 1e-6
    width = v_train.shape[-1]
    heads = nn.ModuleDict({a: nn.Sequential(standardizer(mean, std), nn.Linear(width, 256), nn.GELU(), nn.Linear(256, n)) for a, n in labels["classes"].items()})
    targets = {a: torch.as_tensor(values) for a, values in labels["train"].items()}
    return fit(heads, lambda index: sum(F.cross_entropy(heads[a](v_train[index]), targets[a][index]) for a in heads), len(v_train), epochs, seed, lr)


def main() -> None:
    import torch

    args = probe_arguments(__doc__.splitlines()[0], n_train=1500, n_test=300, epochs=60, readers=tuple(LOOKS))
    model, processor = modeling.load_model(args.model).eval(), modeling.load_processor(args.model)
    for look in args.readers:
        started = time.time()
        values = LOOKS[look]
        data = {split: images_and_objects(look, split, n, args.seed) for split, n in (("train", args.n_train), ("test", args.n_test))}
        vectors = {split: object_vectors(features(model, processor, [(image, None) for image in images]), objects) for split, (images, objects) in data.items()}
        labels = {split: {a: [values[a].index(o[2][a]) for o in objects] for a in values} for split, (_, objects) in data.items()}
        heads = train_heads(vectors["train"], {"classes": {a: len(v) for a, v in values.items()}, "train": labels["train"]}, args.epochs, args.seed)
        result = {"model": portable_path(args.model), "look": look, "images": {"train": args.n_train, "test": args.n_test}, "objects": {split: len(objects) for split, (_, objects) in data.items()}}
        with torch.no_grad():
            for a in values:
                predicted = heads[a](vectors["test"]).argmax(-1).tolist()
                gold = labels["test"][a]
                result[a] = {**stats.accuracy_interval([float(p == g) for p, g in zip(predicted, gold)]), "majority": round(100 * max(gold.count(k) for k in set(gold)) / len(gold), 1)}
        result["seconds"] = round(time.time() - started, 1)
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
