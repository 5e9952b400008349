"""Hostile SIP signalling that pjsip took at face value (issue 13), each beside a legitimate
call that must go on undisturbed: answered, heard, heard back, and its BYE answered."""

from __future__ import annotations

import asyncio
import ipaddress
import time
import uuid
from pathlib import Path

import pytest

from appliance.clock import LoopClock
from appliance.telephony.calls import Admission
from appliance.telephony.sip import SipConfig
from tests.support.sip import (
    LOOPBACK,
    Probe,
    RawSip,
    fake_listener,
    final_codes,
    run_sipp,
    status_codes,
)
from tests.support.sip_beside import call_beside, until

pytestmark = pytest.mark.timeout(120)
STRANGER = "127.0.0.2"


def _trunk_only(clock: LoopClock) -> Admission:
    allowed = [ipaddress.ip_network(f"{LOOPBACK}/32")]
    return Admission(clock=clock, max_calls=2, allowed=allowed, rate_limit=50)


def _request(raw: RawSip, method: str, *, headers: str = "", body: str = "") -> str:
    """An out-of-dialog request from `raw` with the given extra headers (and a Content-Length
    for `body`, unless `headers` brings its own)."""
    cid = uuid.uuid4().hex[:12]
    length = "" if "content-length" in headers.lower() else f"Content-Length: {len(body)}\r\n"
    return (
        f"{method} sip:tel3sis@{LOOPBACK}:{raw.port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {raw.source}:{raw.local_port};branch=z9hG4bK{cid}\r\n"
        f"From: <sip:someone@{raw.source}>;tag=f{cid}\r\nTo: <sip:tel3sis@{LOOPBACK}>\r\n"
        f"Call-ID: {cid}\r\nCSeq: 1 {method}\r\nMax-Forwards: 70\r\n{headers}{length}\r\n{body}"
    )


async def test_a_reinvite_with_the_calls_tags_but_another_call_id_gets_481(
    tmp_path: Path,
) -> None:
    async with fake_listener(admission=_trunk_only, probe=Probe) as calls:
        async with call_beside(calls, tmp_path, seconds=4.0) as legit:
            caller_tag, our_tag = legit.tags()
            attacker = RawSip(calls.port)
            reinvite = (
                attacker.invite("not-the-call")
                .replace(";tag=tnot-the-call", f";tag={caller_tag}")
                .replace(
                    f"To: <sip:tel3sis@{LOOPBACK}>", f"To: <sip:tel3sis@{LOOPBACK}>;tag={our_tag}"
                )
            )
            replies = await attacker.send(reinvite.replace("CSeq: 1", "CSeq: 5"), wait=0.5)
            attacker.close()
            assert status_codes(replies) == [481]
        ended = time.monotonic()
        # The caller's BYE (checked by call_beside) ended the call, and its slot is free again.
        await until(lambda: calls.admission.active == 0, within_s=5, what="the slot is freed")
        assert time.monotonic() - ended < 5
    assert len(calls.sessions) == 1


@pytest.mark.parametrize(
    ("method", "headers", "body"),
    [("OPTIONS", "", ""), ("MESSAGE", "Content-Type: text/plain\r\n", "hello")],
)
async def test_options_and_message_from_a_stranger_get_403(
    tmp_path: Path, method: str, headers: str, body: str
) -> None:
    async with (
        fake_listener(admission=_trunk_only, probe=Probe) as calls,
        call_beside(calls, tmp_path, seconds=3.0),
    ):
        stranger, trunk = RawSip(calls.port, source=STRANGER), RawSip(calls.port)
        try:
            sent = _request(stranger, method, headers=headers, body=body)
            assert status_codes(await stranger.send(sent, wait=0.5)) == [403]
            sent = _request(trunk, method, headers=headers, body=body)
            assert status_codes(await trunk.send(sent, wait=0.5)) == [200]  # the trunk may
        finally:
            stranger.close()
            trunk.close()


async def test_a_stranger_refused_in_silence_hears_nothing_to_options(tmp_path: Path) -> None:
    def silent(clock: LoopClock) -> Admission:
        allowed = [ipaddress.ip_network(f"{LOOPBACK}/32")]
        return Admission(clock=clock, max_calls=2, allowed=allowed, refusal="silent")

    async with (
        fake_listener(admission=silent, config=SipConfig(), probe=Probe) as calls,
        call_beside(calls, tmp_path, seconds=3.0),
    ):
        stranger = RawSip(calls.port, source=STRANGER)
        try:
            assert await stranger.send(_request(stranger, "OPTIONS"), wait=1.0) == []
        finally:
            stranger.close()


_BAD_LENGTHS = [
    pytest.param("Content-Length: 500\r\n", 400, id="longer-than-the-body"),
    pytest.param("Content-Length: 0\r\nl: 7\r\n", 400, id="two-lengths"),
    pytest.param(f"Subject: {'A' * 65000}\r\n", 513, id="64-kb-header"),
]


@pytest.mark.parametrize(("headers", "expected"), _BAD_LENGTHS)
async def test_udp_requests_with_a_bad_length_or_a_64_kb_header_are_refused(
    tmp_path: Path, headers: str, expected: int
) -> None:
    async with (
        fake_listener(admission=_trunk_only, probe=Probe) as calls,
        call_beside(calls, tmp_path, seconds=3.0),
    ):
        trunk = RawSip(calls.port)
        try:
            sent = _request(trunk, "OPTIONS", headers=headers)
            assert status_codes(await trunk.send(sent, wait=0.5)) == [expected]
            # A well-formed request a moment later is answered as ever.
            assert status_codes(await trunk.send(_request(trunk, "OPTIONS"), wait=0.5)) == [200]
        finally:
            trunk.close()


async def test_a_strangers_invite_flood_leaves_room_for_new_callers(tmp_path: Path) -> None:
    async with (
        fake_listener(admission=_trunk_only, probe=Probe) as calls,
        call_beside(calls, tmp_path, seconds=5.0),
    ):
        new_dir = tmp_path / "new"
        new_dir.mkdir()
        callers = asyncio.create_task(
            run_sipp(calls.port, "-m", "4", "-l", "1", "-r", "2", "-d", "500", "-rtp_echo",
                     service="new", work_dir=new_dir, limit_s=30)
        )  # fmt: skip
        stranger = RawSip(calls.port, source=STRANGER)
        try:
            invites = [stranger.invite(f"flood{i}") for i in range(200)]
            finals = final_codes(await stranger.flood(invites, spacing_s=0.01))
        finally:
            stranger.close()
        run = await callers
        assert set(finals.values()) == {403} and len(finals) == 200
        # Every new call was answered and ended by its caller: pjsua had calls to spare.
        assert run.returncode == 0, run.screen
        assert calls.listener.status.calls_refused["forbidden"] == 200
