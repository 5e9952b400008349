"""Twilio's REST API, for what the appliance asks of a live call: hand it to a person.

The twilio SDK builds and reads the requests; its pluggable asynchronous HTTP client is ours, on
httpx, so the event loop never waits on the network (the SDK's own async client goes through an
aiohttp API that aiohttp has deprecated). `api_base_url` points it at another server speaking the
same API: the tests' fake Twilio.
"""

from __future__ import annotations

import logging

import httpx
from twilio.base.exceptions import TwilioException
from twilio.http import AsyncHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from appliance.conversation.ports import TransferError
from appliance.telephony.twilio.webhooks import dial_twiml

__all__ = ["TwilioCalls"]

_log = logging.getLogger(__name__)


class _HttpxClient(AsyncHttpClient):  # type: ignore[misc]  # the SDK is untyped
    """The SDK's HTTP client interface, on httpx."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__(_log, is_async=True, timeout=timeout_s)
        self._http = httpx.AsyncClient(timeout=timeout_s)

    async def request(  # noqa: PLR0917 - the SDK's interface
        self,
        method: str,
        uri: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the SDK's interface
        allow_redirects: bool = False,
    ) -> Response:
        response = await self._http.request(
            method,
            uri,
            params=params,  # type: ignore[arg-type]
            data=data,
            headers=headers,
            auth=auth,
            timeout=timeout or self.timeout,
            follow_redirects=allow_redirects,
        )
        return Response(response.status_code, response.text, response.headers)

    async def aclose(self) -> None:
        await self._http.aclose()


class TwilioCalls:
    """Live calls of one Twilio account, through the REST API."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        api_base_url: str | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self._account_sid = account_sid
        self._auth_token = auth_token
        self._api_base_url = api_base_url
        self._timeout_s = timeout_s
        self._http: _HttpxClient | None = None
        self._client: Client | None = None

    def _rest(self) -> Client:
        # Made on first use, inside the running loop that its HTTP client will belong to.
        if self._client is None:
            self._http = _HttpxClient(self._timeout_s)
            self._client = Client(
                self._account_sid,
                self._auth_token,
                account_sid=self._account_sid,
                http_client=self._http,
                # A non-empty mapping: given none, the SDK reads region and edge from os.environ.
                environment={"TEL3SIS": "settings come from the appliance"},
            )
            if self._api_base_url is not None:
                self._client.api.base_url = self._api_base_url
        return self._client

    async def dial(
        self,
        call_sid: str,
        number: str,
        *,
        whisper_url: str | None = None,
        action_url: str | None = None,
    ) -> None:
        """Replace the call's instructions with a `<Dial>` to `number` (whose answerer first
        hears the TwiML at `whisper_url`; how it ended goes to `action_url`); raises
        TransferError."""
        twiml = dial_twiml(number, whisper_url=whisper_url, action_url=action_url)
        try:
            await self._rest().calls(call_sid).update_async(twiml=twiml)
        except (TwilioException, httpx.HTTPError) as exc:
            raise TransferError(f"Twilio did not transfer call {call_sid}: {exc}") from exc
        _log.info("call %s handed to %s", call_sid, number)

    async def aclose(self) -> None:
        """Close the HTTP connections, if any were opened."""
        if self._http is not None:
            await self._http.aclose()
            self._http = None
            self._client = None
