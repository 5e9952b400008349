"""Call rows and their turns: plain functions of a connection, run on the database's thread."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import apsw

from appliance.conversation.ports import CallInfo

__all__ = [
    "CallRecord",
    "RecordingState",
    "TurnRecord",
    "calls_starting",
    "end_call",
    "expired_calls",
    "find_call",
    "forget_records",
    "list_calls",
    "open_call",
    "open_calls",
    "save_agent_words",
    "save_caller_words",
    "search_calls",
    "set_recording",
    "turns_of",
]

RecordingState = Literal["off", "recording", "complete", "stopped", "removed"]

# The columns of CallRecord, in order: the only text ever put into these queries (S608).
_CALL_COLUMNS = (
    "id, line, line_call_id, caller, callee, started, ended, outcome, owner, recording, "
    "recording_state, recording_note, memory, vouched"
)


@dataclass(frozen=True, slots=True)
class CallRecord:
    id: str
    line: str
    line_call_id: str
    caller: str
    callee: str
    started: float
    """Unix seconds."""
    ended: float | None
    outcome: str | None
    owner: str
    recording: str | None
    """Relative to RECORDINGS_DIR."""
    recording_state: RecordingState
    recording_note: str
    memory: str
    """What the agent was told about the caller when the call began."""
    vouched: bool
    """Whether the line vouched for the caller's number (`CallInfo.vouched`)."""

    @property
    def duration_s(self) -> float | None:
        return None if self.ended is None else max(0.0, self.ended - self.started)


@dataclass(frozen=True, slots=True)
class TurnRecord:
    idx: int
    turn: int
    speaker: Literal["caller", "agent"]
    text: str
    started: float | None
    """Seconds since the call began."""
    ended: float | None
    interrupted: bool
    unsaid: str
    timings: Mapping[str, float] = field(default_factory=dict)
    """Milliseconds per stage."""
    starts: Mapping[str, float] = field(default_factory=dict)
    """When each stage began: milliseconds after the caller stopped speaking."""
    confidence: float | None = None
    """How sure speech-to-text was of a caller's turn (0-1); None for the agent, or not known."""
    engines: Mapping[str, str] = field(default_factory=dict)
    """An agent's turn: which engine answered each stage (`stt`, `llm`, `tts`)."""


def open_call(
    conn: apsw.Connection, info: CallInfo, *, started: float, owner: str, memory: str
) -> str:
    """Insert the call's row; returns its id (the line's, made unique if it was used before)."""
    with conn:
        call_id, n = info.call_id, 1
        while conn.execute("SELECT 1 FROM calls WHERE id = ?", (call_id,)).fetchone():
            n += 1
            call_id = f"{info.call_id}~{n}"
        conn.execute(
            "INSERT INTO calls "
            "(id, line, line_call_id, caller, callee, started, owner, memory, vouched) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                call_id,
                info.line,
                info.call_id,
                info.caller,
                info.callee,
                started,
                owner,
                memory,
                info.vouched,
            ),
        )
    return call_id


def set_recording(
    conn: apsw.Connection,
    call_id: str,
    state: RecordingState,
    *,
    path: str | None = None,
    note: str = "",
) -> None:
    with conn:
        conn.execute(
            "UPDATE calls SET recording_state = ?, recording_note = ?, "
            "recording = COALESCE(?, recording) WHERE id = ?",
            (state, note, path, call_id),
        )


def _next_idx(conn: apsw.Connection, call_id: str) -> int:
    row = conn.execute(
        "SELECT COALESCE(MAX(idx), -1) + 1 FROM turns WHERE call_id = ?", (call_id,)
    ).fetchone()
    assert row is not None
    return int(row[0])


