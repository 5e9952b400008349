"""Twilio's webhooks on real uvicorn: signatures, capacity, status callbacks, stream tokens."""

from __future__ import annotations

import asyncio
import contextlib
import json
import xml.etree.ElementTree as ET

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from appliance.telephony.twilio.messages import Connected, Media, Start, encode_from_twilio
from tests.support.twilio import (
    ACCOUNT_SID,
    PUBLIC_URL,
    Box,
    call_params,
    post_webhook,
    sign,
    twilio_box,
)


def _stream(twiml: str) -> tuple[str, dict[str, str]]:
    root = ET.fromstring(twiml)  # noqa: S314 - our own answer
    stream = root.find("Connect/Stream")
    assert stream is not None, twiml
    params = {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}
    return stream.get("url", ""), params


async def test_a_signed_call_is_answered_with_a_stream_and_a_token() -> None:
    async with twilio_box() as box:
        response = await post_webhook(box, "/twilio/voice", call_params("CA1"))
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/xml")
        url, params = _stream(response.text)
        # The box is reached at 127.0.0.1 over http, but Twilio must be told its public address.
        assert url == "wss://tel3sis.example.com/twilio/media"
        assert len(params["token"]) >= 32
        assert box.tokens.pending == 1


async def test_a_json_body_is_accepted_when_its_hash_and_signature_match() -> None:
    async with twilio_box() as box:
        response = await post_webhook(box, "/twilio/voice", call_params("CA2"), as_json=True)
        assert response.status_code == 200, response.text
        assert box.tokens.pending == 1


@pytest.mark.parametrize(
    "forgery",
    ["tampered-param", "wrong-url", "missing-header", "garbage-signature", "tampered-json-body",
     "json-without-hash", "other-account"],
)  # fmt: skip
async def test_forged_webhooks_get_403_and_start_nothing(forgery: str) -> None:
    params = call_params("CA3")
    async with twilio_box() as box:
        match forgery:
            case "tampered-param":
                signature = sign(PUBLIC_URL + "/twilio/voice", params)
                response = await post_webhook(
                    box, "/twilio/voice", {**params, "From": "+15559999999"}, signature=signature
                )
            case "wrong-url":
                # Signed for the address the box listens on, not the one Twilio was given.
                response = await post_webhook(
                    box, "/twilio/voice", params, signed_url=box.url + "/twilio/voice"
                )
            case "missing-header":
                response = await post_webhook(box, "/twilio/voice", params, signature="")
            case "garbage-signature":
                response = await post_webhook(box, "/twilio/voice", params, signature="bm9wZQ==")
            case "tampered-json-body":
                body = json.dumps(params)
                good = await post_webhook(box, "/twilio/voice", params, as_json=True)
                assert good.status_code == 200
                query = good.request.url.query.decode()
                signature = good.request.headers["X-Twilio-Signature"]
                async with httpx.AsyncClient() as http:
                    response = await http.post(
                        f"{box.url}/twilio/voice?{query}",
                        content=body.replace("+15005550001", "+15559999999"),
                        headers={
                            "X-Twilio-Signature": signature,
                            "Content-Type": "application/json",
                        },
                    )
                assert box.tokens.pending == 1  # the good request's; the forged one made none
                assert response.status_code == 403
                return
            case "json-without-hash":
                body = json.dumps(params)
                async with httpx.AsyncClient() as http:
                    response = await http.post(
                        f"{box.url}/twilio/voice",
                        content=body,
                        headers={
                            "X-Twilio-Signature": sign(PUBLIC_URL + "/twilio/voice", {}),
                            "Content-Type": "application/json",
                        },
                    )
            case "other-account":
                other = {**params, "AccountSid": "AC" + "b" * 32}
                response = await post_webhook(box, "/twilio/voice", other)
        assert response.status_code == 403
        assert box.tokens.pending == 0
        assert box.sessions == []


