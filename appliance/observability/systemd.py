"""systemd's service notifications (sd_notify) without libsystemd: one datagram per state change.

Under `Type=notify` systemd passes `NOTIFY_SOCKET`, a unix datagram socket (a leading `@` names
the abstract namespace). `READY=1` ends start-up, `STOPPING=1` starts shutdown, and with
`WatchdogSec=` systemd also passes `WATCHDOG_USEC`: a service that sends no `WATCHDOG=1` within
that time is killed and restarted. The pings come from a task on the event loop, so a loop that
stalls (a blocking call, a busy coroutine) stops them and gets the service restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

__all__ = ["ServiceNotifier"]

_log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
"""Waits the given seconds (a `Clock.sleep`)."""


class ServiceNotifier:
    """Tells systemd that the service is ready, alive or stopping; does nothing outside systemd."""

    def __init__(
        self,
        address: str | None,
        *,
        watchdog_usec: int | None = None,
        watchdog_pid: int | None = None,
        pid: int,
    ) -> None:
        """`address` is `$NOTIFY_SOCKET`; `pid` is this process's, to match `$WATCHDOG_PID`."""
        self._address = _socket_address(address) if address else None
        # WATCHDOG_PID names the process systemd watches; any other process (a child that
        # inherited the environment) must leave the watchdog alone.
        mine = watchdog_pid is None or watchdog_pid == pid
        self.watchdog_interval = watchdog_usec / 2e6 if watchdog_usec and mine else None
        """Seconds between pings: half the timeout, as sd_watchdog_enabled(3) advises."""

    @property
    def enabled(self) -> bool:
        """Whether systemd is listening."""
        return self._address is not None

    def notify(self, *assignments: str) -> bool:
        """Send `KEY=value` lines in one datagram; False when nobody listens or it was dropped."""
        if self._address is None:
            return False
        message = "\n".join(assignments).encode()
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            # Never wait on systemd from the event loop: a full queue drops this state change
            # (the next ping or state replaces it) rather than stalling calls.
            sock.setblocking(False)
            try:
                sock.sendto(message, self._address)
            except OSError as exc:
                _log.warning("systemd notification %r not sent: %s", assignments, exc)
                return False
        return True

    @contextlib.asynccontextmanager
    async def serving(self, status: str, sleep: Sleep) -> AsyncIterator[None]:
        """`READY=1` on entry, watchdog pings while inside, `STOPPING=1` on the way out."""
        self.notify("READY=1", f"STATUS={status}")
        pinger = (
            asyncio.create_task(self._ping(self.watchdog_interval, sleep), name="systemd-watchdog")
            if self.enabled and self.watchdog_interval is not None
            else None
        )
        try:
            yield
        finally:
            self.notify("STOPPING=1", "STATUS=stopping")
            if pinger is not None:
                pinger.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pinger

    async def _ping(self, interval: float, sleep: Sleep) -> None:
        while True:
            self.notify("WATCHDOG=1")
            await sleep(interval)


def _socket_address(address: str) -> str | bytes:
    if address.startswith("@"):
        return b"\0" + address[1:].encode()
    return address
