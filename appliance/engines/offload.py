"""Run an engine's blocking calls on its own named worker thread, never on the event loop.

CTranslate2, onnxruntime, llama.cpp and ggml are not re-entrant per model instance, and on two
cores there is nothing to gain from running one model twice at once: each engine gets one worker
thread (by default, `engine-<name>`) and its calls queue for it. The thread starts in `start()`
(an engine's `load()` calls it), never in the constructor; `aclose()` stops it without blocking
the loop. The threads themselves are an `appliance.workers.Worker`; this adds the engine's timeout
and its duration metric.

`run` takes a timeout, counted from the request (time queued behind other calls included: the
caller is waiting either way). A timed-out call cannot be killed (C code holds the thread), so
the caller gets `EngineTimeout` at once while the thread finishes in the background and the next
call waits for it. `stream` runs a generator on the worker and hands its items over a bounded
queue: the consumer's pace throttles the producer, and a consumer that stops early (barge-in)
stops the generator at its next item, in its thread.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import AsyncGenerator, Callable, Iterator
from typing import ParamSpec, TypeVar

from appliance.observability.metrics import Metrics
from appliance.workers import Worker

__all__ = ["EngineTimeout", "Offloader"]

P = ParamSpec("P")
T = TypeVar("T")


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
        self._worker = Worker(f"engine-{name}", threads=threads)
        if metrics is not None:
            # Read when scraped: a queue that builds up is the sign of too many calls at once.
            metrics.engine_queue_depth.labels(name).set_function(lambda: self.queued)

    def start(self) -> None:
        """Start the worker thread(s); again does nothing."""
        self._worker.start()

    @property
    def queued(self) -> int:
        """Calls waiting for the worker behind the one it runs."""
        return self._worker.queued

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `fn` on the worker; raise `EngineTimeout` past the timeout."""
        started = time.perf_counter()
        try:
            return await self._worker.run(
                functools.partial(fn, *args, **kwargs), timeout=self._timeout
            )
        except TimeoutError as exc:
            raise EngineTimeout(f"{self.name} took longer than {self._timeout:.1f} s") from exc
        finally:
            self._observe(started)

    async def stream(
        self, produce: Callable[[], Iterator[T]], *, buffer: int = 8
    ) -> AsyncGenerator[T, None]:
        """Iterate `produce()` on the worker, `buffer` items ahead of the consumer at most."""
        started = time.perf_counter()
        try:
            items = self._worker.stream(produce, buffer=buffer, timeout=self._timeout)
            # aclosing: a consumer that stops early stops the worker's stream now, not at GC.
            async with contextlib.aclosing(items):
                async for item in items:
                    yield item
        except TimeoutError as exc:
            raise EngineTimeout(f"{self.name} produced nothing for {self._timeout:.1f} s") from exc
        finally:
            self._observe(started)

    async def aclose(self, timeout: float = 5.0) -> bool:  # noqa: ASYNC109 - bounds the join
        """Stop taking work; wait up to `timeout` without blocking the loop; True once exited."""
        return await self._worker.aclose(timeout)

    def close(self, timeout: float = 5.0) -> bool:
        """`aclose` for code that is not async: this blocks up to `timeout`."""
        return self._worker.close(timeout)

    def _observe(self, started: float) -> None:
        if self._metrics is not None:
            self._metrics.engine_seconds.labels(self.name).observe(time.perf_counter() - started)
