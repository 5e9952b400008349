"""WAV bytes: parse any common RIFF/WAVE into the internal format, and build headers.

Callers send what they have: 44.1 kHz stereo from a phone's recorder, 8 kHz mu-law from a PBX,
32-bit float from an editor. Everything PCM-like is converted; anything compressed is refused
with the format's name and the command that converts it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from appliance.audio.frame import SAMPLE_RATE
from appliance.audio.g711 import alaw_decode, ulaw_decode
from appliance.audio.resample import resample

__all__ = ["WavAudio", "WavFormatError", "decode_wav", "wav_header"]

_PCM, _FLOAT, _ALAW, _ULAW, _EXTENSIBLE = 0x0001, 0x0003, 0x0006, 0x0007, 0xFFFE
_KNOWN_COMPRESSED = {
    0x0002: "Microsoft ADPCM",
    0x0011: "IMA ADPCM",
    0x0031: "GSM 6.10",
    0x0050: "MPEG",
    0x0055: "MP3",
    0x0064: "G.726 ADPCM",
    0x1610: "AAC",
}
_CONVERT_HINT = "convert it first, e.g. `sox IN.wav -r 16000 -c 1 -b 16 OUT.wav`"


class WavFormatError(ValueError):
    """The bytes are not a WAV file this appliance can read; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class WavAudio:
    """Decoded audio in the internal format, and what it was before."""

    pcm: bytes
    """16 kHz mono PCM16."""
    source_rate: int
    source_channels: int
    source_format: str
    """E.g. `16-bit PCM`, `32-bit float`, `mu-law`."""
    truncated: bool
    """The data chunk claimed more bytes than the file has (a recording cut short)."""

    @property
    def conversions(self) -> list[str]:
        """What was done to reach the internal format, for a message to the user."""
        done = []
        if self.source_format != "16-bit PCM":
            done.append(f"{self.source_format} -> 16-bit PCM")
        if self.source_channels != 1:
            done.append(f"{self.source_channels} channels -> mono")
        if self.source_rate != SAMPLE_RATE:
            done.append(f"{self.source_rate} Hz -> {SAMPLE_RATE} Hz")
        return done


def _chunks(data: bytes) -> dict[bytes, tuple[int, int]]:
    """Offsets and sizes of the RIFF chunks, first occurrence of each."""
    found: dict[bytes, tuple[int, int]] = {}
    pos = 12
    while pos + 8 <= len(data):
        tag, size = struct.unpack_from("<4sI", data, pos)
        found.setdefault(tag, (pos + 8, size))
        if tag == b"data":
            break  # a streamed recording may claim a size it never reached; stop here
        pos += 8 + size + (size & 1)
    return found


def _samples(raw: bytes, tag: int, bits: int) -> tuple[npt.NDArray[np.float32], str]:
    if tag == _PCM:
        if bits == 8:
            return (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0, "8-bit PCM"
        if bits == 16:
            return np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0, "16-bit PCM"
        if bits == 24:
            b = np.frombuffer(raw[: len(raw) // 3 * 3], np.uint8).reshape(-1, 3).astype(np.int32)
            v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
            v = np.where(v & 0x800000, v - 0x1000000, v)
            return v.astype(np.float32) / 8388608.0, "24-bit PCM"
        if bits == 32:
            return (np.frombuffer(raw, "<i4").astype(np.float64) / 2147483648.0).astype(
                np.float32
            ), "32-bit PCM"
    if tag == _FLOAT and bits in (32, 64):
        dtype = "<f4" if bits == 32 else "<f8"
        return np.frombuffer(raw, dtype).astype(np.float32), f"{bits}-bit float"
    if tag in (_ULAW, _ALAW) and bits == 8:
        decoded = ulaw_decode(raw) if tag == _ULAW else alaw_decode(raw)
        return np.frombuffer(decoded, "<i2").astype(np.float32) / 32768.0, (
            "mu-law" if tag == _ULAW else "A-law"
        )
    name = _KNOWN_COMPRESSED.get(tag, f"format 0x{tag:04x}")
    raise WavFormatError(
        f"unsupported WAV encoding: {name}, {bits} bits per sample; {_CONVERT_HINT}"
    )


def decode_wav(data: bytes, *, name: str = "input") -> WavAudio:
    """Parse WAV bytes into 16 kHz mono PCM16, converting rate, channels and sample format."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        what = "empty" if not data else "not a RIFF/WAVE file"
        raise WavFormatError(f"{name} is {what}; {_CONVERT_HINT}")
    chunks = _chunks(data)
    if b"fmt " not in chunks:
        raise WavFormatError(f"{name} has no fmt chunk: the WAV header is damaged")
    fmt_at, fmt_size = chunks[b"fmt "]
    if fmt_size < 16 or fmt_at + 16 > len(data):
        raise WavFormatError(f"{name} has a truncated fmt chunk: the WAV header is damaged")
    tag, channels, rate, _, block_align, bits = struct.unpack_from("<HHIIHH", data, fmt_at)
    if tag == _EXTENSIBLE and fmt_size >= 40:
        tag = struct.unpack_from("<H", data, fmt_at + 24)[0]
    if channels < 1 or rate < 1000 or block_align < 1:
        raise WavFormatError(
            f"{name} declares {channels} channels at {rate} Hz: the WAV header is damaged"
        )
    if rate > 384_000:
        raise WavFormatError(f"{name} declares {rate} Hz, more than any recorder makes")
    data_at, data_size = chunks.get(b"data", (len(data), 0))
    available = len(data) - data_at
    truncated = data_size > available
    raw = data[data_at : data_at + min(data_size, available)]
    raw = raw[: len(raw) // block_align * block_align]
    samples, fmt_name = _samples(raw, tag, bits)
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1)
    pcm = np.clip(samples * 32768.0, -32768, 32767).astype("<i2").tobytes()
    return WavAudio(
        pcm=resample(pcm, rate, SAMPLE_RATE),
        source_rate=rate,
        source_channels=channels,
        source_format=fmt_name,
        truncated=truncated,
    )


def wav_header(*, channels: int, rate: int, data_bytes: int, bits: int = 16) -> bytes:
    """A 44-byte PCM WAV header for `data_bytes` bytes of audio."""
    block = channels * bits // 8
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + data_bytes,
        b"WAVE",
        b"fmt ",
        16,
        _PCM,
        channels,
        rate,
        rate * block,
        block,
        bits,
        b"data",
        data_bytes,
    )
