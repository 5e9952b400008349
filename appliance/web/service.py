"""The health of what callers get: how long they wait for each reply, and what makes them wait.

Every other part says whether a piece of the box runs; this one says whether the box serves. A
box whose parts all run can still keep its callers waiting 30 s a turn (two cores at a load of
16), and the page must then not say "Everything is working". The rules (`judge`) read:

- the caller's wait on the recent replies (the last `recent_calls` calls of the last day, every
  process's, from the records) against `TURN_TARGET_MS`: a median over the target or a p95 over
  twice it is a warning; a median over twice the target or a p95 over four times it is failing
  (a warning only, once the latest reply is over an hour old: history, not what callers get);
- the engines' queues: each call waits on at most one job per engine, so jobs queued behind the
  running one are callers waiting for another's turn (2 a warning, 4 failing);
- a fallback answering in place of the preferred engine (a warning: slower, or not local);
- the load per core (`machine.load_level`).

The rules are a pure function of a `ServiceReading`, so a test gives readings, not a box.
"""

from __future__ import annotations

import asyncio
import math
import os
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from appliance.clock import Clock
from appliance.memory import trends
from appliance.memory.db import Database
from appliance.observability import system
from appliance.web.health import Health, Level
from appliance.web.machine import load_level, span, worst
from appliance.web.parts import EngineChain

__all__ = [
    "QueueView",
    "ServiceHealth",
    "ServiceReading",
    "ServiceRules",
    "judge",
    "percentile",
]

_DAY_S: Final = 86400.0


@dataclass(frozen=True, slots=True)
class ServiceRules:
    target_ms: float = 1500.0
    """`TURN_TARGET_MS`: what a caller should wait, at most, for a reply to begin."""
    queue_warn: int = 2
    queue_fail: int = 4
    recent_calls: int = 10
    stale_after_s: float = 3600.0
    """Replies older than this are history: slow ones are a warning at most."""


@dataclass(frozen=True, slots=True)
class ServiceReading:
    waits_ms: Sequence[float]
    """What the caller waited on each recent reply, oldest first."""
    calls: int
    """How many calls those replies come from."""
    age_s: float = 0.0
    """Seconds since the latest of them."""
    queued: Mapping[str, int] | None = None
    """Jobs waiting for each engine's worker (None: not known)."""
    fallbacks: Sequence[str] = ()
    """Ports answered by a fallback engine, as `stt: whisper-base > remote`."""
    load_per_core: float | None = None
    """The 1-minute load average over the cores."""


