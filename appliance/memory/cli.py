"""`appliance calls list|show|export|forget`: the call records, straight from the database.

These run in their own process, beside a running appliance if there is one: WAL lets them read
while it writes. Only `forget` writes: it removes what is remembered about a caller (their name,
facts, call summaries and recall vectors), never a call's record, recording or transcript.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

import apsw

from appliance.memory import actions, audit, callers, calls, jobs
from appliance.memory.db import connect
from appliance.memory.postcall import transcript_text

__all__ = [
    "export_call",
    "forget_caller_memory",
    "list_recorded_calls",
    "list_safety_decisions",
    "show_call",
]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_CANDIDATES = 5
"""How many of the calls an ambiguous id could mean are named."""


def _open(database: Path) -> apsw.Connection | None:
    if not database.is_file():
        print(f"no calls recorded yet (no database at {database})", file=sys.stderr)
        return None
    return connect(database)


def _when(stamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


def _length(call: calls.CallRecord) -> str:
    if call.duration_s is None:
        return "live"
    minutes, seconds = divmod(round(call.duration_s), 60)
    return f"{minutes}:{seconds:02d}"


_ID_WIDTH = 28
"""The ID column of `calls list`: longer ids (a SIP Call-ID is often 32 characters or more)
are cut with an ellipsis, and `calls show` takes the cut id as the start of the whole one."""
_ELLIPSIS = "\u2026"


def _short_id(call_id: str) -> str:
    if len(call_id) <= _ID_WIDTH:
        return call_id
    return call_id[: _ID_WIDTH - 1] + _ELLIPSIS


def _caller_turns(conn: apsw.Connection) -> dict[str, int]:
    rows = conn.execute(
        "SELECT call_id, COUNT(*) FROM turns WHERE speaker = 'caller' GROUP BY call_id"
    )
    return {call_id: int(count) for call_id, count in rows}


def list_recorded_calls(database: Path, *, as_json: bool, limit: int = 50) -> int:
    conn = _open(database)
    if conn is None:
        if as_json:
            print("[]")
        return EXIT_OK
    try:
        found = calls.list_calls(conn, limit=limit)
        turns = _caller_turns(conn)
    finally:
        conn.close()
    if as_json:
        print(json.dumps([_call_json(c) | {"caller_turns": turns.get(c.id, 0)} for c in found]))
        return EXIT_OK
    if not found:
        print("no calls recorded yet")
        return EXIT_OK
    print(
        f"{'ID':<{_ID_WIDTH}} {'STARTED':<19}  {'FROM':<16} {'LINE':<6} {'LENGTH':>6} "
        f"{'TURNS':>5}  OUTCOME"
    )
    for call in found:
        print(
            f"{_short_id(call.id):<{_ID_WIDTH}} {_when(call.started):<19}  "
            f"{_short_id(call.caller)[:16]:<16} {call.line[:6]:<6} "
            f"{_length(call):>6} {turns.get(call.id, 0):>5}  {call.outcome or 'in progress'}"
        )
    return EXIT_OK


def _call_json(call: calls.CallRecord) -> dict[str, object]:
    return {
        "id": call.id,
        "line": call.line,
        "line_call_id": call.line_call_id,
        "from": call.caller,
        "to": call.callee,
        "started": call.started,
        "ended": call.ended,
        "duration_s": call.duration_s,
        "outcome": call.outcome,
        "recording": call.recording,
        "recording_state": call.recording_state,
        "recording_note": call.recording_note,
    }


def _details(conn: apsw.Connection, call: calls.CallRecord, recordings: Path) -> dict[str, object]:
    turns = calls.turns_of(conn, call.id)
    return _call_json(call) | {
        "recording_path": str(recordings / call.recording) if call.recording else None,
        "memory_given": call.memory,
        "summary": callers.summary_of(conn, call.id),
        "turns": [
            {
                "index": t.idx,
                "turn": t.turn,
                "speaker": t.speaker,
                "text": t.text,
                "started_s": t.started,
                "ended_s": t.ended,
                "interrupted": t.interrupted,
                "unsaid": t.unsaid,
                "timings_ms": dict(t.timings),
            }
            for t in turns
        ],
        "jobs": [
            {"kind": j.kind, "state": j.state, "attempts": j.attempts, "result": j.result}
            for j in jobs.jobs_of(conn, call.id)
        ],
        "actions": [asdict(a) for a in actions.actions_of(conn, call.id)],
        "safety": [asdict(d) for d in audit.decisions(conn, call_id=call.id, stopped_only=True)],
    }


class _NotFound(Exception):
    """No one call has the id given; the message says why and what to do, `code` is the exit
    status."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _one_call(conn: apsw.Connection, call_id: str) -> calls.CallRecord:
    """The call with this id or the only one starting with it (an id `calls list` cut short
    may keep its ellipsis); `_NotFound` when none does, or several do."""
    call_id = call_id.removesuffix(_ELLIPSIS).removesuffix("...")
    call = calls.find_call(conn, call_id) if call_id else None
    if call is not None:
        return call
    candidates = calls.calls_starting(conn, call_id, limit=_CANDIDATES + 1) if call_id else []
    if not candidates:
        raise _NotFound(f"no call {call_id!r} (try `appliance calls list`)", EXIT_FAILED)
    shown = ", ".join(c.id for c in candidates[:_CANDIDATES])
    more = ", ..." if len(candidates) > _CANDIDATES else ""
    raise _NotFound(
        f"{call_id!r} is the start of more than one call ({shown}{more}); give more of the id",
        EXIT_USAGE,
    )


