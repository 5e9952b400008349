"""Who called before, and what the agent keeps about them: a name, facts, call summaries.

Memory is keyed by the caller's number, so only a number that names someone is remembered: a
withheld or anonymous caller, or a line with no numbers (the WAV harness), gets no memory.

A caller may ask to be forgotten (`forget_caller`): their name, facts, the summaries of their
calls and their vectors go, and the time is kept, so that nothing from a call that began before
it (the call they asked on included, whose jobs run after it) becomes their memory again. The
calls' rows, recordings and transcripts stay: they are the operator's records.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import apsw

__all__ = [
    "CallerMemory",
    "Forgotten",
    "add_facts",
    "forget_caller",
    "forgotten_at",
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
        "summaries.call_id WHERE calls.caller = ?1 AND calls.started > COALESCE("
        "(SELECT at FROM forgotten WHERE number = ?1), -1) ORDER BY calls.started DESC LIMIT ?2",
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


@dataclass(frozen=True, slots=True)
class Forgotten:
    """What `forget_caller` removed."""

    name: bool
    facts: int
    summaries: int
    vectors: int


def forgotten_at(conn: apsw.Connection, number: str) -> float | None:
    """When `number` last asked to be forgotten, if ever."""
    row = conn.execute("SELECT at FROM forgotten WHERE number = ?", (number,)).fetchone()
    return None if row is None else float(row[0])


def forget_caller(conn: apsw.Connection, number: str, at: float) -> Forgotten:
    """Remove everything kept about `number` as memory (see the module docstring)."""
    with conn:
        row = conn.execute("SELECT name FROM callers WHERE number = ?", (number,)).fetchone()
        conn.execute("DELETE FROM facts WHERE caller = ?", (number,))
        facts = conn.changes()
        conn.execute(
            "DELETE FROM summaries WHERE call_id IN (SELECT id FROM calls WHERE caller = ?)",
            (number,),
        )
        summaries = conn.changes()
        conn.execute("DELETE FROM memory_vectors WHERE caller = ?", (number,))
        vectors = conn.changes()
        conn.execute("DELETE FROM callers WHERE number = ?", (number,))
        # What each call's agent was told at its start is memory too: it goes with the rest.
        conn.execute("UPDATE calls SET memory = '' WHERE caller = ?", (number,))
        conn.execute(
            "INSERT INTO forgotten (number, at) VALUES (?, ?) "
            "ON CONFLICT (number) DO UPDATE SET at = excluded.at",
            (number, at),
        )
    return Forgotten(
        name=row is not None and row[0] is not None,
        facts=facts,
        summaries=summaries,
        vectors=vectors,
    )
