"""The health of each part of the box, as the status page, /healthz and /metrics see it.

A part (the models, each engine, SIP, Twilio, Redis, the disk ...) is a `HealthSource`: one
async method that says how it is. A line or service plugs in by giving the composition root a
source; until it does, a `NotConfigured` source says so. `HealthBoard` asks every source at
once (each within `timeout_s`; a source that fails or hangs is reported failing, with why),
keeps the answers for `max_age_s` so a busy page or a scrape costs at most one round, and sets
`tel3sis_health{part}` for the alerts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from appliance.clock import Clock
from appliance.observability.metrics import Metrics

__all__ = ["Health", "HealthBoard", "HealthSource", "Level", "NotConfigured", "overall"]

_log = logging.getLogger(__name__)

Level = Literal["ok", "warn", "fail", "off"]
"""`warn`: works, not as well as it should; `off`: not configured (not a fault)."""

_RANK: dict[Level, int] = {"off": 0, "ok": 1, "warn": 2, "fail": 3}


@dataclass(frozen=True, slots=True)
class Health:
    part: str
    """A short name: `models`, `stt`, `sip`, `disk` ..."""
    level: Level
    summary: str
    """One line a person reads."""
    facts: tuple[tuple[str, str], ...] = ()
    """Details, label and value. Never a secret: the status page shows them."""


class HealthSource(Protocol):
    @property
    def part(self) -> str:
        """The part's name, as in `Health.part`."""
        ...

    async def health(self) -> Health:
        """How the part is now (off the event loop for anything that touches files)."""
        ...


@dataclass(frozen=True, slots=True)
class NotConfigured:
    """A part this box does not have (yet)."""

    part: str
    summary: str = "not configured"

    async def health(self) -> Health:
        return Health(self.part, "off", self.summary)


def overall(parts: Sequence[Health]) -> Level:
    """The worst level of any part (`ok` when every part is off)."""
    worst: Level = max((p.level for p in parts), key=_RANK.__getitem__, default="ok")
    return "ok" if worst == "off" else worst


class HealthBoard:
    def __init__(
        self,
        sources: Sequence[HealthSource],
        *,
        clock: Clock,
        metrics: Metrics | None = None,
        timeout_s: float = 3.0,
        max_age_s: float = 5.0,
    ) -> None:
        self._sources = list(sources)
        self._clock = clock
        self._metrics = metrics
        self._timeout_s = timeout_s
        self._max_age_s = max_age_s
        self._last: list[Health] = []
        self._checked_at: float | None = None
        self._lock = asyncio.Lock()

    async def check(self, *, max_age_s: float | None = None) -> list[Health]:
        """Every part's health, at most `max_age_s` old (the board's default when None)."""
        limit = self._max_age_s if max_age_s is None else max_age_s
        async with self._lock:
            now = self._clock.now()
            if self._checked_at is None or now - self._checked_at >= limit:
                self._last = list(await asyncio.gather(*map(self._ask, self._sources)))
                self._checked_at = self._clock.now()
                self._export(self._last)
            return list(self._last)

    async def _ask(self, source: HealthSource) -> Health:
        try:
            async with asyncio.timeout(self._timeout_s):
                return await source.health()
        except TimeoutError:
            return Health(source.part, "fail", f"no answer within {self._timeout_s:.0f} s")
        except Exception as exc:
            _log.exception("the %s health check failed", source.part)
            return Health(source.part, "fail", f"check failed: {type(exc).__name__}")

    def _export(self, parts: Sequence[Health]) -> None:
        if self._metrics is None:
            return
        gauge = self._metrics.health
        for part in parts:
            if part.level == "off":
                with contextlib.suppress(KeyError):
                    gauge.remove(part.part)
            else:
                gauge.labels(part.part).set(0 if part.level == "fail" else 1)
