"""Hostile Twilio traffic on real uvicorn and real websockets, in virtual time: a replayed voice
webhook, a huge frame right after `start`, a stream that breaks the protocol. Each runs beside a
legitimate call, which must be answered and heard as if nothing happened."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from appliance.audio.frame import rms_dbfs
from appliance.harness.call import CallReport
from appliance.telephony.twilio.messages import Connected, Start, encode_from_twilio
from appliance.telephony.wavfile import HangUp, Speak
from tests.support.appliance_log import appliance_log
from tests.support.fakes import say
from tests.support.twilio import ACCOUNT_SID, Box, call_params, post_webhook, twilio_box
from tests.support.virtual_time import run_virtual


def _token_of(twiml: str) -> str:
    return twiml.split('value="')[1].split('"', maxsplit=1)[0]


async def _legit_call(box: Box) -> CallReport:
    return await box.caller().call([Speak(say("hello", "weather")), HangUp()])


def _heard_in_full(report: CallReport) -> bool:
    """The agent heard the caller, and the caller heard the agent's reply."""
    heard = [t.transcript for t in report.turns] == ["hello weather"]
    replied = any(rms_dbfs(frame) > -40 for frame in report.line.agent_audio)
    return report.ended == "caller hung up" and heard and replied


async def _open_stream(box: Box, call_sid: str, token: str, then: str) -> int | None:
    """A stream for `call_sid` that sends `connected`, `start` and then `then` at once; the close
    code the box sent."""
    async with connect(box.ws_url(), max_size=None) as ws:
        await ws.send(encode_from_twilio(Connected(), stream_sid="MZx", sequence=1))
        start = Start("MZx", call_sid, ACCOUNT_SID, {"token": token})
        await ws.send(encode_from_twilio(start, stream_sid="MZx", sequence=2))
        with contextlib.suppress(ConnectionClosed):
            await ws.send(then)
        with contextlib.suppress(ConnectionClosed, TimeoutError):
            async with asyncio.timeout(10):
                async for _ in ws:
                    pass
        return ws.close_code


def _run_beside_a_legit_call(attack: Callable[[Box], Awaitable[None]], **box: int) -> None:
    async def main() -> None:
        async with twilio_box(replies=["Fine, thanks."], **box) as served:
            await attack(served)
            assert _heard_in_full(await _legit_call(served))
            await served.until(lambda: served.admission.active == 0)

    run_virtual(main())


def test_a_replayed_voice_webhook_gets_no_second_token() -> None:
    async def attack(box: Box) -> None:
        first = await post_webhook(box, "/twilio/voice", call_params("CAreplay"))
        assert first.status_code == 200 and _token_of(first.text)
        replayed = await post_webhook(box, "/twilio/voice", call_params("CAreplay"))
        assert replayed.status_code == 409 and "token" not in replayed.text
        assert box.tokens.pending == 1
        # Once its stream has attached and ended, a replay still gets nothing.
        code = await _open_stream(box, "CAreplay", _token_of(first.text), "not json")
        assert code == 1008
        await box.until(lambda: box.tokens.pending == 0 and box.admission.active == 0)
        again = await post_webhook(box, "/twilio/voice", call_params("CAreplay"))
        assert again.status_code == 409
        assert box.metrics.twilio_refused.labels("replayed")._value.get() == 2

    _run_beside_a_legit_call(attack)


def test_a_huge_frame_right_after_start_frees_the_calls_place_at_once() -> None:
    async def attack(box: Box) -> None:
        response = await post_webhook(box, "/twilio/voice", call_params("CAbig"))
        code = await _open_stream(box, "CAbig", _token_of(response.text), "x" * 70_000)
        assert code == 1009  # message too big
        # The box takes one call: until the place is free, the next caller is turned away.
        await box.until(lambda: box.tokens.pending == 0 and box.admission.active == 0, 5.0)

    _run_beside_a_legit_call(attack, max_calls=1)


def test_a_protocol_error_is_logged_with_its_call() -> None:
    async def attack(box: Box) -> None:
        response = await post_webhook(box, "/twilio/voice", call_params("CAbroken"))
        assert await _open_stream(box, "CAbroken", _token_of(response.text), "{nope") == 1008

    with appliance_log() as log:
        _run_beside_a_legit_call(attack)
    ending = [line for line in log.getvalue().splitlines() if "ending the call" in line]
    assert len(ending) == 1, log.getvalue()
    assert "[call=CAbroken from=+15005550001]" in ending[0]


def test_a_replayed_webhook_holds_no_more_places_than_one_call() -> None:
    async def attack(box: Box) -> None:
        for _ in range(3):
            await post_webhook(box, "/twilio/voice", call_params("CAonce"))
        assert box.tokens.pending == 1  # one place held (until its TTL), not `replays`

    _run_beside_a_legit_call(attack, max_calls=2)
