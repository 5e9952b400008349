"""A live call's slots (caller name, intent, a pending confirmation): Redis, or in process.

One port, `SessionState`, with two backends. With `REDIS_URL` set the slots live in Redis (a hash
per call, expiring a day after its last write), where the status page and other processes can
read them; otherwise in a dict of this process. `ResilientState` puts Redis first and keeps an
in-process copy of every write, so if Redis goes away mid-call it logs a warning and carries on
from the copy, and it tries Redis again every `retry_s`. A slot is text; a call's slots are
cleared when it ends.
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Final, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from redis.typing import EncodableT, FieldT

__all__ = ["InProcessState", "RedisState", "ResilientState", "SessionState", "redis_location"]

_log = logging.getLogger(__name__)
_PREFIX: Final = "tel3sis:call:"
_TTL_S: Final = 24 * 3600


class SessionState(Protocol):
    @property
    def backend(self) -> str:
        """`redis` or `in-process`: where the slots are now."""
        ...

    async def update(self, call_id: str, slots: Mapping[str, str]) -> None:
        """Set these slots of the call (others are kept)."""
        ...

    async def slots(self, call_id: str) -> dict[str, str]:
        """Every slot of the call (empty when it has none)."""
        ...

    async def clear(self, call_id: str) -> None:
        """Forget the call's slots: it has ended."""
        ...

    async def close(self) -> None:
        """Let go of any connection."""
        ...


class InProcessState:
    """Slots in this process's memory."""

    backend = "in-process"

    def __init__(self) -> None:
        self._calls: dict[str, dict[str, str]] = {}

    async def update(self, call_id: str, slots: Mapping[str, str]) -> None:
        self._calls.setdefault(call_id, {}).update(slots)

    async def slots(self, call_id: str) -> dict[str, str]:
        return dict(self._calls.get(call_id, {}))

    async def clear(self, call_id: str) -> None:
        self._calls.pop(call_id, None)

    async def close(self) -> None:
        pass

    def live(self) -> dict[str, dict[str, str]]:
        """Every call's slots (a copy)."""
        return {call: dict(slots) for call, slots in self._calls.items()}


class RedisState:
    """Slots in Redis, one hash per call; every command gives up after `timeout_s`."""

    backend = "redis"

    def __init__(self, url: str, *, timeout_s: float = 0.5) -> None:
        self.url = url
        self.where = redis_location(url)
        """The URL without its credentials, for logs and the status page."""
        self._redis = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            decode_responses=True,
        )

    async def update(self, call_id: str, slots: Mapping[str, str]) -> None:
        if not slots:
            return
        key = _PREFIX + call_id
        async with self._redis.pipeline(transaction=True) as pipe:
            mapping: dict[FieldT, EncodableT] = dict(slots.items())
            pipe.hset(key, mapping=mapping)
            pipe.expire(key, _TTL_S)
            await pipe.execute()

    async def slots(self, call_id: str) -> dict[str, str]:
        found = await self._redis.hgetall(_PREFIX + call_id)
        return {str(key): str(value) for key, value in found.items()}

    async def clear(self, call_id: str) -> None:
        await self._redis.delete(_PREFIX + call_id)

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()


_FAILURES = (RedisError, OSError, TimeoutError)


class ResilientState:
    """Redis while it answers, the in-process copy when it does not (see the module docstring)."""

    def __init__(
        self,
        redis: RedisState,
        *,
        now: Callable[[], float],
        retry_s: float = 30.0,
        on_fallback: Callable[[], None] | None = None,
    ) -> None:
        self._redis = redis
        self._local = InProcessState()
        self._now = now
        self._retry_s = retry_s
        self._on_fallback = on_fallback
        self._down_since: float | None = None

    @property
    def backend(self) -> str:
        return "in-process" if self._down_since is not None else "redis"

    async def _usable(self) -> bool:
        if self._down_since is None:
            return True
        if self._now() - self._down_since < self._retry_s:
            return False
        try:
            await self._redis.ping()
            for call_id, slots in self._local.live().items():
                await self._redis.update(call_id, slots)
        except _FAILURES:
            self._down_since = self._now()
            return False
        _log.warning("Redis at %s answers again: session state is back in Redis", self._redis.where)
        self._down_since = None
        return True

    def _fell_back(self, exc: BaseException) -> None:
        self._down_since = self._now()
        _log.warning(
            "Redis at %s failed (%r): session state carries on in process", self._redis.where, exc
        )
        if self._on_fallback is not None:
            self._on_fallback()

    async def update(self, call_id: str, slots: Mapping[str, str]) -> None:
        await self._local.update(call_id, slots)
        if await self._usable():
            try:
                await self._redis.update(call_id, slots)
            except _FAILURES as exc:
                self._fell_back(exc)

    async def slots(self, call_id: str) -> dict[str, str]:
        if await self._usable():
            try:
                return await self._redis.slots(call_id)
            except _FAILURES as exc:
                self._fell_back(exc)
        return await self._local.slots(call_id)

    async def clear(self, call_id: str) -> None:
        await self._local.clear(call_id)
        if await self._usable():
            try:
                await self._redis.clear(call_id)
            except _FAILURES as exc:
                self._fell_back(exc)

    async def close(self) -> None:
        await self._redis.close()


def redis_location(url: str) -> str:
    """A Redis URL without its credentials: `host:port/db` (or a socket's path)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "unix":
        return parts.path
    host = parts.hostname or "localhost"
    return f"{host}:{parts.port or 6379}{parts.path or ''}"
