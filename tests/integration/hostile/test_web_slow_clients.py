"""Slow clients against the web app on loopback: 300 connections trickling a request head a byte
at a time, from ten addresses, in a process of their own, while the box has few descriptors to
spare (as on the board, where 300 of them took down the login, the Twilio webhook and SIP).

The legitimate side must not notice: the login page and a signed Twilio webhook answer, a Twilio
call is answered and heard, and the descriptors kept for SIP can still be opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import resource
import socket
from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest
import pytest_asyncio

from appliance.audio.frame import rms_dbfs
from appliance.settings import Settings
from appliance.telephony.wavfile import HangUp, Speak
from tests.support.fakes import say
from tests.support.slow_clients import Tally, slow_attack
from tests.support.status import Box, serve_box
from tests.support.twilio import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    PUBLIC_URL,
    call_params,
    sign,
    twilio_box,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

_SLOW = 300
_SPARE = 250
"""Descriptors the box may still open when the attack begins: fewer than the attackers."""
_SIP_SOCKETS = 60
"""What a few new SIP calls open (signalling, RTP, RTCP, a recording): inside the reserve."""


def _open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))  # noqa: PTH208 - a count
    except OSError:  # none left even to look
        return 1 << 20


@contextlib.contextmanager
def _few_descriptors_left(spare: int) -> Iterator[int]:
    """This process limited to `spare` more descriptors than it has open; yields how many it
    has open now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    now = _open_fds()
    resource.setrlimit(resource.RLIMIT_NOFILE, (now + spare, hard))
    try:
        yield now
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def _until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    try:
        async with asyncio.timeout(timeout_s):
            while not condition():  # noqa: ASYNC110 - polling another process's effect
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"not within {timeout_s} s: {what}") from None


def _sip_can_open_its_sockets() -> None:
    opened = []
    try:
        for _ in range(_SIP_SOCKETS):
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            opened.append(udp)
            udp.bind(("127.0.0.1", 0))
    finally:
        for udp in opened:
            udp.close()


@contextlib.asynccontextmanager
async def _attacked(port: int) -> AsyncIterator[Callable[[], Tally]]:
    """The slow clients at `port`, once each has connected and the box holds at least 80."""
    with _few_descriptors_left(_SPARE) as before, slow_attack(port, _SLOW) as tally:
        await _until(lambda: _open_fds() >= before + 80, 30.0, "the attack took hold")
        await _until(lambda: tally().connected >= _SLOW, 30.0, "every slow client connected")
        yield tally


def _fresh_client(url: str) -> httpx.AsyncClient:
    """A new visitor: a connection of its own for each request."""
    no_reuse = httpx.Limits(max_keepalive_connections=0)
    return httpx.AsyncClient(base_url=url, timeout=10.0, limits=no_reuse)


@pytest_asyncio.fixture
async def box(app_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Box]:
    """The appliance's web app, Twilio's webhook configured."""
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", ACCOUNT_SID)
    monkeypatch.setenv("BASE_URL", PUBLIC_URL)
    settings = dataclasses.replace(app_settings, twilio=Settings.load(None).twilio)
    async for made in serve_box(settings):
        yield made


async def test_the_login_page_and_the_twilio_webhook_answer_through_a_slow_client_attack(
    box: Box, caplog: pytest.LogCaptureFixture
) -> None:
    held: list[int] = []
    async with _attacked(box.server.port) as tally, asyncio.timeout(60):
        # Five visits at least, and on until the clients the box dropped have come back.
        while len(held) < 5 or tally().connected < _SLOW + 100:
            n = len(held)
            async with _fresh_client(box.server.url) as http:
                login = await http.get("/login")
                assert login.status_code == 200 and 'name="password"' in login.text
                params = call_params(f"CAlegit{n}")
                signature = sign(PUBLIC_URL + "/twilio/voice", params)
                webhook = await http.post(
                    "/twilio/voice", data=params, headers={"X-Twilio-Signature": signature}
                )
                assert webhook.status_code == 200 and "<Response>" in webhook.text
            _sip_can_open_its_sockets()
            held.append(box.server.connections)
        attack = tally()
    print(
        f"\n{min(held)}-{max(held)} web connections open (slow clients and the legitimate one) "
        f"while the login page and the webhook answered; the {_SLOW} slow clients made "
        f"{attack.connected} connections, {attack.dropped} of them closed by the box"
    )
    assert min(held) >= 60
    flooded = [r for r in caplog.records if "out of system resource" in r.getMessage()]
    assert not flooded


async def test_a_twilio_call_is_answered_and_heard_through_a_slow_client_attack() -> None:
    async with twilio_box(replies=["Fine, thanks."]) as twilio:
        port = int(twilio.url.rsplit(":", 1)[1])
        async with _attacked(port):
            report = await twilio.caller().call([Speak(say("hello", "weather")), HangUp()])
            _sip_can_open_its_sockets()
        assert report.ended == "caller hung up"
        assert [t.transcript for t in report.turns] == ["hello weather"]
        assert any(rms_dbfs(frame) > -40 for frame in report.line.agent_audio)  # the reply
