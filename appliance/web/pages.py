"""Server-rendered pages: Jinja2 templates with autoescaping, and the headers every page gets.

The pages load only their own script and style (a strict Content-Security-Policy: no inline
script, no other origin), may not be framed, and are never cached.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Final

import jinja2
from fastapi.responses import HTMLResponse

from appliance.web.service import seconds

__all__ = ["PAGE_HEADERS", "Pages", "duration", "title", "when"]

PAGE_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "media-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
        "form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


_TITLES: Final = {
    "box": "Appliance",
    "stt": "Speech to text",
    "llm": "Language model",
    "tts": "Voice",
    "sip": "SIP line",
    "jobs": "Post-call jobs",
    "cpu": "CPU",
    "callers": "What callers get",
}


def title(part: str) -> str:
    """A part's name as the page shows it."""
    return _TITLES.get(part, part.capitalize())


def when(stamp: float | None) -> str:
    """Unix seconds as the box's local date and time."""
    if stamp is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


def duration(seconds: float | None) -> str:
    """`1:05`; empty for a call still in progress."""
    if seconds is None:
        return ""
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}:{rest:02d}"


class Pages:
    """The templates in `appliance/web/templates`, rendered with what every page shows."""

    def __init__(self, *, version: str, box: str) -> None:
        self._env = jinja2.Environment(
            loader=jinja2.PackageLoader("appliance.web", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._env.filters["when"] = when
        self._env.filters["duration"] = duration
        self._env.filters["title"] = title
        self._env.filters["ms"] = seconds
        self._common = {"version": version, "box": box}

    def render(
        self,
        name: str,
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        **context: Any,
    ) -> HTMLResponse:
        html = self._env.get_template(name).render(**self._common, **context)
        return HTMLResponse(html, status_code=status, headers={**PAGE_HEADERS, **(headers or {})})
