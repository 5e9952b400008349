"""Post-call work that survives restarts and runs exactly once: a job table in our own database.

Why not huey (or another queue library): we looked at huey 3.5 with its SqliteStorage, the best
fit. Its `dequeue` deletes the task's row before the task runs, so a task running when the
process dies (kill -9, a power cut) is gone: at most once, where we need exactly once. It also
keeps its queue in its own file through the standard library's sqlite3, a second writer beside
ours, and it cannot enqueue in the same transaction that ends the call. The table here is about
150 lines and gives what those cannot:

- Enqueued in the transaction that ends the call: a call is never ended without its jobs.
- Claimed, not removed: a claimed job names the process running it (see `owners`). If that
  process dies, the next one to start puts the job back; nothing is lost, nothing is guessed.
- Finished in the same transaction as what it wrote (a handler returns its writes rather than
  making them), so a job's database effects happen once even if the process dies mid-job. A
  message to an outside service (email, SMS) is at least once: a death in the milliseconds
  between the service's answer and the commit sends it again on restart.
- Retried with exponential backoff (30 s, 1 min, 2 min ... at most 1 h) up to `max_attempts`;
  a handler raising `Undeliverable` fails at once. A failure stays in the table with its reason,
  shown by `appliance calls show`, logged and counted in `tel3sis_jobs`.
- Jobs that use the language model (`idle_kinds`) wait while any call is in progress: a summary
  must never slow down a live caller's reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

import apsw

from appliance.clock import Clock
from appliance.conversation.ports import Undeliverable
from appliance.memory.db import Database
from appliance.observability.metrics import Metrics

__all__ = [
    "Done",
    "Handler",
    "Job",
    "JobRecord",
    "JobRunner",
    "Skipped",
    "claim",
    "enqueue",
    "job_counts",
    "jobs_of",
    "queued_since",
    "recover_jobs",
]

_log = logging.getLogger(__name__)

JobState = Literal["pending", "running", "done", "failed", "skipped"]
_FINAL: Final = ("done", "failed", "skipped")


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    kind: str
    call_id: str | None
    attempts: int
    """Including this one."""


@dataclass(frozen=True, slots=True)
class JobRecord:
    id: int
    kind: str
    call_id: str | None
    state: JobState
    attempts: int
    run_after: float
    finished: float | None
    result: str


@dataclass(frozen=True, slots=True)
class Done:
    """What a handler did: a note for the record, and its writes, committed with the job."""

    note: str
    write: Callable[[apsw.Connection], None] | None = None


class Skipped(Exception):
    """There is nothing for this job to do (not configured, nothing said); not a failure."""


Handler = Callable[[Job], Awaitable[Done]]


def enqueue(
    conn: apsw.Connection,
    kind: str,
    *,
    call_id: str | None,
    now: float,
    after: str | None = None,
    skipped: str | None = None,
) -> None:
    """Add a job (once per kind and call); `skipped` records one that will not run, and why."""
    state, result = ("skipped", skipped) if skipped is not None else ("pending", "")
    conn.execute(
        "INSERT INTO jobs (kind, call_id, after, state, run_after, created, finished, result) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (kind, call_id) DO NOTHING",
        (kind, call_id, after, state, now, now, now if skipped is not None else None, result),
    )


def queued_since(
    conn: apsw.Connection, kind: str, *, since: float, caller: str | None = None
) -> int:
    """Jobs of `kind` queued since `since` and not skipped (sent, failed or still to run), for
    calls from `caller`, or from anyone when None."""
    sql = (
        "SELECT COUNT(*) FROM jobs AS j JOIN calls AS c ON c.id = j.call_id "
        "WHERE j.kind = ? AND j.state != 'skipped' AND j.created >= ?"
    )
    args: list[object] = [kind, since]
    if caller is not None:
        sql += " AND c.caller = ?"
        args.append(caller)
    row = conn.execute(sql, args).fetchone()
    return int(row[0]) if row else 0


def claim(conn: apsw.Connection, *, owner: str, now: float, kinds: Collection[str]) -> Job | None:
    """Take the oldest ready job of `kinds` for `owner`, or None."""
    if not kinds:
        return None
    marks = ",".join("?" * len(kinds))
    with conn:
        row = conn.execute(
            "SELECT id, kind, call_id, attempts FROM jobs AS j "  # noqa: S608 - only "?,?"
            f"WHERE state = 'pending' AND run_after <= ? AND kind IN ({marks}) "
            "AND NOT EXISTS (SELECT 1 FROM jobs AS d WHERE d.call_id = j.call_id "
            "AND d.kind = j.after AND d.state IN ('pending', 'running')) "
            "ORDER BY run_after, id LIMIT 1",
            (now, *kinds),
        ).fetchone()
        if row is None:
            return None
        job_id, kind, call_id, attempts = row
        conn.execute(
            "UPDATE jobs SET state = 'running', claimed_by = ?, attempts = attempts + 1 "
            "WHERE id = ?",
            (owner, job_id),
        )
    return Job(id=job_id, kind=kind, call_id=call_id, attempts=attempts + 1)


def _finish(conn: apsw.Connection, job: Job, state: JobState, result: str, now: float) -> None:
    conn.execute(
        "UPDATE jobs SET state = ?, result = ?, finished = ?, claimed_by = NULL WHERE id = ?",
        (state, result, now, job.id),
    )


def _complete(conn: apsw.Connection, job: Job, done: Done, now: float) -> None:
    with conn:
        if done.write is not None:
            done.write(conn)
        _finish(conn, job, "done", done.note, now)


def _end(conn: apsw.Connection, job: Job, state: JobState, result: str, now: float) -> None:
    with conn:
        _finish(conn, job, state, result, now)


def _retry(conn: apsw.Connection, job: Job, error: str, at: float) -> None:
    with conn:
        conn.execute(
            "UPDATE jobs SET state = 'pending', result = ?, run_after = ?, claimed_by = NULL "
            "WHERE id = ?",
            (error, at, job.id),
        )


def recover_jobs(conn: apsw.Connection, alive: Callable[[str], bool]) -> int:
    """Put back the jobs whose process died while running them; returns how many."""
    with conn:
        rows = conn.execute("SELECT id, claimed_by FROM jobs WHERE state = 'running'").fetchall()
        orphaned = [job_id for job_id, owner in rows if owner is None or not alive(str(owner))]
        for job_id in orphaned:
            conn.execute(
                "UPDATE jobs SET state = 'pending', claimed_by = NULL WHERE id = ?", (job_id,)
            )
    return len(orphaned)


def next_due(conn: apsw.Connection) -> float | None:
    row = conn.execute("SELECT MIN(run_after) FROM jobs WHERE state = 'pending'").fetchone()
    return None if row is None or row[0] is None else float(row[0])


def job_counts(conn: apsw.Connection, *, since: float) -> dict[str, int]:
    """Jobs by state: every pending and running one, and those finished after `since`."""
    rows = conn.execute(
        "SELECT state, COUNT(*) FROM jobs WHERE state IN ('pending', 'running') "
        "OR finished >= ? GROUP BY state",
        (since,),
    )
    return {str(state): int(count) for state, count in rows}


def jobs_of(conn: apsw.Connection, call_id: str | None = None) -> list[JobRecord]:
    """A call's jobs (every job when None), oldest first."""
    columns = "SELECT id, kind, call_id, state, attempts, run_after, finished, result FROM jobs"
    if call_id is None:
        rows = conn.execute(columns + " ORDER BY id")
    else:
        rows = conn.execute(columns + " WHERE call_id = ? ORDER BY id", (call_id,))
    return [JobRecord(*row) for row in rows]


