"""The safety audit: every decision a call's screens and tool policy made (`SafetyChecked`).

Plain functions of a connection, run on the database's thread.
"""

from __future__ import annotations

from dataclasses import dataclass

import apsw

__all__ = ["Decision", "decisions", "save_decision"]


@dataclass(frozen=True, slots=True)
class Decision:
    call_id: str
    at: float
    """Unix seconds."""
    turn: int
    layer: str
    action: str
    text: str
    score: float
    threshold: float
    category: str
    engine: str

    @property
    def stopped(self) -> bool:
        """Something was refused, replaced, ended or blocked."""
        return self.action != "allowed"


def save_decision(conn: apsw.Connection, call_id: str, *, decision: Decision) -> None:
    d = decision
    with conn:
        conn.execute(
            "INSERT INTO safety_audit (call_id, idx, at, turn, layer, action, text, score, "
            "threshold, category, engine) VALUES (?1, (SELECT COALESCE(MAX(idx), -1) + 1 FROM "
            "safety_audit WHERE call_id = ?1), ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            (
                call_id,
                d.at,
                d.turn,
                d.layer,
                d.action,
                d.text,
                d.score,
                d.threshold,
                d.category,
                d.engine,
            ),
        )


def decisions(
    conn: apsw.Connection,
    *,
    call_id: str | None = None,
    stopped_only: bool = False,
    limit: int = 100,
) -> list[Decision]:
    """The latest decisions, newest last: of one call, or of every call."""
    rows = conn.execute(
        "SELECT call_id, at, turn, layer, action, text, score, threshold, category, engine "
        "FROM (SELECT * FROM safety_audit WHERE (?1 IS NULL OR call_id = ?1) "
        "AND (?2 = 0 OR action != 'allowed') ORDER BY at DESC, idx DESC LIMIT ?3) "
        "ORDER BY at, idx",
        (call_id, int(stopped_only), limit),
    )
    return [
        Decision(
            str(call),
            float(at),
            int(turn),
            str(layer),
            str(action),
            str(text),
            float(score),
            float(threshold),
            str(category),
            str(engine),
        )
        for call, at, turn, layer, action, text, score, threshold, category, engine in rows
    ]
