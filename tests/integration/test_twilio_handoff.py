"""A Twilio caller handed to a person (real uvicorn, real websockets, a fake of Twilio's REST API
on loopback, scripted engines): the call's instructions become `<Dial><Number url=...>`, and the
person who answers is first told, from that signed `url`, what the caller said."""

from __future__ import annotations

import asyncio
import contextlib
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from appliance.conversation.events import CallEnded, DtmfReceived, Event, Transfer
from appliance.telephony.twilio.messages import (
    Connected,
    Dtmf,
    Mark,
    Start,
    encode_from_twilio,
    parse_to_twilio,
)
from appliance.telephony.twilio.rest import TwilioCalls
from appliance.telephony.wavfile import Speak
from appliance.tools.transfer import transfer_tool
from tests.support.fake_twilio_api import FakeTwilioApi, fake_twilio_api
from tests.support.fakes import say, tool_call
from tests.support.twilio import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    PUBLIC_URL,
    Box,
    call_params,
    post_webhook,
    twilio_box,
)

OFFICE = "+15005550123"


@dataclass
class _Person:
    name: str
    role: str
    target: str


SAM = _Person("Sam Jones", "Owner", "+15005550177")


@contextlib.asynccontextmanager
async def _box_and_api(**options: object) -> AsyncIterator[tuple[Box, FakeTwilioApi]]:
    async with fake_twilio_api(ACCOUNT_SID, AUTH_TOKEN) as api:
        rest = TwilioCalls(ACCOUNT_SID, AUTH_TOKEN, api_base_url=api.url)
        try:
            tools = [transfer_tool([SAM], OFFICE)]
            async with twilio_box(rest=rest, tools=tools, **options) as box:  # type: ignore[arg-type]
                yield box, api
        finally:
            await rest.aclose()


def _dialled(api: FakeTwilioApi, call_sid: str) -> ET.Element:
    ((updated, form),) = api.updates
    assert updated == call_sid
    number = ET.fromstring(form["Twiml"]).find("Dial/Number")  # noqa: S314 - our own TwiML
    assert number is not None
    return number


async def _whisper(box: Box, url: str) -> str:
    """What the person hears: the signed request Twilio makes once they answer."""
    assert url.startswith(f"{PUBLIC_URL}/twilio/whisper/")
    params = call_params("CAperson", CallStatus="in-progress", Direction="outbound-dial")
    path = urlsplit(url).path
    assert (await post_webhook(box, path, params, signature="")).status_code == 403
    assert (await post_webhook(box, path + "x", params)).status_code == 404
    answer = await post_webhook(box, path, params)
    assert answer.status_code == 200
    said = ET.fromstring(answer.text).find("Say")  # noqa: S314 - the appliance under test wrote it
    assert said is not None and said.text is not None
    return said.text


async def test_a_caller_who_asks_for_a_person_is_put_through_and_the_person_hears_why() -> None:
    said = "I'll put you through to Sam Jones."
    replies = [[tool_call("transfer_to_person", '{"who": "Sam"}')], said]
    async with _box_and_api(replies=replies) as (box, api):
        caller = box.caller()
        call = asyncio.create_task(caller.call([Speak(say("help", "book"))]))
        await box.until(lambda: box.streams.active == 1)
        (call_sid,) = caller.traces
        api.live_calls.add(call_sid)
        report = await call
        assert report.ended == "transferred"
        assert [t.reply for t in report.turns] == [said]
        number = _dialled(api, call_sid)
        assert number.text == SAM.target
        whisper = await _whisper(box, str(number.get("url")))
    assert whisper.startswith("A call for Sam Jones from 1 5 0 0 5 5 5 0 0 0 1.")
    assert whisper.endswith('They said: "help book"')


async def _echo_marks(ws: ClientConnection, heard: asyncio.Event) -> None:
    """Play Twilio's part: every mark the box sends comes back as played."""
    sequence = 100
    with contextlib.suppress(ConnectionClosed):
        async for text in ws:
            heard.set()
            message = parse_to_twilio(text)
            if isinstance(message, Mark):
                sequence += 1
                await ws.send(encode_from_twilio(message, stream_sid="MZ0", sequence=sequence))


async def test_pressing_0_puts_a_twilio_caller_through() -> None:
    async with _box_and_api() as (box, api):
        call_sid = "CA" + "0" * 32
        api.live_calls.add(call_sid)
        events: list[Event] = []
        ended = asyncio.Event()

        def watch(event: Event) -> None:
            events.append(event)
            if isinstance(event, CallEnded):
                ended.set()

        box.observers.add(call_sid, watch)
        answer = await post_webhook(box, "/twilio/voice", call_params(call_sid))
        token = answer.text.split('value="')[1].split('"')[0]
        async with connect(box.ws_url()) as ws:
            for n, message in enumerate(
                [Connected(), Start("MZ0", call_sid, ACCOUNT_SID, {"token": token})], start=1
            ):
                await ws.send(encode_from_twilio(message, stream_sid="MZ0", sequence=n))
            greeting = asyncio.Event()
            echo = asyncio.create_task(_echo_marks(ws, greeting))
            await greeting.wait()  # the agent has started speaking: 0 cuts in
            await ws.send(encode_from_twilio(Dtmf("0"), stream_sid="MZ0", sequence=3))
            async with asyncio.timeout(20):
                await ended.wait()
            await echo
        (reason,) = [e.reason for e in events if isinstance(e, CallEnded)]
        assert reason == "transferred"
        assert [e.digit for e in events if isinstance(e, DtmfReceived)] == ["0"]
        (transfer,) = [e for e in events if isinstance(e, Transfer)]
        assert transfer.target == OFFICE
        number = _dialled(api, call_sid)
        assert number.text == OFFICE
        whisper = await _whisper(box, str(number.get("url")))
    assert whisper.startswith("A call for a member of staff from 1 5 0 0 5 5 5 0 0 0 1.")
    assert whisper.endswith("They have not said anything yet.")
