"""`SoundCard`: one duplex PortAudio stream (sounddevice) that owns the box's speaker and mic.

PortAudio calls `_callback` on its own audio thread every 20 ms of the device's clock, with the
microphone's block and room for the loudspeaker's. The callback does only bounded work: it
converts the device's rate and channels to the internal 16 kHz mono at the edge (a streaming
resampler each way, so there are no seams), cancels the echo of what was played, and hands
frames to and from a `Port` (a call's `CallMedia`, or the doorbell that waits for someone to
speak). Both directions run in the same callback, so the far-end reference for the echo
canceller is exact: the frames played, counted, so that microphone frame k is paired with
played frame k - d, d the echo's delay as `EchoDelay` measures it from the audio (a sound
card's reported latency is not that delay; see audio/delay.py). Pairing by count, not by
callback, matters: a streaming resampler hands out its samples in uneven bursts, so "the frame
played in this callback" jitters by several frames.

Counted, never hidden: PortAudio's input overflows (the mic's audio was lost before we got it)
and output underflows (the loudspeaker ran dry), as `overruns` and `underruns`.

A stream can also stop without a word (the ALSA stream through the pulse plugin failing under
heavy load, the sound server restarting, a USB speakerphone unplugged): its callback is never
called again. A watchdog thread looks at the stream twice a second; once PortAudio no longer
calls it active, or its callback has not run for two seconds (`watchdog.StreamWatch`), the card
closes the stream and opens the same device again with the same settings, retrying with
backoff while it cannot, and counts it (`restarts`). The port stays connected and the echo
canceller keeps what it learnt (the room is the same), but the echo's delay is measured again:
the new stream has buffers of its own.

The device is the one PortAudio listed when it started (it lists devices once): the sound
server's `pulse` device, or an ALSA card by number (`hw:1,0`). A USB speakerphone plugged back
in is found again if it comes back as the same card number (the kernel gives it the lowest
free one, or an ALSA `slots` option pins it); as another, only by restarting the appliance.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from appliance.audio.delay import EchoDelay
from appliance.audio.frame import FRAME_BYTES, FRAME_MS, FRAME_SAMPLES, SAMPLE_RATE, silence
from appliance.audio.resample import Resampler
from appliance.observability.metrics import Metrics
from appliance.telephony.local.echo import EchoCanceller
from appliance.telephony.local.watchdog import Action, StreamWatch

if TYPE_CHECKING:
    import sounddevice

__all__ = ["CardStats", "Port", "SoundCard", "SoundCardError", "find_device"]

_log = logging.getLogger(__name__)
_MAX_DELAY_FRAMES = 40
"""The longest echo delay looked for (800 ms): far more than any sound card's latency."""
_UNMEASURED_REACH_FRAMES = 40
"""The echo's reach until its delay is measured (the card's first seconds of playing): through
PulseAudio the echo went on 0.27 s and more after a hold while the delay was not yet known."""
_MEASURE_EVERY = 50
"""Microphone frames between two measurements of the echo's delay (1 s)."""
_LOOK_EVERY_S = 0.5
"""How often the watchdog looks at the stream: one PortAudio stopped is reopened within half a
second, and the look costs the audio thread nothing."""
_DISCARD_S = 1.0
"""The longest the card waits for a stopped stream to close before opening the device again."""
_JOIN_S = 5.0
"""The longest `close()` waits for the watchdog (a reopen in progress finishes first)."""


class SoundCardError(RuntimeError):
    """The sound device cannot be used; the message says what to do."""


class Port(Protocol):
    """Where the card's 16 kHz frames go and come from (called on the audio thread)."""

    def received(self, pcm: bytes) -> None: ...

    def requested(self) -> bytes | None: ...


@dataclass(slots=True)
class CardStats:
    overruns: int = 0
    """Input overflows: microphone audio PortAudio lost before the callback ran."""
    underruns: int = 0
    """Output underflows: the loudspeaker ran dry because the callback ran late."""
    frames_in: int = 0
    frames_out: int = 0
    restarts: int = 0
    """Times the stream stopped delivering audio and was reopened."""


def _sounddevice() -> Any:
    try:
        import sounddevice  # noqa: PLC0415 - loads PortAudio: only when a card is opened
    except OSError as exc:
        raise SoundCardError(
            f"the speakerphone needs PortAudio ({exc}): `apt-get install libportaudio2`"
        ) from exc
    return sounddevice


