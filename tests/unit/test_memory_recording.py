"""Recordings: a header always current, silence for what the writer missed, a clean stop."""

from __future__ import annotations

import asyncio
import errno
import logging
import wave
from pathlib import Path

import numpy as np
import pytest

from appliance.audio.frame import FRAME_BYTES
from appliance.clock import LoopClock
from appliance.memory.recording import Recorder, WavFile, repair_wav
from appliance.observability.metrics import Metrics


def _frame(value: int) -> bytes:
    return np.full(FRAME_BYTES // 2, value, dtype="<i2").tobytes()


def _read(path: Path) -> tuple[int, np.ndarray]:
    with wave.open(str(path), "rb") as wav:
        assert (wav.getnchannels(), wav.getframerate(), wav.getsampwidth()) == (2, 16000, 2)
        return wav.getnframes(), np.frombuffer(wav.readframes(wav.getnframes()), "<i2")


def test_the_header_matches_the_audio_after_every_append_without_a_close(tmp_path: Path) -> None:
    wav = WavFile(tmp_path / "a" / "b.wav")
    wav.append(b"\x01\x00\x02\x00" * 320)
    assert _read(wav.path)[0] == 320  # readable while still open, as after a crash
    wav.append(b"\x01\x00\x02\x00" * 640)
    frames, samples = _read(wav.path)
    assert frames == 960
    assert set(samples[0::2]) == {1} and set(samples[1::2]) == {2}
    wav.close()


def test_a_header_left_behind_is_repaired_from_the_audio_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "cut.wav"
    wav = WavFile(path)
    wav.close()
    with path.open("ab") as stream:  # audio that reached the disk after the last header update
        stream.write(b"\x00\x01" * 16002)  # 8001 stereo samples and one half-written
    assert repair_wav(path) == pytest.approx(8001 / 16000)
    assert _read(path)[0] == 8001


def test_frames_the_writer_missed_are_silence_so_the_timeline_stays_whole(tmp_path: Path) -> None:
    async def main() -> Recorder:
        recorder = Recorder(tmp_path / "r.wav", clock=LoopClock(), queue_s=0.1, metrics=Metrics())
        writer = asyncio.create_task(recorder.run())
        await asyncio.sleep(0.05)
        for i in range(1, 21):  # all at once: the queue holds 5 frames
            recorder.push(_frame(i), _frame(-i))
        await asyncio.sleep(0.3)  # the writer catches up
        for i in range(21, 31):
            recorder.push(_frame(i), _frame(-i))
        recorder.close()
        await writer
        return recorder

    recorder = asyncio.run(main())
    assert recorder.dropped == 15 + 5 and recorder.state == "complete"
    frames, samples = _read(tmp_path / "r.wav")
    assert frames == 30 * 320  # every tick is there, the dropped ones as silence
    left = samples[0::2].reshape(-1, 320)[:, 0]
    right = samples[1::2].reshape(-1, 320)[:, 0]
    assert list(left) == [1, 2, 3, 4, 5, *[0] * 15, 21, 22, 23, 24, 25, *[0] * 5]
    assert list(right) == [-v for v in left]


class _FillsUp(WavFile):
    """A disk with `room` bytes free that then says it is full (where no tmpfs can be made)."""

    room = 44 + 10 * 2 * FRAME_BYTES + 100

    def _write(self, data: bytes) -> int:
        used = getattr(self, "_used", 0)
        left = self.room - used
        if len(data) > left:
            done = super()._write(data[:left]) if left > 0 else 0
            self._used = used + done
            error = OSError(errno.ENOSPC, "No space left on device")
            error.written = done  # type: ignore[attr-defined]
            raise error
        self._used = used + len(data)
        return super()._write(data)


def test_a_full_disk_stops_the_recording_with_an_alert_and_keeps_what_fit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stopped: list[str] = []
    metrics = Metrics()

    async def note(reason: str) -> None:
        stopped.append(reason)

    async def main() -> Recorder:
        recorder = Recorder(
            tmp_path / "r.wav",
            clock=LoopClock(),
            metrics=metrics,
            on_stop=note,
            open_file=_FillsUp,
            flush_s=0.01,
        )
        writer = asyncio.create_task(recorder.run())
        for i in range(30):
            recorder.push(_frame(i + 1), _frame(0))
            await asyncio.sleep(0.005)
        recorder.close()
        await writer
        return recorder

    with caplog.at_level(logging.ERROR):
        recorder = asyncio.run(main())
    assert (recorder.state, recorder.note) == ("stopped", "No space left on device")
    assert stopped == ["No space left on device"]
    assert "ALERT" in caplog.text
    assert metrics.recording_failures.labels("ENOSPC")._value.get() == 1
    frames, _ = _read(tmp_path / "r.wav")
    assert 0 < frames <= (_FillsUp.room - 44) // 4
    assert (tmp_path / "r.wav").stat().st_size == 44 + frames * 4  # header and file agree
