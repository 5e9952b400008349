"""`SipListener`: the SIP line as the appliance serves it (an async context manager).

On entry it starts the endpoint (transports, account, registration) and from then on every
INVITE goes through the shared `Admission`: admitted calls are answered and handed to the
`CallRouter` (`answer`) as a `SipLine`; the rest are refused with the code their verdict maps
to (`403`, `503`, `401` with a digest challenge, `486`), or, for strangers with
`refusal="silent"`, left unanswered. Every other request meets admission's source list (and
pjsip's blind spots) before pjsip sees it, in the endpoint's `Screen` (screen.py). On exit it
refuses new INVITEs, hangs up every call (BYE), waits for the sessions to finish and stops the
endpoint, which releases every pj object and destroys the library.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from appliance.clock import Clock
from appliance.conversation.events import EventSink
from appliance.conversation.ports import CallInfo, TextToSpeech
from appliance.observability.logs import call_context
from appliance.observability.metrics import Metrics
from appliance.telephony.calls import CallRouter, Credentials, Reservation, Verdict
from appliance.telephony.digest import DigestOutcome
from appliance.telephony.sip.calltable import Invite
from appliance.telephony.sip.config import SipConfig
from appliance.telephony.sip.endpoint import SipEndpoint
from appliance.telephony.sip.line import SipLine
from appliance.telephony.sip.media import CallMedia
from appliance.telephony.sip.screen import Screen
from appliance.telephony.sip.status import RegistrationStatus, SipStatus

__all__ = ["SinkFactory", "SipListener"]

_log = logging.getLogger(__name__)
_ENDED_WAIT_S = 5.0

SinkFactory = Callable[[CallInfo], EventSink | None]


class SipListener:
    """Answers SIP calls through admission control until closed."""

    def __init__(
        self,
        config: SipConfig,
        router: CallRouter,
        *,
        clock: Clock,
        metrics: Metrics,
        status: SipStatus | None = None,
        sinks: SinkFactory = lambda _: None,
        voice: TextToSpeech | None = None,
    ) -> None:
        self.config = config
        self._router = router
        self._clock = clock
        self._metrics = metrics
        self.status = status if status is not None else SipStatus()
        self._sinks = sinks
        self._voice = voice
        """Speaks the summary to the person on an attended transfer; None: transfers are blind."""
        self._endpoint: SipEndpoint | None = None
        self._lines: dict[int, SipLine] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    @property
    def port(self) -> int:
        """The SIP port every transport listens on (once started)."""
        return self._endpoint.port if self._endpoint is not None else 0

    async def __aenter__(self) -> SipListener:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Listen; raises SipError when the transports or the account cannot be set up."""
        if self.config.registration is not None:
            self.status.registration = RegistrationStatus(state="registering")
        admission = self._router.admission
        loop = asyncio.get_running_loop()

        def told(method: str, code: int) -> None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody to tell
                loop.call_soon_threadsafe(self._screened, method, code)

        screen = Screen(admission.allows, silent=admission.refusal == "silent", told=told)
        endpoint = SipEndpoint(self.config, self, loop, screen=screen)
        await endpoint.start()
        self._endpoint = endpoint
        self.status.listening = list(endpoint.listening)
        _log.info("SIP listening on %s", ", ".join(endpoint.listening))

    async def close(self, wait_s: float = 5.0) -> None:
        """Hang up every call, wait for their sessions, then stop the endpoint."""
        self._closing = True
        endpoint, self._endpoint = self._endpoint, None
        if endpoint is None:
            return
        with contextlib.suppress(RuntimeError):
            await endpoint.stop_accepting()
        for line in list(self._lines.values()):
            self._spawn(line.disconnect())
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=wait_s)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        if not await endpoint.stop():
            _log.error("pjsua2's thread is still running; the process should be restarted")
        self.status.listening = []
        self.status.active_calls = 0
        self._metrics.sip_registered.set(0)

    # --- from the endpoint (loop thread) --------------------------------------------------------

    def invited(self, invite: Invite) -> None:
        with call_context(invite.call_id, invite.caller):
            self._decide(invite)

    def answered(self, key: int) -> None:
        line = self._lines.get(key)
        if line is not None:
            line.on_answered()

    def ended(self, key: int, reason: str) -> None:
        line = self._lines.get(key)
        if line is not None:
            line.on_ended(reason)

    def dtmf(self, key: int, digit: str, method: str) -> None:
        line = self._lines.get(key)
        if line is not None:
            with call_context(line.info.call_id, line.info.caller):
                line.on_dtmf(digit, method)

    def registered(self, status: RegistrationStatus) -> None:
        self.status.registration = status
        self._metrics.sip_registered.set(1 if status.state == "registered" else 0)

    def _screened(self, method: str, code: int) -> None:
        """A request the screen refused before pjsip saw it: counted like admission's refusals
        when it was a stranger's INVITE (403), so the status page and metrics still see them."""
        if method == "INVITE" and code == 403:
            refused = self.status.calls_refused
            refused[Verdict.FORBIDDEN.value] = refused.get(Verdict.FORBIDDEN.value, 0) + 1
            self._metrics.sip_invites.labels(Verdict.FORBIDDEN.value).inc()

    # --- deciding -------------------------------------------------------------------------------

    def _decide(self, invite: Invite) -> None:
        endpoint = self._endpoint
        if endpoint is None or self._closing:
            return  # the endpoint refuses INVITEs itself while it stops
        admission = self._router.admission
        credentials = (
            Credentials("INVITE", invite.authorization, invite.request_uri)
            if admission.auth is not None
            else None
        )
        verdict = admission.check(invite.source, credentials)
        self._metrics.sip_invites.labels(verdict.value).inc()
        if verdict is not Verdict.ADMIT:
            refused = self.status.calls_refused
            refused[verdict.value] = refused.get(verdict.value, 0) + 1
            _log.info("refused (%s)", verdict.value)
        match verdict:
            case Verdict.ADMIT:
                self._admit(invite, admission.reserve())
            case Verdict.FORBIDDEN if admission.refusal == "silent":
                self._spawn(endpoint.hold_silently(invite.key))
            case Verdict.FORBIDDEN:
                self._spawn(endpoint.reject(invite.key, 403))
            case Verdict.RATE_LIMITED:
                retry = {"Retry-After": str(int(admission.rate_window_s))}
                self._spawn(endpoint.reject(invite.key, 503, retry))
            case Verdict.UNAUTHORIZED:
                auth = admission.auth
                assert auth is not None
                outcome = auth.verify("INVITE", invite.authorization, uri=invite.request_uri)
                stale = outcome is DigestOutcome.STALE
                challenge = {"WWW-Authenticate": auth.challenge(stale=stale)}
                self._spawn(endpoint.reject(invite.key, 401, challenge))
            case Verdict.BUSY:
                self._spawn(endpoint.reject(invite.key, 486))

    def _admit(self, invite: Invite, reservation: Reservation) -> None:
        assert self._endpoint is not None
        loop = asyncio.get_running_loop()
        info = CallInfo(
            call_id=invite.call_id,
            line="sip",
            caller=invite.caller,
            callee=invite.callee,
            vouched=self._router.admission.vouches_for_callers,
        )
        line = SipLine(
            info,
            key=invite.key,
            media=CallMedia(loop),
            control=self._endpoint,
            clock=self._clock,
            metrics=self._metrics,
            transfer_to=self.config.transfer_to,
            refer_domain=self._refer_domain(invite),
            voice=self._voice,
            attended=self.config.attended_transfer and invite.replaces,
        )
        self._lines[invite.key] = line
        self._spawn(self._run(line, reservation))

    def _refer_domain(self, invite: Invite) -> str:
        reg = self.config.registration
        if reg is not None:
            return reg.registrar.split(":", 1)[-1].split(";", 1)[0]
        return f"[{invite.source}]" if ":" in invite.source else invite.source

    async def _run(self, line: SipLine, reservation: Reservation) -> None:
        try:
            assert self._endpoint is not None
            try:
                await self._endpoint.answer(line.key, line.media)
            except (LookupError, RuntimeError) as exc:
                _log.info("the call went before it was answered (%s)", exc)
                return
            self.status.active_calls += 1
            self.status.calls_answered += 1
            try:
                line.sink = self._sinks(line.info)
                await self._router.answer(line, line.sink, reservation=reservation)
                await line.disconnect()
                try:
                    async with asyncio.timeout(_ENDED_WAIT_S):
                        await line.ended.wait()
                except TimeoutError:
                    _log.warning("the call did not end within %.0f s of hanging up", _ENDED_WAIT_S)
            finally:
                self.status.active_calls -= 1
        finally:
            reservation.release()
            self._lines.pop(line.key, None)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            if isinstance(exc, LookupError | RuntimeError):
                _log.info("a SIP command found its call gone: %s", exc)
            else:
                _log.error("a SIP task failed", exc_info=exc)
