"""Twilio's REST API, for what the appliance asks of a live call: hand it to a person.

The twilio SDK makes the request (with its asyncio HTTP client, so the event loop never waits on
it). `api_base_url` points it at another server speaking the same API: the tests' fake Twilio.
"""

from __future__ import annotations

import logging

from aiohttp import ClientError
from twilio.base.exceptions import TwilioException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from appliance.conversation.ports import TransferError
from appliance.telephony.twilio.webhooks import dial_twiml

__all__ = ["TwilioCalls"]

_log = logging.getLogger(__name__)


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
        self._http: AsyncTwilioHttpClient | None = None
        self._client: Client | None = None

    def _rest(self) -> Client:
        # Made on first use: the SDK's HTTP session must be created inside the running loop.
        if self._client is None:
            self._http = AsyncTwilioHttpClient(timeout=self._timeout_s)
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

    async def dial(self, call_sid: str, number: str) -> None:
        """Replace the call's instructions with a `<Dial>` to `number`; raises TransferError."""
        try:
            await self._rest().calls(call_sid).update_async(twiml=dial_twiml(number))
        except (TwilioException, ClientError, OSError, TimeoutError) as exc:
            raise TransferError(f"Twilio did not transfer call {call_sid}: {exc}") from exc
        _log.info("call %s handed to %s", call_sid, number)

    async def aclose(self) -> None:
        """Close the HTTP session, if one was opened."""
        if self._http is not None:
            await self._http.close()
            self._http = None
            self._client = None
