"""Email through SendGrid's v3 API (`POST /v3/mail/send`, a bearer key, JSON; 202 when taken)."""

from __future__ import annotations

import httpx

from appliance.tools.delivery import DeliveryFailed, check_answer

__all__ = ["SendGridMailer"]


class SendGridMailer:
    """The Mailer port over SendGrid."""

    def __init__(
        self,
        *,
        api_key: str,
        sender: str,
        base_url: str = "https://api.sendgrid.com",
        timeout_s: float = 15.0,
    ) -> None:
        self._key = api_key
        self._sender = sender
        self._url = base_url.rstrip("/") + "/v3/mail/send"
        self._timeout = timeout_s

    async def send_email(self, to: str, subject: str, body: str) -> str:
        message = {
            "personalizations": [{"to": [{"email": to}]}],
            "from": {"email": self._sender, "name": "TEL3SIS"},
            "subject": subject,
            "content": [{"type": "text/plain", "value": body}],
        }
        try:
            async with httpx.AsyncClient(timeout=self._timeout) as client:
                response = await client.post(
                    self._url, json=message, headers={"Authorization": f"Bearer {self._key}"}
                )
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"SendGrid could not be reached: {exc!r}") from exc
        check_answer(response, "SendGrid")
        return str(response.headers.get("X-Message-Id", ""))
