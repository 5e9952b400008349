"""The worker-thread helper: its life (start, stop, join), its jobs, its streams."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

from appliance.workers import Worker, WorkerNotRunning, ajoin_all, join_all


def _named(prefix: str) -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(prefix)]


async def test_threads_start_in_start_not_in_the_constructor() -> None:
    worker = Worker("wk-life")
    assert _named("wk-life") == []
    with pytest.raises(WorkerNotRunning, match=r"not started: call start\(\)"):
        await worker.run(lambda: 1)
    worker.start()
    worker.start()  # again: nothing more
    try:
        assert _named("wk-life") == ["wk-life"]
        assert await worker.run(lambda: threading.current_thread().name) == "wk-life"
    finally:
        assert await worker.aclose(2)
    assert _named("wk-life") == []


async def test_several_threads_are_numbered_and_share_the_work() -> None:
    worker = Worker("wk-pool", threads=2)
    assert worker.thread_names == ["wk-pool-0", "wk-pool-1"]
    worker.start()
    both = threading.Barrier(2, timeout=2)

    def meet() -> str:
        both.wait()  # only returns when both threads hold a job at once
        return threading.current_thread().name

    try:
        names = await asyncio.gather(worker.run(meet), worker.run(meet))
        assert sorted(names) == ["wk-pool-0", "wk-pool-1"]
    finally:
        assert await worker.aclose(2)


async def test_jobs_run_in_order_with_their_arguments() -> None:
    worker = Worker("wk-order")
    worker.start()
    seen: list[int] = []
    try:
        await asyncio.gather(*(worker.run(seen.append, i) for i in range(20)))
        assert seen == list(range(20))
        assert await worker.run(divmod, 7, 2) == (3, 1)
    finally:
        worker.close(2)


async def test_errors_cross_back_to_the_caller() -> None:
    worker = Worker("wk-err")
    worker.start()

    def fail() -> None:
        raise ValueError("bad input")

    try:
        with pytest.raises(ValueError, match="bad input"):
            await worker.run(fail)
        assert await worker.run(lambda: "still serving") == "still serving"
    finally:
        worker.close(2)


async def test_a_timeout_counts_queueing_and_the_job_finishes_in_the_background() -> None:
    worker = Worker("wk-slow")
    worker.start()
    finished = threading.Event()

    def slow() -> None:
        time.sleep(0.3)
        finished.set()

    try:
        with pytest.raises(TimeoutError):
            await worker.run(slow, timeout=0.05)
        assert not finished.is_set()  # the caller did not wait for it
        with pytest.raises(TimeoutError):  # queued behind the slow one past its own timeout
            await worker.run(lambda: 1, timeout=0.05)
        assert await asyncio.to_thread(finished.wait, 2)
        assert await worker.run(lambda: 2, timeout=1.0) == 2
    finally:
        worker.close(2)


async def test_a_stream_is_throttled_by_its_consumer_and_closed_in_its_thread_when_left() -> None:
    worker = Worker("wk-gen")
    worker.start()
    produced: list[int] = []
    closed_on: list[str] = []

    def produce() -> Iterator[int]:
        try:
            for i in range(1000):
                produced.append(i)
                yield i
        finally:
            closed_on.append(threading.current_thread().name)

    try:
        got = []
        async for item in worker.stream(produce, buffer=4):
            got.append(item)
            if len(got) == 3:
                await asyncio.sleep(0.1)  # a slow consumer: the producer waits for room
                assert len(produced) <= 3 + 4 + 1
            if len(got) == 5:
                break
        assert await worker.run(lambda: closed_on) == ["wk-gen"]  # queued after the stream
        assert len(produced) < 20
    finally:
        worker.close(2)


async def test_a_stream_times_out_when_nothing_comes_and_errors_follow_the_items() -> None:
    worker = Worker("wk-gen2")
    worker.start()

    def stuck() -> Iterator[int]:
        yield 1
        time.sleep(0.3)
        yield 2

    def broken() -> Iterator[int]:
        yield 1
        raise RuntimeError("decoder broke")

    def no_generator() -> Iterator[int]:
        raise RuntimeError("no model")

    try:
        got = []
        with pytest.raises(TimeoutError):
            async for item in worker.stream(stuck, timeout=0.1):
                got.append(item)  # noqa: PERF401 - the loop must see the items before the error
        assert got == [1]
        got.clear()
        with pytest.raises(RuntimeError, match="decoder broke"):
            async for item in worker.stream(broken):
                got.append(item)  # noqa: PERF401 - as above
        assert got == [1]
        with pytest.raises(RuntimeError, match="no model"):
            async for _ in worker.stream(no_generator, timeout=5):
                pass
    finally:
        worker.close(2)


async def test_stop_ends_a_stream_waiting_for_a_consumer_and_says_it_was_cut() -> None:
    worker = Worker("wk-cut")
    worker.start()

    def endless() -> Iterator[int]:
        i = 0
        while True:
            yield i
            i += 1

    items = worker.stream(endless, buffer=2)
    try:
        assert await anext(items) == 0
        assert await worker.aclose(2)  # the producer was waiting for room: it gave up
        with pytest.raises(WorkerNotRunning, match="stopped during a stream"):
            async for _ in items:
                pass
    finally:
        await items.aclose()


async def test_aclose_waits_for_the_running_job_without_blocking_the_loop() -> None:
    worker = Worker("wk-close")
    worker.start()
    gaps: list[float] = []

    async def tick() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    try:
        job = asyncio.ensure_future(worker.run(time.sleep, 0.5))
        await asyncio.sleep(0.05)  # the job is running
        started = time.monotonic()
        assert await worker.aclose(5)
        joined_for = time.monotonic() - started
        await job
    finally:
        ticker.cancel()
    assert joined_for > 0.3  # it did wait for the job
    # A loop blocked by the join would show one gap as long as the join; on a loaded machine
    # single gaps may stretch, but not to most of the join, and the ticker kept ticking.
    assert len(gaps) >= 10
    assert max(gaps) < 0.75 * joined_for


async def test_no_work_after_close_and_no_restart() -> None:
    worker = Worker("wk-after")
    worker.start()
    assert await worker.aclose(2)
    assert not worker.running
    assert not worker.alive
    with pytest.raises(WorkerNotRunning, match="has been stopped"):
        await worker.run(lambda: 1)
    with pytest.raises(WorkerNotRunning, match="has been stopped"):
        worker.start()
    assert worker.close(0)  # closing again is fine


def test_join_gives_up_after_its_timeout_while_a_job_holds_the_thread() -> None:
    worker = Worker("wk-join")
    worker.start()
    release = threading.Event()
    held = worker.submit(release.wait)
    worker.stop()
    started = time.monotonic()
    assert not worker.join(0.1)
    assert time.monotonic() - started < 1.0
    assert worker.alive
    release.set()
    assert worker.join(2)
    assert held.result(0) is True


def test_queued_work_still_runs_after_stop() -> None:
    worker = Worker("wk-drain")
    worker.start()
    done = [worker.submit(lambda i=i: i * 2) for i in range(5)]
    assert worker.close(2)
    assert [future.result(0) for future in done] == [0, 2, 4, 6, 8]


def test_a_worker_never_started_closes_at_once() -> None:
    worker = Worker("wk-idle")
    assert worker.close(0)
    assert _named("wk-idle") == []


async def test_joining_plain_threads() -> None:
    release = threading.Event()
    thread = threading.Thread(target=release.wait, name="wk-plain", daemon=True)
    never = threading.Thread(target=print, name="wk-never")
    assert join_all([never], 0)  # never started: nothing to wait for
    thread.start()
    assert not join_all([thread], 0.05)
    assert not await ajoin_all([thread], 0.05)
    release.set()
    assert await ajoin_all([thread, never], 2)
