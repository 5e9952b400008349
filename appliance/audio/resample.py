"""Sample-rate conversion through libsoxr: whole buffers, and a stream for a line's edge."""

from __future__ import annotations

import numpy as np
import soxr

__all__ = ["Resampler", "resample"]


def resample(pcm: bytes, from_rate: int, to_rate: int) -> bytes:
    """Convert a whole PCM16 buffer from one rate to another."""
    if from_rate == to_rate or not pcm:
        return pcm
    samples = np.frombuffer(pcm, dtype="<i2")
    out = soxr.resample(samples, from_rate, to_rate, quality="HQ")
    return np.asarray(out, dtype="<i2").tobytes()


class Resampler:
    """A streaming converter: feed chunks in order, get converted chunks with no seams.

    Keeps filter state between chunks, so a line can convert 20 ms at a time without the clicks
    that resampling each frame on its own would add.
    """

    __slots__ = ("_from", "_stream", "_to")

    def __init__(self, from_rate: int, to_rate: int) -> None:
        self._from = from_rate
        self._to = to_rate
        self._stream = (
            None
            if from_rate == to_rate
            else soxr.ResampleStream(from_rate, to_rate, 1, dtype="int16", quality="HQ")
        )

    def convert(self, pcm: bytes, *, last: bool = False) -> bytes:
        """Convert the next chunk; `last` flushes what the filter still holds."""
        if self._stream is None:
            return pcm
        samples = np.frombuffer(pcm, dtype="<i2")
        return np.asarray(self._stream.resample_chunk(samples, last=last), dtype="<i2").tobytes()
