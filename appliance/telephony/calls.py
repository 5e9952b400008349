"""Where every call comes in: admission control, then one CallSession per admitted call.

Every line (SIP, Twilio, the speakerphone) asks `Admission.check` before it answers, and hands
the answered call to `CallRouter.handle`. The checks, in order: the source is one we take calls
from (the trunk's addresses), it is not calling faster than `rate_limit` calls per
`rate_window_s`, it proved who it is when `auth` is set (digest credentials), and there is a free
slot (`max_calls`; beyond it, busy). A line that answers later than it checks (SIP answers on
its own thread) takes a `reserve()`d slot at once, so two calls checked in the same instant
cannot both take the last slot. `refusal` says how a line turns strangers away: with an error
(`reject`) or without a word (`silent`), as far as its protocol allows.
"""

from __future__ import annotations

import contextlib
import enum
import ipaddress
import logging
import os
from collections import defaultdict, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from appliance.clock import Clock
from appliance.conversation.events import CallEnded, Event, EventSink
from appliance.conversation.ports import CallLine
from appliance.conversation.session import Conversation
from appliance.observability.logs import call_context
from appliance.observability.metrics import Metrics
from appliance.telephony.digest import DigestAuth, DigestOutcome

__all__ = [
    "Admission",
    "CallRouter",
    "Credentials",
    "Refusal",
    "Reservation",
    "Verdict",
    "default_max_calls",
    "parse_networks",
]

_log = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Refusal = Literal["reject", "silent"]


def default_max_calls() -> int:
    """Concurrent calls this box can carry: one per core, less one for the rest, at least one."""
    return max(1, (os.cpu_count() or 1) - 1)


def parse_networks(text: str) -> tuple[Network, ...]:
    """`10.0.0.0/8, 192.0.2.7` -> networks; raises ValueError naming the bad entry."""
    networks = []
    for raw in (part.strip() for part in text.split(",")):
        if not raw:
            continue
        try:
            networks.append(ipaddress.ip_network(raw, strict=False))
        except ValueError as exc:
            raise ValueError(f"{raw!r} is not an IP address or CIDR network") from exc
    return tuple(networks)


class Verdict(enum.Enum):
    ADMIT = "admit"
    FORBIDDEN = "forbidden"
    """The source is not one we take calls from (SIP: 403 or silence)."""
    RATE_LIMITED = "rate-limited"
    """The source is calling too fast (SIP: 503 with Retry-After)."""
    UNAUTHORIZED = "unauthorized"
    """Credentials are required and were missing or wrong (SIP: 401 with `auth.challenge()`)."""
    BUSY = "busy"
    """Every slot is taken (SIP: 486 Busy Here; Twilio: <Reject reason="busy">)."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a caller presented to prove who it is, for `Admission.check` when `auth` is set."""

    method: str
    """The request method the digest covers (`INVITE`)."""
    authorization: str | None
    """The `Authorization` header's value; None when the request had none."""


class Reservation:
    """One of the `max_calls` slots, held from `Admission.reserve()` until released or exited."""

    __slots__ = ("_admission", "_held")

    def __init__(self, admission: Admission) -> None:
        admission.active += 1
        self._admission = admission
        self._held = True

    def release(self) -> None:
        """Give the slot back (once; later calls do nothing)."""
        if self._held:
            self._held = False
            self._admission.active -= 1

    def __enter__(self) -> Reservation:
        return self

    def __exit__(self, *_: object) -> None:
        self.release()


@dataclass(frozen=True, slots=True)
class _Limits:
    max_calls: int
    allowed: tuple[Network, ...]
    rate_limit: int
    rate_window_s: float


