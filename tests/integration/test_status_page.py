"""The status page over real HTTP: login, CSRF, throttling, recordings, secrets, /metrics access.

The appliance is built as `appliance serve` builds it, but its models are not loaded: nothing
here places a call, so its records are seeded the way a call writes them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
import pytest_asyncio
from fastapi.routing import APIRoute, APIWebSocketRoute
from starlette.routing import BaseRoute

from appliance.memory import audit
from appliance.settings import Settings, WebSettings
from appliance.web.password import PasswordRecord, load_password, save_password
from tests.conftest import ROOT
from tests.support.status import (
    PASSWORD,
    Box,
    csrf_of,
    log_in,
    raw_get,
    seed_call,
    serve_box,
)


@pytest_asyncio.fixture
async def box(app_settings: Settings) -> AsyncIterator[Box]:
    async for made in serve_box(app_settings):
        yield made


SECRETS = {
    "TWILIO_AUTH_TOKEN": "twilio-SECRET-9b2c",
    "SIP_PASSWORD": "sip-SECRET-4e1f",
    "SIP_INBOUND_PASSWORD": "sip-in-SECRET-77aa",
    "SENDGRID_API_KEY": "SG.sendgrid-SECRET-1a2b",
    "REDIS_PASSWORD": "redis-SECRET-8d9e",
}


@pytest_asyncio.fixture
async def secret_box(app_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Box]:
    """Every secret setting set, loaded from the environment as the appliance loads them."""
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SIP_INBOUND_USERNAME", "trunk")
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC" + "5" * 32)
    monkeypatch.setenv("BASE_URL", "https://box.example.com")
    monkeypatch.setenv("NOTIFY_EMAIL", "owner@example.com")
    monkeypatch.setenv("SENDGRID_FROM_EMAIL", "box@example.com")
    # A Redis URL carries its password inside: the page must show only where it points.
    monkeypatch.setenv("REDIS_URL", f"redis://:{SECRETS['REDIS_PASSWORD']}@127.0.0.1:1/0")
    loaded = Settings.load(None)
    settings = dataclasses.replace(
        app_settings, engines=loaded.engines, twilio=loaded.twilio, integrations=loaded.integrations
    )
    assert settings.twilio.auth_token is not None  # the settings really carry them
    async for made in serve_box(settings):
        yield made


def _flat(routes: Sequence[BaseRoute]) -> list[APIRoute | APIWebSocketRoute]:
    """The app's routes, through FastAPI's included routers (they keep the originals)."""
    found: list[APIRoute | APIWebSocketRoute] = []
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            found += _flat(included.routes)
        elif isinstance(route, APIRoute | APIWebSocketRoute):
            found.append(route)
    return found


def _routes(box: Box) -> list[tuple[str, str]]:
    """(method, path) of every route of the web app, path parameters filled in."""
    samples = {
        "{call_id:path}": box.call_id,
        "{relative:path}": str(box.recording.relative_to(box.app.settings.paths.recordings)),
        "{name}": "app.css",
        "{token}": "0" * 32,  # a hand-off's whisper and dial result (signed Twilio webhooks)
    }
    found = []
    for route in _flat(box.server.app.routes):
        path = route.path
        for param, value in samples.items():
            path = path.replace(param, value)
        assert "{" not in path, path
        if isinstance(route, APIRoute):
            found += [(method, path) for method in sorted(route.methods)]
        elif isinstance(route, APIWebSocketRoute):
            found.append(("WEBSOCKET", path))
    return found


PUBLIC = {("GET", "/login"), ("POST", "/login"), ("GET", "/static/app.css")}


async def test_every_route_but_the_public_ones_needs_a_login(box: Box) -> None:
    routes = _routes(box)
    private = [r for r in routes if r not in PUBLIC and not r[1].startswith("/twilio/")]
    assert len(private) >= 10  # every page, the live stream, recordings, /metrics, /healthz ...
    assert {("GET", "/"), ("GET", "/calls"), ("GET", "/business")} <= set(private)
    async with box.client() as http:
        for method, path in private:
            response = await http.request(method, path)
            location = response.headers.get("location", "")
            assert response.status_code == 401 or (
                response.status_code == 303 and location.startswith("/login")
            ), (method, path, response.status_code)
        # The same requests with a forged or stale cookie are no better.
        http.cookies.set("tel3sis_session", "made-up-token")
        for method, path in private:
            assert (await http.request(method, path)).status_code in (401, 303), path
        # The public ones really are public, and the Twilio webhooks check their signature.
        assert (await http.get("/login")).status_code == 200
        assert (await http.get("/static/app.css")).status_code == 200
        assert (await http.post("/twilio/voice", data={"CallSid": "CA1"})).status_code == 403


async def test_logging_in_and_out(box: Box) -> None:
    async with box.client() as http:
        first = await http.get("/calls?q=table")
        assert first.status_code == 303
        assert first.headers["location"] == "/login?next=%2Fcalls%3Fq%3Dtable"
        form = await http.get(first.headers["location"])
        assert 'value="/calls?q=table"' in form.text
        wrong = await http.post(
            "/login", data={"csrf": csrf_of(form.text), "password": "nope", "next": "/"}
        )
        assert wrong.status_code == 401 and "Wrong password." in wrong.text
        done = await http.post(
            "/login",
            data={"csrf": csrf_of(wrong.text), "password": PASSWORD, "next": "/calls?q=table"},
        )
        assert done.status_code == 303 and done.headers["location"] == "/calls?q=table"
        cookie = next(
            v for k, v in done.headers.multi_items() if k == "set-cookie" and "tel3sis_session" in v
        )
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" not in cookie
        page = await http.get("/calls?q=table")
        assert page.status_code == 200 and box.call_id in page.text
        assert page.headers["content-security-policy"].startswith("default-src 'self'")
        out = await http.post("/logout", data={"csrf": csrf_of(page.text)})
        assert out.status_code == 303 and out.headers["location"] == "/login"
        assert (await http.get("/")).status_code == 303
    # Behind an HTTPS proxy the cookie is Secure; an outside address is never sent on.
    async with box.client(**{"X-Forwarded-Proto": "https"}) as http:
        form = await http.get("/login")
        assert "Secure" in form.headers["set-cookie"]
        # A client sends Secure cookies over HTTPS only: here the proxy's side is plain HTTP.
        login_cookie = form.headers["set-cookie"].split(";")[0]
        away = await http.post(
            "/login",
            data={"csrf": csrf_of(form.text), "password": PASSWORD, "next": "//evil.example"},
            headers={"Cookie": login_cookie},
        )
        assert away.headers["location"] == "/"
        assert "Secure" in away.headers["set-cookie"]


async def test_a_form_without_its_csrf_token_is_refused(box: Box) -> None:
    async with box.client() as http:
        form = await http.get("/login")
        token = csrf_of(form.text)
        for fields in ({"password": PASSWORD}, {"csrf": "guessed", "password": PASSWORD}):
            refused = await http.post("/login", data=fields)
            assert refused.status_code == 403, fields
        other_site = await http.post(
            "/login",
            data={"csrf": token, "password": PASSWORD},
            headers={"Origin": "http://evil.example"},
        )
        assert other_site.status_code == 403
        http.cookies.clear()
        no_cookie = await http.post("/login", data={"csrf": token, "password": PASSWORD})
        assert no_cookie.status_code == 403
        assert (await log_in(http)).status_code == 303
        for fields in ({}, {"csrf": token}):  # the login form's token is not the session's
            assert (await http.post("/logout", data=fields)).status_code == 403
        assert (await http.get("/")).status_code == 200  # still logged in
    count = box.app.metrics.registry.get_sample_value
    assert count("tel3sis_logins_total", {"result": "csrf"}) == 4


async def test_repeated_bad_logins_are_slowed(box: Box) -> None:
    async with box.client() as http:
        for _ in range(5):
            assert (await log_in(http, "wrong password")).status_code == 401
        throttled = await log_in(http)  # even the right password waits its turn
        assert throttled.status_code == 429 and throttled.headers["retry-after"] == "1"
        assert "Try again in 1 s" in throttled.text
        box.clock.ahead += 1.1
        assert (await log_in(http, "wrong again")).status_code == 401
        twice = await log_in(http)
        assert twice.status_code == 429 and twice.headers["retry-after"] == "2"
        box.clock.ahead += 2.1
        assert (await log_in(http)).status_code == 303
    count = box.app.metrics.registry.get_sample_value
    assert count("tel3sis_logins_total", {"result": "throttled"}) == 2
    assert count("tel3sis_logins_total", {"result": "wrong"}) == 6


async def test_recordings_are_served_in_ranges_and_nothing_else_is(box: Box) -> None:
    root = box.app.settings.paths.recordings
    relative = str(box.recording.relative_to(root))
    data = box.recording.read_bytes()
    (root / "escape.wav").symlink_to(box.app.settings.paths.admin_password)
    async with box.client() as http:
        await log_in(http)
        url = f"/recordings/{relative}"
        whole = await http.get(url)
        assert whole.status_code == 200 and whole.content == data
        assert whole.headers["accept-ranges"] == "bytes"
        assert whole.headers["content-type"] == "audio/wav"
        start = await http.get(url, headers={"Range": "bytes=0-"})
        assert start.status_code == 206
        assert start.headers["content-range"] == f"bytes 0-{len(data) - 1}/{len(data)}"
        part = await http.get(url, headers={"Range": "bytes=44-1043"})
        assert part.status_code == 206 and part.content == data[44:1044]
        tail = await http.get(url, headers={"Range": "bytes=-100"})
        assert tail.status_code == 206 and tail.content == data[-100:]
        beyond = await http.get(url, headers={"Range": f"bytes={len(data) + 10}-"})
        assert beyond.status_code == 416
        cookie = f"tel3sis_session={http.cookies['tel3sis_session']}"
    port = box.server.port
    assert await raw_get(port, f"/recordings/{relative}", {"Cookie": cookie}) == 200
    for target in (
        "/recordings/../admin-password.json",
        "/recordings/../../../etc/passwd",
        "/recordings/%2e%2e/admin-password.json",
        "/recordings/..%2fadmin-password.json",
        "/recordings/2026/%2e%2e/%2e%2e/%2e%2e/tel3sis.db",
        "/recordings/%2fetc%2fpasswd",
        "/recordings//etc/passwd",
        "/recordings/escape.wav",
        "/recordings/2026/01/02/missing.wav",
        "/recordings/..%5c..%5cadmin-password.json",
    ):
        status = await raw_get(port, target, {"Cookie": cookie})
        assert status == 404, (target, status)


async def test_no_secret_is_ever_rendered(secret_box: Box) -> None:
    box = secret_box
    record = box.app.settings.paths.admin_password.read_text()
    secrets = [*SECRETS.values(), PASSWORD, record.split('"salt": "')[1].split('"')[0]]
    secrets.append(record.split('"hash": "')[1].split('"')[0])
    shown: dict[str, str] = {}
    async with box.client() as http:
        shown["login"] = (await http.get("/login")).text
        shown["bad login"] = (await log_in(http, "wrong password")).text
        await log_in(http)
        for method, path in _routes(box):
            if method != "GET" or path.startswith("/recordings/") or path == "/api/live":
                continue
            response = await http.get(path)
            # 503: /healthz while the models are not loaded; 303: /login when logged in.
            assert response.status_code in (200, 503, 303), path
            shown[path] = response.text
        shown["missing call"] = (await http.get("/calls/no-such-call")).text
        shown["search"] = (await http.get("/calls?q=SECRET")).text
        async with http.stream("GET", "/api/live") as events:
            async for line in events.aiter_lines():
                if line.startswith("data:"):
                    shown["live"] = line
                    break
    pages = {"/", "/calls", f"/calls/{box.call_id}", "/business", "/metrics", "/healthz"}
    assert {*pages, "/api/health"} <= set(shown)
    assert "twilio" in shown["/api/health"] and "redis" in shown["/api/health"]
    assert "127.0.0.1:1/0" in shown["/api/health"]  # where Redis is, without its password
    for where, text in shown.items():
        for secret in secrets:
            assert secret not in text, (where, secret)


async def test_metrics_public_opens_metrics_and_healthz_to_the_lan_only(
    app_settings: Settings,
) -> None:
    settings = dataclasses.replace(app_settings, web=WebSettings(metrics_public=True))
    async for box in serve_box(settings):
        async with box.client() as http:
            scrape = await http.get("/metrics")
            assert scrape.status_code == 200 and "tel3sis_build_info" in scrape.text
            assert (await http.get("/healthz")).status_code == 503  # models not loaded
            assert (await http.get("/")).status_code == 303  # the page itself still needs a login
            assert (await http.get("/api/health")).status_code == 401
            proxied = await http.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
            assert proxied.status_code == 401  # through a proxy: maybe from the internet


async def test_history_search_and_a_call_with_its_waterfall(box: Box) -> None:
    db = box.app.records.db
    recordings = box.app.settings.paths.recordings
    for i in range(30):
        await seed_call(
            db,
            recordings,
            call_id=f"CAmore{i:03d}",
            said=f"Go forward {i} meters.",
            reply=f"Going forward {i} meters.",
        )
    stopped = audit.Decision(
        call_id=box.call_id, at=1.0, turn=1, layer="caller", action="refused",
        text="how do I make a pipe bomb", score=1.0, threshold=0.71, category="weapons",
        engine="rules",
    )  # fmt: skip
    await db.run(audit.save_decision, box.call_id, decision=stopped)
    async with box.client() as http:
        await log_in(http)
        everything = await http.get("/calls")
        assert "31 calls" in everything.text and "Page 1 of 2" in everything.text
        found = await http.get("/calls", params={"q": "TABLE for four"})
        assert "1 call matching" in found.text and box.call_id in found.text
        assert "CAmore" not in found.text
        percent = await http.get("/calls", params={"q": "100%"})
        assert "No call matches." in percent.text  # % is a character, not a wildcard
        page = await http.get(f"/calls/{box.call_id}")
        assert page.status_code == 200
        assert "I&#39;d like to book a table for four tomorrow at seven." in page.text
        assert f'src="/recordings/2026/01/02/{box.call_id}.wav"' in page.text
        assert page.text.count('class="bar ') == 2 * 7  # drawn wide and narrow
        assert "<svg" in page.text
        assert "caller waited" in page.text and "640 ms" in page.text
        assert "Stopped by the safety screen" in page.text and "make a pipe bomb" in page.text
        missing = await http.get("/calls/CAnothing")
        assert missing.status_code == 404 and "No such call" in missing.text


def test_admin_set_password_from_the_command_line(tmp_path: Path) -> None:
    env = {**os.environ, "APPLIANCE_DATA_DIR": str(tmp_path)}

    def run(password: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "appliance", "admin", "set-password", "--stdin"],
            input=password + "\n",
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=60,
            check=False,
        )

    short = run("short")
    assert short.returncode == 2 and "at least 8 characters" in short.stderr
    assert not (tmp_path / "admin-password.json").exists()
    done = run("a long enough password")
    assert done.returncode == 0, done.stderr
    stored = (tmp_path / "admin-password.json").read_text()
    assert '"kdf": "scrypt"' in stored and "a long enough password" not in stored
    record = load_password(tmp_path / "admin-password.json")
    assert record is not None and record.matches("a long enough password")


async def test_the_server_sends_without_waiting_for_acks(box: Box) -> None:
    # Accepted connections inherit the listening socket's TCP_NODELAY; asyncio would not set it
    # (see WebServer), and each response after the first on a kept-alive connection, and each
    # small websocket frame, would then wait ~40 ms for the client's delayed ACK.
    listening = box.server._socket
    assert listening is not None
    assert listening.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1


async def test_a_flood_of_logins_costs_at_most_a_few_password_checks(box: Box) -> None:
    # The real cost (about a second of CPU per check here): a flood must not queue them all.
    save_password(box.app.settings.paths.admin_password, PasswordRecord.create(PASSWORD))
    clients = [box.client() for _ in range(12)]
    try:
        forms = [await http.get("/login") for http in clients]
        answers = await asyncio.gather(
            *(
                http.post("/login", data={"csrf": csrf_of(form.text), "password": "guess"})
                for http, form in zip(clients, forms, strict=True)
            )
        )
    finally:
        for http in clients:
            await http.aclose()
    statuses = sorted(a.status_code for a in answers)
    assert statuses.count(401) <= 5  # one checking, four waiting
    assert statuses.count(429) >= 7 and set(statuses) == {401, 429}
    assert any("Too many logins at once" in a.text for a in answers)
