"""RTP hijack (issue 13): RTP sent to a call's port from another address takes nothing over.

A caller places a call by hand (PCMU, a 600 Hz tone) and the box answers with a Probe playing
its own tone. While audio flows both ways, an attacker on loopback sends the call's RTP port a
burst of 20 packets and then 50 a second of a 2400 Hz tone, with its own SSRC. Before strict
RTP, pjmedia moved the agent's audio to the attacker within the burst (the caller heard
nothing) and played the attacker's tone into the caller's turn.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace

import pytest

from appliance.audio.frame import rms_dbfs
from appliance.telephony.sip import SipConfig
from tests.support.fakes import dominant_hz
from tests.support.rtp_peer import RtpSender, rtp_call
from tests.support.sip import Probe, fake_listener

pytestmark = pytest.mark.timeout(120)
CALLER_HZ = 600.0
ATTACKER_HZ = 2400.0
BURST = 20
ATTACK_PACKETS = 100
"""Two seconds at 50 a second, after the burst."""


async def until(condition: Callable[[], bool], within_s: float, what: str) -> None:
    """Poll `condition` every 20 ms until it holds; fail saying `what` after `within_s`."""
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within_s} s: {what}")
        await asyncio.sleep(0.02)


def _tones_heard(probe: Probe, since: float) -> list[float]:
    """The dominant frequency of each loud frame the box heard from the caller since `since`."""
    frames = [f for f, at in zip(probe.heard, probe.arrivals, strict=True) if at >= since]
    return [dominant_hz(f) for f in frames if rms_dbfs(f) > -35.0]


async def test_rtp_from_another_source_is_dropped_and_the_call_goes_on() -> None:
    async with (
        fake_listener(probe=Probe) as calls,
        rtp_call(calls.port, CALLER_HZ) as (caller, dialog),
    ):
        speaking = asyncio.create_task(caller.rtp.stream(dialog.media, packets=100_000))
        await until(lambda: bool(calls.sessions), 10, "the call reaches a session")
        probe = calls.sessions[0]
        await until(lambda: probe.loud_frames() > 10, 10, "the box hears the caller")
        await until(lambda: caller.rtp.heard.loud_since(0) > 10, 10, "the caller hears the box")

        attacker = RtpSender(ATTACKER_HZ)
        attacker.start_hearing()
        started = time.monotonic()
        for _ in range(BURST):
            attacker.send_one(dialog.media)
        await attacker.stream(dialog.media, ATTACK_PACKETS)
        ended = time.monotonic()
        await until(lambda: probe.arrivals[-1] > ended + 0.2, 5, "the box hears on")
        speaking.cancel()
        attacker.close()

    assert attacker.heard.packets == [], "the attacker heard the agent"
    heard = caller.rtp.heard
    assert heard.longest_gap_s(started, ended) < 0.3, "the caller's audio stalled"
    assert heard.loud_since(started) >= 0.2 * (ended - started) * 50, "the caller lost the reply"
    tones = _tones_heard(probe, started)
    assert tones, "the box stopped hearing the caller"
    assert all(abs(hz - CALLER_HZ) < 100 for hz in tones), f"another voice got in: {set(tones)}"


async def test_without_strict_rtp_the_attacker_takes_the_audio_over() -> None:
    """The attack itself works (so the test above can fail): with strict RTP off, pjmedia
    moves the agent's audio to the attacker."""
    config = replace(SipConfig(), strict_rtp=False)
    async with (
        fake_listener(probe=Probe, config=config) as calls,
        rtp_call(calls.port, CALLER_HZ) as (caller, dialog),
    ):
        speaking = asyncio.create_task(caller.rtp.stream(dialog.media, packets=100_000))
        await until(lambda: caller.rtp.heard.loud_since(0) > 10, 10, "the caller hears the box")
        attacker = RtpSender(ATTACKER_HZ)
        attacker.start_hearing()
        for _ in range(BURST):
            attacker.send_one(dialog.media)
        attack = asyncio.create_task(attacker.stream(dialog.media, ATTACK_PACKETS))
        await until(lambda: bool(attacker.heard.packets), 5, "the attacker hears the agent")
        attack.cancel()
        speaking.cancel()
        attacker.close()


async def test_a_caller_that_moves_its_media_is_followed_and_still_guarded() -> None:
    """A re-INVITE may move the caller's audio (a PBX handing the call to another media server):
    the call learns the new source, and then shuts out others again."""
    async with (
        fake_listener(probe=Probe) as calls,
        rtp_call(calls.port, CALLER_HZ) as (caller, dialog),
    ):
        before = caller.rtp
        speaking = asyncio.create_task(before.stream(dialog.media, 100_000))
        await until(lambda: before.heard.loud_since(0) > 10, 10, "the caller hears the box")
        after = RtpSender(CALLER_HZ)
        after.start_hearing()
        await caller.move_media(dialog, after)
        speaking.cancel()
        moved = time.monotonic()
        speaking = asyncio.create_task(after.stream(dialog.media, 100_000))
        probe = calls.sessions[0]
        await until(lambda: after.heard.loud_since(0) > 10, 10, "the box follows the caller")
        await until(lambda: len(_tones_heard(probe, moved)) > 10, 10, "the box hears it there")

        attacker = RtpSender(ATTACKER_HZ)
        attacker.start_hearing()
        started = time.monotonic()
        for _ in range(BURST):
            attacker.send_one(dialog.media)
        await attacker.stream(dialog.media, ATTACK_PACKETS // 2)
        speaking.cancel()
        attacker.close()
        before.close()

    assert attacker.heard.packets == [], "the attacker heard the agent"
    tones = _tones_heard(probe, started)
    assert all(abs(hz - CALLER_HZ) < 100 for hz in tones), f"another voice got in: {set(tones)}"
