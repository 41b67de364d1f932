"""The ``structure`` family's problem families: one builder per family, scene and solver.

A builder takes the sample's ``random.Random`` and returns a ``Problem`` (``geometry_model``):
the figure drawn to scale from the given values, the givens, the unknown with the answer the
solver computes from the givens by the theorem (never from coordinates), the steps, and the
values of typical mistakes (``structure`` draws the multiple-choice distractors from them).
Points are named from ``NAME_POOL``, a consecutive run half the time, else a random sample.
Which givens go on the diagram and which in the text is ``structure``'s choice, not the
builder's. Givens are integers unless said; unless said, an answer that is not an integer
is asked to one decimal place.

In-domain families:
- ``triangle_angles``: two angles of a triangle given, the third asked (first angle 25-125,
  second to leave at least 25); or, 3 times in 10, a right triangle with one acute angle
  (20-70) given and the other asked.
- ``isosceles`` (AB = AC, ticked), one of four kinds: the apex angle (20-140) given, a base
  angle asked (a half degree when the apex is odd); a base angle (25-80) given, the apex
  asked; leg (4-20) and base given, the perimeter asked; an equilateral side (2-40) given,
  the perimeter asked.
- ``parallel_lines``: two parallels cut by a transversal slanted at 45-135 degrees (not
  within 10 of square); one angle given and the angle in one of ``RELATIONS`` to it (vertical,
  linear pair, corresponding, alternate interior or exterior, same-side interior) asked.
- ``pythagoras``: a right triangle, the hypotenuse from both legs or a leg from the
  hypotenuse and the other leg; half the time a (scaled) Pythagorean triple, else legs 2-20
  or a leg 2-20 with a hypotenuse 1-12 longer, so the answer may be a root.
- ``circle_angles`` (centre O): the central angle (even, 30-170) given and the inscribed
  angle on the same arc asked, or the other way round; or a triangle on a diameter with one
  acute angle (20-70) given and the other asked.
- ``circle_measure`` (radius 2-30): the radius or the diameter drawn, the circumference or
  the area asked, rounded to 0 or 1 decimals (1 twice as often); or, 1 time in 5, the
  circumference stated (to one decimal) and the radius asked to the nearest integer.
- ``area``: a rectangle (2-20 by 2-15, within a factor 3) with both sides given, the area or
  perimeter asked, or one side and the area given and the other side asked; or a triangle
  with its base (4-24) and dashed height given and the area asked.

Held out for the domain shift:
- ``exterior_angle``: a triangle with one side extended; the two remote interior angles
  given and the exterior angle asked, the exterior and one remote angle given and the other
  asked, or the exterior angle (and a remote one) given and the adjacent interior angle
  asked.
- ``trapezoid`` (bases parallel): both bases and the height given, the area asked; bases and
  area given, the height asked; or an isosceles trapezoid (legs from a Pythagorean triple)
  with bases and a leg given and the perimeter asked.
- ``similar_triangles``: DE parallel to BC inside ABC, AD, DB and DE given, BC asked; or two
  triangles stated similar (equal angles marked), two sides of one and the matching side of
  the other given, the remaining matching side asked.
"""

from __future__ import annotations

import math
import random

from reasonrft.tasks.geometry_draw import Figure
from reasonrft.tasks.geometry_model import Given, Problem, fmt, num

NAME_POOL = "ABCDEFGHJKLMNPQRSTUVWYZ"  # no I, O (the circle centre) or X (the unknown)
TRIPLES = ((3, 4, 5), (5, 12, 13), (8, 15, 17), (7, 24, 25), (20, 21, 29), (9, 40, 41), (12, 35, 37))


# --------------------------------------------------------------------------- helpers


def decimals_for(v: float) -> int:
    return 0 if abs(v - round(v)) < 1e-9 else 1


def rounded(v: float, decimals: int) -> str:
    """``= v`` in a step, with the rounding made explicit when there is one."""
    return num(v) if abs(v - round(v, decimals)) < 1e-9 else f"{v:.2f}, about {fmt(v, decimals)}"


def names(rng: random.Random, k: int) -> list[str]:
    if rng.random() < 0.5:
        start = rng.randrange(len(NAME_POOL) - k + 1)
        return list(NAME_POOL[start : start + k])
    return rng.sample(NAME_POOL, k)


