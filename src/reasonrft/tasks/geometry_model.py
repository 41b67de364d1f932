"""The data model of the ``structure`` family: a problem and its givens, and number formatting.

A ``Problem`` is what a family builder (``geometry_families``) returns and what ``structure``
turns into a sample: a symbolic ``Figure`` (``geometry_draw``), the given quantities, the
unknown with the solver's answer, the solver's steps and the values that typical mistakes
give. A ``Given`` names a quantity by how to measure it from the figure's coordinates, so the
tests can check every answer against the drawing. ``num`` and ``fmt`` write values the same
way in the builders' steps and in the question, options and answer.

Its own module so that the builders and ``structure`` (which imports the builders into its
registry) can both import it without a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from reasonrft.tasks.geometry_draw import Figure


@dataclass(frozen=True)
class Given:
    """A quantity of the figure and its value. ``measure`` says how to measure it from the
    coordinates: ("angle", P, V, Q), ("length", P, Q), ("area" | "perimeter", shape, *vertices),
    ("circumference" | "circle_area", O, A) with A on the circle. ``side`` places a length label."""

    measure: tuple[str, ...]
    value: float
    side: int = 0

    @property
    def drawable(self) -> bool:
        return self.measure[0] in ("angle", "length")


@dataclass
class Problem:
    """A symbolic figure with givens, the unknown (``target.value`` is the solver's answer),
    the solver's steps and the values that typical mistakes give."""

    family: str
    kind: str
    figure: Figure
    givens: list[Given]
    target: Given
    steps: list[str]
    mistakes: list[float]
    decimals: int = 0
    facts: list[str] = field(default_factory=list)  # sentences the text always states


# --------------------------------------------------------------------------- number formatting


def num(v: float) -> str:
    """A given or intermediate value: an integer, else at most two decimals."""
    return str(round(v)) if abs(v - round(v)) < 1e-9 else f"{v:.2f}".rstrip("0").rstrip(".")


def fmt(v: float, decimals: int) -> str:
    """An answer rounded half up to ``decimals`` places (not banker's rounding)."""
    return str(Decimal(repr(v)).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP))