def _find(database: Path, call_id: str, recordings: Path) -> dict[str, object] | int:
    """The call's details, or the exit status after saying why there are none."""
    conn = _open(database)
    if conn is None:
        return EXIT_FAILED
    try:
        return _details(conn, _one_call(conn, call_id), recordings)
    except _NotFound as exc:
        print(str(exc), file=sys.stderr)
        return exc.code
    finally:
        conn.close()


def _seconds(value: object) -> str:
    if not isinstance(value, int | float):
        return "  --  "
    minutes, seconds = divmod(float(value), 60)
    return f"{int(minutes):02d}:{seconds:04.1f}"


def _print_details(found: dict[str, object]) -> None:
    print(f"call {found['id']} on {found['line']} from {found['from'] or 'unknown'}")
    ended = found["outcome"] or "in progress"
    started = found["started"]
    assert isinstance(started, float)
    print(f"  started   {_when(started)}, {ended}")
    state, note = found["recording_state"], found["recording_note"]
    where = found["recording_path"] or "none"
    print(f"  recording {where} ({state}{': ' + str(note) if note else ''})")
    if found["summary"]:
        print(f"  summary   {found['summary']}")
    if found["memory_given"]:
        print("  the agent knew:")
        for line in str(found["memory_given"]).splitlines():
            print(f"    {line}")
    print("  turns:")
    turns = found["turns"]
    assert isinstance(turns, list)
    for t in turns:
        cut = f"  [cut off; unsaid: {t['unsaid']}]" if t["interrupted"] else ""
        print(f"    {_seconds(t['started_s'])} {t['speaker']:<6} {t['text']}{cut}")
        if t["timings_ms"]:
            stages = " | ".join(f"{k} {v:.0f}" for k, v in t["timings_ms"].items())
            print(f"    {'':<7} {'':<6} ms: {stages}")
    jobs_found = found["jobs"]
    assert isinstance(jobs_found, list)
    if jobs_found:
        print("  post-call jobs:")
        for j in jobs_found:
            print(f"    {j['kind']:<8} {j['state']:<8} {j['attempts']} tries  {j['result']}")


def show_call(database: Path, recordings: Path, call_id: str, *, as_json: bool) -> int:
    found = _find(database, call_id, recordings)
    if isinstance(found, int):
        return found
    if as_json:
        print(json.dumps(found, indent=2))
    else:
        _print_details(found)
    return EXIT_OK


