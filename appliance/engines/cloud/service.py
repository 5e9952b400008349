"""One cloud speech service's address, key and patience, and its failures as EngineErrors
that name the setting to fix."""

from __future__ import annotations

import json
from collections.abc import Mapping

import httpx

from appliance.conversation.ports import EngineError

__all__ = ["CloudService", "failure", "refusal", "wrong_type"]

_QUOTED = 200
"""Characters of an error body quoted in a message: enough for the service's reason."""


class CloudService:
    """Where a cloud speech service is, how it is let in, and what to set when it is not."""

    def __init__(
        self,
        what: str,
        base_url: str,
        api_key: str,
        *,
        timeout_s: float,
        settings_prefix: str,
    ) -> None:
        self.what = what
        """How messages name it: "Deepgram's speech to text"."""
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout_s = timeout_s
        """Seconds to connect, and between one piece of the answer and the next (the first
        included): a service that stalls is given up, and the chain has nothing after it."""
        self.settings_prefix = settings_prefix
        """`DEEPGRAM` or `ELEVEN_LABS`: the prefix of its settings, named in messages."""

    def client(self, headers: Mapping[str, str]) -> httpx.AsyncClient:
        """A client of its own for each engine: made once, closed at shutdown."""
        return httpx.AsyncClient(
            base_url=self.base_url, headers=dict(headers), timeout=self.timeout_s
        )

    def failed(self, hint: str) -> EngineError:
        return EngineError(f"{self.what} at {self.base_url} failed: {hint}")


def refusal(service: CloudService, status: int, body: bytes) -> EngineError:
    """An HTTP error answer as an EngineError that says whose fault it is and what to do."""
    said = _reason(body)
    prefix = service.settings_prefix
    if status in (401, 403):
        hint = f"it refused the key (HTTP {status}: {said}); check {prefix}_API_KEY"
    elif status == 429:
        hint = (
            f"too many requests (HTTP 429: {said}); the account's concurrency or quota is "
            "used up: wait, or raise the plan's limits"
        )
    elif status == 404:
        hint = f"not found (HTTP 404: {said}); check {prefix}_BASE_URL and the model or voice"
    elif status >= 500:
        hint = f"the service is failing (HTTP {status}: {said}); it is on their side, try later"
    else:
        hint = f"it refused the request (HTTP {status}: {said})"
    return service.failed(hint)


def wrong_type(service: CloudService, content_type: str, wanted: str) -> EngineError:
    """An answer of the wrong kind: a proxy's or captive portal's page, or the wrong path."""
    return service.failed(
        f"it answered {content_type or 'no type'}, not {wanted}; check that "
        f"{service.settings_prefix}_BASE_URL is the API's own address"
    )


def failure(service: CloudService, exc: httpx.HTTPError) -> EngineError:
    """A transport failure (no answer in time, no connection, a reset) as an EngineError."""
    if isinstance(exc, httpx.TimeoutException):
        hint = f"no answer within {service.timeout_s:g} s (ENGINE_TIMEOUT_S)"
    elif isinstance(exc, httpx.TransportError):
        hint = f"could not reach it, or it dropped the connection ({exc!r}); check the network"
    else:
        hint = repr(exc)
    return service.failed(hint)


def _reason(body: bytes) -> str:
    """The service's own words from an error body: Deepgram's `err_msg`, ElevenLabs'
    `detail.message`, or the body's start when it is not their JSON."""
    try:
        answer = json.loads(body)
    except ValueError:
        return body[:_QUOTED].decode("utf-8", "replace").strip() or "no reason given"
    if isinstance(answer, dict):
        detail = answer.get("detail")
        if isinstance(detail, dict):
            detail = detail.get("message") or detail.get("status")
        for reason in (answer.get("err_msg"), detail, answer.get("message")):
            if isinstance(reason, str) and reason:
                return reason[:_QUOTED]
    return json.dumps(answer)[:_QUOTED]
