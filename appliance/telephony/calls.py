"""Where every call comes in: admission control, then `CallDesk.answer`, the one path of a call.

Every line (SIP, Twilio, the speakerphone) asks `Admission.check` before it answers, and hands
the answered call to `CallDesk.answer`; the offline harness hands its calls there too. The
checks, in order: the source is one we take calls from (the trunk's addresses), it is not
calling faster than `rate_limit` calls per `rate_window_s`, it proved who it is when `auth` is
set (digest credentials), and there is a free slot (`max_calls`; beyond it, busy). A line that
answers later than it checks (SIP answers on its own thread) takes a `reserve()`d slot at once,
so two calls checked in the same instant cannot both take the last slot. `refusal` says how a
line turns strangers away: with an error (`reject`) or without a word (`silent`), as far as its
protocol allows.

`answer` reads top to bottom: hold a slot, open the call's records, list it for the status page,
run its session with one sink that fans its events out, give the slot back when the
conversation ends, and close the records. When the records wrap the line (to record it), the
session still gets the line's own capabilities beyond audio: handing the caller to a person,
and the keys they press (a recording line that passed only audio hid them; issue 11).
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import ipaddress
import logging
import os
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from dataclasses import dataclass
from typing import Literal, Protocol

from appliance.clock import Clock
from appliance.conversation.events import Event, EventSink
from appliance.conversation.ports import (
    CallInfo,
    CallLine,
    Echoing,
    Handoff,
    Keypad,
    KeyPress,
    LineLoss,
    Message,
    Recall,
    Transferable,
    TransferError,
)
from appliance.conversation.session import Conversation
from appliance.observability.logs import call_context
from appliance.observability.metrics import Metrics
from appliance.telephony.digest import DigestAuth, DigestOutcome

__all__ = [
    "Admission",
    "CallDesk",
    "CallRecord",
    "CallRecords",
    "CallRouter",
    "CallWatchers",
    "Credentials",
    "NewSession",
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
    uri: str
    """The request's Request-URI, as sent: the digest must have been computed for it."""


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
        self._recent: dict[str, deque[float]] = {}
        self._next_sweep = 0.0
        self.active = 0

    @property
    def max_calls(self) -> int:
        return self._limits.max_calls

    def resize(self, max_calls: int) -> None:
        """Admit up to `max_calls` at once from now on (calls in progress are not touched)."""
        if max_calls < 1:
            raise ValueError(f"max_calls must be at least 1, not {max_calls}")
        self._limits = dataclasses.replace(self._limits, max_calls=max_calls)

    @property
    def rate_window_s(self) -> float:
        return self._limits.rate_window_s

    @property
    def has_allowed_sources(self) -> bool:
        """Whether sources are restricted at all (an empty list lets anyone call)."""
        return bool(self._limits.allowed)

    @property
    def vouches_for_callers(self) -> bool:
        """Whether a caller's number can be believed: calls come only from the trunk's addresses
        or with its credentials. Anyone can put any number in a SIP `From` otherwise."""
        return self.has_allowed_sources or self.auth is not None

    def check(self, source: str | None, credentials: Credentials | None = None) -> Verdict:
        """Whether a call from `source` (an IP address; None when the line has none) may start.

        `credentials` is what the call presented, from lines that carry digest credentials (SIP):
        with `auth` set, such a call without valid ones is UNAUTHORIZED. Lines that carry none
        pass None and `auth` does not apply to them (Twilio signs its requests instead)."""
        limits = self._limits
        if source is not None and not self.allows(source):
            return Verdict.FORBIDDEN
        if source is not None and limits.rate_limit > 0 and not self._within_rate(source):
            return Verdict.RATE_LIMITED
        if self.auth is not None and not self._proven(credentials):
            return Verdict.UNAUTHORIZED
        if self.active >= limits.max_calls:
            return Verdict.BUSY
        return Verdict.ADMIT

    def allows(self, source: str) -> bool:
        """Whether `source` (an IP address) is one we take calls from. Reads only what never
        changes, so any thread may ask (the SIP endpoint's does, for requests other than
        INVITE)."""
        allowed = self._limits.allowed
        if not allowed:
            return True
        try:
            address = ipaddress.ip_address(source)
        except ValueError:
            return False
        return any(address in network for network in allowed)

    @property
    def tracked_sources(self) -> int:
        """Sources the rate limit remembers: those that called within the last window or so."""
        return len(self._recent)

    def _within_rate(self, source: str) -> bool:
        """Whether `source` may start another call now; counts the call when it may."""
        now = self._clock.now()
        window = self._limits.rate_window_s
        self._forget_quiet_sources(now)
        recent = self._recent.setdefault(source, deque())
        while recent and now - recent[0] > window:
            recent.popleft()
        if len(recent) >= self._limits.rate_limit:
            return False
        recent.append(now)
        return True

    def _forget_quiet_sources(self, now: float) -> None:
        """Drop the sources none of whose calls is still in the window (at most once a window).

        Without this the map grew by one entry per address ever heard from, so a flood from
        spoofed UDP sources grew it without bound (issue 13); a forgotten source starts afresh,
        which is what its window would say anyway."""
        if now < self._next_sweep:
            return
        window = self._limits.rate_window_s
        self._next_sweep = now + window
        quiet = [s for s, times in self._recent.items() if not times or now - times[-1] > window]
        for source in quiet:
            del self._recent[source]

    def _proven(self, credentials: Credentials | None) -> bool:
        assert self.auth is not None
        if credentials is None:
            return True  # the line carries no credentials: see `check`
        outcome = self.auth.verify(
            credentials.method, credentials.authorization, uri=credentials.uri
        )
        return outcome is DigestOutcome.OK

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


