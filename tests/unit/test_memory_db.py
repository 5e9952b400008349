"""The database: apsw with sqlite-vec, WAL, foreign keys, migrations, one owner thread."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import apsw
import pytest

from appliance.clock import LoopClock
from appliance.conversation.ports import CallInfo
from appliance.memory import calls, vectors
from appliance.memory.db import Database, connect, database_path, migrate
from tests.support.records import RecordsKit


def test_a_new_database_is_migrated_with_wal_foreign_keys_and_sqlite_vec(tmp_path: Path) -> None:
    conn = connect(tmp_path / "x" / "tel3sis.db")

    versions = [row[0] for row in conn.execute("SELECT version FROM schema_version")]
    assert versions == [1, 2, 3, 4, 5, 6, 7, 8]
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert conn.execute("PRAGMA foreign_keys").fetchone() == (1,)
    assert conn.execute("SELECT vec_version()").fetchone()[0].startswith("v0.1")
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {
        "calls",
        "turns",
        "callers",
        "facts",
        "summaries",
        "jobs",
        "memory_vectors",
        "messages",
        "safety_audit",
        "sealed_tokens",
    } <= tables
    # A second open applies nothing again.
    assert migrate(conn) == []


def test_foreign_keys_are_enforced(tmp_path: Path) -> None:
    conn = connect(tmp_path / "tel3sis.db")
    with pytest.raises(apsw.ConstraintError):
        calls.save_caller_words(conn, "no-such-call", turn=1, text="hi", started=0, ended=1)


def test_knn_is_per_caller_and_nearest_first(tmp_path: Path) -> None:
    conn = connect(tmp_path / "tel3sis.db")
    info = CallInfo(call_id="c1", line="wav", caller="+1555")
    calls.open_call(conn, info, started=1.0, owner="me", memory="")

    def unit(i: int) -> list[float]:
        v = [0.0] * vectors.DIMENSIONS
        v[i] = 1.0
        return v

    vectors.add_vector(conn, "+1555", kind="fact", call_id="c1", text="zero", vector=unit(0))
    vectors.add_vector(conn, "+1555", kind="fact", call_id="c1", text="one", vector=unit(1))
    vectors.add_vector(conn, "+1666", kind="fact", call_id="c1", text="other's", vector=unit(0))
    query = [0.0] * vectors.DIMENSIONS
    query[0], query[1] = 0.9, 0.1

    found = vectors.nearest(conn, "+1555", query, k=5)
    assert [r.text for r in found] == ["zero", "one"]
    assert found[0].distance < found[1].distance
    assert vectors.nearest(conn, "+1555", query, k=5, max_distance=0.5)[0].text == "zero"


def test_a_database_url_names_a_file() -> None:
    assert database_path("sqlite:////var/lib/tel3sis/x.db") == Path("/var/lib/tel3sis/x.db")
    assert database_path("sqlite:///data/x.db") == Path("data/x.db")
    with pytest.raises(ValueError, match="sqlite:///"):
        database_path("postgresql://box/x")


def test_work_runs_on_the_one_owner_thread_in_order(tmp_path: Path) -> None:
    async def main() -> list[str]:
        db = Database(tmp_path / "tel3sis.db")
        await db.open()
        names = await asyncio.gather(
            *(db.run(lambda conn: threading.current_thread().name) for _ in range(5))
        )
        info = CallInfo(call_id="c1", line="wav", caller="+1555")
        first = await db.run(calls.open_call, info, started=1.0, owner="me", memory="")
        second = await db.run(calls.open_call, info, started=2.0, owner="me", memory="")
        assert db.close()
        return [*names, first, second]

    result = asyncio.run(main())
    assert result[:5] == ["memory-db"] * 5
    assert result[5:] == ["c1", "c1~2"]  # a reused line id is made unique


def _db_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "memory-db"}


async def test_the_thread_starts_in_open_and_aclose_commits_what_was_queued(
    tmp_path: Path,
) -> None:
    # Other databases of this test process (a shared appliance's) have threads of that name.
    others = _db_threads()
    db = Database(tmp_path / "tel3sis.db")
    assert _db_threads() == others
    with pytest.raises(RuntimeError, match="is not open"):
        await db.run(lambda conn: 1)
    await db.open()
    info = CallInfo(call_id="c1", line="wav", caller="+1555")
    # Not awaited before the close: queued work still runs, then the connection closes.
    pending = asyncio.ensure_future(
        db.run(calls.open_call, info, started=1.0, owner="me", memory="")
    )
    await asyncio.sleep(0)
    assert await db.aclose(5)
    assert await pending == "c1"
    assert _db_threads() == others
    with pytest.raises(RuntimeError, match="is not open"):
        await db.run(lambda conn: 1)
    conn = connect(tmp_path / "tel3sis.db")
    assert conn.execute("SELECT id FROM calls").fetchall() == [("c1",)]
    conn.close()


async def test_records_aclose_stops_the_database_and_gives_up_the_owner(tmp_path: Path) -> None:
    others = _db_threads()
    kit = await RecordsKit(tmp_path, LoopClock()).open()
    assert len(_db_threads() - others) == 1
    owners = tmp_path / "data" / "owners"
    assert [p.stem for p in owners.iterdir()] == [kit.records.owner]
    await kit.records.aclose(5)
    assert list(owners.iterdir()) == []
    assert _db_threads() == others
    await kit.records.aclose(5)  # twice is fine
    kit.close()
