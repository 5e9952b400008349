"""A clock that moves only when a test moves it."""

from __future__ import annotations


class HandClock:
    """A Clock that moves only when a test moves it (`t`, seconds)."""

    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def now(self) -> float:
        return self.t

    def wall(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += seconds

    async def sleep_until(self, deadline: float) -> None:
        self.t = max(self.t, deadline)
