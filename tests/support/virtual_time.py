"""An event loop whose clock jumps ahead whenever every task is waiting on a timer.

`LoopClock` reads the loop's clock, so under this loop a session, a WAV line and scripted fake
engines run a 30-second call in milliseconds, with every sleep and timeout in virtual seconds.
Real file descriptors (and `call_soon_threadsafe` from worker threads) are still polled, so
threads work, but they do not advance time: keep real engines out of virtual-time tests. A test
whose worker threads do real work (a database, an embedder) passes `thread_grace_s`: before each
jump the loop waits that long, in real time, for a thread to hand over its result.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class _Selector(selectors.DefaultSelector):
    def __init__(self, thread_grace_s: float = 0.0) -> None:
        super().__init__()
        self.loop: VirtualTimeLoop | None = None
        self._grace = thread_grace_s

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = super().select(0 if timeout == 0 else self._grace)
        if ready or timeout == 0:
            return ready
        if timeout is None:
            return super().select(None)  # nothing scheduled: wait for a thread or a socket
        assert self.loop is not None
        self.loop.advance(timeout)
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self, thread_grace_s: float = 0.0) -> None:
        selector = _Selector(thread_grace_s)
        super().__init__(selector)
        selector.loop = self
        self._now = 1000.0

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds


def run_virtual(main: Coroutine[Any, Any, T], *, thread_grace_s: float = 0.0) -> T:
    """Run `main` to completion in virtual time."""
    loop = VirtualTimeLoop(thread_grace_s)
    try:
        return loop.run_until_complete(main)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
