"""Messages callers left for a person who could not take the call (`MessageTaken`).

Plain functions of a connection, run on the database's thread. The row is written as the
message is taken; the post-call `message` job passes it on (`PostCall.message`).
"""

from __future__ import annotations

from dataclasses import dataclass

import apsw

__all__ = ["TakenMessage", "messages_of", "save_message"]


@dataclass(frozen=True, slots=True)
class TakenMessage:
    for_who: str
    target: str
    text: str


def save_message(
    conn: apsw.Connection, call_id: str, *, for_who: str, target: str, text: str
) -> None:
    with conn:
        conn.execute(
            "INSERT INTO messages (call_id, idx, for_who, target, text) VALUES (?1, "
            "(SELECT COALESCE(MAX(idx), -1) + 1 FROM messages WHERE call_id = ?1), ?2, ?3, ?4)",
            (call_id, for_who, target, text),
        )


def messages_of(conn: apsw.Connection, call_id: str) -> list[TakenMessage]:
    rows = conn.execute(
        "SELECT for_who, target, text FROM messages WHERE call_id = ? ORDER BY idx", (call_id,)
    )
    return [TakenMessage(str(who), str(target), str(text)) for who, target, text in rows]
