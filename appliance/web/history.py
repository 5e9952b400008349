"""The call history the page shows, read through the memory layer on the database's own thread.

Each read is one function of the connection (the memory layer's queries, put together), run by
`Database.run`: the event loop only awaits it.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import apsw

from appliance.memory import audit, callers, calls, jobs, trends
from appliance.memory.db import Database

__all__ = ["CallDetail", "CallHistory", "CallRow", "HistoryPage"]

_FARTHEST_PAGE = 1_000_000
"""Past any box's history, and small enough that its offset fits SQLite's 64-bit integer (a page
number from the URL can be any size)."""
_DAY_S = 86400.0


@dataclass(frozen=True, slots=True)
class CallRow:
    call: calls.CallRecord
    caller_turns: int
    summary: str | None
    waits_ms: tuple[float, ...] = ()
    """What the caller waited on each reply, in order."""

    @property
    def wait_ms(self) -> float | None:
        """The median wait for a reply (None: no timed reply)."""
        return statistics.median(self.waits_ms) if self.waits_ms else None


@dataclass(frozen=True, slots=True)
class HistoryPage:
    rows: tuple[CallRow, ...]
    total: int
    query: str
    page: int
    """From 1."""
    pages: int


@dataclass(frozen=True, slots=True)
class CallDetail:
    call: calls.CallRecord
    turns: tuple[calls.TurnRecord, ...]
    summary: str | None
    jobs: tuple[jobs.JobRecord, ...]
    safety: tuple[audit.Decision, ...] = ()
    """What the safety screens and the tool policy stopped on the call."""


def _rows(conn: apsw.Connection, found: list[calls.CallRecord]) -> tuple[CallRow, ...]:
    if not found:
        return ()
    marks = ",".join("?" * len(found))
    ids = [c.id for c in found]
    rows = conn.execute(
        f"SELECT call_id, COUNT(*) FROM turns WHERE speaker = 'caller' "  # noqa: S608 - only ?s
        f"AND call_id IN ({marks}) GROUP BY call_id",
        ids,
    )
    counts = {str(call_id): int(count) for call_id, count in rows}
    waits = trends.waits_of(conn, ids)
    return tuple(
        CallRow(
            call=c,
            caller_turns=counts.get(c.id, 0),
            summary=callers.summary_of(conn, c.id),
            waits_ms=tuple(waits.get(c.id, ())),
        )
        for c in found
    )


def _search(
    conn: apsw.Connection, query: str, limit: int, page: int
) -> tuple[tuple[CallRow, ...], int, int]:
    """The rows of `page` (from 1), or of the last page when `page` is past the end, with the
    total and the page they are from."""
    found, total = calls.search_calls(conn, query, limit=limit, offset=(page - 1) * limit)
    last = max(1, math.ceil(total / limit))
    if page > last:
        page = last
        found, total = calls.search_calls(conn, query, limit=limit, offset=(page - 1) * limit)
    return _rows(conn, found), total, page


def _detail(conn: apsw.Connection, call_id: str) -> CallDetail | None:
    call = calls.find_call(conn, call_id)
    if call is None or call.id != call_id:
        return None
    return CallDetail(
        call=call,
        turns=tuple(calls.turns_of(conn, call.id)),
        summary=callers.summary_of(conn, call.id),
        jobs=tuple(jobs.jobs_of(conn, call.id)),
        safety=tuple(audit.decisions(conn, call_id=call.id, stopped_only=True)),
    )


def _last_day(
    conn: apsw.Connection, since: float
) -> tuple[list[trends.TimedTurn], list[trends.CallOutcome]]:
    return trends.timed_turns(conn, since=since), trends.call_outcomes(conn, since=since)


class CallHistory:
    def __init__(self, db: Database, *, page_size: int = 25) -> None:
        self._db = db
        self.page_size = page_size

    async def search(self, query: str = "", page: int = 1) -> HistoryPage:
        """One page of the calls matching `query` (every call when it is empty), newest first."""
        query = query.strip()[:200]
        page = min(max(1, page), _FARTHEST_PAGE)
        rows, total, page = await self._db.run(_search, query, self.page_size, page)
        pages = max(1, math.ceil(total / self.page_size))
        return HistoryPage(rows=rows, total=total, query=query, page=page, pages=pages)

    async def last_day(self, now: float) -> tuple[list[trends.TimedTurn], list[trends.CallOutcome]]:
        """The timed replies and the calls of the day before `now` (Unix seconds)."""
        return await self._db.run(_last_day, now - _DAY_S)

    async def rows_of(self, found: Sequence[calls.CallRecord]) -> tuple[CallRow, ...]:
        """`found` as the call list shows them."""
        return await self._db.run(_rows, list(found))

    async def detail(self, call_id: str) -> CallDetail | None:
        """One call with its turns, summary and post-call jobs (its exact id only)."""
        return await self._db.run(_detail, call_id)
