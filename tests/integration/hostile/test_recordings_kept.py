"""A stranger's call cannot overwrite another call's recording.

The attack (issue 13): recordings were named after the line's Call-ID with unsafe characters
replaced, and opened with truncation, so a call with Call-ID `victim_pbx.example` wrote over
the recording of `victim@pbx.example`. Calls here go through the real records (SQLite, the
recorder writing WAV files); each recording must stay as its call left it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from appliance.clock import LoopClock
from appliance.memory import calls
from appliance.memory.recording import WavFile
from appliance.memory.records import recording_name
from appliance.telephony.wavfile import HangUp, Speak
from tests.support.fakes import say
from tests.support.records import RecordsKit, run_records, stereo_channels


def _record(root: Path, *call_ids: str) -> dict[str, calls.CallRecord]:
    """One short call per id, in turn; their rows afterwards."""

    async def main() -> dict[str, calls.CallRecord]:
        kit = await RecordsKit(root, LoopClock(), replies=["Hello.", "Bye."] * 4).open()
        try:
            for n, call_id in enumerate(call_ids):
                words = ("hello", "weather", "paris") if n == 0 else ("time",)
                await kit.call([Speak(say(*words)), HangUp()], call_id=call_id)
            found = [await kit.records.db.run(calls.find_call, c) for c in call_ids]
            return {c: f for c, f in zip(call_ids, found, strict=True) if f is not None}
        finally:
            kit.close()

    return run_records(main())


def test_a_call_id_that_maps_to_the_same_name_gets_a_recording_of_its_own(
    tmp_path: Path, models_dir: Path
) -> None:
    victim, stranger = "victim@pbx.example", "victim_pbx.example"
    first = _record(tmp_path, victim)[victim]
    assert first.recording is not None
    path = tmp_path / "recordings" / first.recording
    before = hashlib.sha256(path.read_bytes()).hexdigest()

    second = _record(tmp_path, stranger)[stranger]

    assert second.recording is not None and second.recording != first.recording
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before  # untouched
    left, _ = stereo_channels(tmp_path / "recordings" / second.recording)
    assert left  # the stranger's call was recorded too, in its own file
    assert second.recording_state == "complete"


def test_a_file_already_at_the_name_is_never_truncated(tmp_path: Path) -> None:
    path = tmp_path / "2026" / recording_name("call-1")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"RIFF an earlier recording")

    with pytest.raises(FileExistsError):
        WavFile(path)

    assert path.read_bytes() == b"RIFF an earlier recording"


def test_the_name_is_safe_and_tells_apart_ids_that_read_alike() -> None:
    names = {recording_name(c) for c in ("a@b", "a_b", "a/b", "../../etc/passwd", "a" * 300)}
    assert len(names) == 5
    for name in names:
        assert "/" not in name and not name.startswith(".") and len(name) < 80