def save_caller_words(
    conn: apsw.Connection,
    call_id: str,
    *,
    turn: int,
    text: str,
    started: float | None,
    ended: float | None,
    confidence: float | None = None,
) -> None:
    """The caller's side of a turn, once transcribed (again, if they went on speaking)."""
    with conn:
        conn.execute(
            "INSERT INTO turns (call_id, idx, turn, speaker, text, started, ended, confidence) "
            "VALUES (?, ?, ?, 'caller', ?, ?, ?, ?) "
            "ON CONFLICT (call_id, turn, speaker) WHERE turn > 0 DO UPDATE SET "
            "text = excluded.text, started = excluded.started, ended = excluded.ended, "
            "confidence = excluded.confidence",
            (call_id, _next_idx(conn, call_id), turn, text, started, ended, confidence),
        )


def save_agent_words(
    conn: apsw.Connection,
    call_id: str,
    *,
    turn: int,
    text: str,
    started: float | None,
    ended: float | None,
    interrupted: bool,
    unsaid: str = "",
    timings: Mapping[str, float] | None = None,
    starts: Mapping[str, float] | None = None,
    engines: Mapping[str, str] | None = None,
) -> None:
    """What the caller heard the agent say: a turn's reply (turn > 0) or a fixed phrase (0)."""
    with conn:
        conn.execute(
            "INSERT INTO turns (call_id, idx, turn, speaker, text, started, ended, interrupted, "
            "unsaid, timings, starts, engines) "
            "VALUES (?, ?, ?, 'agent', ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (call_id, turn, speaker) WHERE turn > 0 DO UPDATE SET "
            "text = excluded.text, started = excluded.started, ended = excluded.ended, "
            "interrupted = excluded.interrupted, unsaid = excluded.unsaid, "
            "timings = excluded.timings, starts = excluded.starts, engines = excluded.engines",
            (
                call_id,
                _next_idx(conn, call_id),
                turn,
                text,
                started,
                ended,
                int(interrupted),
                unsaid,
                json.dumps(dict(timings or {}), sort_keys=True),
                json.dumps(dict(starts or {}), sort_keys=True),
                json.dumps(dict(engines or {}), sort_keys=True),
            ),
        )


def end_call(conn: apsw.Connection, call_id: str, *, ended: float, outcome: str) -> None:
    """Mark the call ended; part of the caller's transaction (with the call's jobs)."""
    conn.execute(
        "UPDATE calls SET ended = ?, outcome = ? WHERE id = ? AND ended IS NULL",
        (ended, outcome, call_id),
    )


def _call(row: tuple[object, ...]) -> CallRecord:
    values = [*row[:-1], bool(row[-1])]  # `vouched` is stored as 0 or 1
    return CallRecord(*values)  # type: ignore[arg-type]  # columns are in field order


def find_call(conn: apsw.Connection, call_id: str) -> CallRecord | None:
    """The call with this id, or the only one whose id starts with it."""
    exact = conn.execute(
        f"SELECT {_CALL_COLUMNS} FROM calls WHERE id = ?",  # noqa: S608 - constant columns
        (call_id,),
    ).fetchone()
    if exact is not None:
        return _call(exact)
    rows = conn.execute(
        f"SELECT {_CALL_COLUMNS} FROM calls WHERE substr(id, 1, ?) = ? LIMIT 2",  # noqa: S608
        (len(call_id), call_id),
    ).fetchall()
    return _call(rows[0]) if len(rows) == 1 else None


def calls_starting(conn: apsw.Connection, prefix: str, *, limit: int = 10) -> list[CallRecord]:
    """The latest calls (at most `limit`) whose id starts with `prefix`, newest first: what an
    ambiguous id could have meant."""
    rows = conn.execute(
        f"SELECT {_CALL_COLUMNS} FROM calls WHERE substr(id, 1, ?) = ? "  # noqa: S608
        "ORDER BY started DESC, id LIMIT ?",
        (len(prefix), prefix, limit),
    )
    return [_call(row) for row in rows]


def list_calls(conn: apsw.Connection, *, limit: int = 50) -> list[CallRecord]:
    """The latest calls, newest first."""
    rows = conn.execute(
        f"SELECT {_CALL_COLUMNS} FROM calls ORDER BY started DESC, id LIMIT ?",  # noqa: S608
        (limit,),
    )
    return [_call(row) for row in rows]


