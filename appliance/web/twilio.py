"""Twilio's endpoints: the voice and status webhooks (signed) and the Media Streams websocket.

`POST /twilio/voice` answers an incoming call: 403 unless Twilio signed it; 409 when its CallSid
was answered before (a replayed webhook gets no second stream token); `<Reject
reason="busy">` when admission control says no (the calls in progress and those whose stream is
about to attach count against the limit); otherwise `<Connect><Stream>` to `/twilio/media` with a
one-time token. `POST /twilio/status` records call progress. `POST /twilio/whisper/{token}`
(signed) answers `<Say>` with a hand-off's summary, for the person a caller is put through to;
`POST /twilio/dialed/{token}` (signed) hears how that dial ended and, when nobody answered, puts
the caller back on a stream to the agent (see telephony/twilio/whispers.py). `/twilio/media` is
the websocket.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

from fastapi import APIRouter, Request, Response, WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

from appliance.observability.metrics import Metrics
from appliance.telephony.calls import Admission, Verdict
from appliance.telephony.twilio.progress import CallProgress
from appliance.telephony.twilio.streams import MediaStreams
from appliance.telephony.twilio.tokens import StreamTokens
from appliance.telephony.twilio.webhooks import (
    SignatureCheck,
    back_to_agent_twiml,
    busy_twiml,
    hang_up_twiml,
    stream_twiml,
    webhook_params,
)
from appliance.telephony.twilio.whispers import Whispers, whisper_twiml

__all__ = ["TwilioEndpoints", "twilio_router"]

_log = logging.getLogger(__name__)
_MAX_BODY_BYTES = 64 * 1024
_XML = "application/xml"
_PUT_THROUGH = frozenset({"completed", "answered"})
"""`DialCallStatus` values that mean the person took the call."""


@dataclass(frozen=True, slots=True)
class TwilioEndpoints:
    """What the Twilio endpoints need."""

    signatures: SignatureCheck
    admission: Admission
    tokens: StreamTokens
    streams: MediaStreams
    progress: CallProgress
    metrics: Metrics
    account_sid: str | None = None
    """When set, webhooks for any other account are refused."""
    whispers: Whispers | None = None
    """Hand-off summaries for the people callers are put through to."""


class _Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


async def _body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > _MAX_BODY_BYTES:
        raise _Refused(413, "too-large")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_BODY_BYTES:
            raise _Refused(413, "too-large")
    return bytes(body)


async def _signed_params(deps: TwilioEndpoints, request: Request) -> dict[str, str]:
    """The webhook's parameters, once its signature (and account) check out."""
    body = await _body(request)
    content_type = request.headers.get("content-type", "")
    if not deps.signatures.valid(
        path=request.url.path,
        query=request.url.query,
        body=body,
        content_type=content_type,
        signature=request.headers.get("x-twilio-signature"),
    ):
        if not deps.signatures.configured:
            _log.warning("a Twilio webhook arrived but TWILIO_AUTH_TOKEN or BASE_URL is not set")
        raise _Refused(403, "signature")
    params = dict(webhook_params(body, content_type))
    if deps.account_sid and params.get("AccountSid", deps.account_sid) != deps.account_sid:
        raise _Refused(403, "account")
    return params


def _refusal(deps: TwilioEndpoints, refused: _Refused, call_sid: str = "-") -> Response:
    deps.metrics.twilio_refused.labels(refused.reason).inc()
    _log.warning("Twilio webhook for call %s refused: %s", call_sid, refused.reason)
    return Response(status_code=refused.status)


class _Socket:
    """Starlette's websocket as the line's MessageSocket."""

    def __init__(self, websocket: WebSocket) -> None:
        self._ws = websocket

    async def receive(self) -> str | bytes | None:
        if self._ws.client_state == WebSocketState.DISCONNECTED:
            return None
        try:
            message = await self._ws.receive()
        except (WebSocketDisconnect, RuntimeError):
            return None
        if message["type"] == "websocket.disconnect":
            return None
        text = message.get("text")
        return text if text is not None else bytes(message.get("bytes") or b"")

    async def send(self, text: str) -> None:
        try:
            await self._ws.send_text(text)
        except (WebSocketDisconnect, RuntimeError, OSError) as exc:
            raise ConnectionError(str(exc)) from exc

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self._ws.application_state == WebSocketState.DISCONNECTED:
            return
        with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
            await self._ws.close(code, reason)


