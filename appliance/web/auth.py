"""The admin login: who may see the status page, and the forms' CSRF protection.

Everything but the login page, the page's static files, the Twilio endpoints (they check
Twilio's signature instead) and, when `METRICS_PUBLIC` is set, /metrics and /healthz from the
LAN needs a session. Guards are FastAPI dependencies: `page` sends a browser to the login page
(303), `api` answers 401, `scrape` lets the LAN in when allowed.

The session cookie is HttpOnly and SameSite=Strict (and Secure when the page is served over
HTTPS, directly or behind a proxy that says so). Each form carries a CSRF token: the session's
own, or on the login form one matched against a short-lived cookie (double submit); a POST
without the right token, or from another origin, is refused with 403.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import math
import secrets
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import PlainTextResponse, RedirectResponse

from appliance.clock import Clock
from appliance.observability.metrics import Metrics
from appliance.web.pages import Pages
from appliance.web.password import PasswordRecord, load_password
from appliance.web.sessions import LoginThrottle, Session, Sessions

__all__ = ["LOGIN_COOKIE", "SESSION_COOKIE", "Auth", "auth_router", "from_lan", "read_form"]

SESSION_COOKIE: Final = "tel3sis_session"
LOGIN_COOKIE: Final = "tel3sis_login"
_MAX_FORM_BYTES: Final = 4096
_PROXIED: Final = ("x-forwarded-for", "forwarded", "x-real-ip")
_MAX_WAITING_CHECKS: Final = 4


def from_lan(request: Request) -> bool:
    """Whether the request came straight from a private, link-local or loopback address.

    A request that passed a proxy (which says so in its headers) is not from the LAN: the proxy
    may be forwarding the internet (the Twilio set-up puts one in front of the box)."""
    if any(name in request.headers for name in _PROXIED) or request.client is None:
        return False
    try:
        address = ipaddress.ip_address(request.client.host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_private or address.is_loopback or address.is_link_local


def _https(request: Request) -> bool:
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


def _same_origin(request: Request) -> bool:
    """False when the browser says the form came from another site."""
    origin = request.headers.get("origin")
    if origin is None:
        return True  # not every client sends one; the CSRF token still has to match
    return urllib.parse.urlsplit(origin).netloc == request.headers.get("host", "")


def _equal(a: str, b: str) -> bool:
    """Constant-time comparison of two tokens (as bytes: any text a client sends is fine)."""
    return bool(a) and hmac.compare_digest(a.encode(), b.encode())


def _safe_next(target: str | None) -> str:
    """Where to go after logging in: a path on this site, never another site."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    return target


async def read_form(request: Request) -> dict[str, str]:
    """A small urlencoded form (413 past 4 KiB); anything else has no fields (so no token)."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return {}
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_FORM_BYTES:
            raise HTTPException(status_code=413)
    pairs = urllib.parse.parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
    return dict(pairs)


class Auth:
    def __init__(
        self,
        password_file: Path,
        *,
        clock: Clock,
        metrics: Metrics | None = None,
        metrics_public: bool = False,
    ) -> None:
        self.password_file = password_file
        self.sessions = Sessions(now=clock.now)
        self.throttle = LoginThrottle(now=clock.now)
        self.metrics_public = metrics_public
        self._metrics = metrics
        self._cached: tuple[tuple[int, int, int], PasswordRecord | None] | None = None
        # One password check at a time: each takes 32 MiB and a core for a good fraction of a
        # second. A few more may wait; beyond that a flood is refused before it costs anything.
        self._hashing = asyncio.Semaphore(1)
        self._waiting = 0

    def _stat_and_load(self) -> tuple[tuple[int, int, int], PasswordRecord | None] | None:
        try:
            st = self.password_file.stat()
        except FileNotFoundError:
            return None
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        if self._cached is not None and self._cached[0] == key:
            return self._cached
        return key, load_password(self.password_file)

    async def password(self) -> PasswordRecord | None:
        """The current password (re-read when `appliance admin set-password` replaces it)."""
        self._cached = await asyncio.to_thread(self._stat_and_load)
        return None if self._cached is None else self._cached[1]

    async def matches(self, record: PasswordRecord, password: str) -> bool | None:
        """Whether `password` is the admin's; None when too many checks are waiting already."""
        if self._waiting >= _MAX_WAITING_CHECKS:
            return None
        self._waiting += 1
        try:
            async with self._hashing:
                return await asyncio.to_thread(record.matches, password)
        finally:
            self._waiting -= 1

    async def session(self, request: Request) -> Session | None:
        record = await self.password()
        fingerprint = record.fingerprint if record is not None else None
        return self.sessions.find(request.cookies.get(SESSION_COOKIE), fingerprint)

    async def page(self, request: Request) -> Session:
        """Dependency of the pages: a browser without a session goes to the login page."""
        session = await self.session(request)
        if session is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            login = "/login?" + urllib.parse.urlencode({"next": target})
            raise HTTPException(status_code=303, headers={"Location": login})
        return session

    async def api(self, request: Request) -> Session:
        """Dependency of data the pages fetch (and recordings): 401 without a session."""
        session = await self.session(request)
        if session is None:
            raise HTTPException(status_code=401, detail="log in first")
        return session

    async def scrape(self, request: Request) -> None:
        """Dependency of /metrics and /healthz: the LAN may read them when METRICS_PUBLIC."""
        if self.metrics_public and from_lan(request):
            return
        await self.api(request)

    async def form(self, request: Request, session: Session) -> dict[str, str] | None:
        """A signed-in page's form fields; None when its CSRF token or its origin is wrong."""
        fields = await read_form(request)
        if not (_same_origin(request) and _equal(session.csrf, fields.get("csrf", ""))):
            return None
        return fields

    def count(self, result: str) -> None:
        if self._metrics is not None:
            self._metrics.logins.labels(result).inc()

    def set_cookie(self, request: Request, response: Response, name: str, value: str) -> None:
        response.set_cookie(
            name,
            value,
            httponly=True,
            samesite="strict",
            secure=_https(request),
            path="/login" if name == LOGIN_COOKIE else "/",
        )


