"""The status page: health at a glance, calls in progress (live), history, one call in full.

Routes (all behind the login, except the page's own static files):
- `/` the overview: health, calls in progress (this process's live; any other process's from
  the records), the last day's plots, recent calls; `/partials/health` its health cards and
  the other processes' calls again (the page refreshes them).
- `/calls?q=...&page=n` the history, searched by number, id, outcome or words said.
- `/calls/{id}` one call: recording, transcript, each turn's latency waterfall, post-call jobs.
- `/api/live` server-sent events: a snapshot of the calls in progress, then each update.
- `/api/health` the health as JSON.
- `/recordings/{path}` a recording, with HTTP range requests (what an audio element asks
  for), as it stands at the request even while its call still writes it (`recordings`);
  anything that is not a WAV inside RECORDINGS_DIR is 404, whatever the path says.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from appliance.clock import Clock
from appliance.memory.calls import CallRecord
from appliance.web.auth import Auth
from appliance.web.health import HealthBoard, overall
from appliance.web.history import CallHistory, CallRow
from appliance.web.live import LiveCalls, Subscription, TooManyWatchers, Update
from appliance.web.pages import PAGE_HEADERS, Pages
from appliance.web.recordings import recording_response, snapshot
from appliance.web.sessions import Session
from appliance.web.trends import Trends, trends
from appliance.web.waterfall import waterfall

__all__ = ["StatusPage", "recording_file", "status_router"]

_STATIC: Final = {
    "app.css": "text/css; charset=utf-8",
    "live.js": "text/javascript; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
_KEEPALIVE_S: Final = 15.0
_TRENDS_MAX_AGE_S: Final = 30.0


@dataclass(slots=True)
class StatusPage:
    """What the status page reads."""

    auth: Auth
    pages: Pages
    board: HealthBoard
    live: LiveCalls
    history: CallHistory
    recordings: Path
    in_progress: Callable[[], Awaitable[Sequence[CallRecord]]] | None = None
    """The calls other processes run on the same records (None: none are looked for)."""
    target_ms: float = 1500.0
    """`TURN_TARGET_MS`, drawn on the wait chart."""
    clock: Clock | None = None
    """The wall clock the plots end at (None: the system's)."""
    _static: dict[str, bytes] = field(default_factory=dict)
    _trends: dict[str, tuple[float, Trends]] = field(default_factory=dict)


def recording_file(root: Path, relative: str) -> Path | None:
    """The WAV `relative` names inside `root`, or None for anything else (touches the disk)."""
    pieces = relative.split("/")
    if (
        not relative.endswith(".wav")
        or "\\" in relative
        or "\0" in relative
        or any(piece in ("", ".", "..") for piece in pieces)
    ):
        return None
    base = root.resolve()
    candidate = base.joinpath(*pieces).resolve()
    # resolve() follows links: one pointing out of the folder is outside, and refused.
    if not candidate.is_relative_to(base) or not candidate.is_file():
        return None
    return candidate


def _sse(kind: str, data: object) -> str:
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


async def _events(live: LiveCalls, subscription: Subscription) -> AsyncIterator[str]:
    try:
        yield _sse("snapshot", {"calls": live.snapshot(), "dropped": 0})
        while True:
            try:
                async with asyncio.timeout(_KEEPALIVE_S):
                    updates = await subscription.next()
            except TimeoutError:
                yield ": still here\n\n"
                continue
            if subscription.closed:
                return
            if subscription.dropped:
                dropped = subscription.dropped
                subscription.resynced()
                yield _sse("snapshot", {"calls": live.snapshot(), "dropped": dropped})
                continue
            for update in updates:
                yield _sse("update", update)
    finally:
        live.unsubscribe(subscription)


async def _last_day(deps: StatusPage) -> Trends:
    """The plots, made at most once every `_TRENDS_MAX_AGE_S`: over a busy day's records they
    take the database's thread some tens of milliseconds, which a call's records wait behind."""
    now = deps.clock.wall() if deps.clock is not None else time.time()
    made = deps._trends.get("last day")
    if made is not None and 0 <= now - made[0] < _TRENDS_MAX_AGE_S:
        return made[1]
    turns, found = await deps.history.last_day(now)
    plots = trends(turns, found, now, deps.target_ms)
    deps._trends["last day"] = (now, plots)
    return plots


async def _elsewhere(deps: StatusPage, live: Sequence[Update]) -> tuple[CallRow, ...]:
    """Calls in progress that this process does not run (so the live feed has not got them):
    an `appliance call` beside `appliance serve`, writing to the same records."""
    if deps.in_progress is None:
        return ()
    here = {str(call["id"]) for call in live}
    found = [c for c in await deps.in_progress() if c.line_call_id not in here and c.id not in here]
    return await deps.history.rows_of(found)


def status_router(deps: StatusPage) -> APIRouter:
    """The status page's routes, bound to `deps`."""
    router = APIRouter()
    signed_in = Depends(deps.auth.page)
    signed_in_api = Depends(deps.auth.api)

    @router.get("/")
    async def index(session: Session = signed_in) -> Response:
        parts = await deps.board.check()
        recent = await deps.history.search("", 1)
        live = deps.live.snapshot()
        return deps.pages.render(
            "index.html",
            session=session,
            nav="status",
            parts=parts,
            overall=overall(parts),
            live=live,
            elsewhere=await _elsewhere(deps, live),
            recent=recent.rows[:8],
            trends=await _last_day(deps),
            target_ms=deps.target_ms,
        )

    @router.get("/partials/health")
    async def health_cards(session: Session = signed_in_api) -> Response:
        parts = await deps.board.check()
        elsewhere = await _elsewhere(deps, deps.live.snapshot())
        return deps.pages.render(
            "_health.html", parts=parts, overall=overall(parts), elsewhere=elsewhere
        )

    @router.get("/api/health")
    async def health_json(session: Session = signed_in_api) -> Response:
        parts = await deps.board.check()
        return JSONResponse(
            {
                "status": overall(parts),
                "parts": [
                    {"part": p.part, "level": p.level, "summary": p.summary, "facts": p.facts}
                    for p in parts
                ],
            },
            headers={"Cache-Control": "no-store"},
        )

    @router.get("/api/live")
    async def live_events(session: Session = signed_in_api) -> Response:
        try:
            subscription = deps.live.subscribe()
        except TooManyWatchers as exc:
            raise HTTPException(status_code=503, detail=str(exc)) from exc
        return StreamingResponse(
            _events(deps.live, subscription),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    @router.get("/calls")
    async def history(q: str = "", page: int = 1, session: Session = signed_in) -> Response:
        found = await deps.history.search(q, page)
        return deps.pages.render(
            "calls.html", session=session, nav="calls", found=found, target_ms=deps.target_ms
        )

    @router.get("/calls/{call_id:path}")
    async def call(call_id: str, session: Session = signed_in) -> Response:
        detail = await deps.history.detail(call_id)
        if detail is None:
            return deps.pages.render(
                "missing.html", status=404, session=session, nav="calls", call_id=call_id
            )
        charts = {
            t.idx: (waterfall(t.timings, t.starts), waterfall(t.timings, t.starts, narrow=True))
            for t in detail.turns
            if t.speaker == "agent" and t.timings
        }
        return deps.pages.render(
            "call.html",
            session=session,
            nav="calls",
            detail=detail,
            charts=charts,
            target_ms=deps.target_ms,
        )

    @router.get("/recordings/{relative:path}")
    async def recording(
        relative: str, request: Request, session: Session = signed_in_api
    ) -> Response:
        path = await asyncio.to_thread(recording_file, deps.recordings, relative)
        if path is None:
            raise HTTPException(status_code=404)
        try:
            shot = await asyncio.to_thread(snapshot, path)
        except FileNotFoundError as exc:  # removed since (retention)
            raise HTTPException(status_code=404) from exc
        return recording_response(
            shot,
            request.headers.get("range"),
            {"Cache-Control": "private, no-cache", "X-Content-Type-Options": "nosniff"},
        )

    @router.get("/static/{name}")
    async def static(name: str) -> Response:
        if name not in _STATIC:
            raise HTTPException(status_code=404)
        if name not in deps._static:
            files = importlib.resources.files("appliance.web").joinpath("static", name)
            deps._static[name] = await asyncio.to_thread(files.read_bytes)
        return Response(
            deps._static[name],
            media_type=_STATIC[name],
            headers={"Cache-Control": "public, max-age=3600", **_NOSNIFF},
        )

    return router


_NOSNIFF: Final = {"X-Content-Type-Options": PAGE_HEADERS["X-Content-Type-Options"]}
