"""A digest answer computed for another Request-URI does not open the door (issue 13), while a
PBX's properly authenticated call goes on undisturbed beside it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from appliance.clock import LoopClock
from appliance.telephony.calls import Admission
from appliance.telephony.digest import DigestAuth
from tests.support.digest import digest_answer
from tests.support.sip import SIP_FIXTURES, Probe, RawSip, fake_listener, status_codes
from tests.support.sip_beside import call_beside

pytestmark = pytest.mark.timeout(120)


def _pbx_only(clock: LoopClock) -> Admission:
    auth = DigestAuth(username="pbx", password="letmein", realm="tel3sis", clock=clock)
    return Admission(clock=clock, max_calls=2, rate_limit=50, auth=auth)


async def test_a_digest_computed_for_another_uri_is_refused(tmp_path: Path) -> None:
    async with fake_listener(admission=_pbx_only, probe=Probe) as calls:
        pbx = (
            "-au", "pbx", "-ap", "letmein", "-auth_uri", f"tel3sis@127.0.0.1:{calls.port}",
        )  # fmt: skip
        scenario = str(SIP_FIXTURES / "auth_talk.xml")
        async with call_beside(calls, tmp_path, seconds=3.0, args=pbx, scenario=scenario):
            raw = RawSip(calls.port)
            try:
                replies = await raw.send(raw.invite("digest1"), wait=0.5)
                challenge = next(
                    m.group(1)
                    for r in replies
                    if (m := re.search(r"^WWW-Authenticate: *(.+?)\r$", r, re.M))
                )
                # The right password, answered for a request to another address (as captured
                # from elsewhere, or relayed): it must not pass for a request to this one.
                # (A nonce-count above any the PBX used: nonces issued in the same second match.)
                elsewhere = digest_answer(
                    challenge, user="pbx", password="letmein", uri="sip:tel3sis@192.0.2.9",
                    nc="000000a0",
                )  # fmt: skip
                forged = raw.invite("digest2", extra=f"Authorization: {elsewhere}\r\n")
                codes = status_codes(await raw.send(forged, wait=1.0))
            finally:
                raw.close()
            assert 401 in codes and 200 not in codes, codes
        assert len(calls.sessions) == 1  # only the PBX's call was answered
        assert calls.listener.status.calls_refused["unauthorized"] >= 3
