"""The post-call job queue: once per call, in order, exactly once across restarts, with backoff."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import apsw

from appliance.conversation.ports import CallInfo, Undeliverable
from appliance.memory import callers, calls, jobs, owners
from appliance.memory.db import Database
from appliance.memory.jobs import Done, Job, JobRunner, Skipped
from appliance.observability.metrics import Metrics
from tests.support.records import ManualClock


@dataclass
class Handlers:
    """Handlers that log what ran, fail on request, and write a summary when they succeed."""

    ran: list[str] = field(default_factory=list)
    failures: dict[str, list[Exception]] = field(default_factory=dict)

    def handler(self, kind: str) -> Callable[[Job], Awaitable[Done]]:
        async def run(job: Job) -> Done:
            self.ran.append(f"{kind}:{job.call_id}")
            queued = self.failures.get(kind)
            if queued:
                raise queued.pop(0)
            call_id = job.call_id
            assert call_id is not None
            return Done(
                note=f"{kind} ok",
                write=lambda conn: callers.set_summary(conn, call_id, f"by {kind}", 1.0),
            )

        return run

    def all(self, *kinds: str) -> dict[str, Callable[[Job], Awaitable[Done]]]:
        return {kind: self.handler(kind) for kind in kinds}


async def _db_with_calls(path: Path, *ids: str) -> Database:
    db = Database(path)
    await db.open()
    for call_id in ids:
        info = CallInfo(call_id=call_id, line="wav", caller="+1555")
        await db.run(calls.open_call, info, started=1.0, owner="x", memory="")
    return db


def _enqueue(conn: apsw.Connection, call_id: str, *kinds: str, now: float = 0.0) -> None:
    with conn:
        for kind in kinds:
            after = None if kind == "summary" else "summary"
            jobs.enqueue(conn, kind, call_id=call_id, now=now, after=after)


def test_a_job_is_enqueued_once_and_runs_after_the_job_it_follows(tmp_path: Path) -> None:
    async def main() -> tuple[list[str], list[jobs.JobRecord]]:
        db = await _db_with_calls(tmp_path / "db", "c1", "c2")
        await db.run(_enqueue, "c1", "email", "summary")
        await db.run(_enqueue, "c1", "summary", "email")  # again: nothing new
        await db.run(_enqueue, "c2", "summary")
        handlers = Handlers()
        runner = JobRunner(db, handlers.all("summary", "email"), owner="me", clock=ManualClock())
        assert await runner.run_until_idle() == 3
        done = await db.run(jobs.jobs_of, None)
        db.close()
        return handlers.ran, done

    ran, done = asyncio.run(main())
    # c1's email was queued first but waits for c1's summary.
    assert ran == ["summary:c1", "email:c1", "summary:c2"]
    assert [(j.kind, j.state, j.attempts, j.result) for j in done] == [
        ("email", "done", 1, "email ok"),
        ("summary", "done", 1, "summary ok"),
        ("summary", "done", 1, "summary ok"),
    ]


def test_failures_are_retried_with_backoff_then_kept_visible(tmp_path: Path) -> None:
    clock = ManualClock()

    async def main() -> list[tuple[str, list[jobs.JobRecord]]]:
        db = await _db_with_calls(tmp_path / "db", "c1", "c2", "c3")
        await db.run(_enqueue, "c1", "summary", now=clock.wall_s)
        await db.run(_enqueue, "c2", "email", now=clock.wall_s)
        await db.run(_enqueue, "c3", "sms", now=clock.wall_s)
        handlers = Handlers(
            failures={
                "summary": [RuntimeError("model busy"), RuntimeError("model busy again")],
                "email": [Undeliverable("SendGrid answered 400: bad address")],
                "sms": [Skipped("not configured")],
            }
        )
        metrics = Metrics()
        runner = JobRunner(
            db,
            handlers.all("summary", "email", "sms"),
            owner="me",
            clock=clock,
            metrics=metrics,
        )
        seen = []
        await runner.run_until_idle()
        seen.append(("first", await db.run(jobs.jobs_of, "c1")))
        clock.wall_s += 29  # the first retry is due after 30 s
        assert await runner.run_until_idle() == 0
        clock.wall_s += 1
        assert await runner.run_until_idle() == 1
        seen.append(("second", await db.run(jobs.jobs_of, "c1")))
        clock.wall_s += 60  # then after 60 s
        assert await runner.run_until_idle() == 1
        seen.append(("third", await db.run(jobs.jobs_of, "c1")))
        seen.append(("email", await db.run(jobs.jobs_of, "c2")))
        seen.append(("sms", await db.run(jobs.jobs_of, "c3")))
        assert metrics.jobs.labels("summary", "retried")._value.get() == 2
        assert metrics.jobs.labels("email", "failed")._value.get() == 1
        db.close()
        return seen

    seen = dict(asyncio.run(main()))
    (first,) = seen["first"]
    assert (first.state, first.attempts) == ("pending", 1)
    assert first.run_after == 1_800_000_000.0 + 30 and "model busy" in first.result
    (second,) = seen["second"]
    assert (second.state, second.attempts) == ("pending", 2)
    assert second.run_after == 1_800_000_000.0 + 30 + 60
    (third,) = seen["third"]
    assert (third.state, third.attempts, third.result) == ("done", 3, "summary ok")
    (email,) = seen["email"]
    assert (email.state, email.attempts) == ("failed", 1)  # a 400 is not retried
    assert "bad address" in email.result
    (sms,) = seen["sms"]
    assert (sms.state, sms.result) == ("skipped", "not configured")


def test_a_job_that_keeps_failing_fails_for_good(tmp_path: Path) -> None:
    clock = ManualClock()

    async def main() -> list[jobs.JobRecord]:
        db = await _db_with_calls(tmp_path / "db", "c1")
        await db.run(_enqueue, "c1", "summary", now=clock.wall_s)
        handlers = Handlers(failures={"summary": [RuntimeError(f"no {i}") for i in range(9)]})
        runner = JobRunner(db, handlers.all("summary"), owner="me", clock=clock, max_attempts=3)
        for _ in range(5):
            await runner.run_until_idle()
            clock.wall_s += 3600
        found = await db.run(jobs.jobs_of, "c1")
        db.close()
        return found

    (job,) = asyncio.run(main())
    assert (job.state, job.attempts) == ("failed", 3)
    assert "no 2" in job.result


def test_a_job_cut_off_by_a_dead_process_runs_again_and_a_finished_one_never(
    tmp_path: Path,
) -> None:
    async def main() -> tuple[list[str], list[jobs.JobRecord], int]:
        db = await _db_with_calls(tmp_path / "db", "c1", "c2")
        await db.run(_enqueue, "c1", "summary")
        await db.run(_enqueue, "c2", "summary")
        dead = owners.Owner(tmp_path / "owners")
        # The dead process finished c1's job and was killed while running c2's.
        first = await db.run(jobs.claim, owner=dead.id, now=1.0, kinds=["summary"])
        assert first is not None
        await db.run(jobs._complete, first, Done("done before the crash"), 1.0)
        assert await db.run(jobs.claim, owner=dead.id, now=1.0, kinds=["summary"]) is not None
        dead.release()  # what the kernel does when a process dies

        alive = owners.Owner(tmp_path / "owners")
        put_back = await db.run(
            jobs.recover_jobs, lambda owner: owners.is_alive(tmp_path / "owners", owner)
        )
        handlers = Handlers()
        runner = JobRunner(db, handlers.all("summary"), owner=alive.id, clock=ManualClock())
        await runner.run_until_idle()
        # A second restart finds nothing to do.
        again = await db.run(
            jobs.recover_jobs, lambda owner: owners.is_alive(tmp_path / "owners", owner)
        )
        await runner.run_until_idle()
        done = await db.run(jobs.jobs_of, None)
        alive.release()
        db.close()
        return handlers.ran, done, put_back + again

    ran, done, put_back = asyncio.run(main())
    assert put_back == 1
    assert ran == ["summary:c2"]
    assert [(j.call_id, j.state, j.attempts) for j in done] == [
        ("c1", "done", 1),
        ("c2", "done", 2),
    ]


def test_a_live_process_keeps_its_jobs(tmp_path: Path) -> None:
    async def main() -> int:
        db = await _db_with_calls(tmp_path / "db", "c1")
        await db.run(_enqueue, "c1", "summary")
        other = owners.Owner(tmp_path / "owners")  # another appliance, alive and busy
        await db.run(jobs.claim, owner=other.id, now=1.0, kinds=["summary"])
        put_back = await db.run(
            jobs.recover_jobs, lambda owner: owners.is_alive(tmp_path / "owners", owner)
        )
        other.release()
        db.close()
        return put_back

    assert asyncio.run(main()) == 0


def test_a_jobs_writes_and_its_completion_commit_together(tmp_path: Path) -> None:
    async def main() -> tuple[list[jobs.JobRecord], str | None]:
        db = await _db_with_calls(tmp_path / "db", "c1")
        await db.run(_enqueue, "c1", "summary")

        def half_then_fail(conn: apsw.Connection) -> None:
            callers.set_summary(conn, "c1", "half written", 1.0)
            raise apsw.FullError("database or disk is full")

        async def handler(job: Job) -> Done:
            return Done(note="never", write=half_then_fail)

        runner = JobRunner(db, {"summary": handler}, owner="me", clock=ManualClock())
        await runner.run_one()
        found = await db.run(jobs.jobs_of, "c1")
        summary = await db.run(callers.summary_of, "c1")
        db.close()
        return found, summary

    (job,), summary = asyncio.run(main())
    assert summary is None  # rolled back with the job's completion
    assert (job.state, job.attempts) == ("pending", 1)  # and the job is retried
    assert "FullError" in job.result


def test_model_jobs_wait_while_a_call_is_in_progress(tmp_path: Path) -> None:
    async def main() -> tuple[list[str], list[str], int]:
        db = await _db_with_calls(tmp_path / "db", "c1")
        await db.run(_enqueue, "c1", "summary", "email")
        handlers = Handlers()
        busy = True
        warmed = 0

        async def warm() -> None:
            nonlocal warmed
            warmed += 1

        runner = JobRunner(
            db,
            handlers.all("summary", "email"),
            owner="me",
            clock=ManualClock(),
            busy=lambda: busy,
            idle_kinds=("summary",),
            after_idle_work=warm,
        )
        await runner.run_until_idle()
        during = list(handlers.ran)
        busy = False
        await runner.run_until_idle()
        db.close()
        return during, handlers.ran, warmed

    during, after, warmed = asyncio.run(main())
    assert during == []  # the email waits for the summary, which waits for the call
    assert after == ["summary:c1", "email:c1"]
    assert warmed == 1
