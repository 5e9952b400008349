"""How far a microphone's echo lags the audio played: cross-correlation (GCC-PHAT) of the two.

An echo canceller models only a bounded stretch of delay (its tail), so it must be fed the
played audio shifted to roughly where its echo lands in the microphone. A sound card's reported
latency is not that delay: through PulseAudio's ALSA plugin, PortAudio reported 100 ms where
the echo came 234 ms late, and 260 ms where it came 179 ms late (measured here), and USB
speakerphones add their own buffers. So the delay is measured from the audio itself, whenever
the agent has spoken enough to measure it.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from appliance.audio.frame import FRAME_SAMPLES

__all__ = ["EchoDelay"]


class EchoDelay:
    """Feed a played frame and the microphone frame of the same instant (`push`); `estimate`
    returns the echo's lag in samples once the correlation is clear, else None."""

    def __init__(
        self, *, window_frames: int = 100, max_lag_frames: int = 40, min_peak: float = 6.0
    ) -> None:
        self._window = window_frames
        self._max_lag = max_lag_frames * FRAME_SAMPLES
        self._min_peak = min_peak
        self._far: deque[bytes] = deque(maxlen=window_frames)
        self._near: deque[bytes] = deque(maxlen=window_frames)
        self.peak = 0.0
        """The last estimate's peak over the correlation's mean: how sure it was."""

    def push(self, far: bytes, near: bytes) -> None:
        self._far.append(far)
        self._near.append(near)

    def estimate(self) -> int | None:
        """The lag of `near` behind `far` in samples (0 to `max_lag_frames` frames), or None
        when the window is not full, the far end was quiet, or no lag stands out."""
        if len(self._far) < self._window:
            return None
        far = np.frombuffer(b"".join(self._far), dtype="<i2").astype(np.float32)
        near = np.frombuffer(b"".join(self._near), dtype="<i2").astype(np.float32)
        if float(np.sqrt(np.mean(far**2))) < 100.0:  # about -50 dBFS: nobody spoke
            return None
        size = 1 << (2 * len(far) - 1).bit_length()
        cross = np.fft.rfft(near, size) * np.conj(np.fft.rfft(far, size))
        cross /= np.maximum(np.abs(cross), 1e-9)  # PHAT: every frequency counts the same
        lags = np.abs(np.fft.irfft(cross, size)[: self._max_lag])
        best = int(np.argmax(lags))
        self.peak = float(lags[best] / (np.mean(lags) + 1e-12))
        return best if self.peak >= self._min_peak else None
