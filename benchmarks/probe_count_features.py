"""Do a base's vision features hold the count of a scene, or does its language model fail to read it?

Run by hand: ``.venv/bin/python benchmarks/probe_count_features.py [--model DIR] [--n-train 4000]
[--n-test 500] [--epochs 40] [--image-size 224] [--predictions FILE] [--reader-seeds 1]``.

The skills benchmark's ``count/test-id`` asks "How many objects are there?" of a counting-style
scene (3-13 objects); the shipped bases answer it about 54% of the time, and every CoT chain
built on them starts from the right count about as often (``benchmarks/cot_stages.py``). This
probe freezes the base's vision tower and merger (what the language model sees: 64 vectors a
224 px image) and trains two small count readers on those vectors (each channel standardised),
on held-out-disjoint scenes of the perception family's ``count`` kind (train split for
training, test split for measuring, the benchmark's own scene sizes and looks):

- ``mean_mlp``: an MLP on the mean of the 64 vectors (the dense phase's count head);
- ``cell_sum``: a per-vector MLP whose non-negative outputs are summed over the image and
  rounded (counting by density: each vector says how many objects it holds).

The readers are checked on features that plainly hold a count (``tests/test_counting.py``:
one channel marks 3-13 of the 64 cells, in noise): ``cell_sum`` counts 99% of such scenes
exactly, ``mean_mlp`` about half, all that the mean keeps of them. (One attention layer with a
query token was tried and dropped: on that oracle it counted 45%, a weak reader.) On real
towers the per-cell reader's fit depends on its own seed (run P's 336 px towers, 144 cells: it
fits 40-68% of its own training scenes across seeds, where ``mean_mlp`` fits 68-72%), so
compare towers over several ``--reader-seeds``. If a reader
reaches far above the base's 54%, the features hold the count and the language model's
reading is what limits it; if both stay near it, the features (the vision tower) do.
Exact-match accuracy on the held-out scenes, plain (``test-id`` look) and textured (the
``test-ood-d`` look, never trained), with 95% Wilson intervals, by number of objects. Nothing
is saved: a probe. One JSON line per reader.
"""

from __future__ import annotations

import argparse
import json
import random
import time

from reasonrft import modeling, stats
from reasonrft.io import atomic_write_text, portable_path
from reasonrft.tasks import perception

MAX_COUNT = 13
OBJECT_BINS = ((3, 5), (6, 9), (10, 13))


def scenes(split: str, n: int, seed: int, style: str = "plain", image_size: int = 224) -> list[tuple]:
    """``n`` count items of ``split``: (image, number of objects), rendered at ``image_size``
    (placement is tested in pixels, so other sizes draw almost, not exactly, the same scenes)."""
    config = perception.PerceptionConfig(image_size=image_size)
    rng = random.Random(f"probe-count-{split}-{style}-{seed}")
    items = []
    for _ in range(n):
        (image,), _, answer, _ = perception.count(config, split, rng, style=style)
        items.append((image, int(answer)))
    return items


def features(model, processor, items: list[tuple], batch: int = 32):
    """The merged vision outputs of each image: a (n, cells, width) float tensor, computed once."""
    import torch

    chunks = []
    with torch.no_grad():
        for start in range(0, len(items), batch):
            images = [image for image, _ in items[start : start + batch]]
            inputs = processor.image_processor(images=images, return_tensors="pt")
            out = model.model.visual(inputs["pixel_values"], grid_thw=inputs["image_grid_thw"]).pooler_output
            chunks.append(out.view(len(images), -1, out.shape[-1]).float())
    return torch.cat(chunks)


def standardizer(mean, std):
    """A layer giving each channel zero mean and unit spread by the training features' statistics."""
    import torch.nn as nn

    class _Standardize(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("mean", mean)
            self.register_buffer("std", std)

        def forward(self, x):
            return (x - self.mean) / self.std

    return _Standardize()


def make_reader(kind: str, width: int):
    import torch.nn as nn

    class MeanMLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, MAX_COUNT + 1))

        def forward(self, x):
            return self.net(x.mean(1))

    class CellSum(nn.Module):
        """A non-negative count per vector, summed: a regression, scored by rounding."""

        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, 1), nn.Softplus())
            nn.init.constant_(self.net[2].bias, -4.0)  # every cell starts near 0, not 0.7 (64 x 0.7: a sum far off that trains slowly)

        def forward(self, x):
            return self.net(x).squeeze(-1).sum(1)

    return {"mean_mlp": MeanMLP, "cell_sum": CellSum}[kind]()


def train_reader(kind: str, x_train, y_train, epochs: int, seed: int, lr: float = 3e-3):
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    # each channel standardised by its training mean and spread over all cells: the readers see
    # magnitudes as they are (a LayerNorm per vector would blow an empty cell's noise up to
    # the scale of an object's signal)
    mean, std = x_train.mean((0, 1)), x_train.std((0, 1)) + 1e-6
    reader = torch.nn.Sequential(standardizer(mean, std), make_reader(kind, x_train.shape[-1]))

    def batch_loss(index):
        out, target = reader(x_train[index]), y_train[index]
        return F.mse_loss(out, target.float()) if kind == "cell_sum" else F.cross_entropy(out, target)

    return fit(reader, batch_loss, len(x_train), epochs, seed, lr)


