"""One self-contained ``RUN_DIR/report.html`` per run: tables, plots, predictions, rollouts.

Run: ``reasonrft report RUN_DIR [--n 24]``; ``eval``, ``demo``, ``compare`` and ``sweep``
write it when they finish. The page opens from the disk with no server and no network:
images are embedded as data URIs (JPEG thumbnails; the PNG plots as they are), styles and
the filter script inline, plain HTML and a little vanilla JS. What it shows, from the files a
run leaves:
- the results tables (``results.md``, ``summary.md``, ``sweep.json``) and, last, every
  ``*.png`` (a training output directory without one: its curves from ``trainer_state.json``);
- a sample of predictions per split (``predictions.jsonl`` of the run, or of each
  ``eval/NAME/`` of a demo or compare): the image(s), the question, the gold answer and, per
  model side by side, the completion with its think and answer parts set apart and its score;
  filters for split, right/wrong (of a chosen model) and the task's groups;
- for each GRPO run in it (``rollouts.jsonl``, written by ``reasonrft.rollouts``), the logged
  steps: one prompt's G completions with each reward and the weighted total.
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
import sys
from pathlib import Path
from typing import Any

from reasonrft.errors import UserError
from reasonrft.io import atomic_write_text, read_jsonl

REPORT_FILE = "report.html"
PER_SPLIT = 24  # questions shown per split
THUMB = 224  # largest side of an embedded question image, in pixels

# Display names of the model directories a demo or compare evaluates (eval/NAME), in table order.
LABELS = {
    "init": "before training",
    "zero-shot": "Zero-shot",
    "ans-sft": "ANS-SFT",
    "cot-sft": "CoT-SFT",
    "reason-rft-zero": "Reason-RFT-Zero",
    "stage1": "Reason-RFT stage 1 only",
    "grpo": "CoT-SFT + GRPO",
    "reason-rft": "Reason-RFT",
}
SAMPLE_ID = re.compile(r"^(?P<task>[a-z]+)-(?P<split>.+)-s(?P<seed>\d+)-(?P<idx>\d+)$")


def write_report(run_dir: str | Path, per_split: int = PER_SPLIT) -> Path:
    """Build ``RUN_DIR/report.html`` (atomically) and return its path."""
    run = Path(run_dir)
    if not run.is_dir():
        raise UserError(f"{run}: run directory not found")
    if per_split < 1:
        raise UserError(f"--n must be >= 1, got {per_split}")
    sections = [s for s in (_tables(run), _sweep_links(run), _predictions(run, per_split), _rollouts(run), _plots(run)) if s]
    if not sections:
        raise UserError(f"{run}: nothing to report (no results.md, summary.json, predictions.jsonl, rollouts.jsonl or *.png)")
    title = f"reasonrft report: {run.resolve().name}"
    nav = " ".join(f'<a href="#{m}">{m}</a>' for m in re.findall(r'<section id="([a-z]+)"', "".join(sections)))
    page = PAGE.replace("$TITLE", _e(title)).replace("$NAV", nav).replace("$CSS", CSS).replace("$JS", JS).replace("$BODY", "\n".join(sections))
    return atomic_write_text(run / REPORT_FILE, page)


def report_when_done(run_dir: str | Path, announce: bool = True) -> Path | None:
    """Write the report at the end of a command (eval, demo, compare, sweep). The run's own
    results are already on disk, so a report that cannot be built says why in one line and
    the command still succeeds."""
    try:
        path = write_report(run_dir)
    except Exception as e:  # noqa: BLE001 (a report problem must not fail a finished run)
        print(f"reasonrft: warning: {run_dir}: report not written ({e})", file=sys.stderr, flush=True)
        return None
    if announce:
        print(f"report: {path}", flush=True)
    return path


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


# --------------------------------------------------------------------------- tables and plots


def markdown_html(text: str) -> str:
    """The project's markdown (headings, pipe tables, paragraphs; ``**bold**``, ``code``) as HTML."""
    out, table, para = [], [], []

    def inline(s: str) -> str:
        s = _e(s)
        s = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", s)
        return re.sub(r"`(.+?)`", r"<code>\1</code>", s)

    def flush() -> None:
        if table:
            rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in table if not re.fullmatch(r"\|?[\s:|-]+\|?", line.strip())]
            head, body = rows[0], rows[1:]
            out.append("<table><thead><tr>" + "".join(f"<th>{inline(c)}</th>" for c in head) + "</tr></thead><tbody>" + "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r) + "</tr>" for r in body) + "</tbody></table>")
            table.clear()
        if para:
            out.append(f"<p>{inline(' '.join(para))}</p>")
            para.clear()

    for line in text.splitlines():
        if line.lstrip().startswith("|"):
            if para:
                flush()
            table.append(line)
            continue
        if table:
            flush()
        if not line.strip():
            flush()
        elif line.startswith("#"):
            flush()
            level = min(4, len(line) - len(line.lstrip("#")) + 1)
            out.append(f"<h{level}>{inline(line.lstrip('#').strip())}</h{level}>")
        else:
            para.append(line.strip())
    flush()
    return "\n".join(out)


def _tables(run: Path) -> str:
    parts = [markdown_html(p.read_text(encoding="utf-8")) for p in (run / "results.md", run / "summary.md") if p.is_file()]
    sweep = run / "sweep.json"
    if sweep.is_file():
        summary = json.loads(sweep.read_text())
        budgets = sorted(summary, key=int)
        names = [n for n in LABELS if any(n in summary[b] for b in budgets)] + sorted({n for b in budgets for n in summary[b]} - set(LABELS))
        rows = "".join(f"<tr><td>{_e(b)}</td>" + "".join(f"<td>{summary[b][n]['id']:.1f} / {summary[b][n]['ood']:.1f}</td>" if n in summary[b] else "<td></td>" for n in names) + "</tr>" for b in budgets)
        parts.append("<h2>Data efficiency</h2><p>Accuracy (%), in-domain / domain-shift average, by training budget.</p><table><thead><tr><th>budget</th>" + "".join(f"<th>{_e(LABELS.get(n, n))}</th>" for n in names) + f"</tr></thead><tbody>{rows}</tbody></table>")
    return f'<section id="results">{"".join(parts)}</section>' if parts else ""


def _plots(run: Path) -> str:
    """Every ``*.png`` of the run; for a training output directory without one, its curves
    (drawn from ``trainer_state.json``, not written to the model directory)."""
    pngs = [(p.name, p.read_bytes()) for p in sorted(run.glob("*.png"))]
    if not pngs and (run / "trainer_state.json").is_file():
        from reasonrft import plots

        curves = plots.training_curves_png(run / "trainer_state.json", title=f"training curves: {run.name}")
        pngs = [("training curves (trainer_state.json)", curves)] if curves else []
    figures = [f'<figure><img src="data:image/png;base64,{base64.b64encode(data).decode("ascii")}" alt="{_e(name)}"><figcaption>{_e(name)}</figcaption></figure>' for name, data in pngs]
    return f'<section id="plots"><h2>Plots</h2><div class="plots">{"".join(figures)}</div></section>' if figures else ""


def _sweep_links(run: Path) -> str:
    """A sweep's budgets, each a compare with its own report (linked relatively)."""
    if not (run / "sweep.json").is_file():
        return ""
    links = [f'<li><a href="{_e(d.name)}/{REPORT_FILE}">{_e(d.name)}</a></li>' for d in sorted(run.glob("n*")) if (d / REPORT_FILE).is_file()]
    return f'<section id="budgets"><h2>Per budget</h2><ul>{"".join(links)}</ul></section>' if links else ""


# --------------------------------------------------------------------------- predictions


def eval_dirs(run: Path) -> list[tuple[str, Path]]:
    """(label, directory) of every evaluation in the run: itself, or each ``eval/NAME``."""
    if (run / "predictions.jsonl").is_file():
        return [(LABELS.get(run.name, run.name), run)]
    found = {d.name: d for d in (run / "eval").glob("*") if (d / "predictions.jsonl").is_file()}
    order = [n for n in LABELS if n in found] + sorted(set(found) - set(LABELS))
    return [(LABELS.get(n, n), found[n]) for n in order]


def _read_predictions(path: Path) -> list[dict]:
    rows = read_jsonl(path)
    for i, row in enumerate(rows):
        if "id" not in row or "split" not in row:
            raise UserError(f"{path}: record {i + 1} has no 'id' and 'split' (not a predictions.jsonl of reasonrft eval)")
    return rows


def sample_questions(rows: list[dict], per_split: int, right: set) -> list[dict]:
    """Up to ``per_split`` questions of each split, in file order: the right ones (``right``:
    ids a model got right) fill at most half, so that both filters have something to show."""
    chosen, by_split = [], {}
    for row in rows:
        by_split.setdefault(row["split"], []).append(row)
    for split_rows in by_split.values():
        good = [r for r in split_rows if (r["split"], r["id"]) in right][: per_split // 2]
        rest = [r for r in split_rows if (r["split"], r["id"]) not in right][: per_split - len(good)]
        keep = {id(r) for r in good + rest}
        chosen += [r for r in split_rows if id(r) in keep]
    return chosen


def _predictions(run: Path, per_split: int) -> str:
    models = eval_dirs(run)
    if not models:
        return ""
    preds = [{(r["split"], r["id"]): r for r in _read_predictions(d / "predictions.jsonl")} for _, d in models]
    task = _task_of(models[-1][1])
    order, seen = [], set()
    for p in preds:
        for key, row in p.items():
            if key not in seen:
                seen.add(key)
                order.append(row)
    right = {k for k, r in preds[-1].items() if _score(r) >= 1}
    questions = sample_questions(order, per_split, right)
    cards = [_card(q, [p.get((q["split"], q["id"])) for p in preds], task, run, models) for q in questions]
    splits = list(dict.fromkeys(q["split"] for q in order))
    groups = sorted({g for q in order for g in q.get("groups") or []})
    names = [label for label, _ in models]
    controls = _select("f-split", "split", [("all", "all splits")] + [(s, s) for s in splits])
    controls += _select("f-outcome", "answer", [("all", "right or wrong"), ("right", "right"), ("wrong", "wrong")])
    if len(names) > 1:
        controls += _select("f-model", "of", [(str(i), n) for i, n in enumerate(names)], selected=str(len(names) - 1))
    if groups:
        controls += _select("f-group", "group", [("all", "all groups")] + [(g, g) for g in groups])
    total = len(order)
    note = f"{len(questions)} of {total} questions shown ({per_split} per split at most; rebuild with <code>reasonrft report DIR --n N</code> for more)."
    return (
        f'<section id="predictions"><h2>Predictions</h2><p class="note">{note}</p>'
        f'<div class="filters">{controls}<span id="count"></span></div>'
        f'<div id="cards" style="--models:{len(names)}">{"".join(cards)}</div></section>'
    )


def _select(ident: str, label: str, options: list[tuple[str, str]], selected: str = "") -> str:
    opts = "".join(f'<option value="{_e(v)}"{" selected" if v == selected else ""}>{_e(t)}</option>' for v, t in options)
    return f'<label>{_e(label)} <select id="{ident}">{opts}</select></label>'


def _score(row: dict | None) -> float:
    try:
        return float(row["score"]) if row else math.nan
    except (KeyError, TypeError, ValueError):
        return math.nan


def _task_of(eval_dir: Path) -> str | None:
    summary = eval_dir / "summary.json"
    try:
        return json.loads(summary.read_text()).get("task") if summary.is_file() else None
    except (OSError, ValueError):
        return None


def _card(question: dict, rows: list[dict | None], task: str | None, run: Path, models: list[tuple[str, Path]]) -> str:
    scores = [_score(r) for r in rows]
    images = "".join(f'<img src="{uri}" alt="question image">' if uri else '<span class="missing">image not found</span>' for uri in question_images(question, task, run))
    answers = []
    for (label, _), row, score in zip(models, rows, scores):
        if row is None:
            answers.append(f'<div class="model none"><h4>{_e(label)}</h4><p class="note">not evaluated on this question</p></div>')
            continue
        kind = "right" if score >= 1 else ("partial" if score > 0 else "wrong")
        answers.append(f'<div class="model {kind}"><h4>{_e(label)} <span class="score">{score:.2f}</span></h4>{completion_html(row.get("pred", ""))}</div>')
    groups = question.get("groups") or []
    tags = "".join(f'<span class="tag">{_e(g)}</span>' for g in groups)
    data_scores = ",".join("nan" if math.isnan(s) else f"{s:g}" for s in scores)
    return (
        f'<article class="card" data-split="{_e(question["split"])}" data-groups="{_e(" ".join(groups))}" data-scores="{data_scores}">'
        f'<header><span class="tag split">{_e(question["split"])}</span>{tags}<code>{_e(question["id"])}</code></header>'
        f'<div class="question"><div class="images">{images}</div><div><p class="problem">{_e(question.get("problem", ""))}</p>'
        f'<p class="gold">gold answer: <b>{_e(question.get("answer", ""))}</b></p></div></div>'
        f'<div class="models">{"".join(answers)}</div></article>'
    )


def completion_html(text: str) -> str:
    """A completion with its ``<think>`` and ``<answer>`` parts set apart; text outside them
    is shown as it is, and a completion without them is marked unformatted."""
    text = str(text)
    think = re.search(r"<think>(.*?)</think>", text, re.S)
    answer = re.search(r"<answer>(.*?)</answer>", text, re.S)
    parts, rest = [], text
    if think:
        parts.append(f'<div class="think"><span class="label">think</span>{_e(think.group(1).strip())}</div>')
        rest = rest.replace(think.group(0), "", 1)
    if answer:
        parts.append(f'<div class="answer"><span class="label">answer</span>{_e(answer.group(1).strip())}</div>')
        rest = rest.replace(answer.group(0), "", 1)
    if rest.strip():
        label = "outside the tags" if parts else "no think/answer tags"
        parts.append(f'<div class="other"><span class="label">{label}</span>{_e(rest.strip())}</div>')
    return "".join(parts) or '<div class="other"><span class="label">empty completion</span></div>'


def question_images(row: dict, task: str | None, run: Path) -> list[str | None]:
    """The question's image(s) as JPEG data URIs: from the paths in the row (or, where the run
    directory moved, under its ``data/SPLIT/images``), else regenerated from a generated
    sample's id (generation is deterministic); None for one that cannot be found."""
    from PIL import Image

    from reasonrft.rollouts import jpeg_data_uri

    paths = row.get("image") or []
    paths = [paths] if isinstance(paths, str) else paths
    images: list[Any] = []
    for p in paths:
        p = Path(p)
        candidates = [p, run / "data" / row["split"] / "images" / p.name, run.parent.parent / "data" / row["split"] / "images" / p.name]
        found = next((c for c in candidates if c.is_file()), None)
        images.append(Image.open(found) if found else None)
    if not images or all(img is None for img in images):
        regenerated = _regenerate(row, task)
        if regenerated:
            images = regenerated
    return [jpeg_data_uri(img, THUMB) if img is not None else None for img in images] or [None]


def _regenerate(row: dict, task: str | None) -> list[Any] | None:
    match = SAMPLE_ID.match(str(row.get("id", "")))
    if not match:
        return None
    from reasonrft.tasks import get_task

    try:
        sample = get_task(task or match["task"]).sample(match["split"], int(match["idx"]), int(match["seed"]))
    except UserError:
        return None
    return list(sample.images)


# --------------------------------------------------------------------------- rollouts


def grpo_runs(run: Path) -> list[tuple[str, Path]]:
    """(label, rollouts file) of the run itself and of each GRPO run directly inside it."""
    dirs = [run] + sorted(d for d in run.iterdir() if d.is_dir())
    return [(LABELS.get(d.name, d.name), d / "rollouts.jsonl") for d in dirs if (d / "rollouts.jsonl").is_file()]


def _rollouts(run: Path) -> str:
    runs = grpo_runs(run)
    if not runs:
        return ""
    parts = []
    for label, path in runs:
        steps = read_jsonl(path)
        parts.append(f"<h3>{_e(label)}: {len(steps)} logged steps</h3>" + "".join(_rollout(s, first=(i == 0)) for i, s in enumerate(steps)))
    intro = "For sampled GRPO steps, one prompt's group of completions with each reward and the weighted total that GRPO's advantages come from."
    return f'<section id="rollouts"><h2>GRPO rollouts</h2><p class="note">{intro}</p>{"".join(parts)}</section>'


def _rollout(step: dict, first: bool) -> str:
    completions = step.get("completions") or []
    totals = [c.get("total", 0.0) for c in completions]
    names = list(dict.fromkeys(k for c in completions for k in c.get("rewards", {})))
    mean = sum(totals) / len(totals) if totals else 0.0
    best = max(totals) if totals else 0.0
    head = "".join(f"<th>{_e(n)}</th>" for n in names)
    rows = "".join(
        f'<tr class="{"best" if c.get("total") == best and best > min(totals) else ""}"><td>{i + 1}</td><td>{completion_html(c.get("text", ""))}</td>'
        + "".join(f"<td>{_reward(c.get('rewards', {}).get(n))}</td>" for n in names)
        + f"<td><b>{c.get('total', 0.0):.2f}</b></td></tr>"
        for i, c in enumerate(completions)
    )
    images = "".join(f'<img src="{_e(uri)}" alt="prompt image">' for uri in step.get("images") or [] if uri)
    return (
        f'<details class="rollout"{" open" if first else ""}><summary>step {_e(step.get("step"))} · {_e(step.get("problem_id") or "")} · '
        f"gold {_e(step.get('solution'))} · total reward mean {mean:.2f}, best {best:.2f}</summary>"
        f'<div class="question"><div class="images">{images}</div><p class="problem">{_e(step.get("problem", ""))}</p></div>'
        f"<table><thead><tr><th>#</th><th>completion</th>{head}<th>total</th></tr></thead><tbody>{rows}</tbody></table></details>"
    )


def _reward(value: Any) -> str:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return ""
    return "" if math.isnan(value) else f"{value:.2f}"


# --------------------------------------------------------------------------- page

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>$TITLE</title><style>$CSS</style></head>
<body><h1>$TITLE</h1>
<nav>$NAV</nav>
$BODY
<script>$JS</script></body></html>
"""

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:1.5em auto;max-width:1400px;padding:0 1em;color:#222}
h1{font-size:1.4em}nav a{margin-right:1em}table{border-collapse:collapse;margin:.6em 0}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}th{background:#f3f3f3}
.plots{display:flex;flex-wrap:wrap;gap:1em}.plots img{max-width:min(100%,900px)}figure{margin:0}figcaption{color:#666;font-size:.85em}
.filters{position:sticky;top:0;background:#fff;padding:.5em 0;border-bottom:1px solid #ddd;z-index:1}
.filters label{margin-right:1.2em}#count{color:#666}.note{color:#666}
.card{border:1px solid #ccc;border-radius:6px;margin:.8em 0;padding:.6em}.card header{margin-bottom:.4em}
.card header code{color:#666;margin-left:.5em}.tag{background:#eef;border-radius:3px;padding:0 .4em;margin-right:.3em}
.question{display:flex;gap:1em;align-items:flex-start}.images{display:flex;gap:.4em;flex:none}
.images img{width:160px;height:auto;border:1px solid #ddd}.problem{white-space:pre-wrap;margin:0 0 .4em}
.gold b{background:#ffe9a8;padding:0 .3em}.missing{color:#a00}
.models{display:grid;grid-template-columns:repeat(var(--models,1),minmax(0,1fr));gap:.6em;margin-top:.5em}
.model{border-left:4px solid #999;padding:.2em .6em;background:#fafafa;overflow-wrap:anywhere}
.model.right{border-color:#2a2}.model.wrong{border-color:#c33}.model.partial{border-color:#e90}
.model h4{margin:.2em 0}.score{float:right;font-weight:normal}
.think,.answer,.other{white-space:pre-wrap;margin:.2em 0;padding:.2em .4em;border-radius:3px}
.think{background:#eef3fb;color:#345}.answer{background:#e8f6e8;font-weight:600}.other{background:#fdeeee}
.label{display:block;font-size:.75em;text-transform:uppercase;color:#888;font-weight:normal}
details.rollout{border:1px solid #ccc;border-radius:6px;margin:.5em 0;padding:.4em .6em}summary{cursor:pointer}
tr.best{background:#f0fff0}
"""

JS = """
(function(){
  var cards=[].slice.call(document.querySelectorAll('#cards .card'));
  var get=function(id){var el=document.getElementById(id);return el?el.value:null;};
  function apply(){
    var split=get('f-split')||'all',outcome=get('f-outcome')||'all',group=get('f-group')||'all';
    var model=get('f-model');var shown=0;
    cards.forEach(function(card){
      var scores=card.dataset.scores.split(',').map(Number);
      var s=scores[model===null?scores.length-1:+model];
      var ok=(split==='all'||card.dataset.split===split)&&
             (group==='all'||card.dataset.groups.split(' ').indexOf(group)>=0)&&
             (outcome==='all'||(outcome==='right'?s>=1:!(s>=1)));
      card.hidden=!ok;if(ok)shown++;
    });
    var count=document.getElementById('count');
    if(count)count.textContent=shown+' of '+cards.length+' shown';
  }
  ['f-split','f-outcome','f-model','f-group'].forEach(function(id){
    var el=document.getElementById(id);if(el)el.addEventListener('change',apply);
  });
  apply();
})();
"""

