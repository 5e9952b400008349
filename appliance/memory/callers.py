"""Who called before, and what the agent keeps about them: a name, facts, call summaries.

Memory is keyed by the caller's number, so only a number that names someone is remembered: a
withheld or anonymous caller, or a line with no numbers (the WAV harness), gets no memory.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import apsw

__all__ = [
    "CallerMemory",
    "add_facts",
    "is_known_number",
    "memory_of",
    "note_call",
    "set_name",
    "set_summary",
    "summary_of",
]

_NUMBER = re.compile(r"\+?[0-9][0-9 ().-]{2,30}")
_WITHHELD = {"anonymous", "unknown", "restricted", "private", "unavailable", "withheld"}


def is_known_number(caller: str) -> bool:
    """Whether `caller` is a phone number (or SIP user) worth remembering."""
    text = caller.strip().lower()
    if not text or text in _WITHHELD:
        return False
    user = text.removeprefix("sip:").removeprefix("tel:").split("@", 1)[0]
    return bool(_NUMBER.fullmatch(user)) and user not in _WITHHELD


@dataclass(frozen=True, slots=True)
class CallerMemory:
    number: str
    name: str | None
    calls: int
    """Calls before this one."""
    facts: Sequence[str]
    summaries: Sequence[tuple[float, str]]
    """(when the call began, its summary), newest first."""

    @property
    def empty(self) -> bool:
        return self.name is None and not self.facts and not self.summaries


def note_call(conn: apsw.Connection, number: str, at: float) -> None:
    """Count a call from `number` (creating the caller on their first)."""
    conn.execute(
        "INSERT INTO callers (number, first_call, last_call, calls) VALUES (?, ?, ?, 1) "
        "ON CONFLICT (number) DO UPDATE SET last_call = excluded.last_call, calls = calls + 1",
        (number, at, at),
    )


def memory_of(
    conn: apsw.Connection, number: str, *, facts: int = 12, summaries: int = 3
) -> CallerMemory:
    """The newest `facts` and `summaries` kept about `number`."""
    row = conn.execute("SELECT name, calls FROM callers WHERE number = ?", (number,)).fetchone()
    name, calls = (row[0], int(row[1])) if row is not None else (None, 0)
    fact_rows = conn.execute(
        "SELECT text FROM facts WHERE caller = ? ORDER BY created DESC, id DESC LIMIT ?",
        (number, facts),
    )
    summary_rows = conn.execute(
        "SELECT calls.started, summaries.text FROM summaries JOIN calls ON calls.id = "
        "summaries.call_id WHERE calls.caller = ? ORDER BY calls.started DESC LIMIT ?",
        (number, summaries),
    )
    return CallerMemory(
        number=number,
        name=name,
        calls=calls,
        facts=[text for (text,) in fact_rows],
        summaries=[(float(started), text) for started, text in summary_rows],
    )


def set_name(conn: apsw.Connection, number: str, name: str) -> None:
    conn.execute("UPDATE callers SET name = ? WHERE number = ?", (name, number))


def add_facts(
    conn: apsw.Connection, number: str, call_id: str, facts: Sequence[str], at: float
) -> list[str]:
    """Keep `facts` about `number`; returns those that were new."""
    conn.execute(
        "INSERT INTO callers (number, first_call, last_call, calls) VALUES (?, ?, ?, 0) "
        "ON CONFLICT (number) DO NOTHING",
        (number, at, at),
    )
    added = []
    for fact in facts:
        conn.execute(
            "INSERT INTO facts (caller, text, call_id, created) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (caller, text) DO NOTHING",
            (number, fact, call_id, at),
        )
        if conn.changes():
            added.append(fact)
    return added


def set_summary(conn: apsw.Connection, call_id: str, text: str, at: float) -> None:
    conn.execute(
        "INSERT INTO summaries (call_id, text, created) VALUES (?, ?, ?) "
        "ON CONFLICT (call_id) DO UPDATE SET text = excluded.text, created = excluded.created",
        (call_id, text, at),
    )


def summary_of(conn: apsw.Connection, call_id: str) -> str | None:
    row = conn.execute("SELECT text FROM summaries WHERE call_id = ?", (call_id,)).fetchone()
    return None if row is None else str(row[0])
