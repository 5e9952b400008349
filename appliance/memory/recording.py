"""A call's recording: one 16 kHz stereo WAV, caller on the left, agent on the right.

`RecordingLine` wraps any CallLine and tees both sides as the call goes: each caller frame from
`listen()`, paired with the agent frame the line played in that same 20 ms tick. Agent frames are
taken as the line accepts them and dropped again when a barge-in `clear` drops them (the heard
position it returns says which), so the right channel is what the caller heard, cut where they
cut in. On a line that plays and listens on one clock (the WAV line) the pairing is exact; on
others it is within the line's short outbound buffer.

Frames reach the writer through a bounded queue (5 s of audio). Overflow policy: the frame is
dropped, counted, and written as silence, so the channels and the timeline stay aligned; the
call never waits for the disk. The writer appends on a worker thread every 100 ms and then
rewrites the header's two sizes, so a crash leaves a valid WAV of everything up to the last
append. When the disk is nearly full (less than `min_free_bytes` left) the recording stops, to
keep room for the transcript and the rest of the call records; a write that fails outright (a
disk filled by something else) stops it too. Either way with an alert (an error in the log,
`tel3sis_recording_failures`, the call's recording state), and the call goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import struct
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Final, Literal

import numpy as np

from appliance.audio.frame import FRAME_BYTES, SAMPLE_RATE, silence
from appliance.audio.wav import wav_header
from appliance.clock import Clock
from appliance.conversation.ports import CallInfo, CallLine
from appliance.observability.metrics import Metrics

__all__ = ["DiskNearlyFull", "Recorder", "RecordingLine", "WavFile", "repair_wav"]

_log = logging.getLogger(__name__)

_HEADER: Final = 44
_BLOCK: Final = 4
"""Bytes per stereo sample frame."""
_STEREO_FRAME: Final = FRAME_BYTES * 2
_FRAMES_PER_S: Final = 50
_MIN_FREE: Final = 64 * 1024 * 1024


class DiskNearlyFull(OSError):
    """Less room is left on the recordings' disk than the rest of the records need."""


