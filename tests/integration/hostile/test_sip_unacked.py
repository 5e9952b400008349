"""An answer never acknowledged (issue 13): the INVITE gives its slot back within seconds.

pjsip retransmits a 200 OK until its ACK comes, for 32 s (64 x T1), and the call held an
admission slot all that while: with one slot, one INVITE without an ACK shut the box for 32 s.
Now an answered call with no ACK after `ack_timeout_s` is given up and its slot is free again.
A call in progress beside it goes on undisturbed, and a new call gets the freed slot.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from appliance.clock import LoopClock
from appliance.telephony.calls import Admission
from appliance.telephony.sip import SipConfig
from tests.integration.hostile.test_rtp_hijack import until
from tests.support.rtp_peer import rtp_call
from tests.support.sip import Probe, fake_listener

pytestmark = pytest.mark.timeout(120)
ACK_TIMEOUT_S = 1.5


def _two_slots(clock: LoopClock) -> Admission:
    return Admission(clock=clock, max_calls=2)


async def test_an_unacknowledged_answer_frees_its_slot_and_the_call_beside_it_goes_on() -> None:
    config = SipConfig(ack_timeout_s=ACK_TIMEOUT_S)
    async with (
        fake_listener(admission=_two_slots, config=config, probe=Probe) as calls,
        rtp_call(calls.port, 600.0) as (caller, dialog),
    ):
        speaking = asyncio.create_task(caller.rtp.stream(dialog.media, 100_000))
        await until(lambda: caller.rtp.heard.loud_since(0) > 10, 10, "the caller hears the box")
        gate = calls.admission
        started = time.monotonic()
        async with rtp_call(calls.port, 600.0, ack=False):
            assert gate.active == 2
            await until(lambda: gate.active == 1, ACK_TIMEOUT_S + 5, "the slot comes back")
            freed_after = time.monotonic() - started
            async with rtp_call(calls.port, 900.0) as (newcomer, new_dialog):
                talking = asyncio.create_task(newcomer.rtp.stream(new_dialog.media, 100_000))
                await until(lambda: len(calls.sessions) == 3, 5, "the newcomer is answered")
                probe = calls.sessions[2]
                await until(lambda: probe.loud_frames() > 10, 10, "the box hears the newcomer")
                await until(
                    lambda: newcomer.rtp.heard.loud_since(0) > 10, 10, "the newcomer hears the box"
                )
                talking.cancel()
        ended = time.monotonic()
        speaking.cancel()

    assert ACK_TIMEOUT_S <= freed_after < ACK_TIMEOUT_S + 3, freed_after
    heard = caller.rtp.heard
    assert heard.longest_gap_s(started, ended) < 0.3, "the call in progress stalled"
    assert calls.sessions[0].longest_gap_s() < 0.3
