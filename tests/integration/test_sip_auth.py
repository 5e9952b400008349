"""Registering with a trunk (sipp as the registrar) and digest-authenticated INVITEs from a PBX."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from appliance.clock import LoopClock
from appliance.telephony.calls import Admission
from appliance.telephony.digest import DigestAuth
from appliance.telephony.sip import Registration, SipConfig
from tests.support.sip import SIP_FIXTURES, Probe, fake_listener, free_port, run_sipp

pytestmark = pytest.mark.timeout(120)


async def test_registers_with_digest_refreshes_and_unregisters(tmp_path: Path) -> None:
    registrar_port = free_port()
    registrar = asyncio.create_task(
        run_sipp(
            0, "-m", "1", scenario=str(SIP_FIXTURES / "registrar.xml"),
            local_port=registrar_port, work_dir=tmp_path, limit_s=30,
        )
    )  # fmt: skip
    await asyncio.sleep(0.5)  # sipp binds its port
    config = SipConfig(
        registration=Registration(
            registrar=f"sip:127.0.0.1:{registrar_port}", username="trunk", password="s3cret",
            expires_s=8,
        )
    )  # fmt: skip
    seen: list[str] = []
    async with fake_listener(config=config) as calls:
        status = calls.listener.status
        for _ in range(200):  # up to 10 s: registered, then the refresh before the 8 s are up
            state = status.registration.state
            if not seen or seen[-1] != state:
                seen.append(state)
            if registrar.done() or (state == "registered" and _registers(tmp_path) >= 3):
                break
            await asyncio.sleep(0.05)
        assert status.registration.code == 200
        assert status.registration.expires_s > 0
        assert calls.metrics.sip_registered._value.get() == 1
    run = await registrar
    assert seen[:2] == ["registering", "registered"], seen
    assert run.returncode == 0, run.screen  # challenged, refreshed, and unregistered on close
    assert run.received("REGISTER") == 4
    assert "Authorization: Digest" in run.messages


def _registers(work_dir: Path) -> int:
    logs = list(work_dir.glob("sipp-*-messages.log"))
    return sum(log.read_text(errors="replace").count("\nREGISTER ") for log in logs)


def _pbx_only(clock: LoopClock) -> Admission:
    auth = DigestAuth(username="pbx", password="letmein", realm="tel3sis", clock=clock)
    return Admission(clock=clock, max_calls=2, auth=auth)


async def test_an_invite_with_the_right_digest_is_answered(tmp_path: Path) -> None:
    async with fake_listener(admission=_pbx_only, probe=Probe) as calls:
        # sipp's digest covers `sip:host:port` unless told the Request-URI (as a UA uses).
        run = await run_sipp(
            calls.port, "-m", "1", "-au", "pbx", "-ap", "letmein",
            "-auth_uri", f"tel3sis@127.0.0.1:{calls.port}",
            scenario=str(SIP_FIXTURES / "auth.xml"), work_dir=tmp_path,
        )  # fmt: skip
    assert run.returncode == 0, run.screen
    assert 401 in run.responses() and 200 in run.responses()
    assert 'WWW-Authenticate: Digest realm="tel3sis"' in run.messages
    assert len(calls.sessions) == 1


async def test_an_invite_with_a_wrong_digest_is_refused(tmp_path: Path) -> None:
    async with fake_listener(admission=_pbx_only, probe=Probe) as calls:
        run = await run_sipp(
            calls.port, "-m", "1", "-au", "pbx", "-ap", "guess",
            scenario=str(SIP_FIXTURES / "auth.xml"), work_dir=tmp_path, limit_s=4,
        )  # fmt: skip
        refused = dict(calls.listener.status.calls_refused)
    assert run.returncode != 0
    # Both INVITEs (the first, and the retry with the wrong digest) got a 401 (sipp does not
    # ACK the second, so it comes again as the transaction retransmits it); nothing else.
    assert {code for code in run.responses() if code != 100} == {401}
    assert calls.sessions == []
    assert refused == {"unauthorized": 2}