def export_call(database: Path, recordings: Path, call_id: str, out: Path | None) -> int:
    """The call's recording, transcript and JSON record, in one folder."""
    found = _find(database, call_id, recordings)
    if isinstance(found, int):
        return found
    folder = out if out is not None else Path(str(found["id"]).replace("/", "_"))
    try:
        _write_export(found, folder)
    except OSError as exc:
        print(
            f"cannot export to {folder}: {exc.strerror or exc}; choose a folder you can write "
            "to with --out",
            file=sys.stderr,
        )
        return EXIT_USAGE
    print(folder)
    return EXIT_OK


def _write_export(found: dict[str, object], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "call.json").write_text(json.dumps(found, indent=2) + "\n", encoding="utf-8")
    turns = found["turns"]
    assert isinstance(turns, list)
    records = [
        calls.TurnRecord(
            idx=t["index"],
            turn=t["turn"],
            speaker=t["speaker"],
            text=t["text"],
            started=t["started_s"],
            ended=t["ended_s"],
            interrupted=t["interrupted"],
            unsaid=t["unsaid"],
        )
        for t in turns
    ]
    (folder / "transcript.txt").write_text(
        transcript_text(records, stamps=True) + "\n", encoding="utf-8"
    )
    recording = found["recording_path"]
    if isinstance(recording, str) and Path(recording).is_file():
        shutil.copyfile(recording, folder / "recording.wav")
    else:
        print(f"call {found['id']} has no recording to export", file=sys.stderr)


def forget_caller_memory(database: Path, number: str, *, as_json: bool) -> int:
    """Remove what is remembered about the caller `number` (as the line gave it)."""
    if not database.is_file():
        print(f"nothing is remembered (no database at {database})", file=sys.stderr)
        return EXIT_OK
    conn = connect(database)
    try:
        row = conn.execute("SELECT COUNT(*) FROM calls WHERE caller = ?", (number,)).fetchone()
        recorded = int(row[0]) if row is not None else 0
        removed = callers.forget_caller(conn, number, time.time())
    finally:
        conn.close()
    if as_json:
        print(json.dumps({"number": number, "calls": recorded} | asdict(removed)))
        return EXIT_OK
    if recorded == 0:
        print(f"no calls from {number!r} are recorded (numbers are matched exactly)")
    print(
        f"forgot {number}: {'its name, ' if removed.name else ''}{removed.facts} facts, "
        f"{removed.summaries} call summaries, {removed.vectors} recall vectors; nothing from "
        "calls before now will be remembered again"
    )
    if recorded:
        print(
            f"its {recorded} calls' records, recordings and transcripts stay "
            "(they go after RETENTION_DAYS)"
        )
    return EXIT_OK


def list_safety_decisions(
    database: Path,
    *,
    call_id: str | None = None,
    stopped_only: bool = False,
    limit: int = 100,
    as_json: bool = False,
) -> int:
    """`appliance safety audit`: the latest safety decisions, oldest first."""
    conn = _open(database)
    if conn is None:
        if as_json:
            print("[]")
        return EXIT_OK
    try:
        if call_id is not None:
            try:
                call_id = _one_call(conn, call_id).id
            except _NotFound as exc:
                print(str(exc), file=sys.stderr)
                return exc.code
        rows = audit.decisions(conn, call_id=call_id, stopped_only=stopped_only, limit=limit)
    finally:
        conn.close()
    if as_json:
        print(json.dumps([asdict(row) for row in rows], indent=1))
        return EXIT_OK
    if not rows:
        print("no safety decisions recorded" + (" that stopped anything" if stopped_only else ""))
        return EXIT_OK
    for row in rows:
        score = f"{row.score:.2f}/{row.threshold:.2f}" if row.engine != "policy" else "policy"
        why = f" [{row.category}]" if row.category else ""
        print(
            f"{_when(row.at)}  {row.call_id[:8]}  turn {row.turn:<2} {row.layer:<6} "
            f"{row.action:<8} {score:<11}{why}  {row.text[:80]}"
        )
    return EXIT_OK
