"""ElevenLabs' streaming text to speech as a local HTTP server speaking its wire format.

`POST /v1/text-to-speech/{voice_id}/stream?output_format=pcm_16000` takes
`{"text", "model_id"}` as JSON, checks the `xi-api-key` header and the voice, and streams raw
16 kHz PCM16 with chunked transfer encoding, in pieces of odd sizes (a sample may be split
between two, as on a real network). Errors carry ElevenLabs' body
(`{"detail": {"status", "message"}}`). A test may script a refusal (`refuse`), a page instead
of audio (`html`), a late first byte (`hold`), or hold the rest of the speech after its first
piece (`rest_of_speech`). Every request is kept for the test to read.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import numpy as np

__all__ = ["RATE", "FakeElevenLabs", "Heard", "serving"]

RATE = 16_000
"""`pcm_16000`: 16 kHz, 16-bit, mono, little-endian."""
_PIECE = 3201
"""Bytes a write: about 0.1 s, and odd, so that pieces end inside samples."""
_STATUSES = {
    401: ("invalid_api_key", "Invalid API key"),
    429: ("too_many_concurrent_requests", "Too many concurrent requests for your plan."),
    500: ("internal_error", "An internal error occurred."),
}
_PREFIX = "/v1/text-to-speech/"


@dataclass(frozen=True)
class Heard:
    """One request as the fake received it."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: dict[str, object]


@dataclass
class FakeElevenLabs:
    key: str = "xi-test-key"
    voice_id: str = "21m00Tcm4TlvDq8ikWAM"
    seconds_per_word: float = 0.2
    """How much speech each word of the text gets."""
    refuse: int | None = None
    """Answer every request with this HTTP status and ElevenLabs' error body."""
    html: bool = False
    """Answer with a web page (a captive portal, a proxy's error page)."""
    hold: threading.Event | None = None
    """When set: nothing is answered until this is set (a late first byte)."""
    rest_of_speech: threading.Event | None = None
    """When set: the first piece is sent, the rest only once this is set."""
    requests: list[Heard] = field(default_factory=list)
    url: str = ""

    def speech(self, text: str) -> bytes:
        samples = int(RATE * self.seconds_per_word * max(1, len(text.split())))
        t = np.arange(samples) / RATE
        return (np.sin(2 * np.pi * 330 * t) * 8000).astype("<i2").tobytes()


def _detail(status: int, message: str | None = None) -> dict[str, object]:
    code, said = _STATUSES.get(status, ("bad_request", "Bad request"))
    return {"detail": {"status": code, "message": message or said}}


@contextmanager
def serving(fake: FakeElevenLabs) -> Iterator[FakeElevenLabs]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # chunked answers, kept-alive connections, as the API

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            parts = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            asked = json.loads(raw) if raw else {}
            headers = {k.lower(): v for k, v in self.headers.items()}
            fake.requests.append(Heard(parts.path, query, headers, asked))
            if fake.hold is not None:
                fake.hold.wait(timeout=30)
            if fake.html:
                return self._send(200, "text/html; charset=utf-8", b"<html>Sign in</html>")
            if fake.refuse is not None:
                return self._json(fake.refuse, _detail(fake.refuse))
            if self.headers.get("xi-api-key") != fake.key:
                return self._json(401, _detail(401))
            if parts.path != f"{_PREFIX}{fake.voice_id}/stream":
                voice = parts.path.removeprefix(_PREFIX).removesuffix("/stream")
                message = f"A voice with the voice_id {voice} was not found."
                return self._json(404, {"detail": {"status": "voice_not_found",
                                                   "message": message}})  # fmt: skip
            if query.get("output_format") != "pcm_16000" or not asked.get("text"):
                return self._json(422, _detail(422, "output_format or text is missing"))
            return self._stream(fake.speech(str(asked["text"])))

        def _stream(self, pcm: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "audio/pcm")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                for i in range(0, len(pcm), _PIECE):
                    if i == _PIECE and fake.rest_of_speech is not None:
                        fake.rest_of_speech.wait(timeout=10)
                    piece = pcm[i : i + _PIECE]
                    self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the caller stopped listening (a barge-in)

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
    server.daemon_threads = True  # a kept-alive connection's thread must not hold shutdown
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="fake-elevenlabs", daemon=True
    )
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        for event in (fake.hold, fake.rest_of_speech):
            if event is not None:
                event.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
