"""16 kHz <-> 8 kHz for a phone line's edge, 20 ms in, 20 ms out, with about 3 ms of delay.

libsoxr's streaming converter (`resample.Resampler`) holds its input until it has about 100 ms
and then answers in bursts: right for whole buffers, wrong for a live line, where that is 100 ms
more before the caller is heard and audio that arrives in lumps. For the factor of two between
the internal rate and G.711's, a windowed-sinc low-pass FIR does the job sample for sample: it
keeps the last taps of input between chunks, so every chunk converts at once and without seams.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import numpy.typing as npt

__all__ = ["HalfBandResampler"]

_TAPS = 95
_CUTOFF_HZ = 3600.0
_HIGH_RATE = 16_000
_LOW_RATE = 8_000


@cache
def _low_pass() -> npt.NDArray[np.float64]:
    """Windowed-sinc low-pass at 16 kHz: flat to about 3.1 kHz, down 60 dB above 4 kHz."""
    n = np.arange(_TAPS) - (_TAPS - 1) / 2
    cutoff = _CUTOFF_HZ / _HIGH_RATE
    taps = 2 * cutoff * np.sinc(2 * cutoff * n) * np.blackman(_TAPS)
    return np.asarray(taps / taps.sum(), dtype=np.float64)


class HalfBandResampler:
    """Converts PCM16 between 16 and 8 kHz, chunk by chunk, keeping filter state."""

    __slots__ = ("_down", "_history", "_phase")

    def __init__(self, from_rate: int, to_rate: int) -> None:
        if {from_rate, to_rate} != {_HIGH_RATE, _LOW_RATE}:
            raise ValueError(f"converts between 16 and 8 kHz only, not {from_rate} -> {to_rate}")
        self._down = from_rate == _HIGH_RATE
        self._history = np.zeros(_TAPS - 1, dtype=np.float64)
        self._phase = 0
        """Down: which of the next input samples is kept (0 or 1)."""

    def convert(self, pcm: bytes) -> bytes:
        """Convert the next chunk (any length)."""
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
        if samples.size == 0:
            return b""
        if self._down:
            filtered = self._filter(samples)
            kept = filtered[self._phase :: 2]
            self._phase = (self._phase + samples.size) % 2
            return _to_pcm(kept)
        stuffed = np.zeros(samples.size * 2, dtype=np.float64)
        stuffed[::2] = samples * 2.0  # zero-stuffing halves the level; the 2 restores it
        return _to_pcm(self._filter(stuffed))

    def _filter(self, samples: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        padded = np.concatenate((self._history, samples))
        self._history = padded[-(_TAPS - 1) :]
        return np.convolve(padded, _low_pass(), mode="valid")


def _to_pcm(samples: npt.NDArray[np.float64]) -> bytes:
    return bytes(np.clip(np.rint(samples), -32768, 32767).astype("<i2").tobytes())
