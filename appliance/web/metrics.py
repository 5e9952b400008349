"""`/metrics` (Prometheus text) and `/healthz`, for machines watching the box.

Both need the admin login, unless `METRICS_PUBLIC` opens them to the LAN (see `auth.scrape`).
A scrape first refreshes the health checks (at most every few seconds), so the health, disk,
temperature and job-queue gauges are current when Prometheus reads them. `/healthz` says
`ok`, `warn` or `fail` overall, and each part's level (no details); 503 while failing or while
the models are still loading.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from appliance.observability.metrics import Metrics
from appliance.web.auth import Auth
from appliance.web.health import HealthBoard, overall

__all__ = ["metrics_router"]


def metrics_router(
    auth: Auth, board: HealthBoard, metrics: Metrics, ready: Callable[[], bool]
) -> APIRouter:
    router = APIRouter()
    allowed = Depends(auth.scrape)

    @router.get("/metrics", dependencies=[allowed])
    async def scrape() -> Response:
        await board.check()
        body = await asyncio.to_thread(generate_latest, metrics.registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})

    @router.get("/healthz", dependencies=[allowed])
    async def healthz() -> Response:
        parts = await board.check()
        status = overall(parts)
        serving = ready() and status != "fail"
        return JSONResponse(
            {
                "status": status if ready() else "starting",
                "parts": {p.part: p.level for p in parts},
            },
            status_code=200 if serving else 503,
            headers={"Cache-Control": "no-store"},
        )

    return router
