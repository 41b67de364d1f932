"""Pictures and tables for people: dataset contact sheets and results tables."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from reasonrft.tasks import Task

THUMB = 224
TEXT_WIDTH = 420


def contact_sheet(task: Task, split: str, n: int, seed: int, out: str | os.PathLike, data_dir: str | None = None) -> Path:
    """A PNG with ``n`` samples: their image(s), question, chain of thought and answer."""
    from reasonrft import data

    if n < 1:
        from reasonrft.errors import UserError

        raise UserError(f"--n must be >= 1 for a contact sheet, got {n}")
    records = data.load_dataset(data_dir)[:n] if data_dir else data.generate_records(task, split, n, seed)
    font = ImageFont.load_default(size=13)
    n_images = max(len(r.images) for r in records)
    row_h = THUMB + 12
    sheet = Image.new("RGB", (n_images * (THUMB + 6) + TEXT_WIDTH + 12, row_h * len(records) + 30), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((6, 6), f"{task.name} / {split} (seed {seed})", fill="black", font=font)
    for row, rec in enumerate(records):
        y = 30 + row * row_h
        for k, img in enumerate(rec.open_images()):
            sheet.paste(img.resize((THUMB, THUMB)), (6 + k * (THUMB + 6), y))
        x = 6 + n_images * (THUMB + 6)
        body = f"Q: {rec.problem}\n\nCoT: {rec.cot or '-'}\n\nA: {rec.answer}"
        lines = [w for para in body.split("\n") for w in (textwrap.wrap(para, 62) or [""])]
        draw.multiline_text((x, y), "\n".join(lines[:15]), fill="black", font=font, spacing=2)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.png")
    sheet.save(tmp)
    os.replace(tmp, out)
    return out


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    def cell(v: object) -> str:
        return f"{v:.2f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
