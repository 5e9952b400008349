"""Transfer to a person: the line asks Twilio's REST API (a fake on loopback) for a <Dial>."""

from __future__ import annotations

import asyncio
import socket
import xml.etree.ElementTree as ET

import pytest

from appliance.conversation.ports import Handoff, Transferable, TransferError
from appliance.telephony.twilio.rest import TwilioCalls
from appliance.telephony.wavfile import Speak
from tests.support.fake_twilio_api import fake_twilio_api
from tests.support.fakes import say
from tests.support.twilio import ACCOUNT_SID, AUTH_TOKEN, twilio_box

ESCALATION = "+15005550123"


async def test_a_live_call_is_handed_to_the_escalation_number() -> None:
    async with fake_twilio_api(ACCOUNT_SID, AUTH_TOKEN) as api:
        rest = TwilioCalls(ACCOUNT_SID, AUTH_TOKEN, api_base_url=api.url)
        try:
            async with twilio_box(rest=rest, escalation_number=ESCALATION) as box:
                caller = box.caller()
                call = asyncio.create_task(caller.call([Speak(say("help"))]))
                await box.until(lambda: box.streams.active == 1)
                (call_sid,) = caller.traces
                api.live_calls.add(call_sid)
                line = box.streams.line(call_sid)
                assert isinstance(line, Transferable)
                await line.transfer(Handoff(target="", who="the office", summary=""))
                await line.hang_up()  # Twilio ends the stream once it runs the new TwiML
                await call
        finally:
            await rest.aclose()
    ((updated, form),) = api.updates
    assert updated == call_sid
    dial = ET.fromstring(form["Twiml"]).find("Dial/Number")  # noqa: S314 - our own TwiML
    assert dial is not None and dial.text == ESCALATION


async def test_twilio_refusing_the_update_is_a_transfer_error() -> None:
    async with fake_twilio_api(ACCOUNT_SID, AUTH_TOKEN) as api:
        for token, call_sid in [(AUTH_TOKEN, "CA404"), ("wrong-token", "CA1")]:
            api.live_calls.add("CA1")
            rest = TwilioCalls(ACCOUNT_SID, token, api_base_url=api.url)
            try:
                with pytest.raises(TransferError, match=call_sid):
                    await rest.dial(call_sid, ESCALATION)
            finally:
                await rest.aclose()
        assert api.updates == []


async def test_an_unreachable_api_is_a_transfer_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    rest = TwilioCalls(ACCOUNT_SID, AUTH_TOKEN, api_base_url=f"http://127.0.0.1:{port}")
    try:
        with pytest.raises(TransferError):
            await rest.dial("CA1", ESCALATION)
    finally:
        await rest.aclose()


async def test_without_credentials_the_line_says_it_cannot_transfer() -> None:
    async with twilio_box() as box:
        caller = box.caller()
        call = asyncio.create_task(caller.call([Speak(say("help"))]))
        await box.until(lambda: box.streams.active == 1)
        (call_sid,) = caller.traces
        line = box.streams.line(call_sid)
        assert line is not None
        with pytest.raises(TransferError, match="ESCALATION_PHONE_NUMBER"):
            await line.transfer(Handoff(target="", who="the office", summary=""))
        await line.hang_up()
        await call