def polar(r: float, degrees: float, origin: tuple[float, float] = (0.0, 0.0)) -> tuple[float, float]:
    return origin[0] + r * math.cos(math.radians(degrees)), origin[1] + r * math.sin(math.radians(degrees))


def angle(p: str, v: str, q: str, value: float) -> Given:
    return Given(("angle", p, v, q), value)


def length(p: str, q: str, value: float, side: int = 0) -> Given:
    return Given(("length", p, q), value, side)


def triangle(fig: Figure, a: str, b: str, c: str, base: float, angle_a: float, angle_b: float) -> None:
    """Triangle with AB = ``base`` on the x axis and the given angles at A and B (law of sines)."""
    ac = base * math.sin(math.radians(angle_b)) / math.sin(math.radians(angle_a + angle_b))
    fig.add(a, 0.0, 0.0)
    fig.add(b, base, 0.0)
    fig.add(c, *polar(ac, angle_a))
    fig.path(a, b, c, a)


# --------------------------------------------------------------------------- families (scene + solver)


def triangle_angles(rng: random.Random) -> Problem:
    a, b, c = names(rng, 3)
    fig = Figure()
    if rng.random() < 0.7:
        angles = [rng.randint(25, 125)]
        angles.append(rng.randint(25, 155 - angles[0]))
        angles.append(180 - sum(angles))
        triangle(fig, a, b, c, 10.0, angles[0], angles[1])
        corners = [(c, a, b), (a, b, c), (a, c, b)]
        u = rng.randrange(3)
        known = [i for i in range(3) if i != u]
        g1, g2 = (angles[i] for i in known)
        givens = [angle(*corners[i], angles[i]) for i in known]
        steps = ["The angles of a triangle sum to 180.", f"Angle {''.join(corners[u])} = 180 - {g1} - {g2} = {angles[u]}."]
        return Problem("triangle_angles", "sum", fig, givens, angle(*corners[u], angles[u]), steps, [g1 + g2, 180 - g1, 180 - g2, 360 - g1 - g2, abs(g1 - g2)])
    g = rng.randint(20, 70)
    triangle(fig, a, b, c, 10.0, g, 90 - g)
    fig.right_marks.append((a, c, b))
    steps = [f"Angle {a}{c}{b} is a right angle, so the other two angles sum to 90.", f"Angle {a}{b}{c} = 90 - {g} = {90 - g}."]
    return Problem("triangle_angles", "right", fig, [angle(c, a, b, g)], angle(a, b, c, 90 - g), steps, [180 - g, g, 90 + g, 180 - 2 * g])


def isosceles(rng: random.Random) -> Problem:
    a, b, c = names(rng, 3)
    kind = rng.choice(("base_angle", "apex_angle", "perimeter", "equilateral"))
    leg, base_angle = 10.0, 0.0
    if kind == "base_angle":
        apex = rng.randint(20, 140)
        base_angle = (180 - apex) / 2  # a half degree when the apex is odd
        givens, target = [angle(b, a, c, apex)], angle(a, b, c, base_angle)
        steps = [f"{a}{b} = {a}{c}, so angle {a}{b}{c} = angle {a}{c}{b}.", f"Angle {a}{b}{c} = (180 - {apex}) / 2 = {num(base_angle)}."]
        mistakes = [180 - apex, apex, 90 + apex / 2, 180 - 2 * apex]
    elif kind == "apex_angle":
        base_angle = rng.randint(25, 80)
        apex = 180 - 2 * base_angle
        givens, target = [angle(a, b, c, base_angle)], angle(b, a, c, apex)
        steps = [f"{a}{b} = {a}{c}, so angle {a}{c}{b} = angle {a}{b}{c} = {base_angle}.", f"Angle {b}{a}{c} = 180 - 2 x {base_angle} = {apex}."]
        mistakes = [180 - base_angle, base_angle, 90 - base_angle, (180 - base_angle) / 2]
    elif kind == "perimeter":
        leg = rng.randint(4, 20)
        base = rng.randint(3, min(2 * leg - 2, 30))
        base_angle = math.degrees(math.acos(base / (2 * leg)))
        givens, target = [length(a, b, leg), length(b, c, base)], Given(("perimeter", "triangle", a, b, c), 2 * leg + base)
        steps = [f"{a}{c} = {a}{b} = {leg}.", f"Perimeter = {leg} + {leg} + {base} = {2 * leg + base}."]
        mistakes = [leg + base, leg + 2 * base, 3 * leg, 2 * (leg + base)]
    else:
        leg, base_angle = rng.randint(2, 40), 60.0
        givens, target = [length(b, c, leg)], Given(("perimeter", "triangle", a, b, c), 3 * leg)
        steps = ["All three sides are equal.", f"Perimeter = 3 x {leg} = {3 * leg}."]
        mistakes = [2 * leg, 4 * leg, leg * leg, 6 * leg]
    fig = Figure()
    half = leg * math.cos(math.radians(base_angle))
    fig.add(a, 0.0, leg * math.sin(math.radians(base_angle)))
    fig.add(b, -half, 0.0)
    fig.add(c, half, 0.0)
    fig.path(a, b, c, a)
    fig.ticks += [(a, b, 1), (a, c, 1)] + ([(b, c, 1)] if kind == "equilateral" else [])
    return Problem("isosceles", kind, fig, givens, target, steps, mistakes, decimals_for(target.value))


