"""Worker threads for blocking work, so that the event loop only ever awaits it.

A `Worker` is one named thread (or N, sharing one queue) that runs jobs in the order they were
given. Its life is explicit: the constructor starts nothing; `start()` starts the threads
(calling it again does nothing); work given before `start()` or after `stop()` raises
`WorkerNotRunning` at once rather than starting threads behind the caller's back, so a missing
`start()` shows up where it is missing. `stop()` is the stop signal: no new work is taken, the
work already queued still runs (a database commits what it was given), then the threads exit.
`join(timeout)` waits for that from a plain thread; `aclose(timeout)` waits for it from a
coroutine without blocking the loop; `close(timeout)` is `stop()` and `join()` for code that is
not async (atexit, a synchronous test).

A job that outlives its timeout cannot be killed (C code holds the thread): the caller gets
`TimeoutError` at once, the job finishes in the background, and later jobs wait behind it. A job
still queued when its caller gives up is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator
from concurrent.futures import Future
from typing import Final, TypeVar, TypeVarTuple

__all__ = ["Worker", "WorkerNotRunning", "ajoin_all", "join_all"]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

_DONE: Final = object()
_STOP_POLL_S: Final = 0.05
"""Seconds a stream's producer waits for room before it looks at the stop signals again."""

_Job = tuple[Callable[[], object], Future[object]]


class WorkerNotRunning(RuntimeError):
    """Work was given to a worker that has not been started, or has been stopped."""


def join_all(threads: Iterable[threading.Thread], timeout: float) -> bool:
    """Wait up to `timeout` seconds in all for `threads` to end; True when every one has."""
    threads = list(threads)
    deadline = time.monotonic() + timeout
    for thread in threads:
        if thread.ident is not None:  # never started: nothing to wait for
            thread.join(max(0.0, deadline - time.monotonic()))
    return not any(thread.is_alive() for thread in threads)


async def ajoin_all(
    threads: Iterable[threading.Thread],
    timeout: float,  # noqa: ASYNC109 - bounds the join, which the result reports; never raises
) -> bool:
    """`join_all` from a coroutine: the waiting happens on a helper thread, not the loop."""
    threads = [thread for thread in threads if thread.is_alive()]
    if not threads:
        return True
    return await asyncio.to_thread(join_all, threads, timeout)


