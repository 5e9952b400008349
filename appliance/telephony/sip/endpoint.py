"""The pjsua2 endpoint on its one owner thread, and the bridge between it and the event loop.

pjsua2 is created, driven and destroyed on one named thread (`threadCnt = 0`,
`mainThreadOnly`, `libHandleEvents` polled every 10 ms), so every pj callback except the
media port's runs there. The loop asks for things through a bounded command queue (each
command answers with a future) and hears back through `call_soon_threadsafe` (`EndpointEvents`).
Every pj object (account, calls, media ports) is kept in this class and deleted explicitly on
the owner thread before `libDestroy()`; one still referenced then would abort the process.

Every request received is put to a `Screen` (screen.py, through pjscreen.py's pjsip module)
before pjsip's UA layer and pjsua see it.

`stop()` hangs up what is still up (BYE for answered calls), gives the peers a moment to answer,
unregisters, deletes every pj object and destroys the library, in that order.

The owner thread is not an `appliance.workers.Worker`, on purpose: a Worker's thread sleeps on
its queue until a job comes, but pjsip only makes progress inside `libHandleEvents`, so this
thread alternates between polling events and draining commands. Its setup and teardown are pj
calls that must run on the thread itself, its command queue is bounded and refuses (`SipError`)
rather than waits, and pj errors cross back as `SipError`. What it shares with a Worker is the
life cycle: the thread starts in `start()` (never in the constructor), has a name and a stop
signal (an Event), and is waited for with `workers.join_all` / `ajoin_all`, so that `stop()`
never blocks the loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import pjsua2 as pj

from appliance.telephony.sip.calltable import CallTable, Invite
from appliance.telephony.sip.config import SipConfig
from appliance.telephony.sip.media import CallMedia
from appliance.telephony.sip.pjobjects import PjAccount
from appliance.telephony.sip.pjscreen import PjScreen
from appliance.telephony.sip.screen import Screen
from appliance.telephony.sip.setup import (
    PjLogWriter,
    create_account,
    create_library,
    destroy_library,
    reshuffle_rtp_ports,
)
from appliance.telephony.sip.status import RegistrationStatus
from appliance.telephony.sip.vector import vector_reader
from appliance.workers import ajoin_all, join_all

__all__ = ["EndpointEvents", "SipEndpoint", "SipError"]

_log = logging.getLogger(__name__)
_T = TypeVar("_T")
_POLL_MS = 10
_COMMANDS = 256
_HOUSEKEEPING_S = 0.1
_BYE_GRACE_S = 0.5
_UNREGISTER_WAIT_S = 2.0


class SipError(RuntimeError):
    """pjsua2 refused something (the message says what); the endpoint itself is still fine."""


class EndpointEvents(Protocol):
    """What the endpoint tells the loop; each is called on the loop thread."""

    def invited(self, invite: Invite) -> None: ...

    def answered(self, key: int) -> None: ...

    def ended(self, key: int, reason: str) -> None: ...

    def dtmf(self, key: int, digit: str, method: str) -> None: ...

    def registered(self, status: RegistrationStatus) -> None: ...


class SipEndpoint:
    """pjsua2, owned by one thread; the loop talks to it with the async methods below."""

    def __init__(
        self,
        config: SipConfig,
        events: EndpointEvents,
        loop: asyncio.AbstractEventLoop,
        *,
        name: str = "sip-endpoint",
        screen: Screen | None = None,
    ) -> None:
        self.config = config
        self._rules = screen if screen is not None else Screen()
        """What a request must be to reach pjsip (`screen.py`)."""
        self._events = events
        self._loop = loop
        self._commands: queue.Queue[tuple[Callable[[], object], concurrent.futures.Future[Any]]]
        self._commands = queue.Queue(maxsize=_COMMANDS)
        self.name = name
        """The owner thread's name."""
        self._thread: threading.Thread | None = None
        self._ready: concurrent.futures.Future[list[str]] = concurrent.futures.Future()
        self._stopping = threading.Event()
        self.listening: list[str] = []
        """`udp 127.0.0.1:5060`, one per transport, once started."""
        self.port = 0
        """The SIP port every transport listens on, once started."""
        # Owner-thread state (created in _setup, released in _teardown).
        self._lib: Any = None
        self._writer: PjLogWriter | None = None
        self._account: PjAccount | None = None
        self._table: CallTable | None = None
        self._rtp_shifted = False
        self._screen: PjScreen | None = None

    # --- the loop's side ------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the owner thread and wait until it listens; raises SipError when it cannot."""
        if self._thread is None:
            if self._stopping.is_set():
                raise SipError("the SIP endpoint has been stopped; make a new one")
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()
        self.listening = await asyncio.wrap_future(self._ready)

    async def answer(self, key: int, media: CallMedia) -> None:
        """Answer an incoming call (200 OK); its audio flows through `media` once connected."""
        await self._call(lambda: self._table_().answer(key, media))

    async def reject(self, key: int, code: int, headers: dict[str, str] | None = None) -> None:
        """Refuse an incoming call with a final response."""
        await self._call(lambda: self._table_().reject(key, code, headers or {}))

    async def hold_silently(self, key: int) -> None:
        """Leave an incoming call unanswered (no final response) until its hold runs out."""
        await self._call(lambda: self._table_().hold_silently(key))

    async def stop_accepting(self) -> None:
        """Refuse new INVITEs from now on (503), without asking the loop."""

        def stop() -> None:
            self._table_().accepting = False

        await self._call(stop)

    async def hang_up(self, key: int) -> None:
        """End a call from our side (BYE once answered); nothing when it has ended already."""
        await self._call(lambda: self._table_().hang_up(key))

    async def transfer(self, key: int, target: str) -> bool:
        """Blind transfer (REFER); True when the transferee reports the new call answered."""
        outcome: concurrent.futures.Future[bool] = concurrent.futures.Future()
        await self._call(lambda: self._table_().transfer(key, target, outcome))
        return await asyncio.wrap_future(outcome)

    async def transfer_replacing(self, key: int, consult_key: int) -> bool:
        """Attended transfer (REFER with Replaces) of `key` to the person on `consult_key`;
        True when the transferee reports the replacing call answered."""
        outcome: concurrent.futures.Future[bool] = concurrent.futures.Future()
        await self._call(lambda: self._table_().transfer_replacing(key, consult_key, outcome))
        return await asyncio.wrap_future(outcome)

    async def consult(self, uri: str, media: CallMedia) -> tuple[int, asyncio.Future[int]]:
        """Place a call to `uri` whose audio flows through `media`; returns its key and its
        outcome (200 once answered, else the status code that ended it)."""
        placed: concurrent.futures.Future[int] = concurrent.futures.Future()
        key = await self._call(lambda: self._table_().dial(uri, media, placed))
        return key, asyncio.wrap_future(placed)

    async def dial(self, uri: str, media: CallMedia) -> int:
        """Place a call to `uri` (the harness's caller uses this); returns its key."""
        return await self._call(lambda: self._table_().dial(uri, media))

    async def stop(self, wait_s: float = 10.0) -> bool:
        """Hang up, release every pj object, destroy the library; False if the thread hangs."""
        self._stopping.set()
        stopped = await ajoin_all(self._threads(), wait_s)
        if not stopped:
            _log.error("the SIP endpoint thread did not stop within %.0f s", wait_s)
        return stopped

    def join(self, timeout: float) -> bool:
        """Wait for the owner thread to end (this blocks); True when it has."""
        return join_all(self._threads(), timeout)

    def _threads(self) -> list[threading.Thread]:
        return [] if self._thread is None else [self._thread]

    async def _call(self, work: Callable[[], _T]) -> _T:
        if self._stopping.is_set() or self._thread is None or not self._thread.is_alive():
            raise SipError("the SIP endpoint is not running")
        done: concurrent.futures.Future[_T] = concurrent.futures.Future()
        try:
            self._commands.put_nowait((work, done))
        except queue.Full:
            raise SipError("the SIP endpoint is not keeping up with commands") from None
        return await asyncio.wrap_future(done)

    def _table_(self) -> CallTable:
        assert self._table is not None
        return self._table

    # --- the owner thread -----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            listening = self._setup()
        except BaseException as exc:
            self._release()
            message = exc.info() if isinstance(exc, pj.Error) else str(exc)
            self._ready.set_exception(SipError(f"cannot start SIP: {message}"))
            return
        self._ready.set_result(listening)
        next_housekeeping = time.monotonic()
        while not self._stopping.is_set():
            try:
                self._lib.libHandleEvents(_POLL_MS)
                self._run_commands()
                table = self._table_()
                table.reap()
                table.latch_sources()
                if table.ports_taken:
                    self._reshuffle_rtp_ports(table)
                if time.monotonic() >= next_housekeeping:
                    next_housekeeping = time.monotonic() + _HOUSEKEEPING_S
                    table.housekeeping(time.monotonic())
            except Exception:
                _log.exception("the SIP endpoint loop failed; going on")
        self._teardown()

    def _setup(self) -> list[str]:
        self._writer = PjLogWriter()
        self._lib, listening, self.port = create_library(self.config, self._writer)
        self._screen = PjScreen(self._rules)
        self._screen.register()
        self._table = CallTable(
            self.config,
            post=self._post,
            events=self._events,
            read=vector_reader(pj.ByteVector),
        )
        self._account = create_account(self.config, self._table)
        self._table.account = self._account
        return listening

    def _reshuffle_rtp_ports(self, table: CallTable) -> None:
        table.ports_taken = False
        self._rtp_shifted = not self._rtp_shifted
        if self._account is not None:
            reshuffle_rtp_ports(self._account, self.config, self._rtp_shifted)

    def _run_commands(self) -> None:
        for _ in range(64):
            try:
                work, done = self._commands.get_nowait()
            except queue.Empty:
                return
            if done.set_running_or_notify_cancel():
                try:
                    done.set_result(work())
                except pj.Error as exc:
                    done.set_exception(SipError(exc.info()))
                except Exception as exc:
                    done.set_exception(exc)

    def _post(self, handler: Callable[..., None], *args: object) -> None:
        """Run `handler(*args)` on the loop."""
        # RuntimeError: the loop has closed, and nothing is waiting for this any more.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(handler, *args)

    def _pump(self, seconds: float, until: Callable[[], bool]) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not until():
            self._lib.libHandleEvents(_POLL_MS)
            self._table_().reap()

    def _teardown(self) -> None:
        try:
            table = self._table_()
            self._fail_commands()
            if table.hang_up_all():
                self._pump(_BYE_GRACE_S, lambda: False)
            account = self._account
            if account is not None and account.getInfo().regIsActive:
                account.setRegistration(False)
                self._pump(_UNREGISTER_WAIT_S, lambda: not account.getInfo().regIsActive)
            table.release_all()
        except Exception:
            _log.exception("the SIP endpoint did not shut down cleanly; releasing anyway")
        self._release()

    def _fail_commands(self) -> None:
        while True:
            try:
                _, done = self._commands.get_nowait()
            except queue.Empty:
                return
            if done.set_running_or_notify_cancel():
                done.set_exception(SipError("the SIP endpoint is stopping"))

    def _release(self) -> None:
        """Delete every pj object we hold, then the library (always, even after a failure)."""
        if self._table is not None:
            self._table.release_all()
            self._table.account = None
        self._account = None
        if self._screen is not None:
            self._screen.unregister()
            self._screen = None
        lib, self._lib = self._lib, None
        if lib is not None:
            try:
                destroy_library(lib)
            except pj.Error as exc:
                _log.error("libDestroy failed: %s", exc.info())
            del lib
        self._writer = None
        self._table = None
        _log.info("SIP endpoint stopped")
