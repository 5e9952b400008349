"""Deepgram's pre-recorded speech to text as a local HTTP server speaking its wire format.

`POST /v1/listen` takes the audio as the request's body (raw PCM16 with `encoding=linear16`,
`sample_rate` and `channels` in the query), checks `Authorization: Token <key>`, and answers
Deepgram's JSON: `metadata`, and `results.channels[].alternatives[]` with the transcript, its
confidence and its words. Errors carry Deepgram's body (`err_code`, `err_msg`, `request_id`).
A test may script a refusal (`refuse`), a page instead of JSON (`html`), or a late first byte
(`hold`). Every request is kept for the test to read.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

__all__ = ["FakeDeepgram", "Heard", "serving"]

_ERRORS = {
    400: "Bad Request",
    401: "INVALID_AUTH",
    429: "TOO_MANY_REQUESTS",
    500: "INTERNAL_SERVER_ERROR",
}
_MESSAGES = {
    401: "Invalid credentials.",
    429: "Too many requests. Please try again later",
    500: "An internal server error occurred.",
}


@dataclass(frozen=True)
class Heard:
    """One request as the fake received it."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeDeepgram:
    key: str = "dg-test-key"
    transcript: str = "i would like to book a table for four"
    confidence: float = 0.9871
    refuse: int | None = None
    """Answer every request with this HTTP status and Deepgram's error body."""
    html: bool = False
    """Answer with a web page (a captive portal, a proxy's error page)."""
    hold: threading.Event | None = None
    """When set: nothing is answered until this is set (a late first byte)."""
    requests: list[Heard] = field(default_factory=list)
    url: str = ""

    def answer(self, seconds: float) -> dict[str, object]:
        """Deepgram's pre-recorded answer for `seconds` of audio."""
        words = self.transcript.split()
        step = seconds / max(1, len(words))
        best = {
            "transcript": self.transcript,
            "confidence": self.confidence,
            "words": [self._word(w, i * step, step) for i, w in enumerate(words)],
        }
        return {
            "metadata": {
                "transaction_key": "deprecated",
                "request_id": str(uuid.uuid4()),
                "sha256": "0" * 64,
                "created": "2026-01-01T00:00:00.000Z",
                "duration": seconds,
                "channels": 1,
                "models": [str(uuid.uuid4())],
            },
            "results": {"channels": [{"alternatives": [best]}]},
        }

    def _word(self, word: str, start: float, seconds: float) -> dict[str, object]:
        return {"word": word, "start": start, "end": start + seconds, "confidence": self.confidence}

    def refusal(self, status: int, message: str | None = None) -> dict[str, str]:
        return {
            "err_code": _ERRORS.get(status, "Bad Request"),
            "err_msg": message or _MESSAGES.get(status, "Bad Request"),
            "request_id": str(uuid.uuid4()),
        }


def _bad_audio(query: dict[str, str], body: bytes) -> str | None:
    """Why Deepgram would refuse raw audio sent this way, or None."""
    if query.get("encoding") != "linear16":
        return "Bad Request: failed to process audio: corrupt or unsupported data"
    if query.get("sample_rate") != "16000" or query.get("channels") != "1":
        return "Bad Request: raw audio needs sample_rate and channels"
    if not body or len(body) % 2:
        return "Bad Request: failed to process audio: corrupt or unsupported data"
    return None


@contextmanager
def serving(fake: FakeDeepgram) -> Iterator[FakeDeepgram]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            parts = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            fake.requests.append(
                Heard(parts.path, query, {k.lower(): v for k, v in self.headers.items()}, body)
            )
            if fake.hold is not None:
                fake.hold.wait(timeout=30)
            if fake.html:
                return self._send(200, "text/html; charset=utf-8", b"<html>Sign in</html>")
            if fake.refuse is not None:
                return self._json(fake.refuse, fake.refusal(fake.refuse))
            if self.headers.get("Authorization") != f"Token {fake.key}":
                return self._json(401, fake.refusal(401))
            if parts.path != "/v1/listen":
                return self._json(404, fake.refusal(404, f"no route {parts.path}"))
            if why := _bad_audio(query, body):
                return self._json(400, fake.refusal(400, why))
            return self._json(200, fake.answer(len(body) / 2 / 16_000))

        def _json(self, status: int, answer: object) -> None:
            self._send(status, "application/json", json.dumps(answer).encode())

        def _send(self, status: int, content_type: str, data: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="fake-deepgram", daemon=True
    )
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        if fake.hold is not None:
            fake.hold.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
