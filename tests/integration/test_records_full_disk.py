"""A full disk during a call: the recording stops with an alert, the call goes on, the database
stays consistent. On a real small disk (a tmpfs) where the test may mount one; otherwise with a
recording writer that reports a full disk on purpose."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import subprocess
import wave
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from appliance.clock import LoopClock
from appliance.conversation.events import TurnCompleted
from appliance.memory import calls
from appliance.memory.db import connect
from appliance.memory.recording import WavFile
from appliance.observability.metrics import Metrics
from appliance.telephony.wavfile import HangUp, Speak
from tests.support.fakes import say
from tests.support.records import RecordsKit, run_records

_FREE_AT_CALL_START = 160 * 1024
"""Bytes free when the call starts: about 2.5 s of stereo recording."""
_RESERVE = 512 * 1024
"""Bytes the recording leaves for the rest of the records (the database's WAL grows by a few
pages a turn), in the case that keeps room; the disk then starts with this much more free."""
_REPLIES = ["It is sunny today in Paris.", "It is noon.", "Goodbye then."]


class _FullAfter(WavFile):
    """Takes `room` bytes, then reports a full disk (where no small disk can be mounted)."""

    room = 44 + _FREE_AT_CALL_START

    def _write(self, data: bytes) -> int:
        used = getattr(self, "_used", 0)
        left = self.room - used
        if len(data) > left:
            done = super()._write(data[:left]) if left > 0 else 0
            self._used = used + done
            error = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            error.written = done  # type: ignore[attr-defined]
            raise error
        self._used = used + len(data)
        return super()._write(data)


@contextlib.contextmanager
def _small_disk(where: Path) -> Iterator[bool]:
    """A 2 MiB tmpfs at `where` when this test may mount one (True), else a plain folder."""
    where.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where)]
    mounted = subprocess.run(mount, capture_output=True, check=False).returncode == 0
    try:
        yield mounted
    finally:
        if mounted:
            # Lazily: a file that a failed assertion left open must not keep the mount.
            subprocess.run(["umount", "--lazy", str(where)], check=False)


def _fill(disk: Path, leave: int) -> Path:
    filler = disk / "filler"
    stat = os.statvfs(disk)
    with filler.open("wb") as out:
        out.write(bytes(max(0, stat.f_bavail * stat.f_frsize - leave)))
    return filler


@pytest.mark.parametrize("reserve", [True, False], ids=["room-kept-for-records", "disk-full"])
def test_a_full_disk_stops_the_recording_and_the_call_goes_on(
    tmp_path: Path, models_dir: Path, caplog: pytest.LogCaptureFixture, reserve: bool
) -> None:
    disk = tmp_path / "disk"
    metrics = Metrics()
    with _small_disk(disk) as real_disk:  # 2 MiB
        writer: Callable[[Path], WavFile] = WavFile if real_disk else _FullAfter

        async def main() -> object:
            kit = await RecordsKit(
                disk,
                LoopClock(),
                replies=list(_REPLIES),
                open_recording=writer,
                recording_min_free_bytes=_RESERVE if reserve else 0,
                metrics=metrics,
            ).open()
            free = _FREE_AT_CALL_START + (_RESERVE if reserve else 0)
            filler = _fill(disk, free) if real_disk else None
            try:
                script = [Speak(say("weather", "paris")), Speak(say("time")), Speak(say("goodbye"))]
                return await kit.call([*script, HangUp()])
            finally:
                kit.close()
                if filler is not None:
                    filler.unlink()  # room again, as once the owner has cleared the disk

        with caplog.at_level(logging.ERROR):
            report = run_records(main())

        # The call went on to the end, every turn answered.
        assert report.ended == "caller hung up"  # type: ignore[attr-defined]
        events = report.events  # type: ignore[attr-defined]
        assert [e.reply for e in events if isinstance(e, TurnCompleted)] == _REPLIES
        # The recording stopped with an alert, and what it holds is a valid WAV.
        assert "ALERT: recording" in caplog.text
        kept_room = real_disk and reserve
        reason = "low-space" if kept_room else "ENOSPC"
        assert metrics.recording_failures.labels(reason)._value.get() == 1
        (recording,) = (disk / "recordings").rglob("*.wav")
        with wave.open(str(recording), "rb") as wav:
            frames = wav.getnframes()
            assert wav.getnchannels() == 2 and frames > 0
        assert recording.stat().st_size == 44 + frames * 4
        assert 0 < frames * 4 <= _FREE_AT_CALL_START + 64 * 1024

        # A restart ends whatever a full database could not, and the records are consistent.
        async def restart() -> None:
            (await RecordsKit(disk, LoopClock()).open()).close()

        run_records(restart())
        conn = connect(disk / "data" / "tel3sis.db")
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        call = calls.find_call(conn, "call-1")
        assert call is not None and call.ended is not None
        assert call.recording_state == "stopped" and call.recording_note
        stored = calls.turns_of(conn, "call-1")
        assert all(t.text and t.speaker in ("caller", "agent") for t in stored)
        if kept_room or not real_disk:
            # The database had room: the call ended normally with every turn stored.
            assert call.outcome == "caller hung up"
            assert len(stored) == 1 + 2 * len(_REPLIES)
        conn.close()
