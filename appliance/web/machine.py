"""Health sources of the machine itself: disk, memory, CPU (temperature, throttling), uptime.

The readings are `observability.system`'s, the same `appliance doctor` judges; they touch /proc,
/sys and `vcgencmd`, so each runs on a worker thread. The numbers the alerts need are set on
their gauges as they are read.
"""

from __future__ import annotations

import asyncio
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from appliance.clock import Clock
from appliance.observability import system
from appliance.observability.metrics import Metrics
from appliance.web.health import Health, Level

__all__ = [
    "BoxHealth",
    "CpuHealth",
    "DiskHealth",
    "MemoryHealth",
    "gib",
    "load_level",
    "span",
    "worst",
]

_MIB = 1024**2


def gib(n: float) -> str:
    return f"{n / 1024**3:.1f} GiB"


def span(seconds: float) -> str:
    """`3 d 4 h`, `2 h 5 min`, `7 min`, `12 s`."""
    s = int(seconds)
    days, hours, minutes = s // 86400, s % 86400 // 3600, s % 3600 // 60
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min" if minutes else f"{s} s"


@dataclass(frozen=True, slots=True)
class DiskHealth:
    """The disk of the data directory: recordings and the database."""

    path: Path
    metrics: Metrics | None = None
    part: str = "disk"

    async def health(self) -> Health:
        reading = await asyncio.to_thread(system.disk, self.path)
        if self.metrics is not None:
            self.metrics.disk_used_ratio.set(reading.used_ratio)
        summary = f"{reading.used_ratio:.0%} used, {gib(reading.free)} free"
        facts = (("folder", str(reading.path)), ("size", gib(reading.total)))
        return Health(self.part, system.disk_level(reading), summary, facts)


def _memory() -> tuple[system.MemoryReading | None, int | None]:
    return system.memory(), system.process_rss()


@dataclass(frozen=True, slots=True)
class MemoryHealth:
    part: str = "memory"

    async def health(self) -> Health:
        reading, rss = await asyncio.to_thread(_memory)
        if reading is None:
            return Health(self.part, "warn", "cannot read /proc/meminfo")
        facts = [("total", gib(reading.total))]
        if rss is not None:
            facts.append(("the appliance uses", gib(rss)))
        summary = f"{gib(reading.available)} available"
        level: Level = "ok"
        if reading.available < 64 * _MIB:
            level = "fail"
        elif reading.available < 256 * _MIB:
            level = "warn"
        return Health(self.part, level, summary, tuple(facts))


@dataclass(frozen=True, slots=True)
class _CpuReading:
    celsius: float | None
    throttled: system.Throttling | None
    governor: str | None
    load: tuple[float, float, float] | None


def _cpu() -> _CpuReading:
    return _CpuReading(
        celsius=system.cpu_temperature(),
        throttled=system.throttling(),
        governor=system.cpu_governor(),
        load=system.load_average(),
    )


def worst(levels: Sequence[Level]) -> Level:
    """The worst of `levels` (`ok` for none)."""
    order: list[Level] = ["ok", "warn", "fail"]
    return max(levels, key=order.index, default="ok")


_LOAD_WARN: Final = 1.5
_LOAD_FAIL: Final = 3.0


def load_level(per_core: float) -> Level:
    """The 1-minute load over the cores: past 1.5 runnable threads a core, a turn's stages
    queue for the CPU (a warning); past 3, turns take many times longer (failing)."""
    if per_core >= _LOAD_FAIL:
        return "fail"
    return "warn" if per_core >= _LOAD_WARN else "ok"


@dataclass(frozen=True, slots=True)
class CpuHealth:
    """Temperature, and on a Raspberry Pi whether the firmware throttles it."""

    metrics: Metrics | None = None
    part: str = "cpu"

    async def health(self) -> Health:
        r = await asyncio.to_thread(_cpu)
        facts = [("cores", f"{os.cpu_count() or 1}, {platform.machine()}")]
        levels: list[Level] = ["ok"]
        parts = []
        if r.load is not None:
            facts.append(("load (1, 5, 15 min)", " ".join(f"{x:.2f}" for x in r.load)))
            per_core = r.load[0] / (os.cpu_count() or 1)
            if load_level(per_core) != "ok":
                levels.append(load_level(per_core))
                parts.append(f"load {r.load[0]:.1f} on {os.cpu_count() or 1} cores")
        if r.governor is not None:
            facts.append(("governor", r.governor))
        if r.celsius is not None:
            levels.append(system.temperature_level(r.celsius))
            parts.append(f"{r.celsius:.0f} °C")
            if self.metrics is not None:
                self.metrics.cpu_temperature.set(r.celsius)
        if r.throttled is not None:
            now, before = r.throttled.now, r.throttled.since_boot
            facts.append(("throttled since boot", ", ".join(before) or "never"))
            if now:
                levels.append("warn")
                parts.append(f"throttled: {', '.join(now)}")
            if self.metrics is not None:
                self.metrics.cpu_throttled.set(1 if now else 0)
        summary = ", ".join(parts) or "no temperature sensor"
        return Health(self.part, worst(levels), summary, tuple(facts))


@dataclass(frozen=True, slots=True)
class BoxHealth:
    """What runs, and for how long."""

    version: str
    started: float
    """Unix seconds."""
    clock: Clock
    part: str = "box"

    async def health(self) -> Health:
        booted = await asyncio.to_thread(system.uptime)
        up = span(self.clock.wall() - self.started)
        facts = [("version", self.version), ("up", up)]
        if booted is not None:
            facts.append(("machine up", span(booted)))
        facts.append(("host", platform.node()))
        return Health(self.part, "ok", f"TEL3SIS {self.version}, up {up}", tuple(facts))
