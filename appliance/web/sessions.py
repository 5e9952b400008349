"""Login sessions and the login throttle: small, bounded, in memory.

A session is a random token in an HttpOnly cookie, with its own CSRF token for the page's forms.
Sessions live in this process: a restart logs everyone out, which on an appliance is a feature.
A session ends when idle for `idle_s`, `lifetime_s` after login, on logout, or when the password
is set again (each remembers the password's fingerprint). At most `max_open` are kept; opening
one more ends the oldest.

The throttle slows guessing per source address: the first `free` wrong passwords cost nothing
more than the hash; after that each attempt must wait 1, 2, 4 ... (at most `max_wait_s`) seconds
after the last failure, and attempts made sooner are refused without checking the password (so
a flood costs no CPU). A success forgets the source; at most `max_sources` are remembered.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["LoginThrottle", "Session", "Sessions"]


@dataclass(slots=True)
class Session:
    token: str
    csrf: str
    """Every form of the page carries it; a POST without it is refused (403)."""
    fingerprint: str
    """The password's, when the session was opened."""
    opened: float
    seen: float


class Sessions:
    def __init__(
        self,
        *,
        now: Callable[[], float],
        idle_s: float = 12 * 3600.0,
        lifetime_s: float = 7 * 86400.0,
        max_open: int = 32,
    ) -> None:
        self._now = now
        self._idle_s = idle_s
        self._lifetime_s = lifetime_s
        self._max_open = max_open
        self._open: OrderedDict[str, Session] = OrderedDict()

    def __len__(self) -> int:
        return len(self._open)

    def open(self, fingerprint: str) -> Session:
        now = self._now()
        session = Session(
            token=secrets.token_urlsafe(32),
            csrf=secrets.token_urlsafe(32),
            fingerprint=fingerprint,
            opened=now,
            seen=now,
        )
        self._open[session.token] = session
        while len(self._open) > self._max_open:
            self._open.popitem(last=False)
        return session

    def find(self, token: str | None, fingerprint: str | None) -> Session | None:
        """The live session with this token, opened under this password; None otherwise."""
        if not token:
            return None
        session = self._open.get(token)
        if session is None:
            return None
        now = self._now()
        if (
            session.fingerprint != fingerprint
            or now - session.seen > self._idle_s
            or now - session.opened > self._lifetime_s
        ):
            del self._open[token]
            return None
        session.seen = now
        return session

    def close(self, token: str | None) -> None:
        if token:
            self._open.pop(token, None)


@dataclass(slots=True)
class _Failures:
    count: int
    last: float


class LoginThrottle:
    def __init__(
        self,
        *,
        now: Callable[[], float],
        free: int = 5,
        max_wait_s: float = 300.0,
        max_sources: int = 1024,
    ) -> None:
        self._now = now
        self._free = free
        self._max_wait_s = max_wait_s
        self._max_sources = max_sources
        self._sources: OrderedDict[str, _Failures] = OrderedDict()

    def _delay(self, failures: _Failures) -> float:
        over = failures.count - self._free
        return 0.0 if over < 0 else min(self._max_wait_s, 2.0**over)

    def wait_s(self, source: str) -> float:
        """Seconds before `source` may try again (0: now)."""
        failures = self._sources.get(source)
        if failures is None:
            return 0.0
        left = failures.last + self._delay(failures) - self._now()
        if left <= 0 and self._now() - failures.last > self._max_wait_s * 4:
            del self._sources[source]  # quiet for long enough: start afresh
        return max(0.0, left)

    def failed(self, source: str) -> None:
        failures = self._sources.pop(source, None) or _Failures(count=0, last=0.0)
        failures.count += 1
        failures.last = self._now()
        self._sources[source] = failures
        while len(self._sources) > self._max_sources:
            self._sources.popitem(last=False)

    def succeeded(self, source: str) -> None:
        self._sources.pop(source, None)
