"""Live session state in a real redis-server, and carrying on in process when Redis goes away."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.clock import LoopClock
from appliance.conversation.events import Event, TurnCompleted
from appliance.memory.session import RedisState, ResilientState
from appliance.observability.metrics import Metrics
from appliance.telephony.wavfile import HangUp, Speak
from tests.support.fakes import say
from tests.support.records import RecordsKit
from tests.support.redis_server import RedisServer


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    redis_server = RedisServer(tmp_path)
    redis_server.start()
    yield redis_server
    redis_server.kill()


def test_slots_live_in_redis_with_an_expiry_and_go_when_cleared(server: RedisServer) -> None:
    async def main() -> tuple[dict[str, str], dict[str, str]]:
        state = RedisState(server.url)
        await state.update("c1", {"caller": "+1555", "intent": "booking"})
        await state.update("c1", {"intent": "cancel", "pending_confirmation": "cancel friday"})
        found = await state.slots("c1")
        await state.clear("c1")
        gone = await state.slots("c1")
        await state.close()
        return found, gone

    found, gone = asyncio.run(main())
    assert found == {"caller": "+1555", "intent": "cancel", "pending_confirmation": "cancel friday"}
    assert gone == {}


def test_redis_going_away_mid_call_falls_back_to_in_process_and_the_call_goes_on(
    server: RedisServer, tmp_path: Path, models_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    seen_in_redis: list[dict[str, str]] = []
    metrics = Metrics()

    async def main() -> tuple[object, str, dict[str, str]]:
        clock = LoopClock()
        state = ResilientState(
            RedisState(server.url), now=clock.now, on_fallback=metrics.session_state_fallbacks.inc
        )
        kit = await RecordsKit(tmp_path, clock, replies=["Sunny.", "Noon."], state=state).open()

        def on_event(event: Event) -> None:
            if isinstance(event, TurnCompleted) and event.turn == 1:
                client = server.client()
                seen_in_redis.append(client.hgetall("tel3sis:call:call-1"))  # type: ignore[arg-type]
                client.close()
                server.kill()  # Redis dies in the middle of the call

        try:
            report = await kit.call(
                [Speak(say("weather")), Speak(say("time")), HangUp()], on_event=on_event
            )
            during = state.backend
            left = await state.slots("call-1")
        finally:
            kit.close()
            await state.close()
        return report, during, left

    with caplog.at_level(logging.WARNING):
        report, backend, left = asyncio.run(main())

    (slots,) = seen_in_redis
    assert slots["caller"] == "+15550100" and slots["turn"] == "1"
    assert report.ended == "caller hung up"  # type: ignore[attr-defined]
    turns = [e for e in report.events if isinstance(e, TurnCompleted)]  # type: ignore[attr-defined]
    assert [t.reply for t in turns] == ["Sunny.", "Noon."]
    assert backend == "in-process"
    assert "session state carries on in process" in caplog.text
    assert metrics.session_state_fallbacks._value.get() == 1
    assert left == {}  # cleared at the end, in process


def test_state_goes_back_to_redis_when_it_returns(server: RedisServer) -> None:
    async def main() -> tuple[str, str, dict[str, str]]:
        loop = asyncio.get_running_loop()
        state = ResilientState(RedisState(server.url), now=loop.time, retry_s=0.2)
        await state.update("c1", {"caller": "+1555"})
        server.kill()
        await state.update("c1", {"intent": "booking"})
        down = state.backend
        server.start()
        await asyncio.sleep(0.3)
        await state.update("c1", {"turn": "2"})
        up = state.backend
        client = server.client()
        in_redis: dict[str, str] = client.hgetall("tel3sis:call:c1")  # type: ignore[assignment]
        client.close()
        await state.close()
        return down, up, in_redis

    down, up, in_redis = asyncio.run(main())
    assert (down, up) == ("in-process", "redis")
    # What was written while Redis was away is there too (a restarted Redis had lost it all).
    assert in_redis == {"caller": "+1555", "intent": "booking", "turn": "2"}


def test_a_failing_redis_is_logged_without_its_password(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> str:
        loop = asyncio.get_running_loop()
        state = ResilientState(RedisState("redis://:s3cret-pw@127.0.0.1:1/0"), now=loop.time)
        await state.update("c1", {"caller": "+1555"})  # nothing listens on port 1
        await state.close()
        return state.backend

    with caplog.at_level(logging.WARNING):
        backend = asyncio.run(main())
    assert backend == "in-process"
    assert "Redis at 127.0.0.1:1/0 failed" in caplog.text
    assert "s3cret-pw" not in caplog.text