def _like(text: str) -> str:
    """A LIKE pattern matching `text` anywhere, its own % and _ taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search_calls(
    conn: apsw.Connection, query: str = "", *, limit: int = 25, offset: int = 0
) -> tuple[list[CallRecord], int]:
    """Calls whose id, numbers, outcome or words contain `query` (any case), newest first,
    and how many there are in all."""
    where = (
        "WHERE ?1 = '' OR id LIKE ?2 ESCAPE '\\' OR caller LIKE ?2 ESCAPE '\\' "
        "OR callee LIKE ?2 ESCAPE '\\' OR outcome LIKE ?2 ESCAPE '\\' OR EXISTS "
        "(SELECT 1 FROM turns WHERE call_id = calls.id AND text LIKE ?2 ESCAPE '\\')"
    )
    query = query.strip()
    pattern = _like(query)
    count = f"SELECT COUNT(*) FROM calls {where}"  # noqa: S608 - constant text
    total = conn.execute(count, (query, pattern)).fetchone()
    rows = conn.execute(
        f"SELECT {_CALL_COLUMNS} FROM calls {where} "  # noqa: S608 - constant columns
        "ORDER BY started DESC, id LIMIT ?3 OFFSET ?4",
        (query, pattern, limit, offset),
    )
    return [_call(row) for row in rows], int(total[0]) if total else 0


def open_calls(conn: apsw.Connection) -> list[CallRecord]:
    """Calls not ended: in progress, or left behind by a process that died."""
    rows = conn.execute(
        f"SELECT {_CALL_COLUMNS} FROM calls WHERE ended IS NULL ORDER BY started"  # noqa: S608
    )
    return [_call(row) for row in rows]


def turns_of(conn: apsw.Connection, call_id: str) -> list[TurnRecord]:
    rows = conn.execute(
        "SELECT idx, turn, speaker, text, started, ended, interrupted, unsaid, timings, starts, "
        "confidence, engines FROM turns WHERE call_id = ? ORDER BY idx",
        (call_id,),
    )
    return [
        TurnRecord(
            idx=idx,
            turn=turn,
            speaker=speaker,
            text=text,
            started=started,
            ended=ended,
            interrupted=bool(interrupted),
            unsaid=unsaid,
            timings=json.loads(timings),
            starts=json.loads(starts),
            confidence=None if confidence is None else float(confidence),
            engines=json.loads(engines),
        )
        for (
            idx,
            turn,
            speaker,
            text,
            started,
            ended,
            interrupted,
            unsaid,
            timings,
            starts,
            confidence,
            engines,
        ) in rows
    ]


def expired_calls(conn: apsw.Connection, before: float) -> list[tuple[str, str | None]]:
    """Ended calls that began before `before` and still have a recording or a transcript."""
    rows = conn.execute(
        "SELECT id, recording FROM calls WHERE ended IS NOT NULL AND started < ? AND "
        "(recording_state != 'removed' OR EXISTS (SELECT 1 FROM turns WHERE call_id = calls.id))",
        (before,),
    )
    return [(call_id, recording) for call_id, recording in rows]


def forget_records(conn: apsw.Connection, call_ids: list[str]) -> int:
    """Remove the transcripts of these ended calls and mark their recordings removed."""
    removed = 0
    for call_id in call_ids:
        conn.execute(
            "DELETE FROM turns WHERE call_id = ? AND call_id IN "
            "(SELECT id FROM calls WHERE ended IS NOT NULL)",
            (call_id,),
        )
        removed += conn.changes()
        conn.execute(
            "UPDATE calls SET recording_state = 'removed', recording = NULL, "
            "recording_note = 'past RETENTION_DAYS' WHERE id = ? AND ended IS NOT NULL",
            (call_id,),
        )
    return removed
