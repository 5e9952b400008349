"""Text messages through Twilio's REST API (`POST .../Accounts/{sid}/Messages.json`, a form)."""

from __future__ import annotations

import httpx

from appliance.tools.delivery import DeliveryFailed, check_answer

__all__ = ["TwilioTexter"]


class TwilioTexter:
    """The Texter port over Twilio's Messages resource."""

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        sender: str,
        base_url: str = "https://api.twilio.com",
        timeout_s: float = 15.0,
    ) -> None:
        self._auth = (account_sid, auth_token)
        self._sender = sender
        self._url = f"{base_url.rstrip('/')}/2010-04-01/Accounts/{account_sid}/Messages.json"
        self._timeout = timeout_s

    async def send_sms(self, to: str, body: str) -> str:
        form = {"To": to, "From": self._sender, "Body": body}
        try:
            async with httpx.AsyncClient(timeout=self._timeout, auth=self._auth) as client:
                response = await client.post(self._url, data=form)
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"Twilio could not be reached: {exc!r}") from exc
        check_answer(response, "Twilio")
        try:
            return str(response.json().get("sid", ""))
        except ValueError:
            return ""  # sent all the same: the status said so
