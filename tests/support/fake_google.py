"""Google's OAuth 2.0 endpoints and Calendar API v3 on a loopback port, on their wire formats.

OAuth (`oauth2.googleapis.com`): `POST /device/code` (the device flow's user code),
`POST /token` (the device-code grant, answering 428 `authorization_pending`, 403 `slow_down`
when polled faster than the interval, 403 `access_denied`, 400 `expired_token`; and the
`refresh_token` grant, 400 `invalid_grant` once revoked), `POST /revoke` (a refresh token
revokes its whole grant). Forms in, JSON out, as Google sends them.

Calendar (`www.googleapis.com/calendar/v3`): `events` list (timeMin/timeMax, paged by
maxResults), insert (409 `duplicate` on a taken id), patch and delete (410 `deleted` twice),
with Google's error object; 401 `authError` for a missing, expired or revoked access token.

Time is the test's (`now`, Unix seconds). `calendar_troubles` are answers to give first to
calendar requests (a status and its headers, such as 429 with Retry-After); the operator's part
of the device flow is `approve`/`deny`, or `operator_acts_after` polls. Every request is kept.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit
from zoneinfo import ZoneInfo

__all__ = ["FakeGoogle", "Seen", "fake_google"]

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
Answer = tuple[int, dict[str, Any] | None, dict[str, str]]


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    body: dict[str, Any] | None
    authorization: str


@dataclass
class _Device:
    user_code: str
    expires_at: float
    interval: int
    decision: bool | None = None
    last_poll: float | None = None
    polls: int = 0


@dataclass
class FakeGoogle:
    client_id: str = "123-box.apps.googleusercontent.com"
    client_secret: str = "GOCSPX-fake-secret"
    now: Callable[[], float] = time.time
    time_zone: str = "America/New_York"
    access_lifetime_s: int = 3599
    interval: int = 5
    """Seconds between polls that Google asks for."""
    operator_acts_after: int | None = None
    """Polls after which the operator allows (or, with `operator_allows` False, denies)."""
    operator_allows: bool = True
    calendar_troubles: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[Seen] = field(default_factory=list)
    connections: int = 0
    """TCP connections accepted (a client that keeps them alive opens few)."""
    access_tokens: dict[str, float] = field(default_factory=dict)
    """Live access tokens and when each expires."""
    refresh_tokens: set[str] = field(default_factory=set)
    revoked: list[str] = field(default_factory=list)
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)
    _devices: dict[str, _Device] = field(default_factory=dict)

    # --- what a test does -----------------------------------------------------------------------

    def approve(self, user_code: str, *, allow: bool = True) -> None:
        with self.lock:
            for device in self._devices.values():
                if device.user_code == user_code:
                    device.decision = allow

    def expire_access_tokens(self) -> None:
        """Google stops taking the access tokens handed out so far (the client does not know)."""
        with self.lock:
            self.access_tokens.clear()

    def add_event(self, event_id: str, start: str, end: str, **more: Any) -> None:
        """An event made elsewhere (`start`/`end`: RFC 3339, or a date for an all-day one)."""
        key = "date" if len(start) == 10 else "dateTime"
        self.events[event_id] = _resource(
            {"id": event_id, "start": {key: start}, "end": {key: end}, **more}, self.now()
        )

    def seen(self, path: str, method: str | None = None) -> list[Seen]:
        return [s for s in self.requests if s.path == path and method in (None, s.method)]

    def grants(self) -> list[str]:
        return [s.form.get("grant_type", "") for s in self.seen("/token")]

    def statuses(self) -> list[int]:
        return [status for status, _ in self._answered]

    # --- what Google does -----------------------------------------------------------------------

    _answered: list[tuple[int, str]] = field(default_factory=list)

    def answer(self, seen: Seen) -> Answer:
        with self.lock:
            self.requests.append(seen)
            status, body, headers = self._route(seen)
            self._answered.append((status, seen.path))
            return status, body, headers

    def _route(self, seen: Seen) -> Answer:
        match seen.method, seen.path:
            case "POST", "/device/code":
                return self._device_code(seen.form)
            case "POST", "/token":
                return self._token(seen.form)
            case "POST", "/revoke":
                return self._revoke(seen.form)
        if seen.path.startswith("/calendar/v3/calendars/"):
            return self._calendar(seen)
        return _google_error(404, "notFound", "Not Found")

    def _device_code(self, form: dict[str, str]) -> Answer:
        if form.get("client_id") != self.client_id:
            return _oauth_error(401, "invalid_client", "The OAuth client was not found.")
        code = secrets.token_urlsafe(32)
        user = f"{secrets.token_hex(2).upper()}-{secrets.token_hex(2).upper()}"
        self._devices[code] = _Device(user, self.now() + 1800, self.interval)
        body = {
            "device_code": code,
            "user_code": user,
            "expires_in": 1800,
            "interval": self.interval,
            "verification_url": "https://www.google.com/device",
        }
        return 200, body, {}

    def _token(self, form: dict[str, str]) -> Answer:
        if (form.get("client_id"), form.get("client_secret")) != (
            self.client_id,
            self.client_secret,
        ):
            return _oauth_error(401, "invalid_client", "Unauthorized")
        if form.get("grant_type") == DEVICE_GRANT:
            return self._device_grant(form.get("device_code", ""))
        if form.get("grant_type") == "refresh_token":
            if form.get("refresh_token") not in self.refresh_tokens:
                return _oauth_error(400, "invalid_grant", "Token has been expired or revoked.")
            return 200, self._new_access(), {}
        return _oauth_error(400, "unsupported_grant_type", "Invalid grant_type: ")

    def _device_grant(self, code: str) -> Answer:
        device = self._devices.get(code)
        if device is None:
            return _oauth_error(400, "invalid_grant", "Malformed auth code.")
        now = self.now()
        if now >= device.expires_at:
            return _oauth_error(400, "expired_token", "Bad Request")
        too_soon = device.last_poll is not None and now - device.last_poll < device.interval
        device.last_poll = now
        device.polls += 1
        if too_soon:
            return _oauth_error(403, "slow_down", "Forbidden")
        if device.decision is None and self.operator_acts_after == device.polls:
            device.decision = self.operator_allows
        if device.decision is None:
            return _oauth_error(428, "authorization_pending", "Precondition Required")
        if not device.decision:
            return _oauth_error(403, "access_denied", "Forbidden")
        del self._devices[code]
        refresh = "1//0" + secrets.token_urlsafe(40)
        self.refresh_tokens.add(refresh)
        return 200, self._new_access() | {"refresh_token": refresh}, {}

    def _new_access(self) -> dict[str, Any]:
        token = "ya29." + secrets.token_urlsafe(40)
        self.access_tokens[token] = self.now() + self.access_lifetime_s
        return {
            "access_token": token,
            "expires_in": self.access_lifetime_s,
            "scope": "https://www.googleapis.com/auth/calendar.events",
            "token_type": "Bearer",
        }

    def _revoke(self, form: dict[str, str]) -> Answer:
        token = form.get("token", "")
        if token in self.refresh_tokens:
            self.refresh_tokens.discard(token)
            self.access_tokens.clear()  # the grant's access tokens go with it
        elif self.access_tokens.pop(token, None) is None:
            return _oauth_error(400, "invalid_token", "Token expired or revoked")
        self.revoked.append(token)
        return 200, {}, {}

    # --- the calendar ---------------------------------------------------------------------------

    def _calendar(self, seen: Seen) -> Answer:  # noqa: PLR0911 - one return per route
        token = seen.authorization.removeprefix("Bearer ")
        if self.access_tokens.get(token, 0.0) <= self.now():
            return _google_error(
                401,
                "authError",
                "Request had invalid authentication credentials. Expected OAuth 2 access "
                "token, login cookie or other valid authentication credential.",
                location="Authorization",
                message="Invalid Credentials",
            )
        if self.calendar_troubles:
            status, headers = self.calendar_troubles.pop(0)
            reason = "rateLimitExceeded" if status in (403, 429) else "backendError"
            return (*_google_error(status, reason, "Rate Limit Exceeded")[:2], headers)
        parts = seen.path.removeprefix("/calendar/v3/calendars/").split("/")
        if unquote(parts[0]) != "primary" or parts[1:2] != ["events"]:
            return _google_error(404, "notFound", "Not Found")
        event = unquote(parts[2]) if len(parts) > 2 else None
        match seen.method, event:
            case "GET", None:
                return self._list(seen.query)
            case "POST", None:
                return self._insert(seen.body or {})
            case "PATCH", str():
                return self._patch(event, seen.body or {})
            case "DELETE", str():
                return self._delete(event)
        return _google_error(405, "httpMethodNotAllowed", "Method Not Allowed")

    def _list(self, query: dict[str, str]) -> Answer:
        low = _instant(query["timeMin"]) if "timeMin" in query else None
        high = _instant(query["timeMax"]) if "timeMax" in query else None
        found = [
            e
            for e in self.events.values()
            if e["status"] != "cancelled"
            and (low is None or _at(e["end"], self.time_zone) > low)
            and (high is None or _at(e["start"], self.time_zone) < high)
        ]
        found.sort(key=lambda e: _at(e["start"], self.time_zone))
        first = int(query.get("pageToken", "0"))
        size = int(query.get("maxResults", "250"))
        body: dict[str, Any] = {
            "kind": "calendar#events",
            "etag": '"p33c9v1vmkv0v80g"',
            "summary": "owner@example.com",
            "updated": _stamp(self.now()),
            "timeZone": self.time_zone,
            "accessRole": "owner",
            "defaultReminders": [{"method": "popup", "minutes": 30}],
            "items": found[first : first + size],
        }
        if first + size < len(found):
            body["nextPageToken"] = str(first + size)
        return 200, body, {}

    def _insert(self, body: dict[str, Any]) -> Answer:
        event_id = str(body.get("id") or secrets.token_hex(13))
        if event_id in self.events:
            return _google_error(409, "duplicate", "The requested identifier already exists.")
        self.events[event_id] = _resource({**body, "id": event_id}, self.now())
        return 200, self.events[event_id], {}

    def _patch(self, event_id: str, body: dict[str, Any]) -> Answer:
        event = self.events.get(event_id)
        if event is None:
            return _google_error(404, "notFound", "Not Found")
        if event["status"] == "cancelled":
            return _google_error(410, "deleted", "Resource has been deleted")
        event.update(body)
        event["sequence"] += 1
        event["updated"] = _stamp(self.now())
        return 200, event, {}

    def _delete(self, event_id: str) -> Answer:
        event = self.events.get(event_id)
        if event is None:
            return _google_error(404, "notFound", "Not Found")
        if event["status"] == "cancelled":
            return _google_error(410, "deleted", "Resource has been deleted")
        event["status"] = "cancelled"
        return 204, None, {}


def _resource(body: dict[str, Any], now: float) -> dict[str, Any]:
    """An event as Google answers it, around what was sent."""
    return {
        "kind": "calendar#event",
        "etag": f'"{int(now * 1000)}"',
        "status": "confirmed",
        "htmlLink": f"https://www.google.com/calendar/event?eid={body['id']}",
        "created": _stamp(now),
        "updated": _stamp(now),
        "creator": {"email": "owner@example.com", "self": True},
        "organizer": {"email": "owner@example.com", "self": True},
        "iCalUID": f"{body['id']}@google.com",
        "sequence": 0,
        "reminders": {"useDefault": True},
        "eventType": "default",
        **body,
    }


def _stamp(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _instant(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _at(when: dict[str, str], zone: str) -> dt.datetime:
    if "dateTime" in when:
        return _instant(when["dateTime"])
    return dt.datetime.combine(dt.date.fromisoformat(when["date"]), dt.time(0), ZoneInfo(zone))


def _oauth_error(status: int, error: str, description: str) -> Answer:
    return status, {"error": error, "error_description": description}, {}


def _google_error(
    status: int, reason: str, text: str, *, location: str = "", message: str = ""
) -> Answer:
    one: dict[str, str] = {"domain": "global", "reason": reason, "message": message or text}
    if location:
        one |= {"locationType": "header", "location": location}
    if reason == "rateLimitExceeded":
        one["domain"] = "usageLimits"
    body = {"error": {"errors": [one], "code": status, "message": text}}
    if status == 401:
        body["error"]["status"] = "UNAUTHENTICATED"
    return status, body, {}


class _Server(ThreadingHTTPServer):
    daemon_threads = True


@contextmanager
def fake_google(fake: FakeGoogle) -> Iterator[FakeGoogle]:
    """`fake` on a loopback port: OAuth at `url`, the Calendar API at `url + "/calendar/v3"`."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # kept alive, as Google's are
        disable_nagle_algorithm = True  # headers and body go in two writes: no 40 ms stall

        def setup(self) -> None:
            super().setup()
            with fake.lock:
                fake.connections += 1

        def _handle(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode() if length else ""
            kind = self.headers.get("Content-Type", "")
            form = dict(parse_qsl(raw)) if kind.startswith("application/x-www-form") else {}
            body = json.loads(raw) if raw and kind.startswith("application/json") else None
            seen = Seen(
                self.command,
                parts.path,
                dict(parse_qsl(parts.query)),
                form,
                body,
                self.headers.get("Authorization", ""),
            )
            status, answer, headers = fake.answer(seen)
            data = json.dumps(answer).encode() if answer is not None else b""
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            if answer is not None:
                self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_DELETE = _handle

        def log_message(self, *args: object) -> None:
            pass

    server = _Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="fake-google", daemon=True
    )
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
