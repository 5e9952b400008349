"""A turn's timings, assembled at its end from the times each stage reported for itself."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["Span", "durations_ms", "starts_ms"]


@dataclass(frozen=True, slots=True)
class Span:
    """When a stage began and ended (clock seconds); None for what has not happened."""

    start: float | None = None
    end: float | None = None


def durations_ms(spans: Mapping[str, Span]) -> dict[str, float]:
    """How long each stage took, in milliseconds, for the stages that ended."""
    return {
        name: round((span.end - span.start) * 1000.0, 1)
        for name, span in spans.items()
        if span.start is not None and span.end is not None
    }


def starts_ms(spans: Mapping[str, Span], origin: float | None) -> dict[str, float]:
    """When each stage began, in milliseconds after `origin` (the end of the caller's speech;
    speculative work starts before the end of the turn is confirmed)."""
    if origin is None:
        return {}
    return {
        name: round((span.start - origin) * 1000.0, 1)
        for name, span in spans.items()
        if span.start is not None
    }
