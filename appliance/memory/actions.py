"""What the agent did on a call, as its events told it: tools run, transfers, hanging up.

Plain functions of a connection, run on the database's thread. A tool's row is written when the
model calls it (`ok` NULL) and completed when it finishes, so a call that ended mid-tool still
shows the tool as never finished. These rows, not the model's reading of the transcript, are
what a summary may say the agent did (see `happened`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import apsw

__all__ = ["ActionKind", "ActionRecord", "actions_of", "finish_tool", "save_action"]

ActionKind = Literal["tool", "transfer", "hangup"]


@dataclass(frozen=True, slots=True)
class ActionRecord:
    turn: int
    kind: ActionKind
    name: str
    """The tool; the transfer's target; why the agent hung up."""
    arguments: str
    ok: bool | None
    """A tool's: whether it ran; None if it never finished (or for other kinds)."""
    result: str


def save_action(
    conn: apsw.Connection,
    call_id: str,
    *,
    turn: int,
    kind: ActionKind,
    name: str,
    arguments: str = "",
) -> None:
    with conn:
        row = conn.execute(
            "SELECT COALESCE(MAX(idx), -1) + 1 FROM actions WHERE call_id = ?", (call_id,)
        ).fetchone()
        assert row is not None
        conn.execute(
            "INSERT INTO actions (call_id, idx, turn, kind, name, arguments) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (call_id, int(row[0]), turn, kind, name, arguments),
        )


def finish_tool(
    conn: apsw.Connection, call_id: str, *, turn: int, name: str, ok: bool, result: str
) -> None:
    """Complete the turn's latest unfinished run of tool `name` (or add one, if none was seen)."""
    with conn:
        row = conn.execute(
            "SELECT MAX(idx) FROM actions WHERE call_id = ? AND turn = ? AND kind = 'tool' "
            "AND name = ? AND ok IS NULL",
            (call_id, turn, name),
        ).fetchone()
        if row is None or row[0] is None:
            save_action(conn, call_id, turn=turn, kind="tool", name=name)
            row = conn.execute(
                "SELECT MAX(idx) FROM actions WHERE call_id = ?", (call_id,)
            ).fetchone()
            assert row is not None
        conn.execute(
            "UPDATE actions SET ok = ?, result = ? WHERE call_id = ? AND idx = ?",
            (int(ok), result, call_id, row[0]),
        )


def actions_of(conn: apsw.Connection, call_id: str) -> list[ActionRecord]:
    rows = conn.execute(
        "SELECT turn, kind, name, arguments, ok, result FROM actions WHERE call_id = ? "
        "ORDER BY idx",
        (call_id,),
    )
    return [
        ActionRecord(
            turn=turn,
            kind=kind,
            name=name,
            arguments=arguments,
            ok=None if ok is None else bool(ok),
            result=result,
        )
        for turn, kind, name, arguments, ok, result in rows
    ]
