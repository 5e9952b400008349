"""The offload helper and the fallback wrappers, with scripted engines."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import pytest

from appliance.clock import LoopClock
from appliance.conversation.ports import EngineError, TextDelta, Transcript
from appliance.engines.fallback import (
    Breaker,
    FallbackLanguageModel,
    FallbackSpeechToText,
    FallbackTextToSpeech,
    Option,
)
from appliance.engines.offload import EngineTimeout, Offloader
from appliance.observability.metrics import Metrics
from appliance.workers import WorkerNotRunning

# --- offload -----------------------------------------------------------------------------------


async def test_work_runs_on_the_engines_named_thread_not_the_loop() -> None:
    worker = Offloader("demo")
    worker.start()
    try:
        name = await worker.run(lambda: threading.current_thread().name)
        assert name == "engine-demo"
    finally:
        assert await worker.aclose(timeout=2)


async def test_an_engines_thread_starts_in_start_not_in_the_constructor() -> None:
    worker = Offloader("lazy")
    assert not any(t.name == "engine-lazy" for t in threading.enumerate())
    with pytest.raises(WorkerNotRunning, match="call start"):
        await worker.run(lambda: 1)
    worker.start()
    try:
        assert await worker.run(lambda: 1) == 1
    finally:
        assert await worker.aclose(2)
    with pytest.raises(WorkerNotRunning, match="stopped"):
        await worker.run(lambda: 1)


async def test_the_loop_keeps_ticking_while_an_engine_works() -> None:
    worker = Offloader("busy")
    worker.start()
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    try:
        await worker.run(time.sleep, 0.3)
    finally:
        ticker.cancel()
        await worker.aclose(2)
    assert ticks >= 15


async def test_a_slow_call_times_out_and_the_worker_recovers() -> None:
    metrics = Metrics()
    worker = Offloader("slow", timeout=0.1, metrics=metrics)
    worker.start()
    try:
        with pytest.raises(EngineTimeout, match=r"slow took longer than 0\.1 s"):
            await worker.run(time.sleep, 0.4)
        with pytest.raises(EngineTimeout):  # the timeout counts time queued behind the slow call
            await worker.run(lambda: 41)
        await asyncio.sleep(0.4)
        assert await worker.run(lambda: 42) == 42  # the slow call finished: the worker is free
    finally:
        await worker.aclose(2)
    count = metrics.registry.get_sample_value(
        "tel3sis_engine_call_seconds_count", {"engine": "slow"}
    )
    assert count == 3


async def test_the_queue_depth_of_each_engine_is_a_metric() -> None:
    metrics = Metrics()
    worker = Offloader("busy", metrics=metrics)
    worker.start()
    release = threading.Event()
    started = threading.Event()

    def hold() -> None:
        started.set()
        release.wait(5.0)

    def depth() -> float | None:
        return metrics.registry.get_sample_value("tel3sis_engine_queue_depth", {"engine": "busy"})

    try:
        running = asyncio.create_task(worker.run(hold))
        await asyncio.to_thread(started.wait, 5.0)
        waiting = [asyncio.create_task(worker.run(lambda: None)) for _ in range(2)]
        await asyncio.sleep(0)  # the two tasks hand their jobs to the worker
        assert depth() == 2
        release.set()
        await asyncio.gather(running, *waiting)
        assert depth() == 0
    finally:
        release.set()
        await worker.aclose(2)


async def test_errors_cross_back_to_the_caller() -> None:
    worker = Offloader("err")
    worker.start()

    def fail() -> None:
        raise ValueError("bad input")

    try:
        with pytest.raises(ValueError, match="bad input"):
            await worker.run(fail)
    finally:
        await worker.aclose(2)


async def test_a_stream_is_throttled_by_its_consumer_and_stops_early() -> None:
    worker = Offloader("gen")
    worker.start()
    produced: list[int] = []
    closed = threading.Event()

    def produce() -> Iterator[int]:
        try:
            for i in range(1000):
                produced.append(i)
                yield i
        finally:
            closed.set()

    try:
        got = []
        async for item in worker.stream(produce, buffer=4):
            got.append(item)
            if len(got) == 3:
                await asyncio.sleep(0.1)  # a slow consumer: the producer must wait
                assert len(produced) <= 3 + 4 + 1
            if len(got) == 5:
                break
        assert await asyncio.to_thread(closed.wait, 2)  # the generator was closed in its thread
        assert len(produced) < 20
    finally:
        await worker.aclose(2)


async def test_stream_errors_arrive_after_the_items_before_them() -> None:
    worker = Offloader("gen-err")
    worker.start()

    def produce() -> Iterator[int]:
        yield 1
        raise EngineError("decoder broke")

    got = []
    try:
        with pytest.raises(EngineError, match="decoder broke"):
            async for item in worker.stream(produce):
                got.append(item)  # noqa: PERF401 - the loop must see the items before the error
    finally:
        await worker.aclose(2)
    assert got == [1]


def test_close_joins_the_thread_and_refuses_new_work() -> None:
    worker = Offloader("closing")
    worker.start()
    assert worker.close(timeout=2)
    with pytest.raises(WorkerNotRunning, match="has been stopped"):
        asyncio.run(worker.run(lambda: 1))


# --- fallback ----------------------------------------------------------------------------------


@dataclass
class _STT:
    name: str
    fail: bool = False
    delay: float = 0.0
    calls: int = 0

    async def transcribe(self, pcm: bytes) -> Transcript:
        self.calls += 1
        await asyncio.sleep(self.delay)
        if self.fail:
            raise EngineError(f"{self.name} is broken")
        return Transcript(text=f"from {self.name}", confidence=1.0, engine=self.name)


@dataclass
class _Streamer:
    name: str
    items: list[str] = field(default_factory=lambda: ["a", "b"])
    first_delay: float = 0.0
    fail_first: bool = False
    fail_after_first: bool = False

    def stream(self, messages: object, tools: object = ()) -> AsyncIterator[TextDelta]:
        return self._gen()

    def synthesize(self, text: str) -> AsyncIterator[bytes]:
        async def gen() -> AsyncIterator[bytes]:
            async for delta in self._gen():
                yield delta.text.encode()

        return gen()

    async def _gen(self) -> AsyncIterator[TextDelta]:
        await asyncio.sleep(self.first_delay)
        if self.fail_first:
            raise EngineError("no")
        for i, item in enumerate(self.items):
            if i == 1 and self.fail_after_first:
                raise EngineError("mid-stream")
            yield TextDelta(f"{self.name}:{item}")


async def test_stt_falls_back_when_the_first_engine_fails_and_counts_it() -> None:
    metrics = Metrics()
    broken, good = _STT("local", fail=True), _STT("cloud")
    chain = FallbackSpeechToText([Option(broken), Option(good)], metrics=metrics)
    assert (await chain.transcribe(b"")).text == "from cloud"
    assert chain.active == "cloud"
    sample = metrics.registry.get_sample_value(
        "tel3sis_engine_fallbacks_total", {"port": "stt", "failed": "local", "used": "cloud"}
    )
    assert sample == 1


async def test_a_slow_engine_yields_to_the_next_past_its_budget() -> None:
    slow, fast = _STT("local", delay=1.0), _STT("lan")
    chain = FallbackSpeechToText([Option(slow, budget_s=0.05), Option(fast)])
    started = time.perf_counter()
    assert (await chain.transcribe(b"")).engine == "lan"
    assert time.perf_counter() - started < 0.5


async def test_the_breaker_skips_a_failing_engine_then_tries_it_again() -> None:
    clock = LoopClock()
    broken, good = _STT("local", fail=True), _STT("cloud")
    chain = FallbackSpeechToText(
        [Option(broken, breaker=Breaker(threshold=2, cooldown_s=0.2, now=clock.now)), Option(good)]
    )
    for _ in range(4):
        await chain.transcribe(b"")
    assert broken.calls == 2  # open after two failures: skipped on the next two
    await asyncio.sleep(0.25)
    broken.fail = False
    assert (await chain.transcribe(b"")).engine == "local"  # half-open trial succeeds
    assert chain.active == "local"


async def test_the_last_engine_left_is_given_the_time_it_needs() -> None:
    slow = _STT("only", delay=0.2)
    chain = FallbackSpeechToText([Option(slow, budget_s=0.05)])
    assert (await chain.transcribe(b"")).engine == "only"


async def test_every_engine_failing_is_one_clear_error() -> None:
    chain = FallbackSpeechToText([Option(_STT("a", fail=True)), Option(_STT("b", fail=True))])
    with pytest.raises(EngineError, match=r"every stt engine failed: a: .*b is broken"):
        await chain.transcribe(b"")


async def test_a_stream_falls_back_only_before_its_first_item() -> None:
    chain = FallbackLanguageModel(
        [Option(_Streamer("local", first_delay=0.5), budget_s=0.05), Option(_Streamer("cloud"))]  # type: ignore[arg-type]
    )
    assert [d.text async for d in chain.stream([])] == ["cloud:a", "cloud:b"]  # type: ignore[union-attr]

    started = FallbackLanguageModel(
        [Option(_Streamer("local", fail_after_first=True)), Option(_Streamer("cloud"))]  # type: ignore[arg-type]
    )
    got = []
    with pytest.raises(EngineError, match="mid-stream"):
        async for delta in started.stream([]):
            got.append(delta)  # noqa: PERF401 - the loop must see the items before the error
    assert got == [TextDelta("local:a")]  # already heard: no switching engines mid-sentence


async def test_tts_fallback_implements_the_same_port() -> None:
    chain = FallbackTextToSpeech(
        [Option(_Streamer("piper", fail_first=True)), Option(_Streamer("cloud"))]
    )  # type: ignore[arg-type]
    assert [c async for c in chain.synthesize("hi")] == [b"cloud:a", b"cloud:b"]
    assert chain.name == "piper+cloud"