NewSession = Callable[[CallLine, EventSink, Sequence[Message], Recall | None], Conversation]
"""Makes a call's session from its line, its sink, what the agent knows of the caller
(`context`) and how to recall more (`recall`)."""


class CallRecord(Protocol):
    """A call's records while it runs: what its session is given."""

    @property
    def line(self) -> CallLine:
        """The line the session talks on (the recording line, when the call is recorded)."""
        ...

    def sink(self, event: Event) -> None:
        """Write the session's event down."""
        ...

    @property
    def context(self) -> Sequence[Message]:
        """What the agent knows of this caller from earlier calls."""
        ...

    @property
    def recall(self) -> Recall | None: ...


class CallRecords(Protocol):
    """Where calls are written down (the memory's `Records`)."""

    def open(self, line: CallLine) -> AbstractAsyncContextManager[CallRecord]:
        """The call's records, kept while the block runs and closed when it ends. It learns
        how the call ended from the `CallEnded` event through its sink."""
        ...


class CallWatchers(Protocol):
    """Who watches calls as they happen (the status page's `LiveCalls`)."""

    def watch(self, info: CallInfo) -> AbstractContextManager[EventSink]:
        """A sink for the call's events, listed while the block runs."""
        ...


class CallRouter(Protocol):
    """What a line needs to take calls: who may call, and where an admitted call goes."""

    @property
    def admission(self) -> Admission: ...

    async def answer(
        self,
        line: CallLine,
        observe: EventSink | None = None,
        *,
        reservation: Reservation | None = None,
    ) -> str:
        """Hold the call on `line` until it ends; returns why it ended. Never raises for a
        call's failure."""
        ...


@dataclass(frozen=True, slots=True)
class _Unrecorded:
    line: CallLine
    context: Sequence[Message] = ()
    recall: Recall | None = None

    def sink(self, event: Event) -> None:
        del event


