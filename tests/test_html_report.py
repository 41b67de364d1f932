"""The HTML report: one self-contained page per run, checked as HTML and in headless Chromium.

The run directories here have the demo's shape and size (three models x three splits x 100
questions, real rendered images, a plot, GRPO rollouts) with completions written by the test
and scored by the project's own scorers: what is under test is the report, not a model.
The browser test needs Chromium (``scripts/install_browser.sh``, which ``./run.sh test``
runs) and skips, saying why, without it.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

from reasonrft import data, html_report, plots
from reasonrft.cli import main
from reasonrft.io import atomic_write_json, atomic_write_jsonl, atomic_write_text
from reasonrft.rewards import REWARDS
from reasonrft.rollouts import RolloutLog
from reasonrft.stages import evaluate
from reasonrft.tasks import get_task

MODELS = {"init": 7, "cot-sft": 3, "grpo": 2}  # eval dir -> every k-th question answered right


def _completion(rec: data.Record, right: bool) -> str:
    answer = rec.answer if right else f"{rec.answer}9"
    return f"<think>\nI count the objects for {rec.id}.\n</think>\n<answer>\n{answer}\n</answer>"


def _write_run(run: Path, task_name: str, n: int, models: dict[str, int]) -> Path:
    """A demo-shaped run: data/SPLIT, eval/MODEL/{predictions.jsonl,summary.*}, results.md."""
    task = get_task(task_name)
    for name, k in models.items():
        rows = []
        for split in task.test_splits:
            split_dir = run / "data" / split
            if not (split_dir / data.DATA_FILE).is_file():
                data.write_dataset(split_dir, data.generate_records(task, split, n), {"task": task.name, "split": split, "seed": 0})
            records = data.load_dataset(split_dir)
            rows += [evaluate.score_row(task, split, rec, _completion(rec, i % k == 0)) for i, rec in enumerate(records)]
        summary = evaluate.summarize(task, rows, list(task.test_splits))
        summary["model"] = name
        atomic_write_jsonl(run / "eval" / name / "predictions.jsonl", rows)
        atomic_write_json(run / "eval" / name / "summary.json", summary)
        atomic_write_text(run / "eval" / name / "summary.md", evaluate.summary_markdown(summary))
    atomic_write_text(run / "results.md", "# reasonrft demo: counting\n\n| model | AVG |\n|---|---|\n| CoT-SFT | **12.00** |\n")
    return run


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> Path:
    run = _write_run(tmp_path_factory.mktemp("demo"), "counting", 100, MODELS)
    plots.accuracy_bars([["CoT-SFT", 10.0, 20.0, 30.0, 20.0, 10.0, 25.0]], ["paradigm", "test-id", "test-ood-d", "test-ood-m", "AVG", "ID", "OOD AVG"], run / "accuracy_bars.png")
    # GRPO rollouts through the real wrapper, as GRPOTrainer calls it: 60 steps, G = 8
    task, records = get_task("counting"), data.load_dataset(run / "data" / "test-id")
    log = RolloutLog(run / "grpo", {"format": 1.0, "accuracy": 1.0}, num_generations=8)
    funcs = log.wrap({"format": REWARDS["format"], "accuracy": REWARDS["accuracy"]})
    for step in range(60):
        rec = records[step % len(records)]
        completions = [[{"role": "assistant", "content": _completion(rec, j % 3 == 0)}] for j in range(8)]
        kwargs = dict(prompts=[[{"role": "user", "content": rec.problem}]] * 8, completions=completions, solution=[rec.answer] * 8, problem_id=[rec.id] * 8, images=[rec.open_images()] * 8, trainer_state=SimpleNamespace(global_step=step, max_steps=60))
        for f in funcs:
            f(**kwargs)
    assert task.name == "counting"
    return run


def _cards(page: str) -> list[dict]:
    return [dict(split=m[0], groups=m[1].split(), scores=[float(x) for x in m[2].split(",")]) for m in re.findall(r'<article class="card" data-split="([^"]*)" data-groups="([^"]*)" data-scores="([^"]*)"', page)]


def test_demo_report_is_self_contained_and_small(demo_run):
    page = html_report.write_report(demo_run).read_text()
    assert (demo_run / "report.html").stat().st_size < 3_000_000  # the demo's page: a few MB at most
    assert not re.search(r'(src|href)="(?!data:|#)', page.replace('href="n', "")), "only data URIs and anchors: opens from the disk"
    assert "<script src" not in page and "http" not in page
    cards = _cards(page)
    assert len(cards) == 3 * html_report.PER_SPLIT and {c["split"] for c in cards} == {"test-id", "test-ood-d", "test-ood-m"}
    assert page.count('alt="question image"') == len(cards)
    assert 'alt="accuracy_bars.png"' in page and "<td><b>12.00</b></td>" in page  # plot and results table
    # each question once, the three models side by side in table order, think and answer apart
    first = page[page.index('<article class="card"') :].split("</article>")[0]
    labels = re.findall(r'<div class="model (?:right|wrong|partial)"><h4>([^<]+) <span class="score">', first)
    assert labels == ["before training", "CoT-SFT", "CoT-SFT + GRPO"]
    assert first.count('<div class="think"><span class="label">think</span>') == 3 and first.count('class="answer"') == 3
    assert "gold answer: <b>" in first
    # both outcomes are in the sample, for every model
    for i in range(3):
        assert {c["scores"][i] >= 1 for c in cards} == {True, False}
    # rollouts: about 20 sampled steps of 60, each with its 8 completions and rewards
    rollouts = re.findall(r'<details class="rollout"', page)
    assert 15 <= len(rollouts) <= 21 and page.count('alt="prompt image"') == len(rollouts)
    assert "<th>format</th><th>accuracy</th><th>total</th>" in page


def test_groups_filter_and_two_images_for_transformation(tmp_path):
    run = _write_run(tmp_path / "tr", "transformation", 6, {"cot-sft": 2})
    page = html_report.write_report(run / "eval" / "cot-sft").read_text()  # an eval directory alone
    assert '<select id="f-group">' in page and all(f'<option value="L{k}">' in page for k in (1, 2))
    assert '<select id="f-model">' not in page  # one model: nothing to choose
    cards = _cards(page)
    assert cards and all(c["groups"] and c["groups"][0].startswith("L") for c in cards)
    assert page.count('alt="question image"') == 2 * len(cards)  # before and after images


def test_images_found_after_the_run_moves_or_regenerated(demo_run, tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(demo_run, moved)
    shutil.rmtree(demo_run / "data" / "test-ood-d" / "images", ignore_errors=False)  # the paths recorded now point nowhere
    gone = {"id": "imported-1", "split": "test-ood-d", "image": [str(demo_run / "data" / "test-ood-d" / "images" / "counting-test-ood-d-s0-000001.png")]}
    try:
        page = html_report.write_report(moved).read_text()
        [lost] = html_report.question_images(gone, "counting", tmp_path / "nowhere")  # an imported record (no generated id)
        [found] = html_report.question_images(gone, "counting", moved)  # under the moved run's data/
    finally:
        shutil.copytree(moved / "data" / "test-ood-d" / "images", demo_run / "data" / "test-ood-d" / "images")
    assert "image not found" not in page
    assert lost is None and found.startswith("data:image/jpeg;base64,")
    row = {"id": "counting-test-id-s0-000004", "split": "test-id", "image": None}  # generated in memory by eval
    [uri] = html_report.question_images(row, "counting", tmp_path)
    assert uri.startswith("data:image/jpeg;base64,")


@pytest.mark.parametrize(
    "text, parts",
    [
        ("<think>\nsteps\n</think>\n<answer>\n4\n</answer>", [("think", "steps"), ("answer", "4")]),
        ("<answer>4</answer> trailing", [("answer", "4"), ("other", "trailing")]),
        ("just 4", [("other", "just 4")]),
        ("<think>a < b & c</think><answer><b>5</b></answer>", [("think", "a &lt; b &amp; c"), ("answer", "&lt;b&gt;5&lt;/b&gt;")]),
    ],
)
def test_completion_parts_are_set_apart_and_escaped(text, parts):
    rendered = html_report.completion_html(text)
    found = re.findall(r'<div class="(think|answer|other)"><span class="label">[^<]*</span>(.*?)</div>', rendered, re.S)
    assert found == parts


def test_report_command_and_its_errors(demo_run, tmp_path, capsys):
    assert main(["report", str(demo_run), "--n", "5"]) == 0
    assert len(_cards((demo_run / "report.html").read_text())) == 15
    empty = tmp_path / "empty"
    empty.mkdir()
    bad = tmp_path / "bad"
    (bad / "eval" / "m").mkdir(parents=True)
    (bad / "eval" / "m" / "predictions.jsonl").write_text('{"id": 1, "split": "test-id"}\n{oops\n')
    odd = tmp_path / "odd"
    (odd / "eval" / "m").mkdir(parents=True)
    (odd / "eval" / "m" / "predictions.jsonl").write_text('{"pred": "x"}\n')
    for argv, message in [(["report", str(tmp_path / "nope")], "run directory not found"), (["report", str(empty)], "nothing to report"), (["report", str(bad)], "predictions.jsonl: line 2 is not valid JSON"), (["report", str(odd)], "record 1 has no 'id' and 'split'")]:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("reasonrft: error:") and message in err and "\n" not in err
    assert not (empty / "report.html").exists() and not (bad / "report.html").exists()


# --------------------------------------------------------------------------- in a real browser

PROBE = """<script>
window.addEventListener('load', function () {
  var imgs = [].slice.call(document.images);
  var cards = [].slice.call(document.querySelectorAll('#cards .card'));
  var shown = function () { return cards.filter(function (c) { return c.offsetParent !== null; }); };
  var set = function (id, v) { var el = document.getElementById(id); el.value = v; el.dispatchEvent(new Event('change')); };
  var out = {images: imgs.length, loaded: imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length,
             widths: imgs.map(function (i) { return i.naturalWidth; }), all: shown().length};
  if (document.getElementById('f-group')) {
    set('f-group', 'L1'); out.group = shown().map(function (c) { return c.dataset.groups; }); set('f-group', 'all');
  } else {
    set('f-split', 'test-ood-d'); out.split = shown().map(function (c) { return c.dataset.split; });
    set('f-outcome', 'right'); out.right = shown().length;
    set('f-model', '0'); out.right0 = shown().length;
    set('f-outcome', 'wrong'); out.wrong0 = shown().length;
    set('f-split', 'all'); set('f-outcome', 'all'); out.reset = shown().length;
    out.count = document.getElementById('count').textContent;
  }
  var pre = document.createElement('pre'); pre.id = 'probe'; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script></body>"""


def _chromium() -> str:
    path = os.environ.get("REASONRFT_CHROMIUM") or next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
    if not path:
        pytest.skip(os.environ.get("REASONRFT_CHROMIUM_SKIP") or "no Chromium: scripts/install_browser.sh installs it (./run.sh test runs it)")
    return path


def _browser(chromium: str, page: Path, tmp_path: Path, *flags: str) -> str:
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000", *flags, page.as_uri()]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout


def _probe(chromium: str, report: Path, tmp_path: Path) -> dict:
    probe = tmp_path / f"probe-{report.parent.name}.html"
    probe.write_text(report.read_text().replace("</body>", PROBE, 1))
    dom = _browser(chromium, probe, tmp_path, "--dump-dom")
    return json.loads(html.unescape(re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S).group(1)))


def test_report_in_headless_chromium(demo_run, tmp_path):
    chromium = _chromium()
    report = html_report.write_report(demo_run)
    cards = _cards(report.read_text())
    result = _probe(chromium, report, tmp_path)
    # every image decoded: questions at their thumbnail size, the plot, the rollouts' prompts
    assert result["images"] == result["loaded"] > len(cards) and min(result["widths"]) > 0
    assert result["all"] == len(cards)
    # the filters change what is shown, and agree with the cards' own data
    ood = [c for c in cards if c["split"] == "test-ood-d"]
    assert result["split"] == ["test-ood-d"] * len(ood)
    assert result["right"] == sum(c["scores"][2] >= 1 for c in ood) > 0  # of the last model (the default)
    assert result["right0"] == sum(c["scores"][0] >= 1 for c in ood) != result["right"]
    assert result["wrong0"] == len(ood) - result["right0"] > 0
    assert result["reset"] == len(cards) and result["count"] == f"{len(cards)} of {len(cards)} shown"
    # a screenshot, with something drawn on it
    shot = tmp_path / "report.png"
    _browser(chromium, report, tmp_path, f"--screenshot={shot}", "--window-size=1280,1600")
    with Image.open(shot) as img:
        assert img.size == (1280, 1600) and len(img.convert("L").getcolors(256) or []) > 20


def test_group_filter_in_headless_chromium(tmp_path):
    chromium = _chromium()
    run = _write_run(tmp_path / "tr", "transformation", 8, {"cot-sft": 2})
    report = html_report.write_report(run)
    cards = _cards(report.read_text())
    result = _probe(chromium, report, tmp_path)
    assert result["images"] == result["loaded"] == 2 * len(cards)
    expected = [" ".join(c["groups"]) for c in cards if "L1" in c["groups"]]
    assert result["group"] == expected and 0 < len(expected) < len(cards)
