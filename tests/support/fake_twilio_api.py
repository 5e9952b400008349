"""A fake of Twilio's REST API on loopback: the Calls resource's update, on its real wire format.

It speaks what the twilio SDK sends (form-encoded POST to
`/2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json` with HTTP basic auth) and answers as
Twilio does: the call resource as JSON, or Twilio's error object (401 code 20003, 404 code 20404).
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from appliance.web.server import WebServer, create_app


@dataclass
class FakeTwilioApi:
    account_sid: str
    auth_token: str
    live_calls: set[str] = field(default_factory=set)
    updates: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    url: str = ""


def _error(status: int, code: int, message: str) -> JSONResponse:
    return JSONResponse(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
        status_code=status,
    )


def _router(api: FakeTwilioApi) -> APIRouter:
    router = APIRouter()

    @router.post("/2010-04-01/Accounts/{account_sid}/Calls/{call_sid}.json")
    async def update_call(account_sid: str, call_sid: str, request: Request) -> JSONResponse:
        expected = base64.b64encode(f"{api.account_sid}:{api.auth_token}".encode()).decode()
        if request.headers.get("authorization") != f"Basic {expected}" or (
            account_sid != api.account_sid
        ):
            return _error(401, 20003, "Authenticate")
        if call_sid not in api.live_calls:
            return _error(
                404,
                20404,
                f"The requested resource /2010-04-01/Accounts/{account_sid}/Calls/"
                f"{call_sid}.json was not found",
            )
        form = dict(parse_qsl((await request.body()).decode()))
        api.updates.append((call_sid, form))
        return JSONResponse(
            {
                "account_sid": account_sid,
                "sid": call_sid,
                "status": "in-progress",
                "api_version": "2010-04-01",
                "direction": "inbound",
                "uri": f"/2010-04-01/Accounts/{account_sid}/Calls/{call_sid}.json",
            }
        )

    return router


@contextlib.asynccontextmanager
async def fake_twilio_api(account_sid: str, auth_token: str) -> AsyncIterator[FakeTwilioApi]:
    api = FakeTwilioApi(account_sid, auth_token)
    async with WebServer(create_app(_router(api)), host="127.0.0.1", port=0) as server:
        api.url = server.url
        yield api
