"""Clean, to-scale drawings of plane-geometry figures (the ``structure`` family's renderer).

A ``Figure`` is symbolic: named points in figure units (lengths are the stated values, angles
are the stated degrees), the segments and circles between them, and the marks a textbook
diagram carries: right-angle squares, equal-length ticks, parallel arrows, angle arcs with a
value or ``x``, and length labels. ``render`` maps it into the image (optionally rotated and
mirrored), fits it with a margin for labels, and draws it supersampled 2x, then box-reduced,
so edges are smooth and a 224x224 render takes about a millisecond.

Labels stay upright whatever the rotation. Point names sit in the widest free direction
around their point; angle values sit on the angle's bisector; length labels sit beside the
segment's midpoint, away from the figure's centre unless a side is given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

Point = tuple[float, float]
SUPERSAMPLE = 2


@dataclass
class Figure:
    """A figure in figure units (y up). Builders append to the lists; ``render`` only reads."""

    points: dict[str, Point] = field(default_factory=dict)
    segments: list[tuple[str, str, bool]] = field(default_factory=list)  # (p, q, dashed)
    circles: list[tuple[str, float]] = field(default_factory=list)  # (centre, radius)
    right_marks: list[tuple[str, str, str]] = field(default_factory=list)  # (p, vertex, q)
    ticks: list[tuple[str, str, int]] = field(default_factory=list)  # equal-length marks
    parallels: list[tuple[str, str, int]] = field(default_factory=list)  # arrows along p -> q
    angles: list[tuple[str, str, str, str, int]] = field(default_factory=list)  # (p, vertex, q, text, arcs)
    lengths: list[tuple[str, str, str, int]] = field(default_factory=list)  # (p, q, text, side: 0 auto, +1 left of p->q, -1 right)
    unlabeled: tuple[str, ...] = ()  # points drawn without their name

    def add(self, name: str, x: float, y: float) -> str:
        self.points[name] = (x, y)
        return name

    def path(self, *names: str, dashed: bool = False) -> None:
        """Segments joining consecutive points (a polyline)."""
        self.segments.extend((p, q, dashed) for p, q in zip(names, names[1:]))


@dataclass(frozen=True)
class Style:
    """How a figure looks; the domain-shift split uses another style and any orientation."""

    line_width: float = 1.6  # pixels at output size
    font_size: int = 13
    background: tuple[int, int, int] = (255, 255, 255)
    line: tuple[int, int, int] = (20, 20, 20)
    label: tuple[int, int, int] = (20, 20, 20)
    value: tuple[int, int, int] = (20, 60, 170)
    mark: tuple[int, int, int] = (200, 60, 40)
    rotation: float = 0.0  # degrees, counter-clockwise
    mirror: bool = False
    margin: float = 0.13  # of the image side, kept free for labels


@lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)  # Pillow's bundled font: no system fonts needed


def _unit(dx: float, dy: float) -> Point:
    n = math.hypot(dx, dy) or 1.0
    return dx / n, dy / n


class _Canvas:
    """Figure-to-pixel mapping (rotation, mirror, fit; y down) plus drawing helpers."""

    def __init__(self, figure: Figure, size: int, style: Style):
        s = SUPERSAMPLE
        self.size, self.style, self.k = size * s, style, s
        c, sn = math.cos(math.radians(style.rotation)), math.sin(math.radians(style.rotation))
        flip = -1.0 if style.mirror else 1.0

        def turn(p: Point) -> Point:
            x, y = p[0] * flip, p[1]
            return x * c - y * sn, x * sn + y * c

        self._turn = turn
        turned = {n: turn(p) for n, p in figure.points.items()}
        xs = [p[0] for p in turned.values()]
        ys = [p[1] for p in turned.values()]
        for centre, r in figure.circles:
            cx, cy = turned[centre]
            xs += [cx - r, cx + r]
            ys += [cy - r, cy + r]
        span = max(max(xs) - min(xs), max(ys) - min(ys), 1e-9)
        inner = self.size * (1 - 2 * style.margin)
        self.scale = inner / span
        self.ox = self.size / 2 - self.scale * (max(xs) + min(xs)) / 2
        self.oy = self.size / 2 + self.scale * (max(ys) + min(ys)) / 2
        self.px = {n: self._map(p) for n, p in turned.items()}
        self.centre = (sum(p[0] for p in self.px.values()) / len(self.px), sum(p[1] for p in self.px.values()) / len(self.px))
        self.image = Image.new("RGB", (self.size, self.size), style.background)
        self.draw = ImageDraw.Draw(self.image)
        self.width = max(1, round(style.line_width * s))
        self.font = _font(style.font_size * s)
        self.placed: list[Point] = []  # centres of the texts drawn so far

    def _map(self, p: Point) -> Point:
        return self.ox + self.scale * p[0], self.oy - self.scale * p[1]

    def figure_dir(self, d: Point) -> Point:
        """A figure-units direction in pixel space (rotated, mirrored, y down)."""
        x, y = self._turn(d)
        return _unit(x, -y)

    def line(self, a: Point, b: Point, color, width: int | None = None) -> None:
        self.draw.line([a, b], fill=color, width=width or self.width)

    def text(self, at: Point, text: str, color) -> None:
        self.draw.text(at, text, fill=color, font=self.font, anchor="mm")
        self.placed.append(at)


def render(figure: Figure, size: int, style: Style) -> Image.Image:
    """The figure as an RGB ``size`` x ``size`` image."""
    cv = _Canvas(figure, size, style)
    px, k = cv.px, cv.k
    for centre, r in figure.circles:
        cx, cy = px[centre]
        rr = r * cv.scale
        cv.draw.ellipse([cx - rr, cy - rr, cx + rr, cy + rr], outline=style.line, width=cv.width)
        dot = 1.6 * k
        cv.draw.ellipse([cx - dot, cy - dot, cx + dot, cy + dot], fill=style.line)  # the centre
    for p, q, dashed in figure.segments:
        _segment(cv, px[p], px[q], dashed)
    for p, v, q in figure.right_marks:
        _right_mark(cv, px[p], px[v], px[q])
    for p, q, n in figure.ticks:
        _ticks(cv, px[p], px[q], n)
    for p, q, n in figure.parallels:
        _arrows(cv, px[p], px[q], n)
    for p, v, q, text, arcs in figure.angles:
        _angle(cv, px[p], px[v], px[q], text, arcs)
    for p, q, text, side in figure.lengths:
        _length(cv, figure, p, q, text, side)
    for name in figure.points:
        if name not in figure.unlabeled:
            cv.text(_label_spot(cv, figure, name), name, style.label)
    return cv.image.reduce(k)


def _segment(cv: _Canvas, a: Point, b: Point, dashed: bool) -> None:
    if not dashed:
        cv.line(a, b, cv.style.line)
        return
    length = math.dist(a, b)
    dash = 5.0 * cv.k
    ux, uy = _unit(b[0] - a[0], b[1] - a[1])
    t = 0.0
    while t < length:
        e = min(t + dash, length)
        cv.line((a[0] + ux * t, a[1] + uy * t), (a[0] + ux * e, a[1] + uy * e), cv.style.line)
        t += 2 * dash


def _right_mark(cv: _Canvas, p: Point, v: Point, q: Point) -> None:
    s = 7.0 * cv.k
    u = _unit(p[0] - v[0], p[1] - v[1])
    w = _unit(q[0] - v[0], q[1] - v[1])
    a = (v[0] + u[0] * s, v[1] + u[1] * s)
    b = (a[0] + w[0] * s, a[1] + w[1] * s)
    c = (v[0] + w[0] * s, v[1] + w[1] * s)
    cv.draw.line([a, b, c], fill=cv.style.mark, width=max(1, cv.width - 1))


def _ticks(cv: _Canvas, p: Point, q: Point, n: int) -> None:
    ux, uy = _unit(q[0] - p[0], q[1] - p[1])
    nx, ny = -uy, ux
    half, gap = 5.0 * cv.k, 3.5 * cv.k
    mx, my = (p[0] + q[0]) / 2, (p[1] + q[1]) / 2
    for i in range(n):
        t = (i - (n - 1) / 2) * gap
        cx, cy = mx + ux * t, my + uy * t
        cv.line((cx - nx * half, cy - ny * half), (cx + nx * half, cy + ny * half), cv.style.mark)


def _arrows(cv: _Canvas, p: Point, q: Point, n: int) -> None:
    ux, uy = _unit(q[0] - p[0], q[1] - p[1])
    nx, ny = -uy, ux
    size, gap = 5.0 * cv.k, 4.5 * cv.k
    mx, my = (p[0] + q[0]) / 2, (p[1] + q[1]) / 2
    for i in range(n):
        t = (i - (n - 1) / 2) * gap
        tip = (mx + ux * t, my + uy * t)
        back = (tip[0] - ux * size, tip[1] - uy * size)
        cv.draw.line([(back[0] + nx * size * 0.7, back[1] + ny * size * 0.7), tip, (back[0] - nx * size * 0.7, back[1] - ny * size * 0.7)], fill=cv.style.mark, width=cv.width)


def _angle(cv: _Canvas, p: Point, v: Point, q: Point, text: str, arcs: int) -> None:
    a1 = math.degrees(math.atan2(p[1] - v[1], p[0] - v[0]))
    a2 = math.degrees(math.atan2(q[1] - v[1], q[0] - v[0]))
    sweep = (a2 - a1) % 360
    start, end = (a1, a2) if sweep <= 180 else (a2, a1)
    interior = min(sweep, 360 - sweep)
    shortest = min(math.dist(p, v), math.dist(q, v))
    r = min(13.0 * cv.k, 0.4 * shortest)
    for i in range(arcs):
        rr = r + i * 3.5 * cv.k
        cv.draw.arc([v[0] - rr, v[1] - rr, v[0] + rr, v[1] + rr], start, end, fill=cv.style.mark, width=max(1, cv.width - 1))
    if text:
        mid = math.radians(start + interior / 2)
        # far enough along the bisector that the text box clears both arms (capped for short arms)
        half = 0.5 * math.hypot(cv.font.getlength(text), 0.8 * cv.font.size) + 1.5 * cv.k
        clear = half / max(math.sin(math.radians(interior / 2)), 0.05)
        dist = max(r + 0.8 * cv.font.size, min(clear, 0.75 * shortest))
        cv.text((v[0] + math.cos(mid) * dist, v[1] + math.sin(mid) * dist), text, cv.style.value)


def _length(cv: _Canvas, figure: Figure, p: str, q: str, text: str, side: int) -> None:
    a, b = cv.px[p], cv.px[q]
    mx, my = (a[0] + b[0]) / 2, (a[1] + b[1]) / 2
    ux, uy = _unit(b[0] - a[0], b[1] - a[1])
    nx, ny = -uy, ux
    if side:
        fp, fq = figure.points[p], figure.points[q]
        fx, fy = _unit(fq[0] - fp[0], fq[1] - fp[1])
        want = cv.figure_dir((-fy * side, fx * side))  # left of p->q in figure units
        if nx * want[0] + ny * want[1] < 0:
            nx, ny = -nx, -ny
    else:  # away from the points joined to this segment's ends (the inside of its polygon)
        near = [cv.px[o] for a_, b_, _ in figure.segments for e, o in ((a_, b_), (b_, a_)) if e in (p, q) and o not in (p, q)]
        cx, cy = (sum(x for x, _ in near) / len(near), sum(y for _, y in near) / len(near)) if near else cv.centre
        if (mx - cx) * nx + (my - cy) * ny < 0:
            nx, ny = -nx, -ny
    w = cv.font.getlength(text)
    # distance so the text box clears the segment whatever its slope
    dist = 0.35 * cv.font.size + 0.5 * (abs(nx) * w + abs(ny) * cv.font.size) + 2 * cv.k
    cv.text((mx + nx * dist, my + ny * dist), text, cv.style.value)


def _label_spot(cv: _Canvas, figure: Figure, name: str) -> Point:
    """The point's name, placed in the bisector of the widest gap between its incident lines."""
    x, y = cv.px[name]
    dirs = []
    for p, q, _ in figure.segments:
        if name in (p, q):
            ox, oy = cv.px[q if p == name else p]
            dirs.append(math.atan2(oy - y, ox - x))
        elif _on_segment((x, y), cv.px[p], cv.px[q]):  # a point inside a segment: both ways
            dirs += [math.atan2(cv.px[e][1] - y, cv.px[e][0] - x) for e in (p, q)]
    for centre, r in figure.circles:
        cx, cy = cv.px[centre]
        if abs(math.dist((cx, cy), (x, y)) - r * cv.scale) < 1e-6 * cv.size:
            radial = math.atan2(y - cy, x - cx)
            dirs += [radial + math.pi / 2, radial - math.pi / 2]  # the circle's tangents
    for p, v, q, text, _ in figure.angles:
        if v == name and text:  # the angle's value label sits on its bisector: keep clear of it
            a1, a2 = (math.atan2(cv.px[e][1] - y, cv.px[e][0] - x) for e in (p, q))
            sweep = (a2 - a1) % (2 * math.pi)
            dirs.append(a1 + sweep / 2 if sweep <= math.pi else a2 + (2 * math.pi - sweep) / 2)
    if not dirs:
        dirs = [math.atan2(cv.centre[1] - y, cv.centre[0] - x)]
    dirs.sort()
    gaps = [(dirs[(i + 1) % len(dirs)] - d) % (2 * math.pi) or 2 * math.pi for i, d in enumerate(dirs)]
    dist = 0.85 * cv.font.size
    best, best_score = (x, y), -math.inf
    for d, gap in zip(dirs, gaps):  # the widest gap, unless another text already sits there
        mid = d + gap / 2
        spot = (x + math.cos(mid) * dist, y + math.sin(mid) * dist)
        score = min(gap, math.pi) - 1.5 * sum(math.dist(spot, t) < 1.2 * cv.font.size for t in cv.placed)
        if score > best_score + 1e-9:
            best, best_score = spot, score
    return best


def _on_segment(pt: Point, a: Point, b: Point) -> bool:
    ab = (b[0] - a[0], b[1] - a[1])
    t = ((pt[0] - a[0]) * ab[0] + (pt[1] - a[1]) * ab[1]) / (ab[0] ** 2 + ab[1] ** 2 or 1.0)
    return 0.0 < t < 1.0 and math.dist(pt, (a[0] + t * ab[0], a[1] + t * ab[1])) < 0.5