QUADRANT_VALUE = {"UR": False, "DL": False, "UL": True, "DR": True}  # True: 180 - theta
RELATIONS = (  # (name, at one point?, (first, second) quadrant pairs, equal?)
    ("vertical angles", True, (("UR", "DL"), ("UL", "DR")), True),
    ("a linear pair", True, (("UR", "UL"), ("UL", "DL"), ("DL", "DR"), ("DR", "UR")), False),
    ("corresponding angles", False, tuple((q, q) for q in QUADRANT_VALUE), True),
    ("alternate interior angles", False, (("DR", "UL"), ("DL", "UR")), True),
    ("alternate exterior angles", False, (("UR", "DL"), ("UL", "DR")), True),
    ("same-side interior angles", False, (("DR", "UR"), ("DL", "UL")), False),
)


THETAS = tuple(t for t in range(45, 136) if not 80 <= t <= 100)  # the transversal's slant


def parallel_lines(rng: random.Random) -> Problem:
    l1, r1, l2, r2, t1, t2, p, q = names(rng, 8)
    theta = rng.choice(THETAS)
    fig = Figure()
    fig.add(p, 0.0, 3.0)
    fig.add(q, *polar(-6.0 / math.sin(math.radians(theta)), theta, (0.0, 3.0)))
    fig.add(t1, *polar(3.5, theta, fig.points[p]))
    fig.add(t2, *polar(-3.5, theta, fig.points[q]))
    lo, hi = min(0.0, fig.points[q][0]) - 5.0, max(0.0, fig.points[q][0]) + 5.0
    for left, right, y in ((l1, r1, 3.0), (l2, r2, -3.0)):
        fig.add(left, lo, y)
        fig.add(right, hi, y)
    fig.path(l1, p, r1)
    fig.path(l2, q, r2)
    fig.path(t1, p, q, t2)
    fig.parallels += [(l1, p, 1), (l2, q, 1)]
    rays = {p: {"U": t1, "D": q, "L": l1, "R": r1}, q: {"U": p, "D": t2, "L": l2, "R": r2}}

    def corner(point: str, quadrant: str) -> tuple[str, str, str]:
        return rays[point][quadrant[0]], point, rays[point][quadrant[1]]

    relation, one_point, pairs, equal = rng.choice(RELATIONS)
    first, second = rng.choice(pairs)
    points = (rng.choice((p, q)),) * 2 if one_point else (p, q)
    given_c, target_c = corner(points[0], first), corner(points[1], second)
    if rng.random() < 0.5:
        given_c, target_c, first, second = target_c, given_c, second, first
    g = 180 - theta if QUADRANT_VALUE[first] else theta
    ans = g if equal else 180 - g
    gn, tn = "".join(given_c), "".join(target_c)
    steps = [] if one_point else [f"{l1}{r1} is parallel to {l2}{r2}."]
    steps.append(f"Angles {tn} and {gn} are {relation}, so they are {'equal' if equal else 'supplementary'}.")
    steps.append(f"Angle {tn} = {g}." if equal else f"Angle {tn} = 180 - {g} = {ans}.")
    return Problem("parallel_lines", relation, fig, [angle(*given_c, g)], angle(*target_c, ans), steps, [180 - ans, abs(90 - ans), 90 + abs(90 - ans), ans / 2])


