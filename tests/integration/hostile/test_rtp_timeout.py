"""A caller whose audio stops (issue 13): the call is hung up and recorded as "no audio from
the caller", not as "caller hung up"; a call beside it is answered, heard and replied to.
"""

from __future__ import annotations

import asyncio

import pytest

from appliance.clock import LoopClock
from appliance.conversation.events import CallEnded, Event, ReplyFinished, TranscriptFinal
from appliance.telephony.calls import Admission
from appliance.telephony.sip import SipConfig
from tests.integration.hostile.test_rtp_hijack import until
from tests.support.fakes import word_hz
from tests.support.rtp_peer import rtp_call
from tests.support.sip import fake_listener

pytestmark = pytest.mark.timeout(120)


def _two_slots(clock: LoopClock) -> Admission:
    return Admission(clock=clock, max_calls=2)


def _of(events: list[Event], kind: type) -> list:  # type: ignore[type-arg]
    return [e for e in events if isinstance(e, kind)]


async def test_a_silent_caller_is_hung_up_as_no_audio_and_the_call_beside_it_goes_on() -> None:
    config = SipConfig(rtp_timeout_s=1.0)
    async with (
        fake_listener(admission=_two_slots, config=config, replies=["Sure."]) as calls,
        rtp_call(calls.port, word_hz("hello")) as (talker, talking),
        rtp_call(calls.port, 600.0) as (mute, muted),
    ):
        talker_events = calls.events.setdefault(talking.call_id, [])
        mute_events = calls.events.setdefault(muted.call_id, [])
        mute_sending = asyncio.create_task(mute.rtp.stream(muted.media, 25, quiet=True))
        hello = talker.rtp.stream(talking.media, 50)  # one second of "hello"
        talker_sending = asyncio.create_task(hello)
        await talker_sending
        talker_sending = asyncio.create_task(talker.rtp.stream(talking.media, 100_000, quiet=True))

        await until(lambda: bool(_of(mute_events, CallEnded)), 10, "the silent call ends")
        await until(lambda: bool(_of(talker_events, ReplyFinished)), 10, "the talker is answered")
        assert not _of(talker_events, CallEnded), "the call beside it ended too"
        talker_sending.cancel()
        await mute_sending

    assert [e.reason for e in _of(mute_events, CallEnded)] == ["no audio from the caller"]
    assert [e.text for e in _of(talker_events, TranscriptFinal)] == ["hello"]
    assert talker.rtp.heard.loud_since(0) > 0, "the talker heard nothing"