def find_device(wanted: str | int | None) -> tuple[int, dict[str, Any]]:
    """The device by index, or by (part of) its name; None: the system default. Raises
    SoundCardError listing the devices there are when it is not found or cannot do duplex."""
    sd = _sounddevice()
    devices = list(sd.query_devices())
    listing = "; ".join(f"{i}: {d['name']}" for i, d in enumerate(devices)) or "none"
    index: int | None
    if wanted is None or wanted == "":
        index = sd.default.device[0] if sd.default.device[0] is not None else -1
        if index is None or index < 0:
            index = next((i for i, d in enumerate(devices) if _duplex(d)), None)
    elif isinstance(wanted, int) or str(wanted).isdigit():
        index = int(wanted) if int(wanted) < len(devices) else None
    else:
        names = [i for i, d in enumerate(devices) if str(wanted).lower() in d["name"].lower()]
        index = names[0] if names else None
    if index is None or index < 0:
        raise SoundCardError(
            f"no sound device {wanted!r} (LOCAL_AUDIO_DEVICE); devices here: {listing}. "
            "Plug the speakerphone in, or name one of these by index or name"
        )
    device = devices[index]
    if not _duplex(device):
        raise SoundCardError(
            f"sound device {index} ({device['name']}) cannot both play and record "
            f"(in {device['max_input_channels']}, out {device['max_output_channels']}); "
            f"devices here: {listing}"
        )
    return index, device


def _duplex(device: dict[str, Any]) -> bool:
    return bool(device["max_input_channels"] > 0 and device["max_output_channels"] > 0)