class Worker:
    """Named threads that run blocking jobs from one queue, in order (see the module docstring)."""

    def __init__(self, name: str, *, threads: int = 1) -> None:
        """`name` names the thread (`name-0`, `name-1`, ... when there are several)."""
        if threads < 1:
            raise ValueError(f"a worker needs at least one thread, not {threads}")
        self.name = name
        self._count = threads
        # Unbounded, and that is the policy: callers await their jobs, so each holds at most
        # one job here (or a stream's one), and a stuck job makes callers time out, not pile up.
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        # Taken by start, stop and submit, so that no job lands behind the threads' last look.
        self._lock = threading.Lock()

    @property
    def thread_names(self) -> list[str]:
        """What the threads are (or will be) called."""
        if self._count == 1:
            return [self.name]
        return [f"{self.name}-{i}" for i in range(self._count)]

    @property
    def running(self) -> bool:
        """Started and not stopped: work given now will run."""
        return bool(self._threads) and not self._stopping.is_set()

    @property
    def queued(self) -> int:
        """Jobs given and not yet begun (what the status page shows as waiting)."""
        return 0 if self._stopping.is_set() else self._jobs.qsize()

    @property
    def alive(self) -> bool:
        """Whether any of the threads is still running (after `stop`, finishing its queue)."""
        return any(thread.is_alive() for thread in self._threads)

    def start(self) -> None:
        """Start the threads; a second call does nothing. A stopped worker does not restart."""
        with self._lock:
            if self._stopping.is_set():
                raise WorkerNotRunning(f"worker {self.name} has been stopped; make a new one")
            if self._threads:
                return
            self._threads = [
                threading.Thread(target=self._serve, name=name, daemon=True)
                for name in self.thread_names
            ]
            for thread in self._threads:
                thread.start()

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        """Queue `fn()`; its future completes on the worker (cancel it to drop it unstarted)."""
        future: Future[T] = Future()
        with self._lock:
            if not self._threads:
                raise WorkerNotRunning(f"worker {self.name} is not started: call start() first")
            if self._stopping.is_set():
                raise WorkerNotRunning(f"worker {self.name} has been stopped")
            self._jobs.put((fn, future))  # type: ignore[arg-type]  # the queue holds every T
        return future

    async def run(
        self,
        fn: Callable[[*Ts], T],
        *args: *Ts,
        timeout: float | None = None,  # noqa: ASYNC109 - the job's, which outlives it
    ) -> T:
        """`fn(*args)` on the worker; `TimeoutError` once `timeout` seconds (queueing included)
        have passed, while the job, if it has begun, finishes in the background."""
        future = asyncio.wrap_future(self.submit(lambda: fn(*args)))
        async with asyncio.timeout(timeout):
            return await future

    async def stream(
        self,
        produce: Callable[[], Iterator[T]],
        *,
        buffer: int = 8,
        timeout: float | None = None,  # noqa: ASYNC109 - for each item, not the whole stream
    ) -> AsyncGenerator[T, None]:
        """Iterate `produce()` on the worker, at most `buffer` items ahead of the consumer.

        The generator is created, advanced and closed on the worker. A consumer that stops early
        (or is cancelled) stops it before its next item. `stop()` ends one that waits for a slow
        consumer with `WorkerNotRunning` (so that the loop's end cannot leave a producer waiting
        forever). `TimeoutError` when no item comes for `timeout` seconds. An error in `produce`
        or the generator arrives after the items produced before it.
        """
        loop = asyncio.get_running_loop()
        # Bounded by the credits: at most `buffer` items, then an error or the end marker.
        ready: asyncio.Queue[object] = asyncio.Queue()
        credits = threading.Semaphore(buffer)
        consumer_gone = threading.Event()

        def hand_over(item: object) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody is listening
                loop.call_soon_threadsafe(ready.put_nowait, item)

        def wanted() -> bool:
            """Wait for room for one more item; False when nobody wants it any more."""
            while not credits.acquire(timeout=_STOP_POLL_S):
                if consumer_gone.is_set():
                    return False
                if self._stopping.is_set():  # cut short: say so, lest it pass for the end
                    raise WorkerNotRunning(f"worker {self.name} stopped during a stream")
            return not consumer_gone.is_set()

        def feed() -> None:
            items = produce()
            try:
                for item in items:
                    if not wanted():
                        return
                    hand_over(item)
            finally:
                close = getattr(items, "close", None)
                if close is not None:
                    close()

        def work() -> None:
            try:
                feed()
            except BaseException as exc:
                hand_over(exc)
            finally:
                hand_over(_DONE)  # always, or the consumer would wait for ever

        job = self.submit(work)
        try:
            while True:
                async with asyncio.timeout(timeout):
                    item = await ready.get()
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    raise item
                credits.release()
                yield item  # type: ignore[misc]  # items other than the markers are T
        finally:
            consumer_gone.set()
            job.cancel()  # still queued: it never starts; running: `wanted` stops it

    def stop(self) -> None:
        """The stop signal: take no new work; the queued work runs, then the threads exit."""
        with self._lock:
            if self._stopping.is_set():
                return
            self._stopping.set()
            for _ in self._threads:
                self._jobs.put(None)

    def join(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the threads to exit; True when they have."""
        return join_all(self._threads, timeout)

    async def aclose(self, timeout: float = 5.0) -> bool:  # noqa: ASYNC109 - as ajoin_all
        """`stop`, then wait up to `timeout` seconds without blocking the loop; True once done."""
        self.stop()
        return await ajoin_all(self._threads, timeout)

    def close(self, timeout: float = 5.0) -> bool:
        """`stop`, then `join(timeout)`: for code that is not async (this blocks)."""
        self.stop()
        return self.join(timeout)

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            fn, future = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except BaseException as exc:
                future.set_exception(exc)
