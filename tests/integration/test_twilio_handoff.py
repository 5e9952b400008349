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

from appliance.audio.g711 import ulaw_encode
from appliance.audio.halfband import HalfBandResampler
from appliance.conversation.events import (
    CallEnded,
    DtmfReceived,
    Event,
    MessageTaken,
    PhraseSpoken,
    Transfer,
    TransferFailed,
)
from appliance.conversation.handoff import not_answering
from appliance.telephony.twilio.messages import (
    Connected,
    Dtmf,
    Mark,
    Media,
    Start,
    Stop,
    encode_from_twilio,
    parse_to_twilio,
)
from appliance.telephony.twilio.rest import TwilioCalls
from appliance.telephony.wavfile import Speak
from appliance.tools.transfer import transfer_tool
from tests.support.fake_twilio_api import FakeTwilioApi, fake_twilio_api
from tests.support.fakes import quiet, say, tool_call
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


class _Watch:
    """Every event of the calls on one CallSid (a caller back from a hand-off is a new leg)."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.changed = asyncio.Event()

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        self.changed.set()

    def of(self, kind: type) -> list:  # type: ignore[type-arg]
        return [e for e in self.events if isinstance(e, kind)]

    async def until(self, kind: type, count: int = 1) -> None:
        async with asyncio.timeout(20):
            while len(self.of(kind)) < count:
                self.changed.clear()
                await self.changed.wait()


def _token(twiml: str) -> str:
    stream = ET.fromstring(twiml).find("Connect/Stream/Parameter")  # noqa: S314 - ours
    assert stream is not None and stream.get("name") == "token"
    return str(stream.get("value"))


@contextlib.asynccontextmanager
async def _stream(box: Box, call_sid: str, twiml: str) -> AsyncIterator[ClientConnection]:
    """A Media Stream as Twilio opens it for `twiml`, with marks echoed as they play; yields
    once the agent's first audio has arrived."""
    async with connect(box.ws_url()) as ws:
        start = Start("MZ0", call_sid, ACCOUNT_SID, {"token": _token(twiml)})
        for n, message in enumerate([Connected(), start], start=1):
            await ws.send(encode_from_twilio(message, stream_sid="MZ0", sequence=n))
        speaking = asyncio.Event()
        echo = asyncio.create_task(_echo_marks(ws, speaking))
        await speaking.wait()
        yield ws
        await echo


async def _speak(ws: ClientConnection, pcm: bytes) -> None:
    """The caller's audio as Twilio sends it: mu-law at 8 kHz, 20 ms a message, in real time."""
    ulaw = ulaw_encode(HalfBandResampler(16000, 8000).convert(pcm))
    for n, at in enumerate(range(0, len(ulaw), 160)):
        media = Media(ulaw[at : at + 160], chunk=n + 1, timestamp_ms=n * 20)
        await ws.send(encode_from_twilio(media, stream_sid="MZ0", sequence=10 + n))
        await asyncio.sleep(0.02)  # the pace of a phone call, not a wait for something


async def _press_0(box: Box, call_sid: str, watch: _Watch) -> None:
    """A caller presses 0 while the agent greets them, and the stream ends (transferred)."""
    answer = await post_webhook(box, "/twilio/voice", call_params(call_sid))
    async with _stream(box, call_sid, answer.text) as ws:  # the greeting has started
        await ws.send(encode_from_twilio(Dtmf("0"), stream_sid="MZ0", sequence=3))
        await watch.until(CallEnded)


async def test_pressing_0_puts_a_twilio_caller_through() -> None:
    async with _box_and_api() as (box, api):
        call_sid = "CA" + "0" * 32
        api.live_calls.add(call_sid)
        watch = _Watch()
        box.observers.add(call_sid, watch)
        await _press_0(box, call_sid, watch)
        events = watch.events
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


async def test_when_nobody_answers_a_twilio_caller_comes_back_and_leaves_a_message() -> None:
    async with _box_and_api() as (box, api):
        call_sid = "CA" + "1" * 32
        api.live_calls.add(call_sid)
        watch = _Watch()
        box.observers.add(call_sid, watch)
        await _press_0(box, call_sid, watch)
        dial = ET.fromstring(api.updates[0][1]["Twiml"]).find("Dial")  # noqa: S314 - ours
        assert dial is not None and dial.get("timeout") == "20"
        action = urlsplit(str(dial.get("action"))).path
        # Twilio tells the box how the dial ended; nobody answered: the caller comes back.
        ended = call_params(call_sid, CallStatus="in-progress", DialCallStatus="no-answer")
        assert (await post_webhook(box, action, ended, signature="")).status_code == 403
        back = await post_webhook(box, action, ended)
        assert back.status_code == 200
        async with _stream(box, call_sid, back.text) as ws:
            await watch.until(PhraseSpoken, 3)  # greeting, "I'll put you through", "sorry"
            await _speak(ws, say("book", "more", "time") + quiet(1500))
            await watch.until(MessageTaken)
            await ws.send(
                encode_from_twilio(Stop(call_sid, ACCOUNT_SID), stream_sid="MZ0", sequence=99)
            )
            await watch.until(CallEnded, 2)
        (failed,) = watch.of(TransferFailed)
        assert failed.target == OFFICE
        phrases = [p.text for p in watch.of(PhraseSpoken)]
        assert phrases[-1] == not_answering("a member of staff")
        (message,) = watch.of(MessageTaken)
        assert (message.to, message.text) == ("a member of staff", "book more time")
        assert [e.reason for e in watch.of(CallEnded)] == ["transferred", "caller hung up"]
        # Had the person answered, the call would simply end when they were done.
        done = call_params(call_sid, CallStatus="in-progress", DialCallStatus="completed")
        finished = await post_webhook(box, action, done)
        assert ET.fromstring(finished.text).find("Hangup") is not None  # noqa: S314 - ours
        unknown = await post_webhook(box, "/twilio/dialed/unknown", ended)
        assert unknown.status_code == 404