def fit(reader, batch_loss, n_items: int, epochs: int, seed: int, lr: float):
    """The probes' training loop: ``epochs`` passes over ``n_items`` in shuffled batches of 64,
    Adam at ``lr``, flat, then down to 0 over the last fifth; ``batch_loss(index)`` gives the
    loss of the items ``index``. Returns ``reader`` in eval mode."""
    import torch

    steps = epochs * ((n_items + 63) // 64)
    optimizer = torch.optim.Adam(reader.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, 5 * (1 - step / steps)))
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for index in torch.randperm(n_items, generator=generator).split(64):
            loss = batch_loss(index)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    return reader.eval()


def predict(kind: str, reader, x):
    import torch

    with torch.no_grad():
        out = reader(x)
    return out.round().clamp(0, MAX_COUNT).long() if kind == "cell_sum" else out.argmax(-1)


def scored(predictions, counts) -> dict:
    right = [float(p == c) for p, c in zip(predictions, counts)]
    by_objects = {f"{lo}-{hi}": round(100 * sum(r for r, c in zip(right, counts) if lo <= c <= hi) / max(1, sum(lo <= c <= hi for c in counts)), 1) for lo, hi in OBJECT_BINS}
    return {**stats.accuracy_interval(right), "by_objects": by_objects}


def probe_arguments(description: str, n_train: int, n_test: int, epochs: int, readers: tuple[str, ...], count_options: bool = False) -> argparse.Namespace:
    """The probes' command line: ``--model`` (default: the shipped base), ``--n-train``,
    ``--n-test``, ``--epochs``, ``--seed`` and ``--readers`` (comma-separated, of ``readers``;
    all by default), parsed into ``args.readers`` as a list; a clear error for a missing model
    or an unknown reader. With ``count_options``, also this probe's own ``--image-size`` (the side
    the scenes are rendered at), ``--predictions`` (a file of per-scene predictions) and
    ``--reader-seeds`` (readers trained at several seeds on the same features)."""
    parser = argparse.ArgumentParser(description=description)
    if count_options:
        parser.add_argument("--image-size", type=int, default=224, help="render the scenes at this side (default 224, the tasks' own); the model's processor resizes them as it would a task's")
    parser.add_argument("--model", default=str(modeling.shipped_base() or ""), help="a base model directory (default: the shipped base)")
    parser.add_argument("--n-train", type=int, default=n_train)
    parser.add_argument("--n-test", type=int, default=n_test)
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--readers", default=",".join(readers), help=f"comma-separated, of: {', '.join(readers)}")
    if count_options:
        parser.add_argument("--predictions", default="", help="also write each test scene's gold and predicted count here (JSON lines), for paired comparisons of two models")
        parser.add_argument("--reader-seeds", type=int, default=1, help="train each reader this many times, seeds --seed, --seed + 1, ... on the same features and scenes (the per-cell reader's fit depends on its seed)")
    args = parser.parse_args()
    if not args.model:
        parser.error("--model is required when the package ships no base")
    if getattr(args, "reader_seeds", 1) < 1:
        parser.error(f"--reader-seeds must be at least 1, not {args.reader_seeds}")
    args.readers = args.readers.split(",")
    if unknown := [name for name in args.readers if name not in readers]:
        parser.error(f"unknown reader {unknown[0]!r}: choose from {', '.join(readers)}")
    return args


def main() -> None:
    import torch

    args = probe_arguments(__doc__.splitlines()[0], n_train=4000, n_test=500, epochs=40, readers=("mean_mlp", "cell_sum"), count_options=True)

    started = time.time()
    train = scenes("train", args.n_train, args.seed, image_size=args.image_size)
    tests = {style: scenes("test", args.n_test, args.seed, style=style, image_size=args.image_size) for style in ("plain", "textured")}
    model, processor = modeling.load_model(args.model).eval(), modeling.load_processor(args.model)
    x_train = features(model, processor, train)
    y_train = torch.as_tensor([c for _, c in train])
    x_tests = {look: features(model, processor, items) for look, items in tests.items()}
    extracted = round(time.time() - started, 1)
    rows = []
    for kind in args.readers:
        for reader_seed in range(args.seed, args.seed + args.reader_seeds):
            t0 = time.time()
            reader = train_reader(kind, x_train, y_train, args.epochs, reader_seed)
            result = {"model": portable_path(args.model), "reader": kind, "reader_seed": reader_seed, "n_train": args.n_train, "epochs": args.epochs,
                      "image_size": args.image_size, "cells": x_train.shape[1]}
            result["train_exact"] = round(100 * float((predict(kind, reader, x_train) == y_train).float().mean()), 1)
            for look, items in tests.items():
                predicted = predict(kind, reader, x_tests[look]).tolist()
                result[look] = scored(predicted, [c for _, c in items])
                rows += [{"reader": kind, "reader_seed": reader_seed, "look": look, "item": i, "gold": c, "predicted": p} for i, ((_, c), p) in enumerate(zip(items, predicted))]
            result.update({"features_s": extracted, "train_s": round(time.time() - t0, 1)})
            print(json.dumps(result), flush=True)
    if args.predictions:
        atomic_write_text(args.predictions, "".join(json.dumps(row) + "\n" for row in rows))


if __name__ == "__main__":
    main()
