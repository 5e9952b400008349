"""A turn's latency waterfall: where each stage sat between the caller's last word and the reply.

Time zero is the end of the caller's speech. Each stage is a bar from when it began (stored with
the turn; speculative work starts before the end of the turn is confirmed) for as long as it
took; the last bar is what the caller waited. The geometry is computed here and drawn by the
page as inline SVG: no script, no chart library. A turn stored without start times (recorded
before they were kept) is drawn with every bar from zero, and says so.
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
_WIDTH: Final = 600
_LABELS: Final = 124
_VALUES: Final = 62
_ROW: Final = 20
_TOP: Final = 22
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


def _step(span_ms: float) -> int:
    return next((s for s in _STEPS if span_ms / s <= 6), _STEPS[-1])


def waterfall(timings: Mapping[str, float], starts: Mapping[str, float]) -> Waterfall | None:
    """The chart of one turn, or None when it has no timings."""
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
    area = _WIDTH - _LABELS - _VALUES

    def x(ms: float) -> float:
        return round(_LABELS + (ms - low) / span * area, 1)

    bars = tuple(
        Bar(
            key=key,
            label=label,
            start_ms=start,
            ms=ms,
            x=x(start),
            width=max(1.5, round(ms / span * area, 1)),
            y=_TOP + i * _ROW,
        )
        for i, (key, label, start, ms) in enumerate(rows)
    )
    ticks = tuple(
        (x(t), f"{t / 1000:g} s" if step >= 1000 else f"{t:g}")
        for t in range(int(low), int(high) + 1, step)
    )
    return Waterfall(
        width=_WIDTH,
        height=_TOP + len(rows) * _ROW + 4,
        bars=bars,
        ticks=ticks,
        zero_x=x(0.0),
        label_x=_LABELS - 8,
        value_x=_WIDTH - _VALUES + 6,
        exact=exact,
    )