def percentile(values: Sequence[float], fraction: float) -> float:
    """The `fraction` quantile (nearest rank) of `values`; 0.0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = math.ceil(fraction * len(ordered)) - 1
    return ordered[max(0, min(len(ordered) - 1, rank))]


def seconds(ms: float) -> str:
    """`0`, `850 ms`, `1.5 s`, `31 s`."""
    if ms == 0:
        return "0"
    if ms < 1000:
        return f"{ms:.0f} ms"
    return f"{ms / 1000:.1f} s" if ms < 10_000 else f"{ms / 1000:.0f} s"


@dataclass(slots=True)
class _Verdict:
    """What the rules have found so far."""

    facts: list[tuple[str, str]]
    levels: list[Level]
    problems: list[str]

    def add(self, level: Level, problem: str) -> None:
        self.levels.append(level)
        if level != "ok":
            self.problems.append(problem)


def _wait_level(median: float, p95: float, target: float) -> Level:
    if median > 2 * target or p95 > 4 * target:
        return "fail"
    if median > target or p95 > 2 * target:
        return "warn"
    return "ok"


def _judge_waits(reading: ServiceReading, rules: ServiceRules, verdict: _Verdict) -> str:
    """The wait rule; the summary when every rule is met."""
    target = rules.target_ms
    waits = reading.waits_ms
    if not waits:
        return "no replies in the last day to judge"
    median, p95 = statistics.median(waits), percentile(waits, 0.95)
    verdict.facts += [
        ("median wait", seconds(median)),
        ("p95 wait", seconds(p95)),
        ("over", f"{len(waits)} replies of {reading.calls} calls"),
    ]
    level = _wait_level(median, p95, target)
    if reading.age_s <= rules.stale_after_s:
        verdict.add(level, f"replies take {seconds(median)} (median; target {seconds(target)})")
        return f"replies begin after {seconds(median)} (median), {seconds(p95)} (p95)"
    ago = span(reading.age_s)
    verdict.facts.append(("latest reply", f"{ago} ago"))
    # Slow calls hours ago are worth a look, but they are not what callers get now.
    verdict.add(
        "warn" if level == "fail" else level,
        f"the last calls, {ago} ago, waited {seconds(median)} a reply (target {seconds(target)})",
    )
    return f"no calls for {ago}; replies began after {seconds(median)} (median)"


def _judge_queues(queued: Mapping[str, int], rules: ServiceRules, verdict: _Verdict) -> None:
    verdict.facts.append(("queued", ", ".join(f"{n} {k}" for k, n in sorted(queued.items()))))
    deepest, depth = max(queued.items(), key=lambda item: item[1])
    level: Level = "ok"
    if depth >= rules.queue_fail:
        level = "fail"
    elif depth >= rules.queue_warn:
        level = "warn"
    verdict.add(level, f"{depth} jobs queued for {deepest}")


def judge(reading: ServiceReading, rules: ServiceRules) -> Health:
    """How callers are served (see the module docstring for the rules)."""
    verdict = _Verdict([("target", f"{seconds(rules.target_ms)} (TURN_TARGET_MS)")], ["ok"], [])
    summary = _judge_waits(reading, rules, verdict)
    if reading.queued:
        _judge_queues(reading.queued, rules, verdict)
    if reading.fallbacks:
        verdict.facts.append(("fallback in use", "; ".join(reading.fallbacks)))
        verdict.add("warn", "a fallback engine answers")
    if reading.load_per_core is not None:
        per_core = reading.load_per_core
        verdict.facts.append(("load per core", f"{per_core:.1f}"))
        verdict.add(load_level(per_core), f"CPU overloaded ({per_core:.1f} per core)")
    if verdict.problems:
        summary = "; ".join(verdict.problems)
    return Health("callers", worst(verdict.levels), summary, tuple(verdict.facts))


class QueueView(Protocol):
    """What the page reads of an engine's worker (`engines.offload.Offloader`)."""

    @property
    def name(self) -> str: ...
    @property
    def queued(self) -> int: ...


def _load_per_core() -> float | None:
    load = system.load_average()
    return None if load is None else load[0] / (os.cpu_count() or 1)


@dataclass(frozen=True, slots=True)
class ServiceHealth:
    """`judge` of the box as it is: the records, the engines' workers and chains, the load."""

    db: Database
    clock: Clock
    rules: ServiceRules
    workers: Sequence[QueueView] = ()
    chains: Sequence[tuple[str, EngineChain]] = ()
    load_per_core: Callable[[], float | None] = _load_per_core
    part: str = "callers"

    async def health(self) -> Health:
        turns = await self.db.run(
            trends.timed_turns, since=self.clock.wall() - _DAY_S, calls=self.rules.recent_calls
        )
        waits = [t.timings["turn"] for t in turns if "turn" in t.timings]
        now = self.clock.wall()
        fallbacks = [
            f"{port}: {chain.active} for {chain.engines[0]}"
            for port, chain in self.chains
            if chain.active != chain.engines[0]
        ]
        reading = ServiceReading(
            waits_ms=waits,
            calls=len({t.call_id for t in turns}),
            age_s=max(0.0, now - turns[-1].at) if turns else 0.0,
            queued={w.name: w.queued for w in self.workers} if self.workers else None,
            fallbacks=fallbacks,
            load_per_core=await asyncio.to_thread(self.load_per_core),
        )
        return judge(reading, self.rules)