def pythagoras(rng: random.Random) -> Problem:
    a, b, c = names(rng, 3)  # the right angle at c, the hypotenuse ab
    ask = rng.choice(("hypotenuse", "leg"))
    if rng.random() < 0.5:
        k = rng.randint(1, 3)
        x, y, h = (k * v for v in rng.choice(TRIPLES[:5] if k > 1 else TRIPLES))
    elif ask == "hypotenuse":
        x, y = rng.randint(2, 20), rng.randint(2, 20)
        h = math.hypot(x, y)
    else:
        x = rng.randint(2, 20)
        h = rng.randint(x + 1, x + 12)
        y = math.sqrt(h * h - x * x)
    flip = rng.random() < 0.5  # which leg lies along the base
    fig = Figure()
    fig.add(c, 0.0, 0.0)
    fig.add(b, y if flip else x, 0.0)
    fig.add(a, 0.0, x if flip else y)
    fig.path(a, b, c, a)
    fig.right_marks.append((a, c, b))
    known_seg, other_seg = ((a, c), (c, b)) if flip else ((c, b), (a, c))  # x lies on known_seg
    kn, on = "".join(known_seg), "".join(other_seg)
    if ask == "hypotenuse":
        givens, target, d = [length(*known_seg, x), length(*other_seg, y)], length(a, b, h), decimals_for(h)
        steps = [f"Angle {c} is a right angle, so {a}{b}^2 = {kn}^2 + {on}^2.", f"{a}{b} = sqrt({x}^2 + {y}^2) = sqrt({x * x + y * y}) = {rounded(h, d)}."]
        mistakes = [x + y, math.sqrt(abs(x * x - y * y)), (x + y) / 2, x * x + y * y]  # the last: no square root
        return Problem("pythagoras", ask, fig, givens, target, steps, mistakes, d)
    givens, target, d = [length(a, b, h), length(*known_seg, x)], length(*other_seg, y), decimals_for(y)
    steps = [f"Angle {c} is a right angle, so {on}^2 = {a}{b}^2 - {kn}^2.", f"{on} = sqrt({h}^2 - {x}^2) = sqrt({h * h - x * x}) = {rounded(y, d)}."]
    mistakes = [math.hypot(h, x), h - x, h + x, h * h - x * x]
    return Problem("pythagoras", ask, fig, givens, target, steps, mistakes, d)


def circle_angles(rng: random.Random) -> Problem:
    a, b, c = names(rng, 3)
    o, r, start = "O", 5.0, rng.uniform(190, 260)
    fig = Figure()
    fig.add(o, 0.0, 0.0)
    fig.circles.append((o, r))
    kind = rng.choice(("inscribed", "central", "semicircle"))
    if kind == "semicircle":
        g = rng.randint(20, 70)
        fig.add(a, *polar(r, start))
        fig.add(b, *polar(r, start + 180))
        fig.add(c, *polar(r, start + 180 + 2 * g))
        fig.path(a, o, b, c, a)
        steps = [f"{a}{b} is a diameter, so angle {a}{c}{b} = 90.", f"Angle {a}{b}{c} = 180 - 90 - {g} = {90 - g}."]
        return Problem("circle_angles", kind, fig, [angle(c, a, b, g)], angle(a, b, c, 90 - g), steps, [180 - g, g, 90 + g, 180 - 2 * g])
    half = rng.randint(15, 85)
    fig.add(a, *polar(r, start))
    fig.add(b, *polar(r, start + 2 * half))
    while True:  # C on the major arc, its chords clear of the centre (no near-diameters)
        fig.add(c, *polar(r, start + 2 * half + (360 - 2 * half) * rng.uniform(0.2, 0.8)))
        if min(_chord_gap(fig.points[c], fig.points[e]) for e in (a, b)) > 0.2 * r:
            break
    fig.path(a, o, b)
    fig.path(a, c, b)
    central, inscribed = angle(a, o, b, 2 * half), angle(a, c, b, half)
    if kind == "inscribed":
        steps = ["An inscribed angle is half the central angle on the same arc.", f"Angle {a}{c}{b} = {2 * half} / 2 = {half}."]
        return Problem("circle_angles", kind, fig, [central], inscribed, steps, [2 * half, 4 * half, 180 - 2 * half, 180 - half])
    steps = ["A central angle is twice the inscribed angle on the same arc.", f"Angle {a}{o}{b} = 2 x {half} = {2 * half}."]
    return Problem("circle_angles", kind, fig, [inscribed], central, steps, [half, half / 2, 180 - half, 180 - 2 * half])


