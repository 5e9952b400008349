"""What an outside service's HTTP answer means for a message: sent, retry later, or refused.

2xx is sent. A 4xx (bad address, bad credentials, a malformed request) is `Undeliverable`:
sending the same request again cannot help. A 408, a 429, any 5xx and any network failure is
`DeliveryFailed`, which the post-call job queue retries with backoff.
"""

from __future__ import annotations

import httpx

from appliance.conversation.ports import Undeliverable

__all__ = ["DeliveryFailed", "check_answer"]

_RETRYABLE_4XX = {408, 425, 429}


class DeliveryFailed(RuntimeError):
    """The service could not take the message now; try again later."""


def check_answer(response: httpx.Response, service: str) -> None:
    """Raise `Undeliverable` or `DeliveryFailed` unless the answer is a success."""
    if response.is_success:
        return
    detail = f"{service} answered {response.status_code}: {response.text[:300].strip()}"
    if 400 <= response.status_code < 500 and response.status_code not in _RETRYABLE_4XX:
        raise Undeliverable(detail)
    raise DeliveryFailed(detail)
