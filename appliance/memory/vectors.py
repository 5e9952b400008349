"""Caller memory as vectors in sqlite-vec: summaries and facts, searched per caller.

`memory_vectors` is a vec0 table partitioned by caller number, so a search only ever looks at
one caller's items. K nearest neighbours are asked for with `AND k = ?` rather than `LIMIT`,
which older SQLite releases do not pass down to virtual tables. Distances are cosine (0 = same).
"""

from __future__ import annotations

import array
from collections.abc import Sequence
from typing import Final, Literal

import apsw

from appliance.conversation.ports import Recollection

__all__ = ["DIMENSIONS", "add_vector", "count_vectors", "nearest"]

DIMENSIONS: Final = 384


def _blob(vector: Sequence[float]) -> bytes:
    if len(vector) != DIMENSIONS:
        raise ValueError(f"a memory vector has {DIMENSIONS} dimensions, not {len(vector)}")
    return array.array("f", vector).tobytes()


def add_vector(
    conn: apsw.Connection,
    caller: str,
    *,
    kind: Literal["summary", "fact"],
    call_id: str,
    text: str,
    vector: Sequence[float],
) -> None:
    conn.execute(
        "INSERT INTO memory_vectors (caller, embedding, kind, call_id, text) "
        "VALUES (?, ?, ?, ?, ?)",
        (caller, _blob(vector), kind, call_id, text),
    )


def nearest(
    conn: apsw.Connection,
    caller: str,
    vector: Sequence[float],
    *,
    k: int = 3,
    max_distance: float = 2.0,
) -> list[Recollection]:
    """Up to `k` of `caller`'s items nearest `vector`, nearest first, within `max_distance`."""
    rows = conn.execute(
        "SELECT call_id, text, distance FROM memory_vectors "
        "WHERE embedding MATCH ? AND k = ? AND caller = ? ORDER BY distance",
        (_blob(vector), k, caller),
    )
    return [
        Recollection(text=text, call_id=call_id, distance=float(distance))
        for call_id, text, distance in rows
        if distance <= max_distance
    ]


def count_vectors(conn: apsw.Connection, caller: str | None = None) -> int:
    if caller is None:
        row = conn.execute("SELECT COUNT(*) FROM memory_vectors").fetchone()
    else:
        row = conn.execute(
            "SELECT COUNT(*) FROM memory_vectors WHERE caller = ?", (caller,)
        ).fetchone()
    assert row is not None
    return int(row[0])
