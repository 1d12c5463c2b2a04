"""Chart geometry for server-side SVG: pure functions from values to coordinates, drawn by the templates.

Coordinates are in the SVG's own units (its viewBox); the browser scales the whole drawing to the page.
The value axis always starts at zero and ends at a round number at or above the largest value, so bars
and lines are never exaggerated, and a chart with no data (or only zeros) still has an axis to draw.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

_STEPS = (1.0, 2.0, 2.5, 5.0, 10.0)  # round axis tops: 1, 2, 2.5, 5 times a power of ten


def nice_ceiling(value: float) -> float:
    """The smallest round number (1, 2, 2.5 or 5 times a power of ten) at or above `value`; 1 for nothing to show."""
    if not math.isfinite(value) or value <= 0:
        return 1.0
    power = math.pow(10, math.floor(math.log10(value)))
    return next(step * power for step in _STEPS if step * power >= value * (1 - 1e-9))


@dataclass(frozen=True, slots=True)
class Frame:
    """The SVG's size and the plot area inside it (room left for the axis labels)."""

    width: float
    height: float
    left: float = 36.0
    right: float = 8.0
    top: float = 14.0
    bottom: float = 22.0

    @property
    def plot_width(self) -> float:
        return self.width - self.left - self.right

    @property
    def baseline(self) -> float:
        """The y of the value 0."""
        return self.height - self.bottom


@dataclass(frozen=True, slots=True)
class Scale:
    """Values in [0, top] to y in [baseline, frame top] (SVG's y grows downwards)."""

    top: float
    low_y: float
    high_y: float

    def __call__(self, value: float) -> float:
        clamped = min(max(value, 0.0), self.top)
        return round(self.low_y - (self.low_y - self.high_y) * clamped / self.top, 1)


def value_scale(values: Sequence[float | None], frame: Frame) -> Scale:
    present = [v for v in values if v is not None]
    return Scale(nice_ceiling(max(present, default=0.0)), frame.baseline, frame.top)


@dataclass(frozen=True, slots=True)
class Tick:
    value: float
    y: float


def ticks(scale: Scale, *, counts: bool = False) -> tuple[Tick, ...]:
    """0, half-way and the top: enough to read a small chart. Counts have no half-way 2.5 jobs."""
    values = (0.0, scale.top / 2, scale.top)
    return tuple(Tick(value, scale(value)) for value in values if not counts or float(value).is_integer())


def slot_centres(count: int, frame: Frame) -> tuple[float, ...]:
    """The x of each of `count` equal slots' centre across the plot area."""
    if count <= 0:
        return ()
    slot = frame.plot_width / count
    return tuple(round(frame.left + slot * (index + 0.5), 1) for index in range(count))


# --- bars -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value: float
    x: float  # left edge
    y: float  # top edge
    width: float
    height: float
    centre: float  # where the labels go


@dataclass(frozen=True, slots=True)
class BarChart:
    frame: Frame
    bars: tuple[Bar, ...]
    ticks: tuple[Tick, ...]


def bar_chart(
    values: Sequence[tuple[str, float]], *, width: float = 320, height: float = 160, counts: bool = False
) -> BarChart:
    """One bar per (label, value), evenly spaced, each 70 % of its slot; `counts`: whole-number ticks."""
    frame = Frame(width, height)
    scale = value_scale([value for _, value in values], frame)
    centres = slot_centres(len(values), frame)
    bar_width = round(frame.plot_width / len(values) * 0.7, 1) if values else 0.0
    bars = []
    for (label, value), centre in zip(values, centres, strict=True):
        top = scale(value)
        bars.append(
            Bar(label, value, round(centre - bar_width / 2, 1), top, bar_width, round(frame.baseline - top, 1), centre)
        )
    return BarChart(frame, tuple(bars), ticks(scale, counts=counts))


# --- a line ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Point:
    label: str
    value: float
    x: float
    y: float


@dataclass(frozen=True, slots=True)
class LineChart:
    frame: Frame
    points: tuple[Point, ...]  # the values present, as dots
    segments: tuple[str, ...]  # SVG polyline `points` of each run of two or more consecutive values
    ticks: tuple[Tick, ...]
    first_label: str | None  # the x axis' ends
    last_label: str | None

    @property
    def empty(self) -> bool:
        return not self.points


def line_chart(values: Sequence[tuple[str, float | None]], *, width: float = 320, height: float = 140) -> LineChart:
    """One point per (label, value) across the plot, joined while consecutive; None leaves a gap (no
    data is not zero)."""
    frame = Frame(width, height)
    scale = value_scale([value for _, value in values], frame)
    points: list[Point] = []
    runs: list[list[Point]] = [[]]
    for (label, value), x in zip(values, slot_centres(len(values), frame), strict=True):
        if value is None:
            runs.append([])
            continue
        point = Point(label, value, x, scale(value))
        points.append(point)
        runs[-1].append(point)
    segments = tuple(" ".join(f"{p.x},{p.y}" for p in run) for run in runs if len(run) >= 2)
    first, last = (values[0][0], values[-1][0]) if values else (None, None)
    return LineChart(frame, tuple(points), segments, ticks(scale), first, last)
