"""The health sources of the box's parts (see `health.HealthSource`), one small class each.

Each takes what it reads (a settings section, a view of an engine chain, a status object) and
nothing else; the composition root decides which parts a box has. What a source puts in its
summary and facts is shown on the status page: names, counts and addresses, never a secret
(a URL loses its credentials, an account id is shortened, a token is only "set").
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from appliance.clock import Clock
from appliance.engines.models import ModelStore
from appliance.memory import jobs
from appliance.memory.db import Database
from appliance.memory.session import SessionState, redis_location
from appliance.observability.metrics import Metrics
from appliance.settings import TwilioSettings
from appliance.web.health import Health

__all__ = [
    "CallsHealth",
    "EngineChain",
    "EngineHealth",
    "JobsHealth",
    "ModelsHealth",
    "RedisHealth",
    "SipHealth",
    "SipStatusView",
    "Slots",
    "TwilioHealth",
]

_DAY_S = 86400.0


@dataclass(frozen=True, slots=True)
class ModelsHealth:
    """The models in use: installed intact, and loaded."""

    store: ModelStore
    names: Sequence[str]
    ready: Callable[[], bool]
    part: str = "models"

    def _verify(self) -> list[tuple[str, str]]:
        found = []
        for name in self.names:
            try:
                problems = self.store.verify(name)
            except LookupError:
                found.append((name, "not in the manifest"))
                continue
            found.append((name, "; ".join(map(str, problems)) if problems else "installed"))
        return found

    async def health(self) -> Health:
        facts = tuple(await asyncio.to_thread(self._verify))
        broken = [name for name, state in facts if state != "installed"]
        if broken:
            fix = f"appliance models install {' '.join(broken)}"
            return Health(self.part, "fail", f"missing or damaged; fix: {fix}", facts)
        if not self.ready():
            return Health(self.part, "warn", "installed; loading", facts)
        return Health(self.part, "ok", f"{len(facts)} loaded", facts)


class EngineChain(Protocol):
    """What the page reads of a fallback chain (`engines.fallback`)."""

    @property
    def active(self) -> str: ...
    @property
    def engines(self) -> tuple[str, ...]: ...
    @property
    def resting(self) -> tuple[str, ...]: ...


@dataclass(frozen=True, slots=True)
class EngineHealth:
    """One port's engines: which answers, and whether a fallback is in use."""

    part: str
    chain: EngineChain

    async def health(self) -> Health:
        chain = self.chain
        preferred = chain.engines[0]
        facts = []
        if len(chain.engines) > 1:
            facts = [("engines, in order", " > ".join(chain.engines)), ("answering", chain.active)]
        if chain.resting:
            facts.append(("resting after failures", ", ".join(chain.resting)))
        if chain.active != preferred:
            summary = f"fallback in use: {chain.active} answers for {preferred}"
            return Health(self.part, "warn", summary, tuple(facts))
        if chain.resting:
            return Health(self.part, "warn", f"{chain.active}; others resting", tuple(facts))
        return Health(self.part, "ok", chain.active, tuple(facts))


class RegistrationView(Protocol):
    @property
    def state(self) -> str: ...
    @property
    def code(self) -> int: ...
    @property
    def reason(self) -> str: ...


class SipStatusView(Protocol):
    """What the page reads of the SIP line's status (its listener keeps it up to date)."""

    @property
    def listening(self) -> Sequence[str]: ...
    @property
    def registration(self) -> RegistrationView: ...
    @property
    def active_calls(self) -> int: ...


@dataclass(frozen=True, slots=True)
class SipHealth:
    """The SIP line: listening, and registered when a registrar is configured."""

    status: SipStatusView
    part: str = "sip"

    async def health(self) -> Health:
        status, registration = self.status, self.status.registration
        facts = [
            ("listening", ", ".join(status.listening) or "no"),
            ("registration", registration.state),
            ("calls", str(status.active_calls)),
        ]
        if registration.code:
            facts.append(("registrar said", f"{registration.code} {registration.reason}".strip()))
        if not status.listening:
            return Health(self.part, "fail", "not listening", tuple(facts))
        match registration.state:
            case "registered":
                return Health(self.part, "ok", "registered", tuple(facts))
            case "off":
                return Health(self.part, "ok", "listening (no registrar)", tuple(facts))
            case "registering":
                return Health(self.part, "warn", "registering", tuple(facts))
        reason = f": {registration.code} {registration.reason}" if registration.code else ""
        return Health(self.part, "fail", f"registration lost{reason}", tuple(facts))


