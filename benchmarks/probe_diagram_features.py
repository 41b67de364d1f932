"""Do a base's vision features hold a diagram's point labels, or does its language model fail to read them?

Run by hand: ``.venv/bin/python benchmarks/probe_diagram_features.py [--model DIR] [--n-train 3000]
[--n-test 300] [--epochs 40]``.

The skills benchmark's ``diagram/labels`` asks for every point label of a structure diagram;
runs N6 and N7 write the right number of labels 87-90% of the time but the letters of a run of
the alphabet (item F1 22-25, docs/results.md 4.1). This probe freezes the vision tower and
merger (the 64 vectors the language model sees) and trains a reader of the label *set* on
them: a scorer of every letter on each vector (linear, or an MLP), max-pooled over the vectors (a letter is present
if some cell shows it), trained with binary cross-entropy on diagrams of the perception
family's train split and measured on its test split (the benchmark's own diagram items).
The predicted set is the letters scored above 0.5; reported: the set exact (the benchmark's
exact match, order aside) with its 95% interval, and the item F1 as ``bench_base`` computes it.
If the reader is far above the language model, the features hold the labels and the reading
is what limits it; near it, the tower does. Nothing is saved: a probe. One JSON line.
"""

from __future__ import annotations

import json
import random
import time

from probe_count_features import features, fit, probe_arguments, standardizer  # benchmarks/, beside this file

from reasonrft import modeling, stats
from reasonrft.base_skills import item_f1
from reasonrft.io import portable_path
from reasonrft.tasks import geometry_families, perception

LETTERS = "".join(sorted(set(geometry_families.NAME_POOL) | {"O"}))  # O: a circle's centre, labelled


def diagrams(split: str, n: int, seed: int) -> list[tuple]:
    """``n`` label questions of ``split``: (image, set of the labels drawn)."""
    config = perception.PerceptionConfig()
    rng = random.Random(f"probe-diagram-{split}-{seed}")
    items = []
    for _ in range(n):
        (image,), _, _, meta = perception.diagram(config, split, rng, qtype="labels")
        items.append((image, set(meta["labels"])))
    return items


def multi_hot(label_sets: list[set]):
    import torch

    return torch.tensor([[float(letter in labels) for letter in LETTERS] for labels in label_sets])


READER_LR = {"linear": 1e-2, "mlp": 3e-3}


def train_reader(x_train, y_train, epochs: int, seed: int, kind: str = "linear", lr: float | None = None):
    """A scorer of every letter on each (standardised) vector, max-pooled over the vectors: a
    letter is present if some cell shows it. ``linear``: one linear layer, as the dense phase's
    heads; ``mlp``: a hidden layer of the vectors' width first (``lr``: ``READER_LR[kind]``). On the oracle of
    ``tests/test_pretrain.py`` (one channel per letter) the linear reader fits 100% and the MLP
    38-59%; on a tower's real features the MLP reads more (docs/results.md 4.1): report both."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.manual_seed(seed)
    mean, std = x_train.mean((0, 1)), x_train.std((0, 1)) + 1e-6

    class CellMax(nn.Module):
        def __init__(self):
            super().__init__()
            width = x_train.shape[-1]
            layers = [nn.Linear(width, width), nn.GELU(), nn.Linear(width, len(LETTERS))] if kind == "mlp" else [nn.Linear(width, len(LETTERS))]
            self.net = nn.Sequential(standardizer(mean, std), *layers)

        def forward(self, x):
            return self.net(x).amax(1)

    reader = CellMax()
    return fit(reader, lambda index: F.binary_cross_entropy_with_logits(reader(x_train[index]), y_train[index]), len(x_train), epochs, seed, lr or READER_LR[kind])


def scored(predicted: list[set], gold: list[set]) -> dict:
    exact = [float(p == g) for p, g in zip(predicted, gold)]
    f1 = [item_f1(g, p) for p, g in zip(predicted, gold)]
    return {"set_exact": stats.accuracy_interval(exact), "item_f1": stats.accuracy_interval(f1)}


def main() -> None:
    import torch

    args = probe_arguments(__doc__.splitlines()[0], n_train=3000, n_test=300, epochs=40, readers=tuple(READER_LR))

    started = time.time()
    train, test = diagrams("train", args.n_train, args.seed), diagrams("test", args.n_test, args.seed)
    model, processor = modeling.load_model(args.model).eval(), modeling.load_processor(args.model)
    x_train, x_test = features(model, processor, train), features(model, processor, test)
    extracted = round(time.time() - started, 1)
    for kind in args.readers:
        t0 = time.time()
        reader = train_reader(x_train, multi_hot([labels for _, labels in train]), args.epochs, args.seed, kind)
        with torch.no_grad():
            present = reader(x_test) > 0  # probability above 0.5
        predicted = [{letter for letter, on in zip(LETTERS, row) if on} for row in present.tolist()]
        result = {"model": portable_path(args.model), "reader": kind, "n_train": args.n_train, "n_test": args.n_test, "epochs": args.epochs,
                  **scored(predicted, [labels for _, labels in test]), "features_s": extracted, "train_s": round(time.time() - t0, 1)}
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
