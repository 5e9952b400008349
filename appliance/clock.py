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
    """The running event loop's clock; wall time is anchored once, on first use.

    It may be made before the loop runs (in synchronous set-up code); it binds to the loop that
    is running when it is first read.
    """

    __slots__ = ("_loop", "_wall_at_zero")

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop
        self._wall_at_zero: float | None = None

    def _bound(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def now(self) -> float:
        return self._bound().time()

    def wall(self) -> float:
        loop = self._bound()
        if self._wall_at_zero is None:
            self._wall_at_zero = time.time() - loop.time()
        return self._wall_at_zero + loop.time()

    async def sleep_until(self, deadline: float) -> None:
        await asyncio.sleep(max(0.0, deadline - self._bound().time()))

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))