@dataclass(slots=True)
class JobRunner:
    """Runs ready jobs one at a time, for ever (`run`) or until none is ready (`run_until_idle`)."""

    db: Database
    handlers: Mapping[str, Handler]
    owner: str
    clock: Clock
    metrics: Metrics | None = None
    busy: Callable[[], bool] = lambda: False
    """Whether a call is in progress (the `idle_kinds` wait for it to end)."""
    idle_kinds: Collection[str] = ()
    after_idle_work: Callable[[], Awaitable[None]] | None = None
    """Called once the `idle_kinds` jobs are done for now (to warm the model up again)."""
    max_attempts: int = 6
    base_delay_s: float = 30.0
    max_delay_s: float = 3600.0
    poll_s: float = 30.0
    _wake: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _did_idle_work: bool = field(default=False, init=False)

    def wake(self) -> None:
        """Look for work now (a call has ended, or its jobs were enqueued)."""
        self._wake.set()

    def _kinds(self) -> list[str]:
        busy = self.busy()
        return [k for k in self.handlers if not (busy and k in self.idle_kinds)]

    async def run_one(self) -> bool:
        """Run the next ready job, if there is one; returns whether there was."""
        job = await self.db.run(claim, owner=self.owner, now=self.clock.wall(), kinds=self._kinds())
        if job is None:
            if self._did_idle_work and self.after_idle_work is not None:
                self._did_idle_work = False
                await self.after_idle_work()
            return False
        await self._execute(job)
        return True

    async def _execute(self, job: Job) -> None:
        handler = self.handlers[job.kind]
        self._did_idle_work |= job.kind in self.idle_kinds
        try:
            done = await handler(job)
        except Skipped as exc:
            await self.db.run(_end, job, "skipped", str(exc), self.clock.wall())
            self._count(job, "skipped")
            _log.warning("job %s %s (%s) skipped: %s", job.id, job.kind, job.call_id, exc)
        except Undeliverable as exc:
            await self.db.run(_end, job, "failed", f"refused: {exc}", self.clock.wall())
            self._count(job, "failed")
            _log.error("job %s %s (%s) failed for good: %s", job.id, job.kind, job.call_id, exc)
        except Exception as exc:
            await self._failed(job, exc)
        else:
            try:
                await self.db.run(_complete, job, done, self.clock.wall())
            except Exception as exc:
                # Nothing of it was committed (a full disk, say): it is retried like a failure.
                await self._failed(job, exc)
                return
            self._count(job, "done")
            _log.info("job %s %s (%s) done: %s", job.id, job.kind, job.call_id, done.note)

    async def _failed(self, job: Job, exc: Exception) -> None:
        error = f"attempt {job.attempts}: {exc!r}"
        if job.attempts >= self.max_attempts:
            await self.db.run(_end, job, "failed", error, self.clock.wall())
            self._count(job, "failed")
            _log.error("job %s %s (%s) failed for good: %s", job.id, job.kind, job.call_id, error)
            return
        delay = min(self.max_delay_s, self.base_delay_s * 2 ** (job.attempts - 1))
        await self.db.run(_retry, job, error, self.clock.wall() + delay)
        self._count(job, "retried")
        _log.warning(
            "job %s %s (%s) failed (%s); retrying in %.0f s",
            job.id,
            job.kind,
            job.call_id,
            error,
            delay,
        )

    def _count(self, job: Job, result: str) -> None:
        if self.metrics is not None:
            self.metrics.jobs.labels(job.kind, result).inc()

    async def run_until_idle(self) -> int:
        """Run jobs until none is ready now; returns how many ran."""
        ran = 0
        while await self.run_one():
            ran += 1
        return ran

    async def run(self) -> None:
        """Run jobs as they become ready, until cancelled."""
        while True:
            self._wake.clear()
            try:
                if await self.run_one():
                    continue
                due = await self.db.run(next_due)
            except Exception:
                _log.exception("the job runner could not reach the database")
                due = None
            # A job that is due but was not run waits for a call to end (which wakes us).
            now = self.clock.wall()
            wait = self.poll_s if due is None or due <= now else min(self.poll_s, due - now)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()
