"""Is one kind of vision tower better than another at holding the count, on the same scenes?

Run by hand: ``.venv/bin/python benchmarks/paired_probes.py --first A.jsonl[,A2.jsonl ...]
--second B.jsonl[,B2.jsonl ...]``, where each file is a ``probe_count_features.py
--predictions`` file of one tower, all probed at the same probe seed (so the same held-out
scenes). Several files on a side are towers of one recipe at different training seeds: each
scene's score on that side is the share of them that counted it right, so the gap is the
recipe's, averaged over its training seeds, not one tower's. A file probed with
``--reader-seeds N`` gives each scene the share of its N readers that counted it right (the
per-cell reader's fit depends on its own seed).

Per reader and look, one JSON line: each side's accuracy (and each file's), and the second
side's minus the first's in points with a paired bootstrap 95% interval over scenes
(``stats.paired_difference``): the scenes' shared difficulty cancels, so this is far tighter
than comparing two unpaired intervals.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from reasonrft import stats


def load_predictions(path: str) -> dict[tuple[str, str], tuple[list[int], list[float]]]:
    """``{(reader, look): (golds, shares)}`` in item order from one predictions file: each
    scene's gold count and the share of the file's readers (one per reader seed) that got it."""
    grouped: dict[tuple[str, str], dict[int, tuple[int, list[bool]]]] = {}
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        try:
            row = json.loads(line)
            gold, item = int(row["gold"]), int(row["item"])
            _, right = grouped.setdefault((row["reader"], row["look"]), {}).setdefault(item, (gold, []))
            right.append(int(row["predicted"]) == gold)
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{path}:{number}: not a probe prediction ({error})") from None
    return {key: ([items[i][0] for i in sorted(items)], [sum(items[i][1]) / len(items[i][1]) for i in sorted(items)]) for key, items in grouped.items()}


def side_scores(files: list[dict], key: tuple[str, str], golds: list[int], names: list[str]) -> list[float]:
    """Each scene's score averaged over ``files`` (each file weighs the same, whatever its number
    of reader seeds); every file must hold the same scenes."""
    for name, predictions in zip(names, files):
        if predictions.get(key, ([], []))[0] != golds:
            raise ValueError(f"{name}: other scenes than the first file's for {key[0]}/{key[1]} (probe them at the same --seed and --n-test)")
    return [sum(predictions[key][1][i] for predictions in files) / len(files) for i in range(len(golds))]


def percent(shares: list[float]) -> float:
    """The mean of per-scene scores in [0, 1], in percent."""
    return round(100 * sum(shares) / len(shares), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--first", required=True, help="comma-separated predictions files of the first recipe's towers")
    parser.add_argument("--second", required=True, help="the same for the second recipe (reported: second minus first)")
    args = parser.parse_args()
    names = {side: getattr(args, side).split(",") for side in ("first", "second")}
    try:
        loaded = {side: [load_predictions(name) for name in side_names] for side, side_names in names.items()}
        for key in sorted(loaded["first"][0]):
            golds = loaded["first"][0][key][0]
            scores = {side: side_scores(loaded[side], key, golds, names[side]) for side in loaded}
            gap = stats.paired_difference([scores["first"]], [scores["second"]])
            print(json.dumps({"reader": key[0], "look": key[1], "n": len(golds),
                              "first": percent(scores["first"]), "first_each": [percent(p[key][1]) for p in loaded["first"]],
                              "second": percent(scores["second"]), "second_each": [percent(p[key][1]) for p in loaded["second"]],
                              "second_minus_first": gap["difference"], "ci95": gap["ci95"]}))
    except (OSError, ValueError) as error:
        sys.exit(f"paired_probes: error: {error}")


if __name__ == "__main__":
    main()