class SoundCard:
    """The box's speakerphone: open with `open()`, close with `close()` (or as a context)."""

    def __init__(
        self,
        device: str | int | None = None,
        *,
        rate: int | None = None,
        echo: EchoCanceller | None = None,
        latency: float = 0.05,
        metrics: Metrics | None = None,
    ) -> None:
        self._wanted = device
        self._rate = rate
        self._echo = echo
        self._latency = latency
        self._metrics = metrics
        self._watch = StreamWatch()
        self.stats = CardStats()
        self._port: Port | None = None
        self._lock = threading.Lock()
        self._stream: sounddevice.RawStream | None = None
        self._index = -1
        self._stream_lock = threading.Lock()
        """Held while the stream is replaced or closed: the watchdog and `close()` both do."""
        self._callbacks = 0
        self._closing = threading.Event()
        self._watchdog: threading.Thread | None = None
        self._played: deque[bytes] = deque(maxlen=2 * _MAX_DELAY_FRAMES)
        self._played_total = 0
        self._heard_total = 0
        self._delay = EchoDelay(max_lag_frames=_MAX_DELAY_FRAMES)
        self._until_measure = _MEASURE_EVERY
        self._last_lag: int | None = None
        self._measured = False
        """Two measurements of the echo's delay have agreed since the card opened."""
        self._mic_pending = b""
        self._out_pending = np.zeros(0, dtype="<i2")
        self.name = ""
        self.rate = 0
        self._latency_ms = 0.0
        self.reference_delay_frames = 0
        """Frames the far-end reference is held back by: the echo's measured delay, less a
        frame (the canceller's tail covers the rest)."""

    # --- the loop's side ------------------------------------------------------------------------

    def open(self) -> SoundCard:
        """Find the device and start its stream, and the watchdog that reopens it should it
        stop; raises SoundCardError naming the fix."""
        index, device = find_device(self._wanted)
        self.name = str(device["name"])
        self.rate = int(self._rate or device["default_samplerate"])
        if self.rate * FRAME_MS % 1000:
            raise SoundCardError(f"{self.rate} Hz has no whole number of samples in 20 ms")
        self._index = index
        self._start(index)
        self._watch.started(time.monotonic(), self._callbacks)
        self._closing.clear()
        self._watchdog = threading.Thread(
            target=self._watch_stream, name="speakerphone-watchdog", daemon=True
        )
        self._watchdog.start()
        return self

    def _start(self, index: int) -> None:
        """Open and start a stream on device `index` at `self.rate`, its edge fresh: new
        resamplers, and the echo's delay to be measured again from the reported latency. What
        was taken from the port to play and not yet played is kept (it plays first)."""
        sd = _sounddevice()
        self._to_16k = Resampler(self.rate, 16_000)
        self._from_16k = Resampler(16_000, self.rate)
        self._mic_pending = b""
        # Microphone frame k pairs with played frame k again, as on a first open: what the old
        # stream played is not what the new one's microphone will hear.
        self._played.clear()
        self._heard_total = self._played_total
        self._delay = EchoDelay(max_lag_frames=_MAX_DELAY_FRAMES)
        self._until_measure = _MEASURE_EVERY
        self._last_lag = None
        self._measured = False  # the echo's reach is the unmeasured one again until it is
        try:
            stream = sd.RawStream(
                device=(index, index), samplerate=self.rate,
                blocksize=self.rate * FRAME_MS // 1000, channels=(1, 1), dtype="int16",
                latency=self._latency, callback=self._callback,
            )  # fmt: skip
        except sd.PortAudioError as exc:
            raise SoundCardError(_open_failure(index, self.name, exc)) from exc
        in_s, out_s = stream.latency
        self._latency_ms = float(in_s + out_s) * 1000
        # Until the delay is measured: the reported latency, less a margin (a reference later
        # than the echo cancels nothing; one earlier is covered by the canceller's tail).
        self.reference_delay_frames = max(0, round((in_s + out_s) * 1000 / FRAME_MS) - 3)
        try:
            stream.start()
        except sd.PortAudioError as exc:
            stream.close()
            raise SoundCardError(_open_failure(index, self.name, exc)) from exc
        self._stream = stream
        _log.info(
            "speakerphone on %s at %d Hz (latency in %.0f ms, out %.0f ms)",
            self.name, self.rate, in_s * 1000, out_s * 1000,
        )  # fmt: skip

    def connect(self, port: Port | None) -> None:
        """Send the card's audio to `port` from the next block on (None: drop it, play
        silence). The echo canceller keeps what it learnt: the room has not changed."""
        with self._lock:
            self._port = port

    def close(self) -> None:
        """Stop the watchdog, then stop and close the stream (once; later calls do nothing)."""
        self._closing.set()
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None:
            watchdog.join(_JOIN_S)
            if watchdog.is_alive():
                _log.warning("the speakerphone's watchdog did not stop within %.0f s", _JOIN_S)
        with self._stream_lock:
            stream, self._stream = self._stream, None
        if stream is not None:
            if _is_active(stream):
                stream.stop()
                stream.close()
            else:
                _discard(stream)
        if self._echo is not None:
            self._echo.close()

    def __enter__(self) -> SoundCard:
        return self.open()

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- the watchdog's thread --------------------------------------------------------------------

    def _watch_stream(self) -> None:
        """Looks at the callback count every `_LOOK_EVERY_S`, and reopens the stream once it
        has stopped, until the card closes."""
        while not self._closing.wait(_LOOK_EVERY_S):
            now = time.monotonic()
            action = self._watch.look(now, self._callbacks, active=_is_active(self._stream))
            if action is Action.STOPPED:
                assert self._watch.down_since is not None
                _log.warning(
                    "speakerphone stream on %s stopped (its callback last seen %.1f s ago); "
                    "reopening", self.name, now - self._watch.down_since,
                )  # fmt: skip
            if action is not Action.KEEP:
                self._reopen()

    def _reopen(self) -> None:
        """Close the stopped stream and open the device again; on failure, schedule the next
        try."""
        with self._stream_lock:
            if self._closing.is_set():
                return
            stopped, self._stream = self._stream, None
            if stopped is not None:
                _discard(stopped)
            try:
                self._start(self._index)
            except SoundCardError as exc:
                wait = self._watch.failed(time.monotonic())
                _log.debug("speakerphone not back (%s); next try in %.1f s", exc, wait)
                return
        outage = self._watch.reopened(time.monotonic(), self._callbacks)
        self.stats.restarts += 1
        if self._metrics is not None:
            self._metrics.sound_card_restarts.inc()
        _log.info("speakerphone reopened after %.1f s", outage)

    @property
    def latency_ms(self) -> float:
        """The stream's reported input plus output latency (0 before it opens): sound at the
        microphone reaches the callback, and a frame leaving it reaches the loudspeaker, this
        much later."""
        return self._latency_ms

    @property
    def echo_frames(self) -> int:
        """Microphone frames after the callback takes a frame to play in which its echo may
        still arrive: the echo's measured delay (or the reported latency, if that is longer:
        too short a reach takes the echo for a person) and the block that was being played
        when the frame was taken; 800 ms until two measurements of the delay agree."""
        if not self._measured:
            return _UNMEASURED_REACH_FRAMES
        reported = round(self._latency_ms / FRAME_MS)
        return max(self.reference_delay_frames, reported) + 2

    # --- PortAudio's audio thread -----------------------------------------------------------------

    def _callback(self, indata: Any, outdata: Any, frames: int, _time: Any, status: Any) -> None:
        self._callbacks += 1
        if status.input_overflow:
            self.stats.overruns += 1
        if status.output_underflow:
            self.stats.underruns += 1
        with self._lock:
            port = self._port
        outdata[:] = self._speaker(port, frames)
        self._microphone(port, bytes(indata))

    def _speaker(self, port: Port | None, frames: int) -> bytes:
        """`frames` device samples of the agent's voice; each 16 kHz frame played is kept as the
        echo canceller's reference."""
        while len(self._out_pending) < frames:
            frame = (port.requested() if port is not None else None) or silence()
            self._played.append(frame)
            self._played_total += 1
            self.stats.frames_out += 1
            converted = np.frombuffer(self._from_16k.convert(frame), dtype="<i2")
            self._out_pending = np.concatenate([self._out_pending, converted])
        out, self._out_pending = self._out_pending[:frames], self._out_pending[frames:]
        return out.tobytes()

    def _microphone(self, port: Port | None, pcm: bytes) -> None:
        """Whole 16 kHz frames from the mic's block, echo removed, to the port."""
        self._mic_pending += self._to_16k.convert(pcm)
        while len(self._mic_pending) >= FRAME_BYTES:
            near = self._mic_pending[:FRAME_BYTES]
            self._mic_pending = self._mic_pending[FRAME_BYTES:]
            clean = near if self._echo is None else self._cancel(near)
            self.stats.frames_in += 1
            if port is not None:
                port.received(clean)

    def _cancel(self, near: bytes) -> bytes:
        """`near` less the echo of what was played, the reference shifted by the echo's
        delay (measured again every second the agent is heard)."""
        assert self._echo is not None
        far = self._played_frame(self._heard_total)
        self._heard_total += 1
        self._delay.push(far, near)
        self._until_measure -= 1
        if self._until_measure <= 0:
            self._until_measure = _MEASURE_EVERY
            self._follow(self._delay.estimate())
        return self._echo.process(
            near, self._played_frame(self._heard_total - 1 - self.reference_delay_frames)
        )

    def _played_frame(self, number: int) -> bytes:
        """Played frame `number` (counted from the stream's start); silence when not held."""
        first = self._played_total - len(self._played)
        return self._played[number - first] if first <= number < self._played_total else silence()

    def _follow(self, lag: int | None) -> None:
        """Move the reference to a newly measured delay once two measurements in a row agree
        on it (a burst of the sound server's buffering can fool one). The canceller is not
        restarted: re-adapting from what it learnt is faster than learning from nothing."""
        if lag is None:
            return
        frames = max(0, lag // FRAME_SAMPLES - 1)
        agreed = self._last_lag is not None and abs(frames - self._last_lag) <= 1
        self._last_lag = frames
        self._measured = self._measured or agreed
        if agreed and abs(frames - self.reference_delay_frames) > 1:
            _log.info("speakerphone echo delay %d ms", lag * 1000 // SAMPLE_RATE)
            self.reference_delay_frames = frames


def _is_active(stream: Any) -> bool:
    """Whether PortAudio still calls `stream` active (it stops when its thread ends on an
    error); a stream it cannot even say that of is not."""
    if stream is None:
        return False
    try:
        return bool(stream.active)
    except _sounddevice().PortAudioError:
        return False


def _discard(stream: Any) -> None:
    """Abort and close a stream that has stopped delivering, on a thread of its own, waiting at
    most `_DISCARD_S`: with the sound server gone, the pulse plugin's thread deadlocked inside
    libpulse here and PortAudio's abort waited for it forever, so the card opens the device
    again without it. Such a thread cannot be stopped; it is left, and said so."""
    closer = threading.Thread(
        target=_abort, args=(stream,), name="speakerphone-discard", daemon=True
    )
    closer.start()
    closer.join(_DISCARD_S)
    if closer.is_alive():
        _log.warning(
            "the stopped speakerphone stream did not close within %.0f s; left behind",
            _DISCARD_S,
        )


def _abort(stream: Any) -> None:
    """Abort and close `stream` without draining its buffers (nothing plays them); PortAudio's
    complaints about a dead stream's state change nothing."""
    sd = _sounddevice()
    for step in (stream.abort, stream.close):
        try:
            step()
        except sd.PortAudioError as exc:
            _log.debug("closing the stopped stream: %s", exc)


def _open_failure(index: int, name: str, exc: Exception) -> str:
    text = str(exc)
    if "busy" in text.lower() or "unavailable" in text.lower():
        return (
            f"sound device {index} ({name}) is busy: another program holds it ({text}). "
            "Stop that program, or choose a device that mixes (`pulse` under PulseAudio)"
        )
    return f"sound device {index} ({name}) could not be opened: {text}"
