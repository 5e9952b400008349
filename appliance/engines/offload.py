"""Run an engine's blocking calls on its own named worker thread, never on the event loop.

CTranslate2, onnxruntime, llama.cpp and ggml are not re-entrant per model instance, and on two
cores there is nothing to gain from running one model twice at once: each engine gets one worker
thread (by default) and its calls queue for it. `run` takes a timeout, counted from the request
(time queued behind other calls included: the caller is waiting either way). A timed-out call
cannot be killed (C code holds the thread), so the caller gets `EngineTimeout` at once while the
thread finishes in the background and the next call waits for it. `stream` runs a generator on
the worker and hands its items over a bounded queue: the consumer's pace throttles the producer,
and a consumer that stops early (barge-in) stops the generator at its next item, in its thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future
from typing import Final, ParamSpec, TypeVar

from appliance.observability.metrics import Metrics

__all__ = ["EngineTimeout", "Offloader"]

P = ParamSpec("P")
T = TypeVar("T")

_DONE: Final = object()


class EngineTimeout(TimeoutError):
    """An engine call took longer than its timeout."""


class Offloader:
    """One engine's worker thread(s), with a timeout per call and a duration metric."""

    def __init__(
        self,
        name: str,
        *,
        threads: int = 1,
        timeout: float | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.name = name
        self._timeout = timeout
        self._metrics = metrics
        self._jobs: queue.SimpleQueue[tuple[Callable[[], object], Future[object]] | None] = (
            queue.SimpleQueue()
        )
        self._threads = [
            threading.Thread(target=self._serve, name=f"engine-{name}-{i}", daemon=True)
            for i in range(threads)
        ]
        for thread in self._threads:
            thread.start()
        self._closed = False

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            fn, future = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except BaseException as exc:
                future.set_exception(exc)

    def _submit(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        if self._closed:
            raise RuntimeError(f"engine {self.name} is shut down")
        future: Future[T] = Future()
        self._jobs.put((fn, future))  # type: ignore[arg-type]  # the queue holds jobs of every T
        return asyncio.wrap_future(future)

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `fn` on the worker; raise `EngineTimeout` past the timeout."""
        started = time.perf_counter()
        future = self._submit(functools.partial(fn, *args, **kwargs))
        try:
            async with asyncio.timeout(self._timeout):
                return await future
        except TimeoutError as exc:
            raise EngineTimeout(f"{self.name} took longer than {self._timeout:.1f} s") from exc
        finally:
            if self._metrics is not None:
                self._metrics.engine_seconds.labels(self.name).observe(
                    time.perf_counter() - started
                )

    async def stream(
        self, produce: Callable[[], Iterator[T]], *, buffer: int = 8
    ) -> AsyncIterator[T]:
        """Iterate `produce()` on the worker, `buffer` items ahead of the consumer at most."""
        loop = asyncio.get_running_loop()
        items_ready: asyncio.Queue[object] = asyncio.Queue()
        credits = threading.Semaphore(buffer)
        stop = threading.Event()

        def hand_over(item: object) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody is listening
                loop.call_soon_threadsafe(items_ready.put_nowait, item)

        def work() -> None:
            items = produce()
            try:
                for item in items:
                    while not credits.acquire(timeout=0.05):
                        if stop.is_set():
                            return
                    if stop.is_set():
                        return
                    hand_over(item)
            except BaseException as exc:
                hand_over(exc)
            finally:
                close = getattr(items, "close", None)
                if close is not None:
                    close()
                hand_over(_DONE)

        started = time.perf_counter()
        worker = self._submit(work)
        try:
            while True:
                async with asyncio.timeout(self._timeout):
                    item = await items_ready.get()
                if item is _DONE:
                    break
                if isinstance(item, BaseException):
                    raise item
                credits.release()
                yield item  # type: ignore[misc]  # items other than the sentinels are T
        except TimeoutError as exc:
            raise EngineTimeout(f"{self.name} produced nothing for {self._timeout:.1f} s") from exc
        finally:
            stop.set()
            worker.add_done_callback(
                lambda f: f.exception()
            )  # collected; failures were handed over
            if self._metrics is not None:
                self._metrics.engine_seconds.labels(self.name).observe(
                    time.perf_counter() - started
                )

    def close(self, timeout: float = 5.0) -> bool:
        """Stop taking work and wait up to `timeout` for the worker; True when it has exited."""
        if not self._closed:
            self._closed = True
            for _ in self._threads:
                self._jobs.put(None)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in self._threads)