def _short_sid(sid: str) -> str:
    return sid if len(sid) <= 8 else f"{sid[:2]}...{sid[-4:]}"


@dataclass(frozen=True, slots=True)
class TwilioHealth:
    """Whether the Twilio account is set up enough for its webhooks to be accepted."""

    settings: TwilioSettings
    part: str = "twilio"

    async def health(self) -> Health:
        s = self.settings
        given = {
            "TWILIO_ACCOUNT_SID": bool(s.account_sid),
            "TWILIO_AUTH_TOKEN": s.auth_token is not None,
            "BASE_URL": bool(s.base_url),
        }
        if not any(given.values()):
            return Health(self.part, "off", "not configured")
        facts = [("account", _short_sid(s.account_sid) if s.account_sid else "not set")]
        facts.append(("auth token", "set" if s.auth_token is not None else "not set"))
        facts.append(("number", s.phone_number or "not set"))
        if s.base_url:
            facts.append(("voice webhook", s.base_url.rstrip("/") + "/twilio/voice"))
        missing = [name for name, ok in given.items() if not ok]
        if missing:
            summary = f"webhooks refused until {', '.join(missing)} set"
            return Health(self.part, "warn", summary, tuple(facts))
        return Health(self.part, "ok", "configured", tuple(facts))


@dataclass(frozen=True, slots=True)
class RedisHealth:
    """Live session state: in Redis when configured, and whether Redis answers."""

    url: str | None
    state: SessionState
    part: str = "redis"

    async def health(self) -> Health:
        if not self.url:
            return Health(self.part, "off", "not configured: session state is kept in process")
        # A real round trip: the state falls back to the process (and says so) if it fails.
        await self.state.slots("tel3sis-health-probe")
        where = redis_location(self.url)
        facts = (("server", where), ("session state", self.state.backend))
        if self.state.backend == "redis":
            return Health(self.part, "ok", f"connected to {where}", facts)
        return Health(self.part, "fail", f"{where} not answering; state kept in process", facts)


class Slots(Protocol):
    """Admission control's count of calls."""

    @property
    def active(self) -> int: ...
    @property
    def max_calls(self) -> int: ...


@dataclass(frozen=True, slots=True)
class CallsHealth:
    slots: Slots
    elsewhere: Callable[[], Awaitable[int]] | None = None
    """How many calls other processes run on the same records (an `appliance call`)."""
    part: str = "calls"

    async def health(self) -> Health:
        active, most = self.slots.active, self.slots.max_calls
        summary = f"{active} of {most} in progress"
        if active >= most:
            summary += ": more callers get busy"  # busy is not broken: the level stays ok
        facts = [("at most at once", str(most))]
        others = await self.elsewhere() if self.elsewhere is not None else 0
        if others:
            summary += f"; {others} more in another process"
            facts.append(("in other processes", str(others)))
        return Health(self.part, "ok", summary, tuple(facts))


@dataclass(frozen=True, slots=True)
class JobsHealth:
    """Post-call jobs (summaries, memory, email, SMS): waiting, and failed in the last day."""

    db: Database
    clock: Clock
    metrics: Metrics | None = None
    part: str = "jobs"

    async def health(self) -> Health:
        counts = await self.db.run(jobs.job_counts, since=self.clock.wall() - _DAY_S)
        waiting = counts.get("pending", 0) + counts.get("running", 0)
        if self.metrics is not None:
            self.metrics.job_queue_depth.set(waiting)
        facts = tuple((state, str(counts.get(state, 0))) for state in ("pending", "running"))
        facts += tuple(
            (f"{state} today", str(counts.get(state, 0))) for state in ("done", "failed")
        )
        failed = counts.get("failed", 0)
        if failed:
            return Health(self.part, "warn", f"{failed} failed in the last day", facts)
        return Health(self.part, "ok", f"{waiting} waiting", facts)