class CallDesk:
    """Answers every call on every line, and in the harness, the same way (`answer`)."""

    def __init__(
        self,
        admission: Admission,
        new_session: NewSession,
        metrics: Metrics,
        *,
        records: CallRecords | None = None,
        watchers: CallWatchers | None = None,
    ) -> None:
        self.admission = admission
        self._new_session = new_session
        self._metrics = metrics
        self._records = records
        self._watchers = watchers

    async def answer(
        self,
        line: CallLine,
        observe: EventSink | None = None,
        *,
        reservation: Reservation | None = None,
    ) -> str:
        """The whole of a call, from its admission to its records; returns why it ended.

        `reservation` is a slot the line took when it admitted the call (`Admission.reserve`);
        without one, a slot is taken here. The slot goes back when the conversation ends, not
        when its records are written: a caller who rings just then is answered, not told busy.
        Every event goes to the records first (they must not miss one), then to the status page
        and to `observe` (the line's or the harness's watcher)."""
        info = line.info
        slot = reservation if reservation is not None else self.admission.reserve()
        with call_context(info.call_id, info.caller), slot, _Counted(info, self._metrics) as call:
            async with self._record(line) as record:
                with self._watch(info) as watch:
                    sink = _fan_out(record.sink, watch, observe)
                    talk = record.line if record.line is line else _capable(record.line, line)
                    session = self._new_session(talk, sink, record.context, record.recall)
                    try:
                        call.reason = await session.run()
                    finally:
                        slot.release()
        return call.reason

    def _record(self, line: CallLine) -> AbstractAsyncContextManager[CallRecord]:
        if self._records is None:
            return contextlib.nullcontext(_Unrecorded(line))
        return self._records.open(line)

    def _watch(self, info: CallInfo) -> AbstractContextManager[EventSink | None]:
        if self._watchers is None:
            return contextlib.nullcontext(None)
        return self._watchers.watch(info)


def _capable(audio: CallLine, own: CallLine) -> _Capable:
    """`audio` (the records' line) with what else `own` can do."""
    return _EchoingCapable(audio, own) if isinstance(own, Echoing) else _Capable(audio, own)


class _Capable:
    """The records' line for audio (so it is recorded), the call's own line for the rest."""

    def __init__(self, audio: CallLine, own: CallLine) -> None:
        self._audio = audio
        self._own = own

    @property
    def info(self) -> CallInfo:
        return self._audio.info

    def listen(self) -> AsyncIterator[bytes]:
        return self._audio.listen()

    async def play(self, frame: bytes) -> int:
        return await self._audio.play(frame)

    async def clear(self) -> int:
        return await self._audio.clear()

    async def drain(self) -> int:
        return await self._audio.drain()

    async def hang_up(self) -> None:
        await self._audio.hang_up()

    async def transfer(self, handoff: Handoff) -> None:
        if not isinstance(self._own, Transferable):
            raise TransferError(f"a {self.info.line} line cannot transfer calls")
        await self._own.transfer(handoff)

    def presses(self) -> AsyncIterator[KeyPress]:
        return self._own.presses() if isinstance(self._own, Keypad) else _no_keys()

    @property
    def lost_because(self) -> str | None:
        return self._own.lost_because if isinstance(self._own, LineLoss) else None


class _EchoingCapable(_Capable):
    """...of a line that hears the agent (the speakerphone): holding its audio is its own."""

    def hold(self) -> int:
        assert isinstance(self._own, Echoing)
        return self._own.hold()

    def release(self) -> None:
        assert isinstance(self._own, Echoing)
        self._own.release()


async def _no_keys() -> AsyncIterator[KeyPress]:
    return
    yield  # an async generator that yields nothing


class _Counted:
    """A call in the logs and metrics, from its answer to its end. A call's failure stops here
    (logged and counted): it must not take down the line that answered it."""

    def __init__(self, info: CallInfo, metrics: Metrics) -> None:
        self._line = info.line
        self._metrics = metrics
        self.reason = "failed"
        """Why the call ended."""

    def __enter__(self) -> _Counted:
        _log.info("call answered on %s", self._line)
        self._metrics.active_calls.labels(self._line).inc()
        return self

    def __exit__(self, kind: object, error: BaseException | None, trace: object) -> bool:
        self._metrics.active_calls.labels(self._line).dec()
        failed = isinstance(error, Exception)
        if failed:
            _log.error("the call failed", exc_info=error)
            self._metrics.errors.labels("call").inc()
            self.reason = "failed"
        elif error is None:
            _log.info("call ended: %s", self.reason)
        self._metrics.calls.labels(self._line, self.reason.replace(" ", "-")).inc()
        return failed


def _fan_out(*sinks: EventSink | None) -> EventSink:
    """One sink that passes each event to every sink in order; one failing does not stop the
    rest."""
    chosen = [sink for sink in sinks if sink is not None]

    def sink(event: Event) -> None:
        for each in chosen:
            try:
                each(event)
            except Exception:
                _log.exception("an event observer failed on %s", type(event).__name__)

    return sink
