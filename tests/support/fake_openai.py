"""OpenAI's audio and chat endpoints as a local HTTP server speaking their wire format.

`/v1/audio/transcriptions` takes the multipart upload the SDK sends and answers `{"text": ...}`;
`/v1/audio/speech` streams raw 24 kHz PCM16 (OpenAI's `pcm`) or a WAV, in pieces, as OpenAI
does; `/v1/chat/completions` streams server-sent `chat.completion.chunk` events, a tool call's
arguments split over several events. Every request is kept for the test to read.
"""

from __future__ import annotations

import json
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from appliance.audio.wav import wav_header

__all__ = ["FakeOpenAI", "serving"]

SPEECH_RATE = 24_000
"""OpenAI's `pcm`: 24 kHz, 16-bit, mono, little-endian."""
WAV_RATE = 22_050
"""A WAV's rate here is not OpenAI's PCM rate: the engine must read it from the header."""
_PIECE = 4800
"""Bytes of speech a write: 0.1 s at 24 kHz."""


@dataclass
class FakeOpenAI:
    key: str = "sk-test"
    heard: str = "I would like to book a table."
    """What every transcription says."""
    reply: str | tuple[str, str] = "Certainly, for how many people?"
    """A chat answer: text, or (tool name, JSON arguments) for a tool call."""
    seconds_per_word: float = 0.2
    """How much speech each word of the input gets."""
    requests: list[tuple[str, bytes]] = field(default_factory=list)
    url: str = ""
    rest_of_speech: threading.Event | None = None
    """When set: the speech's first piece is sent, the rest only once this is set (a test sees
    that the start is given on before the whole has come)."""

    def speech(self, text: str, audio_format: str) -> Iterator[bytes]:
        rate = WAV_RATE if audio_format == "wav" else SPEECH_RATE
        samples = int(rate * self.seconds_per_word * max(1, len(text.split())))
        t = np.arange(samples) / rate
        pcm = (np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2").tobytes()
        if audio_format == "wav":
            yield wav_header(channels=1, rate=rate, data_bytes=len(pcm))
        for i in range(0, len(pcm), _PIECE):
            yield pcm[i : i + _PIECE]

    def chunks(self) -> Iterator[dict[str, object]]:
        """The chat answer's `choices[0]` deltas and finish reasons, as OpenAI streams them."""
        yield {"delta": {"role": "assistant", "content": ""}, "finish_reason": None}
        if isinstance(self.reply, str):
            for word in self.reply.split(" "):
                yield {"delta": {"content": word + " "}, "finish_reason": None}
            yield {"delta": {}, "finish_reason": "stop"}
            return
        name, arguments = self.reply
        yield _call_piece({"id": "call_abc123", "type": "function", "function": {
            "name": name, "arguments": ""}})  # fmt: skip
        half = len(arguments) // 2
        for part in (arguments[:half], arguments[half:]):
            yield _call_piece({"function": {"arguments": part}})
        yield {"delta": {}, "finish_reason": "tool_calls"}


def _call_piece(call: dict[str, object]) -> dict[str, object]:
    return {"delta": {"tool_calls": [{"index": 0, **call}]}, "finish_reason": None}


def _wav_rate(body: bytes) -> int:
    """The sample rate of the WAV inside a multipart upload."""
    start = body.index(b"RIFF")
    return int(struct.unpack_from("<I", body, start + 24)[0])


@contextmanager
def serving(fake: FakeOpenAI) -> Iterator[FakeOpenAI]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            fake.requests.append((self.path, body))
            if self.headers.get("Authorization") != f"Bearer {fake.key}":
                return self._json(401, {"error": {"message": "Incorrect API key provided"}})
            if self.path == "/v1/audio/transcriptions":
                if b'name="model"' not in body or _wav_rate(body) != 16_000:
                    return self._json(400, {"error": {"message": "bad upload"}})
                return self._json(200, {"text": fake.heard})
            if self.path == "/v1/audio/speech":
                asked = json.loads(body)
                fmt = asked.get("response_format", "mp3")
                self._start(200, "audio/wav" if fmt == "wav" else "audio/pcm")
                for i, piece in enumerate(fake.speech(asked["input"], fmt)):
                    if i == 2 and fake.rest_of_speech is not None:  # the header, a first piece
                        fake.rest_of_speech.wait(timeout=10)
                    self.wfile.write(piece)
                    self.wfile.flush()
                return None
            if self.path == "/v1/chat/completions":
                self._start(200, "text/event-stream")
                for choice in fake.chunks():
                    event = {"id": "chatcmpl-1", "object": "chat.completion.chunk",
                             "created": 0, "model": "gpt-4o-mini",
                             "choices": [{"index": 0, **choice}]}  # fmt: skip
                    self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                    self.wfile.flush()
                self.wfile.write(b"data: [DONE]\n\n")
                return None
            return self._json(404, {"error": {"message": f"no route {self.path}"}})

        def _start(self, status: int, content_type: str) -> None:
            # HTTP/1.0 without a length: the body ends when the connection closes, as a stream.
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.end_headers()

        def _json(self, status: int, answer: object) -> None:
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="fake-openai", daemon=True
    )
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
