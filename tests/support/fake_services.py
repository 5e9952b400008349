"""SendGrid and Twilio as local HTTP servers speaking their wire formats, for the notify jobs.

Each fake checks a request as the real service does (credentials, required fields) and answers
with the real success or error body. A test may script the next answers (a 500, a 400) to see
what the appliance does with them; every request is kept for the test to read.
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

__all__ = ["FakeService", "Seen", "sendgrid", "twilio"]


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}


Answer = tuple[int, dict[str, str], bytes]


@dataclass
class FakeService:
    """One fake service; `script` holds answers to give before checking requests normally."""

    check: object  # Callable[[Seen], Answer], set by the factories below
    script: list[Answer] = field(default_factory=list)
    requests: list[Seen] = field(default_factory=list)
    url: str = ""

    def answer(self, seen: Seen) -> Answer:
        self.requests.append(seen)
        if self.script:
            return self.script.pop(0)
        return self.check(seen)  # type: ignore[operator,no-any-return]


def _json(status: int, body: object, **headers: str) -> Answer:
    return status, {"Content-Type": "application/json", **headers}, json.dumps(body).encode()


@contextmanager
def _serving(service: FakeService) -> Iterator[FakeService]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            seen = Seen("POST", self.path, dict(self.headers.items()), self.rfile.read(length))
            status, headers, body = service.answer(seen)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="fake-service", daemon=True)
    thread.start()
    service.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield service
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


SENDGRID_500 = _json(500, {"errors": [{"field": None, "message": "Internal server error"}]})
SENDGRID_400 = _json(
    400,
    {
        "errors": [
            {
                "message": "Does not contain a valid address.",
                "field": "personalizations.0.to.0.email",
                "help": "https://sendgrid.com/docs/for-developers/sending-email/mail-send-errors/",
            }
        ]
    },
)


@contextmanager
def sendgrid(api_key: str) -> Iterator[FakeService]:
    """SendGrid's v3 mail/send: Bearer key, JSON body, 202 with an X-Message-Id."""

    def check(seen: Seen) -> Answer:
        if seen.path != "/v3/mail/send":
            return _json(404, {"errors": [{"message": "not found"}]})
        if seen.headers.get("Authorization") != f"Bearer {api_key}":
            return _json(
                401, {"errors": [{"message": "The provided authorization grant is invalid"}]}
            )
        try:
            mail = seen.json()
        except ValueError:
            return _json(400, {"errors": [{"message": "Bad Request", "field": None}]})
        assert isinstance(mail, dict)
        for required in ("personalizations", "from", "subject", "content"):
            if not mail.get(required):
                return _json(400, {"errors": [{"message": "required", "field": required}]})
        return 202, {"X-Message-Id": uuid.uuid4().hex[:22]}, b""

    with _serving(FakeService(check=check)) as service:
        yield service


TWILIO_500 = _json(
    500,
    {
        "code": 20500,
        "message": "An internal server error has occurred",
        "more_info": "https://www.twilio.com/docs/errors/20500",
        "status": 500,
    },
)
TWILIO_400 = _json(
    400,
    {
        "code": 21211,
        "message": "Invalid 'To' Phone Number: +1555010XXXX",
        "more_info": "https://www.twilio.com/docs/errors/21211",
        "status": 400,
    },
)


@contextmanager
def twilio(account_sid: str, auth_token: str) -> Iterator[FakeService]:
    """Twilio's Messages resource: Basic auth, a form, 201 with the message's JSON."""
    expected = "Basic " + base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode()

    def check(seen: Seen) -> Answer:
        if seen.path != f"/2010-04-01/Accounts/{account_sid}/Messages.json":
            return _json(404, {"code": 20404, "message": "not found", "status": 404})
        if seen.headers.get("Authorization") != expected:
            return _json(401, {"code": 20003, "message": "Authenticate", "status": 401})
        form = seen.form()
        if not form.get("To"):
            return _json(400, {"code": 21604, "message": "A 'To' phone number is required."})
        if not form.get("Body"):
            return _json(400, {"code": 21602, "message": "Message body is required."})
        sid = "SM" + uuid.uuid4().hex
        return _json(
            201,
            {
                "sid": sid,
                "account_sid": account_sid,
                "to": form["To"],
                "from": form.get("From"),
                "body": form["Body"],
                "status": "queued",
                "num_segments": "1",
                "uri": f"/2010-04-01/Accounts/{account_sid}/Messages/{sid}.json",
            },
        )

    with _serving(FakeService(check=check)) as service:
        yield service
