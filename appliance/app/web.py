"""What the operator sees: the status page and its login, /metrics and /healthz, the health
of every part, what the front desk knows (the business page), and the zeroconf advertisement."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from fastapi import APIRouter

from appliance import __version__
from appliance.app.front import FrontDesk
from appliance.clock import Clock
from appliance.engines.fallback import (
    FallbackLanguageModel,
    FallbackSpeechToText,
    FallbackTextToSpeech,
)
from appliance.engines.models import Manifest, ModelStore
from appliance.engines.models.chosen import models_in_use
from appliance.memory.calls import CallRecord
from appliance.memory.records import Records
from appliance.observability.metrics import Metrics
from appliance.settings import Settings
from appliance.telephony.calls import Admission
from appliance.telephony.sip import SipStatus
from appliance.web.advertise import Advertisement, box_id
from appliance.web.auth import Auth, auth_router
from appliance.web.business import BusinessPage, DeskFacts, business_router
from appliance.web.calendar import CalendarHealth, CalendarPage, calendar_router
from appliance.web.health import HealthBoard, HealthSource, NotConfigured
from appliance.web.history import CallHistory
from appliance.web.live import LiveCalls
from appliance.web.machine import BoxHealth, CpuHealth, DiskHealth, MemoryHealth
from appliance.web.metrics import metrics_router
from appliance.web.pages import Pages
from appliance.web.parts import (
    CallsHealth,
    EngineHealth,
    JobsHealth,
    ModelsHealth,
    RedisHealth,
    SipHealth,
    TwilioHealth,
)
from appliance.web.service import QueueView, ServiceHealth, ServiceRules
from appliance.web.status import StatusPage, status_router

__all__ = ["Watched", "advertisement", "status_routers"]


@dataclass(frozen=True, slots=True)
class Watched:
    """The parts of a running appliance whose health the status page shows."""

    settings: Settings
    clock: Clock
    metrics: Metrics
    chains: list[object]
    """The engines' fallback chains (STT, LLM, TTS)."""
    admission: Admission
    records: Records
    sip_status: SipStatus
    live: LiveCalls
    started_at: Callable[[], float | None]
    ready: Callable[[], bool]
    front: FrontDesk
    """The business profile, the persona and the tools, for the business page."""
    workers: Sequence[QueueView] = ()
    """The engines' workers, whose queues say how many calls wait for one."""


def status_routers(parts: Watched) -> tuple[APIRouter, ...]:
    """The status page, its login, /metrics and /healthz."""
    settings = parts.settings
    auth = Auth(
        settings.paths.admin_password,
        clock=parts.clock,
        metrics=parts.metrics,
        metrics_public=settings.web.metrics_public,
    )
    board = HealthBoard(_health_sources(parts), clock=parts.clock, metrics=parts.metrics)
    facts = _desk_facts(parts.front, settings.conversation.business_name)
    pages = Pages(version=__version__, box=facts.business_name)
    page = StatusPage(
        auth=auth,
        pages=pages,
        board=board,
        live=parts.live,
        history=CallHistory(parts.records.db),
        recordings=settings.paths.recordings,
        in_progress=_calls_elsewhere(parts.records),
        target_ms=settings.web.turn_target_ms,
        clock=parts.clock,
    )
    return (
        auth_router(auth, pages),
        status_router(page),
        business_router(BusinessPage(auth=auth, pages=pages, clock=parts.clock, facts=facts)),
        metrics_router(auth, board, parts.metrics, parts.ready),
        calendar_router(
            CalendarPage(
                auth=auth,
                pages=pages,
                google=parts.front.google,
                caldav=bool(settings.integrations.caldav_url),
            )
        ),
    )


def _desk_facts(front: FrontDesk, business_name: str) -> DeskFacts:
    profile = front.profile
    return DeskFacts(
        business_name=profile.name if profile is not None else business_name,
        profile=profile,
        tools=tuple(front.tools),
        system_prompt=front.persona.system_prompt,
    )


def _health_sources(parts: Watched) -> list[HealthSource]:
    settings, records, clock = parts.settings, parts.records, parts.clock
    chains = [
        EngineHealth(e.port, e)
        for e in parts.chains
        if isinstance(e, FallbackSpeechToText | FallbackLanguageModel | FallbackTextToSpeech)
    ]
    service = ServiceHealth(
        records.db,
        clock,
        ServiceRules(target_ms=settings.web.turn_target_ms),
        workers=parts.workers,
        chains=[(e.part, e.chain) for e in chains],
    )
    return [
        service,
        BoxHealth(__version__, parts.started_at() or clock.wall(), clock),
        ModelsHealth(
            ModelStore(settings.paths.models, Manifest.load()),
            models_in_use(settings.engines),
            parts.ready,
        ),
        *chains,
        CallsHealth(parts.admission, _count(_calls_elsewhere(records))),
        SipHealth(parts.sip_status) if settings.sip.sip_enabled else NotConfigured("sip"),
        TwilioHealth(settings.twilio),
        RedisHealth(settings.integrations.redis_url, records.state),
        JobsHealth(records.db, clock, parts.metrics),
        CalendarHealth(parts.front.google, bool(settings.integrations.caldav_url)),
        DiskHealth(settings.paths.data_dir, parts.metrics),
        MemoryHealth(),
        CpuHealth(parts.metrics),
    ]


def _calls_elsewhere(records: Records) -> Callable[[], Awaitable[list[CallRecord]]]:
    """Calls in progress that other processes run on these records (this process's own are
    on the live feed)."""

    async def others() -> list[CallRecord]:
        return [c for c in await records.calls_in_progress() if c.owner != records.owner]

    return others


def _count(listed: Callable[[], Awaitable[list[CallRecord]]]) -> Callable[[], Awaitable[int]]:
    async def count() -> int:
        return len(await listed())

    return count


async def advertisement(
    settings: Settings, web_port: int, sip_port: int | None = None
) -> Advertisement:
    """The zeroconf advertisement of this box's status page (and SIP line), not yet entered."""
    zeroconf = settings.zeroconf
    bind = settings.web.bind_address
    specific = [] if bind in ("0.0.0.0", "::", "") else [bind]  # noqa: S104 - the wildcards
    return Advertisement(
        box=await asyncio.to_thread(box_id, settings.paths.data_dir),
        version=__version__,
        models=models_in_use(settings.engines),
        web_port=web_port,
        sip_port=sip_port,
        interfaces=zeroconf.addresses,
        addresses=zeroconf.addresses or specific,
    )
