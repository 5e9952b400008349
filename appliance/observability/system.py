"""Readings of the box itself: disk, memory, CPU temperature, throttling, uptime.

Shared by `appliance doctor` (before start) and the status page (while serving), so both judge
the box the same way. Every reading is plain file or process I/O: call them off the event loop
(`asyncio.to_thread`). A reading the box cannot give (no thermal zone, not a Raspberry Pi) is
None, never a guess. Paths are parameters so a test can point them at a folder of its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

__all__ = [
    "DiskReading",
    "Level",
    "MemoryReading",
    "Throttling",
    "cpu_governor",
    "cpu_temperature",
    "disk",
    "disk_level",
    "load_average",
    "memory",
    "parse_throttled",
    "process_rss",
    "temperature_level",
    "throttling",
    "uptime",
]

Level = Literal["ok", "warn", "fail"]

_GIB: Final = 1024**3
_TEMP_WARN_C: Final = 70.0
_TEMP_FAIL_C: Final = 80.0
"""A Pi 4/5 starts capping its clock at 80-85 C; a turn gets slower well before that."""


@dataclass(frozen=True, slots=True)
class DiskReading:
    path: Path
    """The folder measured (the nearest one that exists)."""
    total: int
    """Bytes."""
    free: int
    """Bytes an unprivileged process may still write."""

    @property
    def used_ratio(self) -> float:
        return 0.0 if self.total <= 0 else 1.0 - self.free / self.total


def disk(path: Path) -> DiskReading:
    """The disk `path` is on (or would be on, for a folder not made yet)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    usage = shutil.disk_usage(probe)
    return DiskReading(path=probe, total=usage.total, free=usage.free)


def disk_level(reading: DiskReading) -> Level:
    """Recordings stop below 64 MB free; warn well before, and past 90% as the alert does."""
    free_gib = reading.free / _GIB
    if free_gib < 0.5 or reading.used_ratio >= 0.97:
        return "fail"
    if free_gib < 2 or reading.used_ratio >= 0.9:
        return "warn"
    return "ok"


@dataclass(frozen=True, slots=True)
class MemoryReading:
    total: int
    """Bytes."""
    available: int
    """Bytes the kernel could hand out without swapping (MemAvailable)."""


def memory(meminfo: Path = Path("/proc/meminfo")) -> MemoryReading | None:
    try:
        lines = meminfo.read_text().splitlines()
    except OSError:
        return None
    found = {
        line.split(":")[0]: int(line.split()[1]) * 1024 for line in lines if line.endswith("kB")
    }
    if "MemTotal" not in found or "MemAvailable" not in found:
        return None
    return MemoryReading(total=found["MemTotal"], available=found["MemAvailable"])


def process_rss(status: Path = Path("/proc/self/status")) -> int | None:
    """This process's resident memory, in bytes."""
    try:
        for line in status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def cpu_temperature(thermal: Path = Path("/sys/class/thermal")) -> float | None:
    """The hottest thermal zone, in degrees Celsius."""
    readings = []
    for zone in sorted(thermal.glob("thermal_zone*/temp")):
        try:
            readings.append(int(zone.read_text().strip()) / 1000)
        except (OSError, ValueError):
            continue
    return max(readings) if readings else None


def temperature_level(celsius: float) -> Level:
    if celsius < _TEMP_WARN_C:
        return "ok"
    return "warn" if celsius < _TEMP_FAIL_C else "fail"


def cpu_governor(
    path: Path = Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


_NOW = {
    0: "under-voltage",
    1: "ARM frequency capped",
    2: "throttled",
    3: "soft temperature limit",
}
"""`vcgencmd get_throttled` bits that describe now; bit n + 16 says it happened since boot."""


@dataclass(frozen=True, slots=True)
class Throttling:
    """A Raspberry Pi firmware's `get_throttled` flags."""

    flags: int

    @property
    def now(self) -> list[str]:
        return [what for bit, what in _NOW.items() if self.flags & (1 << bit)]

    @property
    def since_boot(self) -> list[str]:
        return [what for bit, what in _NOW.items() if self.flags & (1 << (bit + 16))]


def parse_throttled(text: str) -> Throttling:
    """`throttled=0x50005` -> Throttling(0x50005); raises ValueError for anything else."""
    name, _, value = text.strip().partition("=")
    if name != "throttled" or not value:
        raise ValueError(f"not get_throttled output: {text!r}")
    return Throttling(int(value, 16))


def throttling(vcgencmd: str | None = None) -> Throttling | None:
    """What the firmware says (a Raspberry Pi with `vcgencmd`); None elsewhere."""
    program = vcgencmd or shutil.which("vcgencmd")
    if program is None:
        return None
    try:
        done = subprocess.run(
            [program, "get_throttled"], capture_output=True, text=True, check=False, timeout=5
        )
        return parse_throttled(done.stdout) if done.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return None


def uptime(proc: Path = Path("/proc/uptime")) -> float | None:
    """Seconds since the box booted."""
    try:
        return float(proc.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def load_average() -> tuple[float, float, float] | None:
    try:
        return os.getloadavg()
    except OSError:
        return None
