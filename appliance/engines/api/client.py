"""One OpenAI-compatible client per API engine, and the errors it raises named for the fix."""

from __future__ import annotations

from typing import TYPE_CHECKING

from appliance.conversation.ports import EngineError

if TYPE_CHECKING:
    from openai import AsyncOpenAI

__all__ = ["ApiEndpoint", "engine_error", "make_client"]

_NO_KEY = "none"
"""What a keyless server (llama.cpp's, a LAN box) is sent: the SDK insists on some key."""


class ApiEndpoint:
    """Where an API engine's server is, and how it is allowed in."""

    def __init__(self, base_url: str | None, api_key: str | None, *, timeout_s: float) -> None:
        self.base_url = base_url
        """None: OpenAI's own API."""
        self.api_key = api_key
        self.timeout_s = timeout_s
        """Seconds one request may take in all: the chain's budget acts sooner on a local engine,
        but the last engine left has none."""

    def describe(self) -> str:
        return self.base_url or "OpenAI"


def make_client(endpoint: ApiEndpoint) -> AsyncOpenAI:
    """A client that never retries: a failure goes straight to the chain, which knows what to
    try next and when to stop trying this engine (its breaker)."""
    from openai import AsyncOpenAI  # noqa: PLC0415 - only boxes with an API engine need it

    return AsyncOpenAI(
        base_url=endpoint.base_url,
        api_key=endpoint.api_key or _NO_KEY,
        timeout=endpoint.timeout_s,
        max_retries=0,
    )


def engine_error(what: str, endpoint: ApiEndpoint, exc: BaseException) -> EngineError:
    """`exc` from the SDK as an EngineError that says which server failed and what to check."""
    import openai  # noqa: PLC0415

    where = endpoint.describe()
    if isinstance(exc, openai.AuthenticationError):
        hint = "check its key (the stage's _API_KEY, or OPENAI_API_KEY)"
    elif isinstance(exc, openai.NotFoundError):
        hint = "check its base URL and the model's name"
    elif isinstance(exc, openai.APIStatusError):
        hint = f"it answered HTTP {exc.status_code}"
    elif isinstance(exc, openai.APITimeoutError):
        hint = f"no answer within {endpoint.timeout_s:g} s (ENGINE_TIMEOUT_S)"
    elif isinstance(exc, openai.APIConnectionError):
        hint = "could not reach it, or it dropped the connection; check that it is up"
    else:
        hint = repr(exc)
    return EngineError(f"{what} at {where} failed: {hint}")
