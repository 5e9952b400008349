"""Media Streams calls on real uvicorn and real websockets, scripted engines, in virtual time.

The virtual-time loop polls the real sockets and jumps the clock only while every task waits on
a timer, so these calls keep Twilio's 20 ms pacing exactly and run in a fraction of a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from appliance.audio.frame import rms_dbfs
from appliance.audio.g711 import ulaw_decode
from appliance.conversation.events import CallEnded, Event, ReplyInterrupted
from appliance.conversation.heard import Spoken, split_heard
from appliance.harness.twilio import TwilioTrace
from appliance.telephony.twilio.messages import (
    Connected,
    Dtmf,
    Media,
    Start,
    Stop,
    encode_from_twilio,
)
from appliance.telephony.wavfile import HangUp, Speak
from tests.support.fakes import say
from tests.support.twilio import ACCOUNT_SID, Box, call_params, post_webhook, twilio_box
from tests.support.virtual_time import run_virtual

REPLY = "One two three four. Five six seven eight. Nine ten eleven twelve. Thirteen fourteen."


def _runs(trace: TwilioTrace, generation: str) -> tuple[list[int], set[int]]:
    """Start positions of the voiced runs (sentences) sent in `generation`, and every position."""
    starts: list[int] = []
    positions: set[int] = set()
    quiet = 2
    for name, audio in trace.marked:
        gen, _, pos = name.partition(".")
        if gen != generation:
            continue
        position = int(pos)
        positions.add(position)
        loud = rms_dbfs(ulaw_decode(audio)) > -40 if audio else False
        if loud and quiet >= 2:
            starts.append(position)
        quiet = 0 if loud else quiet + 1
    return starts, positions


def test_barge_in_sends_clear_within_150_ms_and_keeps_only_marked_text() -> None:
    async def main() -> None:
        async with twilio_box(replies=[REPLY, "Okay."]) as box:
            caller = box.caller()
            report = await caller.call(
                [
                    Speak(say("weather")),
                    Speak(say("paris", "more"), after="agent-start", offset_ms=1500),
                    HangUp(),
                ]
            )
            (trace,) = caller.traces.values()
            assert trace.started_at is not None
            voice = next(e for e in report.timeline if e.what == "caller-voice" and e.step == 1)
            onset = trace.started_at + voice.at_ms / 1000
            clears = [t - onset for t in trace.clears if t >= onset]
            assert clears, "no clear after the caller cut in"
            assert 0 < clears[0] <= 0.150

            # Positions and sentences read off the wire: each mark names the frame before it.
            starts, sent = _runs(trace, "0")
            greeting_end = starts[1]
            played = [int(n.partition(".")[2]) for n in trace.played_marks if n.startswith("0.")]
            heard_until = max(played) + 1
            assert heard_until < max(sent) + 1, "everything sent was heard: no barge-in"
            sentences = [s.strip() + "." for s in REPLY.split(".") if s.strip()]
            bounds = [*starts[1:], max(sent) + 1]
            spans = [
                Spoken(text, bounds[i], bounds[i + 1])
                for i, text in enumerate(sentences[: len(bounds) - 1])
            ]
            assert greeting_end == spans[0].start
            expected, _ = split_heard(spans, heard_until)
            assert expected and expected != REPLY

            (interrupted,) = [e for e in report.events if isinstance(e, ReplyInterrupted)]
            assert interrupted.heard == expected
            history = [m.content for m in box.sessions[0].history if m.role == "assistant"]
            assert history == ["Hello there.", expected + " ...", "Okay."]
            assert report.ended == "caller hung up"

    run_virtual(main())


def test_the_agent_hanging_up_closes_the_stream() -> None:
    async def main() -> None:
        async with twilio_box() as box:
            caller = box.caller()
            report = await caller.call([Speak(say("hello"))])  # then silence, never hangs up
            (trace,) = caller.traces.values()
            assert report.ended == "no input"
            assert trace.close_code == 1000
            assert box.streams.active == 0 and box.admission.active == 0

    run_virtual(main())


def test_stopping_the_server_hangs_up_the_calls_it_carries() -> None:
    async def main() -> None:
        box_cm = twilio_box()
        box = await box_cm.__aenter__()
        caller = box.caller()
        call = asyncio.create_task(caller.call([Speak(say("hello"))]))
        await box.until(lambda: box.streams.active == 1)
        await asyncio.sleep(1.0)
        await box_cm.__aexit__(None, None, None)
        report = await call
        (trace,) = caller.traces.values()
        assert trace.close_code == 1000
        assert box.streams.active == 0 and box.admission.active == 0
        assert any(isinstance(e, CallEnded) for e in report.events)

    run_virtual(main())


# --- malformed traffic ----------------------------------------------------------------------


async def _send(ws: ClientConnection, message: Any, sequence: int) -> None:
    await ws.send(encode_from_twilio(message, stream_sid="MZbad", sequence=sequence))


Fault = Callable[[ClientConnection], Awaitable[None]]


async def _non_json(ws: ClientConnection) -> None:
    await ws.send("this is not { json")


async def _unknown_event(ws: ClientConnection) -> None:
    await ws.send('{"event": "teleport", "streamSid": "MZbad", "sequenceNumber": "9"}')


async def _bad_base64(ws: ClientConnection) -> None:
    await ws.send('{"event": "media", "media": {"payload": "%%%not-base64%%%"}}')


async def _huge_frame(ws: ClientConnection) -> None:
    await ws.send('{"event": "media", "media": {"payload": "' + "A" * (1 << 20) + '"}}')


async def _binary(ws: ClientConnection) -> None:
    await ws.send(b"\x00\x01\x02")


async def _json_array(ws: ClientConnection) -> None:
    await ws.send("[1, 2, 3]")


async def _second_start(ws: ClientConnection) -> None:
    await _send(ws, Start("MZbad", "CAbad", ACCOUNT_SID, {}), 9)


async def _abrupt_disconnect(ws: ClientConnection) -> None:
    ws.transport.abort()  # no close frame, no stop: the TCP connection just goes


FAULTS: dict[str, tuple[Fault, bool]] = {
    # name: (what the client does after a valid start, whether a session starts first)
    "non-json": (_non_json, True),
    "unknown-event": (_unknown_event, True),
    "bad-base64": (_bad_base64, True),
    "1-MB-frame": (_huge_frame, True),
    "binary-frame": (_binary, True),
    "json-array": (_json_array, True),
    "second-start": (_second_start, True),
    "abrupt-disconnect": (_abrupt_disconnect, True),
}


async def _bad_call(box: Box, fault: Fault, *, start: bool) -> int | None:
    """One stream that misbehaves; returns the close code the box sent (None: no close frame)."""
    response = await post_webhook(box, "/twilio/voice", call_params("CAbad"))
    token = response.text.split('value="')[1].split('"')[0]
    async with connect(box.ws_url(), max_size=None) as ws:
        await _send(ws, Connected(), 1)
        if start:
            await _send(ws, Start("MZbad", "CAbad", ACCOUNT_SID, {"token": token}), 2)
            for n in range(10):
                await _send(ws, Media(b"\xff" * 160, chunk=n + 1, timestamp_ms=n * 20), 3 + n)
                await asyncio.sleep(0.02)
        with contextlib.suppress(ConnectionClosed):
            await fault(ws)
        with contextlib.suppress(ConnectionClosed, TimeoutError):
            async with asyncio.timeout(10):
                async for _ in ws:
                    pass
        return ws.close_code


async def _media_before_start(ws: ClientConnection) -> None:
    await _send(ws, Media(b"\xff" * 160, chunk=1), 2)


@pytest.mark.parametrize("name", [*FAULTS, "media-before-start"])
def test_malformed_traffic_ends_that_call_cleanly_and_others_go_on(name: str) -> None:
    fault, start = FAULTS.get(name, (_media_before_start, False))

    async def main() -> None:
        async with twilio_box(replies=["Fine, thanks."]) as box:
            await asyncio.sleep(0.5)
            tasks_before = len(asyncio.all_tasks())
            ended: list[Event] = []
            box.observers.add("CAbad", ended.append)
            good_caller = box.caller()
            good = asyncio.create_task(good_caller.call([Speak(say("hello", "weather")), HangUp()]))
            await asyncio.sleep(0.3)
            code = await _bad_call(box, fault, start=start)
            report = await good
            await asyncio.sleep(1.0)  # let uvicorn finish with both connections
            assert report.ended == "caller hung up"
            assert [t.transcript for t in report.turns] == ["hello weather"]
            if name == "abrupt-disconnect":
                assert code is None or code == 1006
            elif name == "1-MB-frame":
                assert code == 1009  # message too big
            else:
                assert code == 1008
            assert any(isinstance(e, CallEnded) for e in ended) == start
            assert box.streams.active == 0 and box.admission.active == 0
            assert len(asyncio.all_tasks()) == tasks_before

    run_virtual(main())


def test_dtmf_is_read_and_the_call_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        async with twilio_box() as box:
            response = await post_webhook(box, "/twilio/voice", call_params("CAdtmf"))
            token = response.text.split('value="')[1].split('"')[0]
            async with connect(box.ws_url()) as ws:
                await _send(ws, Connected(), 1)
                await _send(ws, Start("MZd", "CAdtmf", ACCOUNT_SID, {"token": token}), 2)
                await _send(ws, Dtmf("5"), 3)
                await _send(ws, Dtmf("#"), 4)
                for n in range(20):
                    await _send(ws, Media(b"\xff" * 160, chunk=n + 1, timestamp_ms=n * 20), 5 + n)
                    await asyncio.sleep(0.02)
                assert box.streams.active == 1
                await _send(ws, Stop("CAdtmf", ACCOUNT_SID), 30)
            await asyncio.sleep(0.5)
            assert box.streams.active == 0

    with caplog.at_level(logging.INFO, logger="appliance.telephony.twilio.line"):
        run_virtual(main())
    pressed = [r.getMessage() for r in caplog.records if "pressed" in r.getMessage()]
    assert pressed == ["the caller pressed 5", "the caller pressed #"]