def _chord_gap(p: tuple[float, float], q: tuple[float, float]) -> float:
    """Distance from the origin (the centre) to the chord pq."""
    return abs(p[0] * q[1] - p[1] * q[0]) / math.dist(p, q)


def circle_measure(rng: random.Random) -> Problem:
    a, b = names(rng, 2)
    o, r = "O", rng.randint(2, 30)
    fig = Figure()
    fig.add(o, 0.0, 0.0)
    fig.circles.append((o, r))
    direction = rng.uniform(0, 360)
    fig.add(a, *polar(r, direction))
    decimals = rng.choice((0, 1, 1))
    if rng.random() < 0.2:  # the circumference in the text, the radius unknown
        circumference = round(2 * math.pi * r, 1)
        fig.path(o, a)
        steps = [f"The circumference is 2 x pi x r, so r = {num(circumference)} / (2 x pi) = {rounded(circumference / (2 * math.pi), 0)}."]
        given = Given(("circumference", o, a), circumference)
        return Problem("circle_measure", "radius", fig, [given], length(o, a, r), steps, [2 * r, r / 2, circumference / math.pi, r + 1], 0)
    diameter = rng.random() < 0.5
    if diameter:
        fig.add(b, *polar(-r, direction))
        fig.path(a, o, b)
        fig.unlabeled = (o,)
        given, d = length(a, b, 2 * r, side=1), 2 * r
        lead = f"The radius is {d} / 2 = {r}."
    else:
        fig.path(o, a)
        given, lead = length(o, a, r), f"The radius is {r}."
    if rng.random() < 0.5:
        value = 2 * math.pi * r
        steps = [lead, f"Circumference = 2 x pi x {r} = {rounded(value, decimals)}."]
        mistakes = [math.pi * r, math.pi * r * r, 4 * math.pi * r, 2 * math.pi * r * r]
        target = Given(("circumference", o, a), value)
    else:
        value = math.pi * r * r
        steps = [lead, f"Area = pi x {r}^2 = {rounded(value, decimals)}."]
        mistakes = [2 * math.pi * r, 4 * math.pi * r * r, math.pi * r, math.pi * r * r / 2]
        target = Given(("circle_area", o, a), value)
    return Problem("circle_measure", target.measure[0] + ("_d" if diameter else "_r"), fig, [given], target, steps, mistakes, decimals)


