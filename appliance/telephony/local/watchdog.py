"""`StreamWatch`: when the sound card's stream has stopped delivering audio, and when to retry.

A PortAudio stream can die without a word: under heavy load the ALSA stream through the pulse
plugin fails in `PaAlsaStream_WaitForFrames` and its thread ends; the sound server restarts; a
USB speakerphone is unplugged. The callback is then never called again and the conversation
hangs in silence. So the card counts its callbacks and a thread of its own looks at the count
(and at whether PortAudio still calls the stream active) twice a second; this class decides,
from those looks, that the stream has stopped and when to try to reopen it. It holds no clock
and no stream: each look says when it was, so a test plays an outage in microseconds.
"""

from __future__ import annotations

import enum
import math

__all__ = ["Action", "StreamWatch"]


class Action(enum.Enum):
    KEEP = "keep"
    """The stream delivers audio (or a retry is not due yet): nothing to do."""
    STOPPED = "stopped"
    """The stream has just been found stopped: say so, close it and open the device again."""
    RETRY = "retry"
    """The device could not be opened last time: try again."""


class StreamWatch:
    """Told when a stream starts (`started`) and fed each look at it (`look`); says when to
    reopen it and how long the outage was.

    A stream has stopped when PortAudio no longer calls it active (its thread ended on an
    error): at the next look. Or when no callback ran for `stall_s` over at least two looks in
    a row: one late look (the watching thread itself held up) cannot condemn a stream whose
    callback was only waiting to run. A new stream is left `first_s` to settle before a silence
    counts: through PulseAudio the first callback came 1.8 s after the start, and then, after a
    few, none for another 1.9 s (every start, here). Reopening a stream loses the audio of its
    outage, so a false alarm costs a caller's words: the bounds are generous, and the failure
    seen in practice (the thread ending) needs none. While the device cannot be opened, the
    retries back off through `retry_s`, its last value repeated.
    """

    def __init__(
        self,
        *,
        stall_s: float = 2.0,
        first_s: float = 6.0,
        retry_s: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0),
    ) -> None:
        if not retry_s:
            raise ValueError("retry_s needs at least one interval")
        self._stall = stall_s
        self._first = first_s
        self._retry = retry_s
        self._beats = 0
        self._started_at = 0.0
        self._changed_at = 0.0
        self._quiet_looks = 0
        self._failures = 0
        self._retry_at = 0.0
        self.down_since: float | None = None
        """The look that last saw the callback run (or the stream start) before the outage in
        progress (monotonic seconds); None while the stream delivers."""

    def started(self, now: float, beats: int) -> None:
        """A stream started at `now` (monotonic seconds), the callback count then `beats`."""
        self._beats, self._changed_at, self._started_at = beats, now, now
        self._quiet_looks = 0

    def look(self, now: float, beats: int, *, active: bool) -> Action:
        """The callback count at `now`, and whether PortAudio calls the stream active: whether
        to reopen the stream now."""
        if self.down_since is not None:
            return Action.RETRY if now >= self._retry_at else Action.KEEP
        if beats != self._beats:
            self._beats, self._changed_at = beats, now
            self._quiet_looks = 0
        else:
            self._quiet_looks += 1
        settling = now - self._started_at < self._first
        silent = self._quiet_looks >= 2 and now - self._changed_at >= self._stall
        if active and (settling or not silent):
            return Action.KEEP
        self.down_since = self._changed_at
        self._retry_at = math.inf  # until the reopen's outcome is told
        return Action.STOPPED

    def failed(self, now: float) -> float:
        """The reopen at `now` failed (the device is missing, or its server is not back):
        returns the seconds until the next try."""
        wait = self._retry[min(self._failures, len(self._retry) - 1)]
        self._failures += 1
        self._retry_at = now + wait
        return wait

    def reopened(self, now: float, beats: int) -> float:
        """The stream is open again at `now`, the callback count `beats`: returns how long the
        card was silent (seconds, from the look that last saw its callback run)."""
        assert self.down_since is not None, "reopened without an outage"
        outage = now - self.down_since
        self.down_since = None
        self._failures = 0
        self.started(now, beats)
        return outage