def _room_for_one_more(deps: TwilioEndpoints) -> bool:
    """Admission says yes, counting the calls whose streams are about to attach."""
    verdict = deps.admission.check(None)
    return verdict is Verdict.ADMIT and (
        deps.admission.active + deps.tokens.pending < deps.admission.max_calls
    )


def twilio_router(deps: TwilioEndpoints) -> APIRouter:
    """The `/twilio/...` routes, bound to `deps`."""
    router = APIRouter(prefix="/twilio")

    @router.post("/voice")
    async def voice(request: Request) -> Response:
        try:
            params = await _signed_params(deps, request)
        except _Refused as refused:
            return _refusal(deps, refused)
        call_sid = params.get("CallSid", "")
        if not call_sid:
            return _refusal(deps, _Refused(400, "no-call-sid"))
        if deps.tokens.announced(call_sid):
            # A replay: a second token would let whoever holds it open a stream for the call.
            return _refusal(deps, _Refused(409, "replayed"), call_sid)
        verdict = deps.admission.check(None)
        reserved = deps.admission.active + deps.tokens.pending
        if verdict is Verdict.ADMIT and reserved >= deps.admission.max_calls:
            verdict = Verdict.BUSY
        if verdict is not Verdict.ADMIT:
            deps.metrics.twilio_refused.labels(verdict.value).inc()
            _log.info("call %s refused: %s", call_sid, verdict.value)
            return Response(busy_twiml(), media_type=_XML)
        token = deps.tokens.issue(
            call_sid, caller=params.get("From", ""), callee=params.get("To", "")
        )
        url = deps.signatures.stream_url(f"{router.prefix}/media")
        return Response(stream_twiml(url, token), media_type=_XML)

    @router.post("/status")
    async def status(request: Request) -> Response:
        try:
            params = await _signed_params(deps, request)
        except _Refused as refused:
            return _refusal(deps, refused)
        call_sid, call_status = params.get("CallSid", ""), params.get("CallStatus", "")
        if not call_sid or not call_status:
            return _refusal(deps, _Refused(400, "no-call-status"))
        duration = params.get("CallDuration", "")
        deps.progress.record(call_sid, call_status, int(duration) if duration.isdigit() else None)
        deps.metrics.twilio_call_status.labels(call_status).inc()
        _log.info("call %s is %s", call_sid, call_status)
        return Response(status_code=204)

    @router.post("/whisper/{token}")
    async def whisper(token: str, request: Request) -> Response:
        try:
            await _signed_params(deps, request)
        except _Refused as refused:
            return _refusal(deps, refused)
        handoff = deps.whispers.get(token) if deps.whispers is not None else None
        if handoff is None:
            return _refusal(deps, _Refused(404, "no-whisper"))
        return Response(whisper_twiml(handoff.summary), media_type=_XML)

    @router.post("/dialed/{token}")
    async def dialed(token: str, request: Request) -> Response:
        try:
            params = await _signed_params(deps, request)
        except _Refused as refused:
            return _refusal(deps, refused)
        handoff = deps.whispers.get(token) if deps.whispers is not None else None
        call_sid, status = params.get("CallSid", ""), params.get("DialCallStatus", "")
        if handoff is None or not call_sid:
            return _refusal(deps, _Refused(404, "no-handoff"))
        _log.info("call %s: the dial to %s ended %s", call_sid, handoff.who, status or "?")
        if status in _PUT_THROUGH:
            return Response(hang_up_twiml(), media_type=_XML)
        if not _room_for_one_more(deps):
            sorry = f"I'm sorry, {handoff.who} can't take your call. Please call again later."
            return Response(back_to_agent_twiml("", "", sorry=sorry), media_type=_XML)
        stream = deps.tokens.issue(
            call_sid,
            caller=params.get("From", ""),
            callee=params.get("To", ""),
            back_from=handoff,
        )
        url = deps.signatures.stream_url(f"{router.prefix}/media")
        return Response(back_to_agent_twiml(url, stream), media_type=_XML)

    @router.websocket("/media")
    async def media(websocket: WebSocket) -> None:
        await websocket.accept()
        await deps.streams.serve(_Socket(websocket))

    return router
