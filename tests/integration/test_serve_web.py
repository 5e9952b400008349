"""`appliance serve` brings the web app up on WEB_BIND_ADDRESS:WEB_PORT and down on stop."""

from __future__ import annotations

import asyncio
import dataclasses
import socket

import httpx
import pytest
from pydantic import SecretStr

from appliance.app import Appliance
from appliance.settings import Settings, TwilioSettings, WebSettings
from tests.support.twilio import ACCOUNT_SID, AUTH_TOKEN, PUBLIC_URL, call_params, sign


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_serve_answers_twilio_until_stopped(app_settings: Settings) -> None:
    port = _free_port()
    settings = dataclasses.replace(
        app_settings,
        web=WebSettings(bind_address="127.0.0.1", port=port),
        twilio=TwilioSettings(
            account_sid=ACCOUNT_SID, auth_token=SecretStr(AUTH_TOKEN), base_url=PUBLIC_URL
        ),
    )
    app = Appliance.build(settings)  # nothing is loaded: no call is placed
    await app.records.start()  # serve runs the post-call jobs beside the lines
    app.records.use_runner(busy=lambda: False)
    stop = asyncio.Event()
    serving = asyncio.create_task(app.serve(stop))
    url = f"http://127.0.0.1:{port}/twilio/voice"
    params = call_params("CAserve")
    try:
        async with httpx.AsyncClient(timeout=5.0) as http:
            for _ in range(200):
                try:
                    unsigned = await http.post(url, data=params)
                    break
                except httpx.ConnectError:
                    await asyncio.sleep(0.05)
            else:
                pytest.fail("the web app never came up")
            assert unsigned.status_code == 403
            signature = sign(PUBLIC_URL + "/twilio/voice", params)
            signed = await http.post(url, data=params, headers={"X-Twilio-Signature": signature})
            assert signed.status_code == 200
            assert "<Connect><Stream" in signed.text
            stop.set()
            async with asyncio.timeout(10):
                await serving
            with pytest.raises(httpx.ConnectError):
                await http.post(url, data=params)
    finally:
        stop.set()
        await serving
        await app.aclose()