class WavFile:
    """A stereo PCM16 WAV being appended to, its header always matching what is on disk."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.data_bytes = 0
        self._unsynced = 0
        # Never over another recording: a name in use is an error, not a file to truncate.
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        try:
            self._write(wav_header(channels=2, rate=SAMPLE_RATE, data_bytes=0))
        except OSError:
            self.close()
            raise

    def _write(self, data: bytes) -> int:
        """Write all of `data` at the end; on failure, raises with `.written` set."""
        assert self._fd is not None
        view = memoryview(data)
        done = 0
        while done < len(data):
            try:
                done += os.write(self._fd, view[done:])
            except OSError as exc:
                exc.written = done  # type: ignore[attr-defined]
                raise
        return done

    def append(self, pcm: bytes) -> None:
        try:
            self._write(pcm)
        except OSError as exc:
            # Keep whole sample frames, and a header that says exactly that.
            written = getattr(exc, "written", 0)
            self.data_bytes += written - written % _BLOCK
            with contextlib.suppress(OSError):
                self._update_header()
                assert self._fd is not None
                os.ftruncate(self._fd, _HEADER + self.data_bytes)
            raise
        self.data_bytes += len(pcm)
        self._update_header()
        self._unsynced += len(pcm)
        if self._unsynced >= SAMPLE_RATE * _BLOCK * 5:
            # Every 5 s of audio: against a power cut, not only a crash of the process.
            os.fdatasync(self._fd)  # type: ignore[arg-type]
            self._unsynced = 0

    def _update_header(self) -> None:
        assert self._fd is not None
        # Overwriting bytes already on disk needs no new blocks: this works on a full disk too.
        os.pwrite(self._fd, struct.pack("<I", 36 + self.data_bytes), 4)
        os.pwrite(self._fd, struct.pack("<I", self.data_bytes), 40)

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                os.fdatasync(fd)
            os.close(fd)

    @property
    def seconds(self) -> float:
        return self.data_bytes / (SAMPLE_RATE * _BLOCK)

    def free_bytes(self) -> int:
        """Room left on the disk the recording is on."""
        stat = os.statvfs(self.path.parent)
        return stat.f_bavail * stat.f_frsize


def repair_wav(path: Path) -> float:
    """Make the header of a recording cut short match the audio in it; returns its seconds."""
    size = path.stat().st_size
    data = max(0, size - _HEADER)
    data -= data % _BLOCK
    with path.open("r+b") as stream:
        stream.write(wav_header(channels=2, rate=SAMPLE_RATE, data_bytes=data))
        stream.truncate(_HEADER + data)
    return data / (SAMPLE_RATE * _BLOCK)


def _stereo(left: bytes, right: bytes) -> bytes:
    samples = FRAME_BYTES // 2
    out = np.zeros(samples * 2, dtype="<i2")
    out[0::2] = np.frombuffer(left[:FRAME_BYTES].ljust(FRAME_BYTES, b"\0"), "<i2")
    out[1::2] = np.frombuffer(right[:FRAME_BYTES].ljust(FRAME_BYTES, b"\0"), "<i2")
    return out.tobytes()


StopHook = Callable[[str], Awaitable[None]]


class Recorder:
    """One call's recording: frames in without waiting, written to `path` off the event loop."""

    def __init__(
        self,
        path: Path,
        *,
        clock: Clock,
        metrics: Metrics | None = None,
        on_stop: StopHook | None = None,
        queue_s: float = 5.0,
        flush_s: float = 0.1,
        min_free_bytes: int = _MIN_FREE,
        open_file: Callable[[Path], WavFile] = WavFile,
    ) -> None:
        self.path = path
        self.state: Literal["recording", "complete", "stopped"] = "recording"
        self.note = ""
        self.dropped = 0
        """Frames dropped because the writer was behind (written as silence)."""
        self._clock = clock
        self._metrics = metrics
        self._on_stop = on_stop
        self._flush_s = flush_s
        self._min_free = min_free_bytes
        self._open_file = open_file
        self._queue: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue(
            maxsize=int(queue_s * _FRAMES_PER_S)
        )
        self._gap = 0
        self._wake = asyncio.Event()
        self._closed = False
        self.seconds = 0.0
        """Audio written so far."""

    def push(self, caller: bytes, agent: bytes) -> None:
        """Record one tick: the caller's frame and the agent frame played in it."""
        if self.state != "recording" or self._closed:
            return
        try:
            self._queue.put_nowait((self._gap, _stereo(caller, agent)))
        except asyncio.QueueFull:
            self._gap += 1
            self.dropped += 1
            if self._metrics is not None:
                self._metrics.recording_dropped_frames.inc()
            return
        self._gap = 0
        self._wake.set()

    def close(self) -> None:
        """No more frames: the writer finishes what is queued and closes the file."""
        self._closed = True
        self._wake.set()

    async def run(self) -> None:
        """The writer: until `close`, append what has queued every `flush_s`. Never raises."""
        try:
            wav = await asyncio.to_thread(self._open_file, self.path)
        except OSError as exc:
            await self._stop(exc)
            return
        try:
            await self._write_until_closed(wav)
        except OSError as exc:
            await self._stop(exc)
        finally:
            self.seconds = wav.seconds
            await asyncio.to_thread(wav.close)
        if self.state == "recording":
            self.state = "complete"

    async def _write_until_closed(self, wav: WavFile) -> None:
        while True:
            if self._queue.empty():
                if self._closed:
                    if self._gap:  # the last frames were dropped: they still took time
                        await asyncio.to_thread(wav.append, bytes(_STEREO_FRAME * self._gap))
                        self._gap = 0
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            chunks = []
            while not self._queue.empty():
                gap, stereo = self._queue.get_nowait()
                chunks.append(bytes(_STEREO_FRAME * gap) + stereo)
            await asyncio.to_thread(self._append, wav, b"".join(chunks))
            self.seconds = wav.seconds
            if not self._closed:
                await self._clock.sleep(self._flush_s)

    def _append(self, wav: WavFile, pcm: bytes) -> None:
        """On the worker thread: write, then make sure the rest of the records keep room."""
        wav.append(pcm)
        free = wav.free_bytes()
        if free < self._min_free:
            raise DiskNearlyFull(
                f"the disk is nearly full ({free // 1024} KiB left); recording stopped to keep "
                "room for the call's records"
            )

    async def _stop(self, exc: OSError) -> None:
        reason = exc.strerror or str(exc)
        code = (
            "low-space"
            if isinstance(exc, DiskNearlyFull)
            else errno.errorcode.get(exc.errno or 0, "error")
        )
        self.state, self.note = "stopped", reason
        while not self._queue.empty():
            self._queue.get_nowait()
        _log.error(
            "ALERT: recording %s stopped: %s; the call goes on without a recording",
            self.path,
            reason,
        )
        if self._metrics is not None:
            self._metrics.recording_failures.labels(code).inc()
        if self._on_stop is not None:
            try:
                await self._on_stop(reason)
            except Exception:
                _log.exception("could not note the stopped recording")


class RecordingLine:
    """A CallLine that records both sides of the call it wraps (see the module docstring)."""

    def __init__(self, line: CallLine, recorder: Recorder, *, max_pending: int = 50) -> None:
        self._line = line
        self._recorder = recorder
        self._pending: deque[tuple[int, bytes]] = deque()
        self._max_pending = max_pending
        self._quiet = silence()

    @property
    def info(self) -> CallInfo:
        return self._line.info

    async def listen(self) -> AsyncIterator[bytes]:
        frames = self._line.listen()
        try:
            async for frame in frames:
                agent = self._pending.popleft()[1] if self._pending else self._quiet
                self._recorder.push(frame, agent)
                yield frame
        finally:
            close = getattr(frames, "aclose", None)
            if close is not None:
                await close()

    async def play(self, frame: bytes) -> int:
        position = await self._line.play(frame)
        if len(self._pending) >= self._max_pending:
            # The line plays faster than it listens (one-way audio): keep the newest second.
            self._pending.popleft()
        self._pending.append((position, frame))
        return position

    async def clear(self) -> int:
        heard = await self._line.clear()
        while self._pending and self._pending[-1][0] >= heard:
            self._pending.pop()
        return heard

    async def drain(self) -> int:
        return await self._line.drain()

    async def hang_up(self) -> None:
        await self._line.hang_up()