class Admission:
    """Who may call, how fast, and how many at once; shared by every line."""

    def __init__(
        self,
        *,
        clock: Clock,
        max_calls: int | None = None,
        allowed: Sequence[Network] = (),
        rate_limit: int = 10,
        rate_window_s: float = 10.0,
        refusal: Refusal = "reject",
        auth: DigestAuth | None = None,
    ) -> None:
        self._clock = clock
        self.refusal: Refusal = refusal
        """How lines turn away sources that are not allowed."""
        self.auth = auth
        """When set, callers must prove who they are (digest) before they are answered."""
        self._limits = _Limits(
            max_calls=max_calls or default_max_calls(),
            allowed=tuple(allowed),
            rate_limit=rate_limit,
            rate_window_s=rate_window_s,
        )
        self._recent: defaultdict[str, deque[float]] = defaultdict(deque)
        self.active = 0

    @property
    def max_calls(self) -> int:
        return self._limits.max_calls

    @property
    def rate_window_s(self) -> float:
        return self._limits.rate_window_s

    @property
    def has_allowed_sources(self) -> bool:
        """Whether sources are restricted at all (an empty list lets anyone call)."""
        return bool(self._limits.allowed)

    def check(self, source: str | None, credentials: Credentials | None = None) -> Verdict:
        """Whether a call from `source` (an IP address; None when the line has none) may start.

        `credentials` is what the call presented, from lines that carry digest credentials (SIP):
        with `auth` set, such a call without valid ones is UNAUTHORIZED. Lines that carry none
        pass None and `auth` does not apply to them (Twilio signs its requests instead)."""
        limits = self._limits
        if source is not None and limits.allowed:
            try:
                address = ipaddress.ip_address(source)
            except ValueError:
                return Verdict.FORBIDDEN
            if not any(address in network for network in limits.allowed):
                return Verdict.FORBIDDEN
        if source is not None and limits.rate_limit > 0:
            now = self._clock.now()
            recent = self._recent[source]
            while recent and now - recent[0] > limits.rate_window_s:
                recent.popleft()
            if len(recent) >= limits.rate_limit:
                return Verdict.RATE_LIMITED
            recent.append(now)
        if self.auth is not None and not self._proven(credentials):
            return Verdict.UNAUTHORIZED
        if self.active >= limits.max_calls:
            return Verdict.BUSY
        return Verdict.ADMIT

    def _proven(self, credentials: Credentials | None) -> bool:
        assert self.auth is not None
        if credentials is None:
            return True  # the line carries no credentials: see `check`
        return self.auth.verify(credentials.method, credentials.authorization) is DigestOutcome.OK

    def reserve(self) -> Reservation:
        """Take a slot now, for a call admitted by `check` and answered a moment later."""
        return Reservation(self)

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of the `max_calls` slots for the length of a call."""
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1


SessionFactory = Callable[[CallLine, EventSink | None], Conversation]


class CallRouter:
    """Runs an admitted call's session, with its call id on every log line, and counts it."""

    def __init__(self, admission: Admission, new_session: SessionFactory, metrics: Metrics) -> None:
        self.admission = admission
        self._new_session = new_session
        self._metrics = metrics

    async def handle(
        self,
        line: CallLine,
        sink: EventSink | None = None,
        *,
        reservation: Reservation | None = None,
    ) -> str:
        """Hold the call until it ends; returns why it ended. Never raises for a call's failure.

        `reservation` is a slot the line took when it admitted the call (`Admission.reserve`);
        without one, a slot is taken here. The slot goes back when the conversation ends, not
        when its records are written: a caller who rings just then is answered, not told busy."""
        info = line.info
        slot = reservation if reservation is not None else self.admission.reserve()

        def releasing(event: Event) -> None:
            if isinstance(event, CallEnded):
                slot.release()
            if sink is not None:
                sink(event)

        with call_context(info.call_id, info.caller), slot:
            self._metrics.active_calls.labels(info.line).inc()
            outcome = "failed"
            try:
                _log.info("call answered on %s", info.line)
                reason = await self._new_session(line, releasing).run()
                outcome = reason.replace(" ", "-")
                _log.info("call ended: %s", reason)
                return reason
            except Exception:
                _log.exception("the call failed")
                self._metrics.errors.labels("call").inc()
                return "failed"
            finally:
                self._metrics.active_calls.labels(info.line).dec()
                self._metrics.calls.labels(info.line, outcome).inc()
