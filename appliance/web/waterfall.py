"""A turn's latency waterfall: where each stage sat between the caller's last word and the reply.

Time zero is the end of the caller's speech. Each stage is a bar from when it began (stored with
the turn; speculative work starts before the end of the turn is confirmed) for as long as it
took; the last bar is what the caller waited. The geometry is computed here and drawn by the
page as inline SVG: no script, no chart library. A turn stored without start times (recorded
before they were kept) is drawn with every bar from zero, and says so.

Each turn is drawn twice and the stylesheet shows one: `wide`, labels beside the bars, for a
screen; `narrow`, each label above its bar in a drawing as wide as a phone, so that its text is
drawn at about its own size there rather than shrunk with a wide drawing to half of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

__all__ = ["STAGES", "Bar", "Waterfall", "waterfall"]

STAGES: Final = (
    ("endpoint", "end of turn"),
    ("stt", "speech to text"),
    ("recall", "memory recall"),
    ("screen", "safety screen"),
    ("llm_first_token", "LLM first token"),
    ("first_sentence", "first sentence"),
    ("tts_first_audio", "TTS first audio"),
    ("screen_hold", "safety hold"),
    ("turn", "caller waited"),
)
_TOP: Final = 22


@dataclass(frozen=True, slots=True)
class _Layout:
    width: int
    labels: int
    """Room left of the bars for their labels (0: labels above the bars)."""
    values: int
    row: int
    bar_dy: int
    """Where in its row a bar begins."""


_WIDE: Final = _Layout(width=600, labels=124, values=62, row=20, bar_dy=1)
_NARROW: Final = _Layout(width=340, labels=0, values=0, row=30, bar_dy=14)
_STEPS: Final = (50, 100, 200, 250, 500, 1000, 2000, 5000, 10000)


@dataclass(frozen=True, slots=True)
class Bar:
    key: str
    label: str
    start_ms: float
    ms: float
    x: float
    width: float
    y: float


@dataclass(frozen=True, slots=True)
class Waterfall:
    width: int
    height: int
    bars: tuple[Bar, ...]
    ticks: tuple[tuple[float, str], ...]
    """(x, label) of each grid line."""
    zero_x: float
    label_x: int
    value_x: int
    exact: bool
    """False when the stages' start times were not recorded."""
    narrow: bool = False
    """Labels and values above the bars (`label_x` left of them, `value_x` right)."""
    bar_dy: int = 1


def _step(span_ms: float) -> int:
    return next((s for s in _STEPS if span_ms / s <= 6), _STEPS[-1])


def waterfall(
    timings: Mapping[str, float], starts: Mapping[str, float], *, narrow: bool = False
) -> Waterfall | None:
    """The chart of one turn, or None when it has no timings."""
    layout = _NARROW if narrow else _WIDE
    exact = bool(starts)
    rows = [
        (key, label, float(starts.get(key, 0.0)) if exact else 0.0, float(timings[key]))
        for key, label in STAGES
        if key in timings and (not exact or key in starts)
    ]
    if not rows:
        return None
    low = min(0.0, *(start for _, _, start, _ in rows))
    high = max(start + ms for _, _, start, ms in rows)
    step = _step(max(high - low, 1.0))
    low = step * (low // step)
    span = max(high - low, 1.0)
    pad = 10 if narrow else 0
    area = layout.width - layout.labels - layout.values - 2 * pad

    def x(ms: float) -> float:
        return round(pad + layout.labels + (ms - low) / span * area, 1)

    bars = tuple(
        Bar(
            key=key,
            label=label,
            start_ms=start,
            ms=ms,
            x=x(start),
            width=max(1.5, round(ms / span * area, 1)),
            y=_TOP + i * layout.row,
        )
        for i, (key, label, start, ms) in enumerate(rows)
    )
    ticks = tuple(
        (x(t), f"{t / 1000:g} s" if step >= 1000 else f"{t:g}")
        for t in range(int(low), int(high) + 1, step)
    )
    return Waterfall(
        width=layout.width,
        height=_TOP + len(rows) * layout.row + 4,
        bars=bars,
        ticks=ticks,
        zero_x=x(0.0),
        label_x=pad if narrow else layout.labels - 8,
        value_x=layout.width - pad if narrow else layout.width - layout.values + 6,
        exact=exact,
        narrow=narrow,
        bar_dy=layout.bar_dy,
    )
