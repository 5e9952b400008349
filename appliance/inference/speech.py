"""The box's voice as `/v1/audio/speech` answers it: WAV or raw PCM, streamed as synthesized.

OpenAI's `pcm` is 24 kHz mono 16-bit little-endian, and so is its `wav`; a client written for
OpenAI reads the bytes at that rate, so that is the default here too, resampled from the
voice's 16 kHz with one streaming filter (no seams between chunks). A client that wants the
box's own rate (another TEL3SIS, whose lines run at 16 kHz) asks for `sample_rate: 16000` (an
extension, sent with the SDK's `extra_body`) and gets the voice's samples untouched. The WAV
header is sent before the length is known, so it claims the largest size (as OpenAI's streamed
WAV does); readers stop at the end of the stream.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Final

from appliance.audio.frame import SAMPLE_RATE
from appliance.audio.resample import Resampler
from appliance.audio.wav import wav_header
from appliance.inference.wire import bad

__all__ = ["OPENAI_PCM_RATE", "SpeechRequest", "parse_speech", "speech_stream"]

OPENAI_PCM_RATE: Final = 24_000
"""Hz: what OpenAI's `pcm` and `wav` carry."""
_FORMATS: Final = {"wav": "audio/wav", "pcm": "audio/pcm"}
_MAX_INPUT_CHARS: Final = 4096
"""As OpenAI's own limit: a longer text is refused, not cut."""
_RATES: Final = range(8_000, 48_001)
_UNKNOWN_LENGTH: Final = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class SpeechRequest:
    text: str
    format: str
    """`wav` or `pcm`."""
    rate: int
    """Hz of the audio sent back."""

    @property
    def media_type(self) -> str:
        return _FORMATS[self.format]


def parse_speech(body: object) -> SpeechRequest:
    """A `/v1/audio/speech` body; `voice`, `speed` and `instructions` are ignored (the box
    speaks with its own voice, TTS_VOICE)."""
    if not isinstance(body, dict):
        raise bad("the body must be a JSON object")
    text = body.get("input")
    if not isinstance(text, str) or not text.strip():
        raise bad("`input` must be the text to speak", "input")
    if len(text) > _MAX_INPUT_CHARS:
        raise bad(f"`input` is {len(text)} characters; at most {_MAX_INPUT_CHARS}", "input")
    # OpenAI's default is mp3, which the box does not encode: an unnamed format is WAV.
    fmt = body.get("response_format") or "wav"
    if fmt not in _FORMATS:
        raise bad(
            f"`response_format` {fmt!r} is not served here: ask for wav or pcm",
            "response_format",
        )
    if body.get("stream_format") not in (None, "audio"):
        raise bad('`stream_format` must be "audio": audio is streamed as bytes', "stream_format")
    rate = body.get("sample_rate", OPENAI_PCM_RATE)
    if not isinstance(rate, int) or rate not in _RATES:
        raise bad("`sample_rate` must be a whole number of Hz, 8000 to 48000", "sample_rate")
    return SpeechRequest(text=text, format=fmt, rate=rate)


async def speech_stream(
    request: SpeechRequest, first: bytes, rest: AsyncIterator[bytes]
) -> AsyncIterator[bytes]:
    """The answer's bytes: the header (for WAV), then each chunk as the voice makes it.

    `first` is the voice's first chunk, already awaited (so that a failing voice is answered
    with an error status, not a broken stream); `rest` the chunks after it."""
    resampler = Resampler(SAMPLE_RATE, request.rate)
    if request.format == "wav":
        header = wav_header(channels=1, rate=request.rate, data_bytes=0)
        yield (
            header[:4]
            + struct.pack("<I", _UNKNOWN_LENGTH)
            + header[8:-4]
            + struct.pack("<I", _UNKNOWN_LENGTH)
        )
    try:
        yield resampler.convert(first)
        async for chunk in rest:
            if converted := resampler.convert(chunk):
                yield converted
        if tail := resampler.convert(b"", last=True):
            yield tail
    finally:
        # A client that hangs up stops the voice now, on its worker, not when collected.
        aclose = getattr(rest, "aclose", None)
        if aclose is not None:
            await aclose()
