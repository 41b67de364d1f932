"""Do a base's vision features bind each object's attributes, or does its language model fail to read them?

Run by hand: ``.venv/bin/python benchmarks/probe_attribute_features.py [--model DIR]
[--n-train 4000] [--n-test 500] [--epochs 80]``.

The skills benchmark's ``attribute/*`` asks "What size is the red metal cylinder?" of a 3-10
object scene; the shipped base (N2) answers colour 86%, shape 81%, size 70% and material 75%
(chance 12.5 / 33 / 50 / 50). Its dense heads read size and material from 95-98% of object
cells, so are size and material in the 64 vectors the language model sees, bound to their
object? This probe freezes the vision tower and merger and trains the factored reader of
``probe_filtered_count_features`` (per vector: how many objects it holds and a distribution
over each attribute's values) on the perception family's attribute questions, given the
identifying phrase as a multi-hot of the values it names. The answer is the mixture of the
vectors' distributions of the asked attribute, each vector weighted by its objects times the
probability that they have every named value: the vectors of the named object, as far as the
features say which they are. Trained by cross-entropy on train-split questions (the four
attributes in equal shares), measured on test-split ones (the benchmark's own kind),
attribute by attribute with 95% Wilson intervals. The same reader given an empty phrase is
the floor: it can only answer with the scene's palette, weighted by the objects' sizes in
the image.

If the reader answers far above the language model, the features hold the binding and the
reading is what limits the skill; near it, the tower. Nothing is saved: a probe. One JSON
line per reader.
"""

from __future__ import annotations

import json
import random
import time

from probe_count_features import features, fit, probe_arguments  # benchmarks/, beside this file
from probe_filtered_count_features import ATTRIBUTE_GROUPS, VALUES, factored_cells, filter_code

from reasonrft import modeling, stats
from reasonrft.io import portable_path
from reasonrft.tasks import counting, perception

READERS = {"factored": True, "factored_without_phrase": False}  # reader name -> given the phrase


def items(split: str, n: int, seed: int) -> list[tuple]:
    """``n`` attribute questions of ``split``, the attributes in turn: (image, phrase's filter,
    asked attribute, the answer's column in ``VALUES``)."""
    config = perception.PerceptionConfig()
    rng = random.Random(f"probe-attribute-{split}-{seed}")
    out = []
    for i in range(n):
        asked = counting.ATTRIBUTES[i % len(counting.ATTRIBUTES)]
        (image,), _, answer, meta = perception.attribute(config, split, rng, qtype=asked)
        out.append((image, tuple(tuple(f) for f in meta["filter"]), asked, VALUES.index((asked, answer))))
    return out


def train_reader(x_train, f_train, y_train, epochs: int, seed: int, conditioned: bool = True, lr: float = 1e-3):
    """The factored reader (module docstring) trained by cross-entropy on the answer's column;
    not ``conditioned``: given an empty phrase (the floor)."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.manual_seed(seed)

    class FactoredAttribute(nn.Module):
        def __init__(self):
            super().__init__()
            self.cells = factored_cells(x_train, ATTRIBUTE_GROUPS)

        def forward(self, x, code):
            """The log of the mixture of the vectors' value distributions: (n, 15), each
            attribute's columns a distribution."""
            objects, log_p = self.cells(x)
            if not conditioned:
                code = torch.zeros_like(code)
            log_weight = objects.clamp_min(1e-6).log() + (log_p * code[:, None, :]).sum(-1)  # objects x P(every named value)
            return (log_weight.log_softmax(1)[..., None] + log_p).logsumexp(1)

    reader = FactoredAttribute()
    return fit(reader, lambda index: F.nll_loss(reader(x_train[index], f_train[index]), y_train[index]), len(x_train), epochs, seed, lr)


def predict(reader, x, code, asked: list[str]) -> list[int]:
    """The most probable value of each item's asked attribute, as its column in ``VALUES``."""
    import torch

    with torch.no_grad():
        log_mix = reader(x, code)
    groups = {attribute: group for attribute, group in zip(counting.ATTRIBUTES, ATTRIBUTE_GROUPS)}
    return [groups[a][int(row[groups[a]].argmax())] for row, a in zip(log_mix, asked)]


def scored(predictions: list[int], answers: list[int], asked: list[str]) -> dict:
    """Exact match with its interval, attribute by attribute (the benchmark's ``attribute/*``)."""
    return {f"attribute/{attribute}": stats.accuracy_interval([float(p == a) for p, a, q in zip(predictions, answers, asked) if q == attribute]) for attribute in counting.ATTRIBUTES}


def main() -> None:
    import torch

    args = probe_arguments(__doc__.splitlines()[0], n_train=4000, n_test=500, epochs=80, readers=tuple(READERS))

    started = time.time()
    train, test = items("train", args.n_train, args.seed), items("test", args.n_test, args.seed)
    model, processor = modeling.load_model(args.model).eval(), modeling.load_processor(args.model)
    x_train, x_test = features(model, processor, [(image, a) for image, _, _, a in train]), features(model, processor, [(image, a) for image, _, _, a in test])
    f_train, f_test = filter_code([f for _, f, _, _ in train]), filter_code([f for _, f, _, _ in test])
    y_train, answers, asked = torch.as_tensor([a for *_, a in train]), [a for *_, a in test], [q for _, _, q, _ in test]
    extracted = round(time.time() - started, 1)
    for name in args.readers:
        t0 = time.time()
        reader = train_reader(x_train, f_train, y_train, args.epochs, args.seed, conditioned=READERS[name])
        train_exact = sum(p == a for p, a in zip(predict(reader, x_train, f_train, [q for _, _, q, _ in train]), y_train.tolist())) / len(y_train)
        result = {"model": portable_path(args.model), "reader": name, "n_train": args.n_train, "n_test": args.n_test, "epochs": args.epochs,
                  "train_exact": round(100 * train_exact, 1), **scored(predict(reader, x_test, f_test, asked), answers, asked),
                  "features_s": extracted, "train_s": round(time.time() - t0, 1)}
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
