"""The health of what callers get: the rules given readings, the source given a real database
of timed turns, the engines' queues and the load; the CPU card at load 16 on 2 cores; the
last day's plots.

The inputs are faked (readings, a worker's view, the load), never the rules that judge them.
"""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from appliance.conversation.ports import CallInfo
from appliance.memory import calls
from appliance.memory.db import Database
from appliance.memory.trends import CallOutcome, TimedTurn, timed_turns
from appliance.observability import system
from appliance.web.machine import CpuHealth, load_level
from appliance.web.service import (
    ServiceHealth,
    ServiceReading,
    ServiceRules,
    judge,
    percentile,
)
from appliance.web.trends import calls_per_hour, outcomes, stage_times, wait_over_time
from appliance.workers import Worker
from tests.support.hand_clock import HandClock

RULES = ServiceRules(target_ms=1500)
SLOW = (18_400.0, 31_000.0, 52_300.0, 24_800.0, 40_100.0)
"""What callers waited on a box at load 16 on 2 cores (issue 17)."""


def _reading(waits: tuple[float, ...] = (), **more: object) -> ServiceReading:
    return ServiceReading(waits_ms=waits, calls=max(1, len(waits) // 2), **more)  # type: ignore[arg-type]


def test_turns_of_18_to_52_s_are_failing_whatever_else_is_fine() -> None:
    health = judge(_reading(SLOW, queued={"llm": 0, "stt": 0}, load_per_core=0.2), RULES)
    assert health.level == "fail"
    assert health.summary == "replies take 31 s (median; target 1.5 s)"
    facts = dict(health.facts)
    assert facts["median wait"] == "31 s" and facts["p95 wait"] == "52 s"
    assert facts["target"] == "1.5 s (TURN_TARGET_MS)"


@pytest.mark.parametrize(
    ("waits", "level"),
    [
        ((700.0, 800.0, 900.0, 1000.0), "ok"),
        ((1400.0, 1500.0, 1500.0, 1450.0), "ok"),  # at the target is on target
        ((1400.0, 1600.0, 1700.0, 1800.0), "warn"),  # median over the target
        ((800.0, 800.0, 800.0, 800.0, 800.0, 800.0, 800.0, 800.0, 800.0, 3100.0), "warn"),
        ((2900.0, 3100.0, 3200.0), "fail"),  # median over twice the target
        ((800.0,) * 18 + (6100.0, 6100.0), "fail"),  # 2 replies of 20 over four times it: the p95
    ],
)
def test_the_wait_is_judged_by_its_median_and_p95_against_the_target(
    waits: tuple[float, ...], level: str
) -> None:
    assert judge(_reading(waits), RULES).level == level


def test_slow_replies_over_an_hour_ago_are_a_warning_not_a_failure() -> None:
    fresh = judge(_reading(SLOW, age_s=600.0), RULES)
    assert fresh.level == "fail"
    stale = judge(_reading(SLOW, age_s=3 * 3600.0), RULES)
    assert stale.level == "warn"
    assert stale.summary == "the last calls, 3 h 0 min ago, waited 31 s a reply (target 1.5 s)"
    assert judge(_reading((900.0,), age_s=3 * 3600.0), RULES).level == "ok"


def test_the_target_is_a_setting() -> None:
    waits = (2000.0, 2100.0, 2200.0)
    assert judge(_reading(waits), RULES).level == "warn"
    assert judge(_reading(waits), ServiceRules(target_ms=2500)).level == "ok"


def test_no_replies_yet_is_not_a_fault() -> None:
    health = judge(_reading(), RULES)
    assert health.level == "ok" and health.summary == "no replies in the last day to judge"


@pytest.mark.parametrize(("depth", "level"), [(0, "ok"), (1, "ok"), (2, "warn"), (4, "fail")])
def test_jobs_queued_for_an_engine_are_callers_waiting(depth: int, level: str) -> None:
    health = judge(_reading((900.0,), queued={"stt": 0, "llm": depth}), RULES)
    assert health.level == level
    if level != "ok":
        assert f"{depth} jobs queued for llm" in health.summary


def test_a_fallback_answering_is_a_warning() -> None:
    health = judge(_reading((900.0,), fallbacks=["llm: remote for qwen"]), RULES)
    assert health.level == "warn" and "fallback" in health.summary
    assert dict(health.facts)["fallback in use"] == "llm: remote for qwen"


@pytest.mark.parametrize(
    ("per_core", "level"), [(0.3, "ok"), (1.4, "ok"), (1.5, "warn"), (2.9, "warn"), (8.0, "fail")]
)
def test_the_load_per_core(per_core: float, level: str) -> None:
    assert load_level(per_core) == level
    assert judge(_reading((900.0,), load_per_core=per_core), RULES).level == level


def test_the_worst_rule_wins_and_every_problem_is_said() -> None:
    reading = _reading(SLOW, queued={"llm": 2}, fallbacks=["tts: b for a"], load_per_core=8.0)
    health = judge(reading, RULES)
    assert health.level == "fail"
    for said in ("replies take 31 s", "2 jobs queued for llm", "fallback", "CPU overloaded"):
        assert said in health.summary


def test_percentiles_by_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.95) == 95.0 and percentile(values, 0.5) == 50.0
    assert percentile([7.0], 0.95) == 7.0 and percentile([], 0.95) == 0.0


async def test_the_cpu_card_is_not_ok_at_load_16_on_2_cores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(system, "load_average", lambda: (16.0, 14.0, 9.0))
    monkeypatch.setattr(system, "cpu_temperature", lambda: 55.0)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    health = await CpuHealth().health()
    assert health.level == "fail"
    assert "load 16.0 on 2 cores" in health.summary
    monkeypatch.setattr(system, "load_average", lambda: (1.0, 1.0, 1.0))
    assert (await CpuHealth().health()).level == "ok"


# --- the source: real records, a worker's queue, the load ------------------------------------


@pytest_asyncio.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(tmp_path / "tel3sis.db")
    await database.open()
    yield database
    await database.aclose()


async def _call(db: Database, call_id: str, started: float, waits: list[float]) -> None:
    def write(conn: object) -> None:
        info = CallInfo(call_id=call_id, line="wav", caller="+15550001")
        calls.open_call(conn, info, started=started, owner="test", memory="")  # type: ignore[arg-type]
        for turn, wait in enumerate(waits, start=1):
            calls.save_agent_words(
                conn,  # type: ignore[arg-type]
                call_id,
                turn=turn,
                text="Sure.",
                started=2.0 * turn,
                ended=2.0 * turn + 1,
                interrupted=False,
                timings={"stt": 100.0, "turn": wait},
                starts={"stt": 0.0, "turn": 0.0},
            )

    await db.run(write)


@dataclass
class _Queue:
    name: str
    queued: int


@dataclass
class _Chain:
    active: str
    engines: tuple[str, ...]
    resting: tuple[str, ...] = ()


async def test_the_source_reads_the_last_calls_of_every_process(db: Database) -> None:
    clock = HandClock()
    now = clock.wall()
    await _call(db, "old-slow", now - 2 * 86400, [40_000.0])  # two days ago: not counted
    for i in range(12):  # only the latest 10 calls count: the first two were slow
        await _call(db, f"c{i:02d}", now - 3600 + i * 60, [30_000.0] if i < 2 else [900.0, 1000.0])
    source = ServiceHealth(db, clock, RULES, load_per_core=lambda: 0.4)
    health = await source.health()
    assert health.level == "ok", health
    assert dict(health.facts)["over"] == "20 replies of 10 calls"

    await _call(db, "c12", now - 60, [31_000.0, 52_000.0, 18_000.0, 45_000.0])
    await _call(db, "c13", now - 30, [25_000.0, 33_000.0, 41_000.0, 38_000.0, 29_000.0])
    await _call(db, "c14", now - 10, [22_000.0, 36_000.0, 47_000.0, 30_000.0, 27_000.0])
    health = await source.health()
    assert health.level == "fail" and health.summary.startswith("replies take")


async def test_the_source_reads_the_queues_the_chains_and_the_load(db: Database) -> None:
    clock = HandClock()
    await _call(db, "c1", clock.wall() - 60, [900.0])
    source = ServiceHealth(
        db,
        clock,
        RULES,
        workers=[_Queue("stt", 0), _Queue("llm", 5)],
        chains=[("llm", _Chain("remote", ("qwen", "remote")))],
        load_per_core=lambda: 8.0,
    )
    health = await source.health()
    assert health.level == "fail"
    facts = dict(health.facts)
    assert facts["queued"] == "5 llm, 0 stt"
    assert facts["fallback in use"] == "llm: remote for qwen"
    assert facts["load per core"] == "8.0"


def test_a_workers_queue_counts_the_jobs_waiting_behind_the_running_one() -> None:
    worker = Worker("test-queue")
    worker.start()
    release = threading.Event()
    running = threading.Event()
    try:
        assert worker.queued == 0
        first = worker.submit(lambda: (running.set(), release.wait(10)))
        assert running.wait(10)
        rest = [worker.submit(lambda: None) for _ in range(3)]
        assert worker.queued == 3
        release.set()
        for future in [first, *rest]:
            future.result(timeout=10)
        assert worker.queued == 0
    finally:
        release.set()
        assert worker.close(10)


# --- the last day's plots ---------------------------------------------------------------------


def _turn(at: float, **timings: float) -> TimedTurn:
    return TimedTurn(call_id="c", at=at, timings=timings)


def test_the_wait_is_plotted_by_stretches_of_time_with_gaps_where_none_came() -> None:
    now = 1_800_000_000.0
    turns = [
        _turn(now - 7200, turn=800.0),
        _turn(now - 7100, turn=1200.0),
        _turn(now - 60, turn=30_000.0),
    ]
    chart = wait_over_time(turns, now, 1500.0)
    assert chart is not None and chart.turns == 3
    p95, median = chart.lines
    assert (p95.key, median.key) == ("p95", "median")
    assert len(median.runs) == 2  # no line across the empty stretch between
    assert len(median.dots) == 2
    assert median.dots[1][1] < chart.target_y < median.dots[0][1] + 1  # 30 s above the target
    assert "p95 30 s" in p95.dots[1][2]
    assert wait_over_time([], now, 1500.0) is None


def test_each_stage_its_median_and_p95() -> None:
    turns = [_turn(0.0, stt=float(v), turn=float(10 * v)) for v in range(1, 21)]
    bars = stage_times(turns)
    assert bars is not None
    assert [r.key for r in bars.rows] == ["stt", "turn"]
    stt, turn = bars.rows
    assert stt.value == "10 / 19 ms" and turn.value == "105 / 190 ms"
    assert turn.whisker is not None and stt.whisker is not None and stt.whisker < turn.whisker


def test_calls_per_hour_and_how_they_ended() -> None:
    now = 1_800_000_000.0 + 1800  # half past
    found = [
        CallOutcome(now - 30, None),
        CallOutcome(now - 40, "caller hung up"),
        CallOutcome(now - 3 * 3600, "caller hung up"),
        CallOutcome(now - 30 * 3600, "caller hung up"),  # more than a day: not drawn
        *(CallOutcome(now - 100, f"odd {i}") for i in range(6)),
    ]
    hours = calls_per_hour(found, now)
    counts = [c.count for c in hours.columns]
    assert len(counts) == 24 and counts[-1] == 8 and counts[-4] == 1 and sum(counts) == 9
    ended = outcomes(found)
    assert ended is not None
    assert (ended.rows[0].label, ended.rows[0].value) == ("caller hung up", "3")
    assert ended.rows[-1].label == "other" and len(ended.rows) == 6


async def test_timed_turns_are_oldest_first_and_only_replies_with_timings(db: Database) -> None:
    await _call(db, "b", 2000.0, [700.0])
    await _call(db, "a", 1000.0, [900.0, 950.0])

    def untimed(conn: object) -> None:
        calls.save_caller_words(conn, "a", turn=3, text="Hello?", started=9.0, ended=9.5)  # type: ignore[arg-type]

    await db.run(untimed)
    turns = await db.run(timed_turns, since=0.0)
    assert [(t.call_id, t.timings["turn"]) for t in turns] == [
        ("a", 900.0),
        ("a", 950.0),
        ("b", 700.0),
    ]
