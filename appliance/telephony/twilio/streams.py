"""Where Media Streams websockets land: the handshake, the token, then one call per stream.

A stream must open with `connected` and `start` within `handshake_s`, and its `start` must carry
the token the voice webhook issued for that CallSid; otherwise the socket is closed (1008) and no
session starts. An admitted stream becomes a `TwilioLine` handed to the shared `CallRouter`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from appliance.clock import Clock
from appliance.conversation.events import EventSink
from appliance.conversation.ports import CallInfo
from appliance.observability.logs import call_context
from appliance.observability.metrics import Metrics
from appliance.telephony.calls import CallRouter
from appliance.telephony.twilio.line import (
    CLOSE_POLICY,
    Dialer,
    LineConfig,
    MessageSocket,
    TwilioLine,
)
from appliance.telephony.twilio.messages import (
    Connected,
    ProtocolError,
    Start,
    parse_from_twilio,
)
from appliance.telephony.twilio.tokens import PendingCall, StreamTokens

__all__ = ["MediaStreams", "StreamOptions"]

_log = logging.getLogger(__name__)

Observe = Callable[[CallInfo], EventSink | None]
"""Who watches a call's events (the harness, later the status page); None for nobody."""


@dataclass(frozen=True, slots=True)
class StreamOptions:
    handshake_s: float = 10.0
    """A socket that has not sent `start` by then is closed."""
    line: LineConfig = field(default_factory=LineConfig)
    escalation_number: str | None = None
    """Where `transfer` sends a caller (ESCALATION_PHONE_NUMBER)."""


class MediaStreams:
    """Accepts Media Streams and runs each as a call; `hang_up_all` ends them."""

    def __init__(
        self,
        router: CallRouter,
        tokens: StreamTokens,
        *,
        clock: Clock,
        metrics: Metrics,
        options: StreamOptions | None = None,
        dial: Dialer | None = None,
        observe: Observe | None = None,
    ) -> None:
        self._router = router
        self._tokens = tokens
        self._clock = clock
        self._metrics = metrics
        self._options = options or StreamOptions()
        self._dial = dial
        self._observe = observe or (lambda _: None)
        self._lines: set[TwilioLine] = set()

    @property
    def active(self) -> int:
        """Streams carrying a call right now."""
        return len(self._lines)

    def line(self, call_sid: str) -> TwilioLine | None:
        """The line carrying `call_sid`, while it is in progress."""
        return next((line for line in self._lines if line.info.call_id == call_sid), None)

    async def serve(self, socket: MessageSocket) -> None:
        """Carry one accepted websocket until its call ends; never raises for the call's faults."""
        try:
            async with asyncio.timeout(self._options.handshake_s):
                start = await _handshake(socket)
        except (ProtocolError, TimeoutError) as exc:
            reason = "no start in time" if isinstance(exc, TimeoutError) else str(exc)
            await self._refuse(socket, "handshake", reason)
            return
        pending = self._tokens.redeem(start.custom_parameters.get("token", ""), start.call_sid)
        if pending is None:
            with call_context(start.call_sid, "-"):
                await self._refuse(socket, "token", f"no valid stream token for {start.call_sid}")
            return
        # Everything logged about the call from here (its line's tasks too) names it.
        with call_context(start.call_sid, pending.caller):
            await self._carry(socket, start, pending)

    async def _carry(self, socket: MessageSocket, start: Start, pending: PendingCall) -> None:
        info = CallInfo(
            call_id=start.call_sid,
            line="twilio",
            caller=pending.caller,
            callee=pending.callee,
            back_from=pending.back_from,
            vouched=True,  # the number came on Twilio's signed webhook
        )
        line = TwilioLine(
            socket,
            start,
            info=info,
            clock=self._clock,
            metrics=self._metrics,
            config=self._options.line,
            dial=self._dial,
            escalation_number=self._options.escalation_number,
        )
        self._lines.add(line)
        try:
            await line.run(lambda it: self._router.answer(it, self._observe(info)))
        except Exception:
            _log.exception("the media stream of %s failed", info.call_id)
            self._metrics.errors.labels("twilio-stream").inc()
        finally:
            self._lines.discard(line)

    async def hang_up_all(self) -> None:
        """End every call in progress (the appliance is stopping)."""
        for line in list(self._lines):
            await line.hang_up()

    async def _refuse(self, socket: MessageSocket, why: str, detail: str) -> None:
        _log.warning("media stream refused: %s", detail)
        self._metrics.twilio_refused.labels(why).inc()
        await socket.close(CLOSE_POLICY, why)


async def _handshake(socket: MessageSocket) -> Start:
    """Read `connected` (optional) and `start`; anything else first is a ProtocolError."""
    while True:
        text = await socket.receive()
        if text is None:
            raise ProtocolError("the socket closed before `start`")
        match parse_from_twilio(text):
            case Connected():
                continue
            case Start() as start:
                return start
            case other:
                raise ProtocolError(f"`{type(other).__name__.lower()}` before `start`")
