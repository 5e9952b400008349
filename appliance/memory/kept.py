"""What is kept about a caller, as the memory tools ask for it: read it, or forget it."""

from __future__ import annotations

from collections.abc import Callable

from appliance.memory import callers
from appliance.memory.db import Database

__all__ = ["KeptMemory"]


class KeptMemory:
    """A caller's memory by number; None where the number cannot be remembered (withheld)."""

    def __init__(self, db: Database, *, wall: Callable[[], float], remember: bool) -> None:
        self._db = db
        self._wall = wall
        self._remember = remember

    def _rememberable(self, number: str) -> bool:
        return self._remember and callers.is_known_number(number)

    async def kept_about(self, number: str) -> callers.CallerMemory | None:
        if not self._rememberable(number):
            return None
        return await self._db.run(callers.memory_of, number)

    async def forget(self, number: str) -> callers.Forgotten | None:
        # Forgotten even when REMEMBER_CALLERS is off: memory kept while it was on goes too.
        if not callers.is_known_number(number):
            return None
        return await self._db.run(callers.forget_caller, number, self._wall())
