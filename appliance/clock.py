"""Time, injected: whatever waits, times out or stamps takes a `Clock`.

`LoopClock` reads the running event loop's clock, so code that takes it runs in virtual time
under a loop whose clock is virtual (the tests' `VirtualTimeLoop`): a 30-second call plays in
milliseconds, and every `asyncio.timeout` inside it is virtual too.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

__all__ = ["Clock", "LoopClock"]


class Clock(Protocol):
    def now(self) -> float:
        """Monotonic seconds."""
        ...

    def wall(self) -> float:
        """Seconds since the Unix epoch, for stamps people read."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds`."""
        ...

    async def sleep_until(self, deadline: float) -> None:
        """Wait until `now()` reaches `deadline`."""
        ...


class LoopClock:
    """The running event loop's clock; wall time is anchored once, at construction."""

    __slots__ = ("_loop", "_wall_at_zero")

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop if loop is not None else asyncio.get_running_loop()
        self._wall_at_zero = time.time() - self._loop.time()

    def now(self) -> float:
        return self._loop.time()

    def wall(self) -> float:
        return self._wall_at_zero + self._loop.time()

    async def sleep_until(self, deadline: float) -> None:
        delay = deadline - self._loop.time()
        await asyncio.sleep(max(0.0, delay))

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))
