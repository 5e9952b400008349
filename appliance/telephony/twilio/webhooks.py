"""Twilio's webhooks: the signature check, and the TwiML answers.

Twilio signs each webhook with the account's auth token over the URL it requested (plus the form
parameters, or, for a JSON body, a `bodySHA256` query parameter that pins the body). Behind a
proxy the URL this box sees is not the one Twilio used, so the check is made against `BASE_URL`,
the public address, joined with the path and query of the request.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from urllib.parse import parse_qs, parse_qsl, urlsplit, urlunsplit

from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import Connect, Dial, VoiceResponse

__all__ = [
    "FormParams",
    "SignatureCheck",
    "back_to_agent_twiml",
    "busy_twiml",
    "dial_twiml",
    "hang_up_twiml",
    "stream_twiml",
    "webhook_params",
]


class FormParams(Mapping[str, str]):
    """Form parameters, repeated names kept (the signature covers every value)."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self._values: dict[str, list[str]] = {}
        for name, value in pairs:
            self._values.setdefault(name, []).append(value)

    def getall(self, name: str) -> list[str]:
        """Every value of `name` (the signature check reads them through this)."""
        return list(self._values[name])

    def __getitem__(self, name: str) -> str:
        return self._values[name][0]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def _is_json(content_type: str) -> bool:
    return content_type.split(";", maxsplit=1)[0].strip().lower() == "application/json"


def webhook_params(body: bytes, content_type: str) -> Mapping[str, str]:
    """A webhook's parameters: the form fields, or the top level of a JSON object body."""
    text = body.decode("utf-8", errors="replace")
    if _is_json(content_type):
        try:
            raw = json.loads(text)
        except json.JSONDecodeError:
            return {}
        return (
            {k: v if isinstance(v, str) else json.dumps(v) for k, v in raw.items()}
            if isinstance(raw, dict)
            else {}
        )
    return FormParams(parse_qsl(text, keep_blank_values=True))


class SignatureCheck:
    """Checks `X-Twilio-Signature` against the auth token and the public URL."""

    def __init__(self, auth_token: str | None, base_url: str | None) -> None:
        self._validator = RequestValidator(auth_token) if auth_token else None
        self._base = urlsplit(base_url.rstrip("/")) if base_url else None

    @property
    def configured(self) -> bool:
        """Whether webhooks can be checked at all (without a token and BASE_URL, none pass)."""
        return self._validator is not None and self._base is not None

    def public_url(self, path: str, query: str = "") -> str:
        """The URL Twilio requested for `path` (and `query`), as the world sees this box."""
        assert self._base is not None
        return urlunsplit((self._base.scheme, self._base.netloc, self._base.path + path, query, ""))

    def valid(
        self, *, path: str, query: str, body: bytes, content_type: str, signature: str | None
    ) -> bool:
        """Whether a request was signed by Twilio for this box."""
        if self._validator is None or self._base is None or not signature:
            return False
        url = self.public_url(path, query)
        if "bodySHA256" in parse_qs(query):
            # The signature covers the URL only; the query's hash pins the body.
            return bool(self._validator.validate(url, body.decode("utf-8", "replace"), signature))
        if _is_json(content_type):
            return False  # a JSON body that no signature covers
        params = webhook_params(body, content_type)
        return bool(self._validator.validate(url, params, signature))

    def stream_url(self, path: str) -> str:
        """The websocket URL for `path`: wss for an https BASE_URL, ws for http."""
        assert self._base is not None
        scheme = "wss" if self._base.scheme == "https" else "ws"
        return urlunsplit((scheme, self._base.netloc, self._base.path + path, "", ""))


def stream_twiml(url: str, token: str) -> str:
    """Connect the call to our Media Streams websocket, carrying the stream's token."""
    response = VoiceResponse()
    connect = Connect()
    stream = connect.stream(url=url)
    stream.parameter(name="token", value=token)
    response.append(connect)
    return str(response)


def back_to_agent_twiml(url: str, token: str, *, sorry: str | None = None) -> str:
    """After a hand-off nobody answered: the caller back on a stream to the agent, or, when
    the box has no room for them, told so and let go."""
    if sorry is not None:
        response = VoiceResponse()
        response.say(sorry)
        response.hangup()
        return str(response)
    return stream_twiml(url, token)


def hang_up_twiml() -> str:
    """End the call (the person and the caller have finished)."""
    response = VoiceResponse()
    response.hangup()
    return str(response)


def busy_twiml() -> str:
    """Refuse the call with a busy signal (Twilio does not bill a rejected call)."""
    response = VoiceResponse()
    response.reject(reason="busy")
    return str(response)


def dial_twiml(
    target: str,
    *,
    whisper_url: str | None = None,
    action_url: str | None = None,
    timeout_s: int = 20,
) -> str:
    """Hand the live call to `target` (a number, or a `sip:` URI); the person who answers is
    first played the TwiML at `whisper_url`, and how the dial ended goes to `action_url`."""
    response = VoiceResponse()
    dial = Dial(action=action_url, timeout=timeout_s) if action_url else Dial()
    if target.startswith(("sip:", "sips:")):
        dial.sip(target, url=whisper_url)
    else:
        dial.number(target, url=whisper_url)
    response.append(dial)
    return str(response)