def _forbidden(why: str) -> Response:
    return PlainTextResponse(f"Forbidden: {why}. Reload the page and try again.", 403)


def auth_router(auth: Auth, pages: Pages) -> APIRouter:
    """`/login` and `/logout`."""
    router = APIRouter()

    async def login_page(
        request: Request, *, status: int, target: str, error: str = "", wait_s: float = 0.0
    ) -> Response:
        token = secrets.token_urlsafe(24)
        no_password = await auth.password() is None
        headers: Mapping[str, str] = {"Retry-After": str(math.ceil(wait_s))} if wait_s else {}
        response = pages.render(
            "login.html",
            status=status,
            headers=headers,
            csrf=token,
            next=target,
            error=error,
            no_password=no_password,
            session=None,
        )
        auth.set_cookie(request, response, LOGIN_COOKIE, token)
        return response

    @router.get("/login")
    async def login_form(request: Request, next: str = "/") -> Response:
        target = _safe_next(next)
        if await auth.session(request) is not None:
            return RedirectResponse(target, status_code=303)
        return await login_page(request, status=200, target=target)

    @router.post("/login")
    async def login(request: Request) -> Response:
        fields = await read_form(request)
        target = _safe_next(fields.get("next"))
        cookie = request.cookies.get(LOGIN_COOKIE, "")
        given = fields.get("csrf", "")
        # Checked before anything else, the password included: a forged form learns nothing.
        if not (_same_origin(request) and _equal(cookie, given)):
            auth.count("csrf")
            return _forbidden("the form's security token is missing or stale")
        source = request.client.host if request.client is not None else "unknown"
        wait_s = auth.throttle.wait_s(source)
        if wait_s > 0:
            auth.count("throttled")
            error = f"Too many wrong passwords. Try again in {math.ceil(wait_s)} s."
            return await login_page(request, status=429, target=target, error=error, wait_s=wait_s)
        record = await auth.password()
        if record is None:
            auth.throttle.failed(source)
            auth.count("no-password")
            error = "No admin password is set yet."
            return await login_page(request, status=401, target=target, error=error)
        matched = await auth.matches(record, fields.get("password", ""))
        if matched is None:
            auth.count("throttled")
            error = "Too many logins at once. Try again in a moment."
            return await login_page(request, status=429, target=target, error=error, wait_s=1)
        if not matched:
            auth.throttle.failed(source)
            auth.count("wrong")
            return await login_page(request, status=401, target=target, error="Wrong password.")
        auth.throttle.succeeded(source)
        auth.count("ok")
        session = auth.sessions.open(record.fingerprint)
        response = RedirectResponse(target, status_code=303)
        auth.set_cookie(request, response, SESSION_COOKIE, session.token)
        response.delete_cookie(LOGIN_COOKIE, path="/login")
        return response

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        session = await auth.session(request)
        if session is None:
            return RedirectResponse("/login", status_code=303)
        fields = await read_form(request)
        if not (_same_origin(request) and _equal(session.csrf, fields.get("csrf", ""))):
            return _forbidden("the form's security token is missing or stale")
        auth.sessions.close(session.token)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    return router
