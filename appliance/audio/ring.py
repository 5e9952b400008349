"""A bounded, thread-safe queue of audio frames for a phone line's edge.

Audio arrives from and leaves for a foreign clock (the pjsua2 media thread, a websocket, a
sound card). When the consumer falls behind, the oldest frames are dropped and counted: late
audio is worth less than current audio on a live call, and a stall must never grow memory.
"""

from __future__ import annotations

import threading
from collections import deque

__all__ = ["FrameRing"]


class FrameRing:
    """Bounded FIFO of frames; drops the oldest on overflow and counts what it dropped."""

    __slots__ = ("_frames", "_lock", "dropped")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("a ring holds at least one frame")
        self._frames: deque[bytes] = deque(maxlen=capacity)
        self._lock = threading.Lock()
        self.dropped = 0
        """Frames discarded because the ring was full."""

    @property
    def capacity(self) -> int:
        maxlen = self._frames.maxlen
        assert maxlen is not None
        return maxlen

    def push(self, frame: bytes) -> None:
        """Append a frame, dropping the oldest when full."""
        with self._lock:
            if len(self._frames) == self._frames.maxlen:
                self.dropped += 1
            self._frames.append(frame)

    def pop(self) -> bytes | None:
        """The oldest frame, or None when empty."""
        with self._lock:
            return self._frames.popleft() if self._frames else None

    def clear(self) -> int:
        """Drop everything queued; returns how many frames that was (not counted as dropped)."""
        with self._lock:
            n = len(self._frames)
            self._frames.clear()
            return n

    def __len__(self) -> int:
        return len(self._frames)
