"""The dashboard's plots of the last day: the caller's wait over time (median and p95), each
stage's time, calls per hour, and how calls ended.

Geometry is computed here and drawn by the page as inline SVG (`_trends.html`): no script, no
chart library, nothing fetched. Each chart's drawing is 360 units wide, about a phone's width,
so its 11-unit text is drawn near 11 px there and larger on a wide screen, never smaller.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from appliance.memory.trends import CallOutcome, TimedTurn
from appliance.web.service import percentile, seconds
from appliance.web.waterfall import STAGES

__all__ = [
    "Bars",
    "Column",
    "Columns",
    "Line",
    "Row",
    "Trends",
    "WaitChart",
    "calls_per_hour",
    "outcomes",
    "stage_times",
    "trends",
    "wait_over_time",
]

WIDTH: Final = 360
_LEFT: Final = 44
_RIGHT: Final = 10
_TOP: Final = 12
_PLOT_H: Final = 120
_HOUR: Final = 3600
_STEPS_S: Final = (300, 900, 1800, 3600)
_STAGE_LABEL: Final = 104
_STAGE_VALUE: Final = 96
_ROW: Final = 22


def _nice(high: float) -> float:
    """A round top for an axis at or above `high`."""
    for scale in (1, 10, 100, 1000, 10_000, 100_000):
        for top in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8):
            if top * scale >= high:
                return top * scale
    return high


@dataclass(frozen=True, slots=True)
class Line:
    """One series as runs of points (a gap where a bucket had no turns)."""

    key: str
    runs: tuple[str, ...]
    """SVG `points` of each unbroken run."""
    dots: tuple[tuple[float, float, str], ...]
    """(x, y, tooltip) of each point."""


@dataclass(frozen=True, slots=True)
class WaitChart:
    width: int
    height: int
    lines: tuple[Line, ...]
    y_ticks: tuple[tuple[float, str], ...]
    x_ticks: tuple[tuple[float, str], ...]
    target_y: float
    left: int
    right: float
    bottom: float
    turns: int


def _bucket_step(span_s: float) -> int:
    return next((s for s in _STEPS_S if span_s / s <= 24), _STEPS_S[-1])


def _buckets(
    timed: Sequence[tuple[float, float]], now: float
) -> tuple[float, int, list[tuple[int, float, float]]]:
    """The stretches of time since the first turn: their start, their length (seconds), and
    (index, median, p95) of each stretch that had turns."""
    step = _bucket_step(now - timed[0][0])
    start = (timed[0][0] // step) * step
    count = int((now - start) // step) + 1
    buckets: list[list[float]] = [[] for _ in range(count)]
    for at, wait in timed:
        buckets[min(count - 1, max(0, int((at - start) // step)))].append(wait)
    stats = [(i, statistics.median(b), percentile(b, 0.95)) for i, b in enumerate(buckets) if b]
    return start, step, stats


def _line(key: str, points: Sequence[tuple[int, float, float, str]]) -> Line:
    """A series of (index, x, y, tooltip), broken where an index is skipped."""
    runs: list[list[str]] = []
    last = -2
    for i, x, y, _ in points:
        if i != last + 1:
            runs.append([])
        runs[-1].append(f"{x},{y}")
        last = i
    return Line(key, tuple(" ".join(r) for r in runs), tuple((x, y, t) for _, x, y, t in points))


def wait_over_time(turns: Sequence[TimedTurn], now: float, target_ms: float) -> WaitChart | None:
    """The caller's wait, median and p95 of each stretch of time since the first turn."""
    timed = [(t.at, t.timings["turn"]) for t in turns if "turn" in t.timings]
    if not timed:
        return None
    start, step, stats = _buckets(timed, now)
    count = int((now - start) // step) + 1
    top = _nice(max(target_ms, *(p for _, _, p in stats)) * 1.1)
    right, bottom = WIDTH - _RIGHT, _TOP + _PLOT_H

    def x(i: float) -> float:
        return round(_LEFT + (i + 0.5) / count * (right - _LEFT), 1)

    def y(ms: float) -> float:
        return round(bottom - ms / top * _PLOT_H, 1)

    def hhmm(i: int) -> str:
        return time.strftime("%H:%M", time.localtime(start + i * step))

    lines = tuple(
        _line(
            key,
            [
                (row[0], x(row[0]), y(row[pick]), f"{hhmm(row[0])}: {key} {seconds(row[pick])}")
                for row in stats
            ],
        )
        for key, pick in (("p95", 2), ("median", 1))
    )
    return WaitChart(
        width=WIDTH,
        height=bottom + 20,
        lines=lines,
        y_ticks=tuple((y(top * f), seconds(top * f)) for f in (0, 0.5, 1)),
        x_ticks=tuple((x(i), hhmm(i)) for i in range(0, count, max(1, count // 4))),
        target_y=y(target_ms),
        left=_LEFT,
        right=right,
        bottom=bottom,
        turns=len(timed),
    )


@dataclass(frozen=True, slots=True)
class Row:
    """One horizontal bar: a stage's median (a p95 whisker), or an outcome's count."""

    key: str
    label: str
    y: float
    width: float
    value: str
    whisker: float | None = None
    """x of the p95 mark."""


@dataclass(frozen=True, slots=True)
class Bars:
    width: int
    height: int
    rows: tuple[Row, ...]
    left: int
    value_x: int


def _bars(rows: Sequence[tuple[str, str, float, float | None, str]]) -> Bars | None:
    """Horizontal bars of (key, label, length, whisker, value), scaled to the longest."""
    if not rows:
        return None
    area = WIDTH - _STAGE_LABEL - _STAGE_VALUE
    top = max(max(length, whisker or 0.0) for _, _, length, whisker, _ in rows) or 1.0
    made = tuple(
        Row(
            key=key,
            label=label,
            y=_TOP + i * _ROW,
            width=max(1.5, round(length / top * area, 1)),
            value=value,
            whisker=None if whisker is None else round(_STAGE_LABEL + whisker / top * area, 1),
        )
        for i, (key, label, length, whisker, value) in enumerate(rows)
    )
    return Bars(
        width=WIDTH,
        height=_TOP + len(made) * _ROW + 2,
        rows=made,
        left=_STAGE_LABEL,
        value_x=WIDTH - _STAGE_VALUE + 8,
    )


def _pair(median: float, p95: float) -> str:
    """`112 / 130 ms`, `0.9 / 2.4 s`: both in the unit of the larger."""
    if p95 < 1000:
        return f"{median:.0f} / {p95:.0f} ms"
    return f"{median / 1000:.1f} / {p95 / 1000:.1f} s"


def stage_times(turns: Sequence[TimedTurn]) -> Bars | None:
    """Each stage's median time (a bar) and p95 (a mark) over the turns."""
    rows = []
    for key, label in STAGES:
        values = [t.timings[key] for t in turns if key in t.timings]
        if values:
            median, p95 = statistics.median(values), percentile(values, 0.95)
            rows.append((key, label, median, p95, _pair(median, p95)))
    return _bars(rows)


def outcomes(found: Sequence[CallOutcome], most: int = 6) -> Bars | None:
    """How many calls ended each way (the rarest ways together as `other`)."""
    counted = Counter(c.outcome or "in progress" for c in found).most_common()
    if len(counted) > most:
        counted = [*counted[: most - 1], ("other", sum(n for _, n in counted[most - 1 :]))]
    return _bars([(word, word, float(n), None, str(n)) for word, n in counted])


@dataclass(frozen=True, slots=True)
class Column:
    x: float
    y: float
    height: float
    count: int
    label: str
    """The hour, as a tooltip."""


@dataclass(frozen=True, slots=True)
class Columns:
    width: int
    height: int
    columns: tuple[Column, ...]
    column_width: float
    x_ticks: tuple[tuple[float, str], ...]
    top: int
    left: int
    right: float
    bottom: float


def calls_per_hour(found: Sequence[CallOutcome], now: float, hours: int = 24) -> Columns:
    """Calls begun in each of the last `hours` hours (the current one last)."""
    first = (now // _HOUR - hours + 1) * _HOUR
    counts = [0] * hours
    for call in found:
        i = int((call.started - first) // _HOUR)
        if 0 <= i < hours:
            counts[i] += 1
    top = max(1, *counts)
    top = int(_nice(top)) if top > 4 else top
    right, bottom = WIDTH - _RIGHT, _TOP + 90
    slot = (right - _LEFT) / hours
    columns = tuple(
        Column(
            x=round(_LEFT + i * slot + 1, 1),
            y=round(bottom - n / top * 90, 1),
            height=round(n / top * 90, 1),
            count=n,
            label=time.strftime("%H:00", time.localtime(first + i * _HOUR)),
        )
        for i, n in enumerate(counts)
    )
    x_ticks = tuple(
        (round(_LEFT + (i + 0.5) * slot, 1), columns[i].label) for i in range(0, hours, 6)
    )
    return Columns(
        width=WIDTH,
        height=bottom + 20,
        columns=columns,
        column_width=round(slot - 2, 1),
        x_ticks=x_ticks,
        top=top,
        left=_LEFT,
        right=right,
        bottom=bottom,
    )


@dataclass(frozen=True, slots=True)
class Trends:
    """Everything the dashboard plots."""

    wait: WaitChart | None
    stages: Bars | None
    per_hour: Columns
    outcomes: Bars | None
    calls: int


def trends(
    turns: Sequence[TimedTurn], found: Sequence[CallOutcome], now: float, target_ms: float
) -> Trends:
    return Trends(
        wait=wait_over_time(turns, now, target_ms),
        stages=stage_times(turns),
        per_hour=calls_per_hour(found, now),
        outcomes=outcomes(found),
        calls=len(found),
    )