def area(rng: random.Random) -> Problem:
    fig = Figure()
    kind = rng.choice(("rect_area", "rect_perimeter", "rect_side", "triangle_area"))
    if kind == "triangle_area":
        a, b, c, h = names(rng, 4)
        base = rng.randint(4, 24)
        height = rng.randint(max(3, base // 3), min(20, 2 * base))  # no slivers
        fig.add(b, 0.0, 0.0)
        fig.add(c, base, 0.0)
        fig.add(a, base * rng.uniform(0.2, 0.8), height)
        fig.add(h, fig.points[a][0], 0.0)
        fig.path(a, b, h, c, a)
        fig.path(a, h, dashed=True)
        fig.right_marks.append((a, h, c))
        value = base * height / 2
        steps = ["Area of a triangle = base x height / 2.", f"Area = {base} x {height} / 2 = {num(value)}."]
        givens = [length(b, c, base, side=-1), length(a, h, height, side=1)]
        target = Given(("area", "triangle", a, b, c), value)
        return Problem("area", kind, fig, givens, target, steps, [base * height, base + height, value / 2, (base + height) / 2], decimals_for(value))
    a, b, c, d = names(rng, 4)
    w = rng.randint(2, 20)
    h = rng.randint(max(2, -(-w // 3)), min(15, 3 * w))  # sides within a factor 3
    for name, x, y in ((a, 0, 0), (b, w, 0), (c, w, h), (d, 0, h)):
        fig.add(name, float(x), float(y))
    fig.path(a, b, c, d, a)
    fig.right_marks += [(d, a, b), (a, b, c)]
    rect = ("rectangle", a, b, c, d)
    if kind == "rect_side":
        givens = [length(a, b, w), Given(("area",) + rect, w * h)]
        steps = ["Area of a rectangle = length x width.", f"{b}{c} = {w * h} / {w} = {h}."]
        return Problem("area", kind, fig, givens, length(b, c, h), steps, [w * h - w, w * h / 2 - w, w * h / (2 * w), w])
    givens = [length(a, b, w), length(b, c, h)]
    if kind == "rect_area":
        steps = ["Area of a rectangle = length x width.", f"Area = {w} x {h} = {w * h}."]
        return Problem("area", kind, fig, givens, Given(("area",) + rect, w * h), steps, [2 * (w + h), w + h, w * h / 2, 2 * w * h])
    steps = ["Perimeter of a rectangle = 2 x (length + width).", f"Perimeter = 2 x ({w} + {h}) = {2 * (w + h)}."]
    return Problem("area", kind, fig, givens, Given(("perimeter",) + rect, 2 * (w + h)), steps, [w * h, w + h, 2 * w + h, 4 * w])


def exterior_angle(rng: random.Random) -> Problem:
    a, b, c, d = names(rng, 4)
    ga = rng.randint(30, 110)
    gb = rng.randint(25, 150 - ga)
    fig = Figure()
    triangle(fig, b, c, a, 10.0, gb, 180 - ga - gb)
    fig.add(d, 16.0, 0.0)
    fig.path(c, d)
    ext = ga + gb
    kind = rng.choice(("exterior", "remote", "adjacent"))
    if kind == "exterior":
        givens, target = [angle(b, a, c, ga), angle(a, b, c, gb)], angle(a, c, d, ext)
        steps = ["An exterior angle equals the sum of the two remote interior angles.", f"Angle {a}{c}{d} = {ga} + {gb} = {ext}."]
        mistakes = [180 - ext, 180 - ga, 180 - gb, abs(ga - gb)]
    elif kind == "remote":
        givens, target = [angle(a, c, d, ext), angle(a, b, c, gb)], angle(b, a, c, ga)
        steps = ["An exterior angle equals the sum of the two remote interior angles.", f"Angle {b}{a}{c} = {ext} - {gb} = {ga}."]
        mistakes = [ext + gb, 180 - ext, 180 - gb, 180 - ext + gb]
    else:
        givens, target = [angle(a, c, d, ext), angle(a, b, c, gb)], angle(a, c, b, 180 - ext)
        steps = [f"Angles {a}{c}{b} and {a}{c}{d} form a linear pair.", f"Angle {a}{c}{b} = 180 - {ext} = {180 - ext}."]
        mistakes = [ext - gb, 180 - gb, ext, 90 - ext / 2]
    return Problem("exterior_angle", kind, fig, givens, target, steps, mistakes)


def trapezoid(rng: random.Random) -> Problem:
    a, b, c, d, h = names(rng, 5)
    kind = rng.choice(("area", "height", "perimeter"))
    if kind == "perimeter":  # isosceles, the legs from a Pythagorean triple
        offset, height, leg = rng.choice(((3, 4, 5), (6, 8, 10), (9, 12, 15), (5, 12, 13), (8, 15, 17)))
        top = rng.randint(2, offset + height)
        bottom = top + 2 * offset
    else:
        top, offset = rng.randint(2, 16), rng.randint(1, 8)
        bottom = top + offset + rng.randint(1, 8)
        height = rng.randint(max(2, bottom // 3), max(3, bottom))
    fig = Figure()
    for name, x, y in ((a, 0, 0), (b, bottom, 0), (c, offset + top, height), (d, offset, height)):
        fig.add(name, float(x), float(y))
    fig.path(a, b, c, d, a)
    fig.parallels += [(a, b, 1), (d, c, 1)]
    shape = ("trapezoid", a, b, c, d)
    bases = [length(a, b, bottom, side=-1), length(d, c, top, side=1)]
    if kind == "perimeter":
        fig.ticks += [(a, d, 1), (b, c, 1)]
        value = bottom + top + 2 * leg
        steps = [f"The legs are equal, so {b}{c} = {a}{d} = {leg}.", f"Perimeter = {bottom} + {top} + {leg} + {leg} = {value}."]
        mistakes = [bottom + top + leg, bottom + top, 2 * (bottom + top), bottom + top + 2 * height]
        return Problem("trapezoid", kind, fig, bases + [length(a, d, leg)], Given(("perimeter",) + shape, value), steps, mistakes)
    fig.add(h, float(offset), 0.0)
    fig.path(d, h, dashed=True)
    fig.right_marks.append((d, h, b))
    value = (bottom + top) * height / 2
    if kind == "area":
        steps = ["Area of a trapezoid = (sum of the bases) x height / 2.", f"Area = ({bottom} + {top}) x {height} / 2 = {num(value)}."]
        mistakes = [(bottom + top) * height, bottom * height, top * height, (bottom + top) / 2 + height]
        givens = bases + [length(d, h, height, side=1)]
        return Problem("trapezoid", kind, fig, givens, Given(("area",) + shape, value), steps, mistakes, decimals_for(value))
    steps = ["Area of a trapezoid = (sum of the bases) x height / 2.", f"{d}{h} = 2 x {num(value)} / ({bottom} + {top}) = {height}."]
    mistakes = [value / (bottom + top), value / bottom, value / top, 2 * value / bottom]
    return Problem("trapezoid", kind, fig, bases + [Given(("area",) + shape, value)], length(d, h, height, side=1), steps, mistakes)


def similar_triangles(rng: random.Random) -> Problem:
    fig = Figure()
    if rng.random() < 0.5:  # DE parallel to BC inside triangle ABC
        a, b, c, d, e = names(rng, 5)
        while True:  # BC / AB in [0.5, 2] and DE midway, so that nothing is a sliver
            m, n, s = rng.randint(2, 12), rng.randint(2, 12), rng.randint(2, 15)
            big = s * (m + n) / m
            if 0.5 <= big / (m + n) <= 2.0 and 0.3 <= n / (m + n) <= 0.7:
                break
        beta = rng.uniform(40, 80)
        fig.add(b, 0.0, 0.0)
        fig.add(c, big, 0.0)
        ax, ay = polar(m + n, beta)
        fig.add(a, ax, ay)
        fig.add(d, *polar(n, beta))
        fig.add(e, ax + (big - ax) * m / (m + n), ay * n / (m + n))
        fig.path(a, d, b, c, e, a)
        fig.path(d, e)
        fig.parallels += [(d, e, 1), (b, c, 1)]
        givens = [length(a, d, m), length(d, b, n), length(d, e, s, side=-1)]
        steps = [f"{d}{e} is parallel to {b}{c}, so triangle {a}{d}{e} is similar to triangle {a}{b}{c}.", f"{b}{c} = {s} x ({m} + {n}) / {m} = {rounded(big, decimals_for(big))}."]
        mistakes = [s + n, s * (m + n) / n, s * m / (m + n), s * n / m]
        return Problem("similar_triangles", "parallel", fig, givens, length(b, c, big, side=-1), steps, mistakes, decimals_for(big))
    a, b, c, d, e, f = names(rng, 6)  # ABC ~ DEF, DEF scaled by q / p and drawn to the right
    p, q, r = rng.randint(3, 12), rng.randint(2, 16), rng.randint(3, 15)
    while q == p or not 0.5 <= q / p <= 2.5 or not 0.5 <= r / p <= 2.0:  # both legible, no sliver
        q, r = rng.randint(2, 16), rng.randint(3, 15)
    beta = rng.uniform(45, 95)
    scale, cx = q / p, p - r * math.cos(math.radians(beta))  # cx: C's x in the first triangle
    shift = max(p, cx) - min(0.0, scale * cx) + 0.5 * (p + q)
    for (u, v, w), k, dx in (((a, b, c), 1.0, 0.0), ((d, e, f), scale, shift)):
        fig.add(u, dx, 0.0)
        fig.add(v, dx + k * p, 0.0)
        fig.add(w, *polar(k * r, 180 - beta, (dx + k * p, 0.0)))
        fig.path(u, v, w, u)
    fig.angles += [(w, u, v, "", 1) for u, v, w in ((a, b, c), (d, e, f))] + [(u, v, w, "", 2) for u, v, w in ((a, b, c), (d, e, f))]
    value = r * q / p
    givens = [length(a, b, p, side=-1), length(b, c, r), length(d, e, q, side=-1)]
    steps = [f"Triangle {a}{b}{c} is similar to triangle {d}{e}{f}, so {e}{f} / {b}{c} = {d}{e} / {a}{b}.", f"{e}{f} = {r} x {q} / {p} = {rounded(value, decimals_for(value))}."]
    mistakes = [r + q - p, r * p / q, q * p / r, r * q / (p + r)]
    return Problem("similar_triangles", "pair", fig, givens, length(e, f, value), steps, mistakes, decimals_for(value), [f"Triangle {a}{b}{c} is similar to triangle {d}{e}{f}."])