async def test_over_capacity_the_call_is_rejected_busy() -> None:
    async with twilio_box(max_calls=1) as box:
        first = await post_webhook(box, "/twilio/voice", call_params("CA10"))
        _stream(first.text)
        # The first call's stream has not attached yet, but its slot is spoken for.
        second = await post_webhook(box, "/twilio/voice", call_params("CA11"))
        assert second.status_code == 200
        root = ET.fromstring(second.text)  # noqa: S314
        reject = root.find("Reject")
        assert reject is not None and reject.get("reason") == "busy"
        assert root.find("Connect") is None
        assert box.tokens.pending == 1


async def test_status_callbacks_are_signed_and_recorded() -> None:
    async with twilio_box() as box:
        params = call_params("CA20", CallStatus="completed", CallDuration="42")
        response = await post_webhook(box, "/twilio/status", params)
        assert response.status_code == 204
        status = box.progress.get("CA20")
        assert status is not None and (status.status, status.duration_s) == ("completed", 42)
        forged = await post_webhook(
            box, "/twilio/status", {**params, "CallSid": "CA21"}, signature=sign("x", params)
        )
        assert forged.status_code == 403
        assert box.progress.get("CA21") is None


async def _open_stream(box: Box, call_sid: str, token: str) -> int | None:
    """Start a stream with `token`; returns the close code the box answers with."""
    async with connect(box.ws_url()) as ws:
        await ws.send(encode_from_twilio(Connected(), stream_sid="MZ1", sequence=0))
        start = Start(
            stream_sid="MZ1",
            call_sid=call_sid,
            account_sid=ACCOUNT_SID,
            custom_parameters={"token": token},
        )
        await ws.send(encode_from_twilio(start, stream_sid="MZ1", sequence=1))
        await ws.send(encode_from_twilio(Media(bytes(160)), stream_sid="MZ1", sequence=2))
        try:
            async with asyncio.timeout(5):
                async for _ in ws:
                    pass
        except ConnectionClosed:
            pass
        return ws.close_code


async def _read_all(ws: ClientConnection) -> None:
    with contextlib.suppress(ConnectionClosed):
        async for _ in ws:
            pass


async def _token(box: Box, call_sid: str) -> str:
    response = await post_webhook(box, "/twilio/voice", call_params(call_sid))
    return _stream(response.text)[1]["token"]


async def test_a_reused_token_closes_the_stream_and_starts_no_session() -> None:
    async with twilio_box() as box:
        token = await _token(box, "CA30")
        async with connect(box.ws_url()) as first:
            await first.send(encode_from_twilio(Connected(), stream_sid="MZ1", sequence=0))
            start = Start("MZ1", "CA30", ACCOUNT_SID, {"token": token})
            await first.send(encode_from_twilio(start, stream_sid="MZ1", sequence=1))
            # Like Twilio, keep reading what the box sends (the greeting), or the close stalls.
            reading = asyncio.create_task(_read_all(first))
            await asyncio.sleep(0.2)
            assert len(box.sessions) == 1
            assert await _open_stream(box, "CA30", token) == 1008
            await first.close()
            await reading
        assert len(box.sessions) == 1
        assert box.metrics.twilio_refused.labels("token")._value.get() == 1


@pytest.mark.parametrize("fault", ["expired", "other-call", "unknown", "missing"])
async def test_a_bad_token_closes_the_stream_and_starts_no_session(fault: str) -> None:
    async with twilio_box(token_ttl_s=0.3) as box:
        token = await _token(box, "CA40")
        match fault:
            case "expired":
                await asyncio.sleep(0.5)
                code = await _open_stream(box, "CA40", token)
            case "other-call":
                code = await _open_stream(box, "CA41", token)
            case "unknown":
                code = await _open_stream(box, "CA40", "x" * 43)
            case "missing":
                code = await _open_stream(box, "CA40", "")
        assert code == 1008
        assert box.sessions == []
