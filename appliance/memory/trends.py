"""What the records say about recent calls as a whole: each turn's timings, each call's outcome.

Plain functions of a connection, run on the database's thread. The status page's health and
plots are made from these (`appliance.web.trends`); they read every process's calls, so an
`appliance call` beside `appliance serve` counts too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import apsw

__all__ = ["CallOutcome", "TimedTurn", "call_outcomes", "timed_turns", "waits_of"]


@dataclass(frozen=True, slots=True)
class TimedTurn:
    call_id: str
    at: float
    """Unix seconds: when the reply began (or the call began, for a turn without a start)."""
    timings: Mapping[str, float]
    """Milliseconds per stage (`turn`: what the caller waited)."""


@dataclass(frozen=True, slots=True)
class CallOutcome:
    started: float
    """Unix seconds."""
    outcome: str | None
    """None while the call is in progress."""


def timed_turns(conn: apsw.Connection, *, since: float, calls: int = 1000) -> list[TimedTurn]:
    """The replies with timings of the latest `calls` calls begun since `since`, oldest first."""
    rows = conn.execute(
        "SELECT t.call_id, c.started + COALESCE(t.started, 0), t.timings FROM turns t "
        "JOIN calls c ON c.id = t.call_id WHERE t.speaker = 'agent' AND t.timings != '{}' "
        "AND c.id IN (SELECT id FROM calls WHERE started >= ? ORDER BY started DESC LIMIT ?) "
        "ORDER BY 2, t.idx",
        (since, calls),
    )
    return [TimedTurn(str(cid), float(at), json.loads(timings)) for cid, at, timings in rows]


def waits_of(conn: apsw.Connection, call_ids: Sequence[str]) -> dict[str, list[float]]:
    """What the caller waited on each reply (milliseconds) of each of these calls."""
    if not call_ids:
        return {}
    marks = ",".join("?" * len(call_ids))
    rows = conn.execute(
        "SELECT call_id, json_extract(timings, '$.turn') FROM turns "  # noqa: S608 - only ?s
        f"WHERE speaker = 'agent' AND call_id IN ({marks}) "
        "AND json_extract(timings, '$.turn') IS NOT NULL ORDER BY call_id, idx",
        list(call_ids),
    )
    found: dict[str, list[float]] = {}
    for call_id, wait in rows:
        found.setdefault(str(call_id), []).append(float(wait))
    return found


def call_outcomes(conn: apsw.Connection, *, since: float) -> list[CallOutcome]:
    """Each call begun since `since`, oldest first."""
    rows = conn.execute(
        "SELECT started, outcome FROM calls WHERE started >= ? ORDER BY started", (since,)
    )
    return [CallOutcome(float(started), outcome) for started, outcome in rows]
