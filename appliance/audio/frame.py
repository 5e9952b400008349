"""The internal audio format: 16 kHz mono signed 16-bit little-endian PCM in 20 ms frames."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import numpy.typing as npt

__all__ = [
    "FRAME_BYTES",
    "FRAME_MS",
    "FRAME_SAMPLES",
    "SAMPLE_RATE",
    "frames_of",
    "is_silent",
    "ms_to_frames",
    "pcm_ms",
    "rms_dbfs",
    "silence",
    "to_float",
    "to_pcm",
]

SAMPLE_RATE = 16_000
"""Hertz."""
FRAME_MS = 20
"""Milliseconds."""
FRAME_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000
FRAME_BYTES = FRAME_SAMPLES * 2

_SILENCE = bytes(FRAME_BYTES)


def silence(frames: int = 1) -> bytes:
    """`frames` frames of digital silence."""
    return _SILENCE * frames


def frames_of(pcm: bytes) -> Iterator[bytes]:
    """Split PCM into whole frames; the last partial frame is padded with silence."""
    view = memoryview(pcm)
    for start in range(0, len(pcm), FRAME_BYTES):
        chunk = bytes(view[start : start + FRAME_BYTES])
        if len(chunk) < FRAME_BYTES:
            chunk += bytes(FRAME_BYTES - len(chunk))
        yield chunk


def pcm_ms(pcm: bytes) -> float:
    """Duration of PCM in milliseconds."""
    return len(pcm) / 2 / SAMPLE_RATE * 1000


def ms_to_frames(ms: float) -> int:
    """Whole frames covering `ms` milliseconds (at least one for any positive duration)."""
    return max(1, round(ms / FRAME_MS)) if ms > 0 else 0


def to_float(pcm: bytes) -> npt.NDArray[np.float32]:
    """PCM16 bytes as float32 samples in [-1, 1)."""
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


def to_pcm(samples: npt.NDArray[np.floating] | npt.NDArray[np.integer]) -> bytes:
    """Float samples in [-1, 1] (clipped) or int16 samples as PCM16 bytes."""
    if samples.dtype == np.int16:
        return bytes(samples.astype("<i2").tobytes())
    scaled = np.clip(np.asarray(samples, dtype=np.float32) * 32768.0, -32768, 32767)
    return bytes(scaled.astype("<i2").tobytes())


def rms_dbfs(pcm: bytes) -> float:
    """Loudness of PCM in dB relative to full scale; -120 for digital silence."""
    if not pcm:
        return -120.0
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    rms = float(np.sqrt(np.mean(samples * samples)))
    return -120.0 if rms < 1e-6 else 20.0 * float(np.log10(rms / 32768.0))


def is_silent(pcm: bytes, threshold_dbfs: float = -60.0) -> bool:
    """Whether PCM is quieter than `threshold_dbfs`."""
    return rms_dbfs(pcm) < threshold_dbfs
