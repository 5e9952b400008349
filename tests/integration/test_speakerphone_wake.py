"""The speakerphone answering on its wake phrase, through a real audio stack: a PulseAudio daemon
started here (tests/support/pulse.py), PortAudio reaching it, the person's words spoken by
espeak-ng into the box's virtual microphone, and the box's own recognizer (whisper) listening.

First with a scripted desk (what is tested is the listening, not the conversation): speech that
is not the phrase is heard, transcribed and ignored; the phrase answers. Then with the whole
appliance: a conversation begun by the phrase is recorded, transcribed and listed like any
call, in the records (`appliance calls list`) and on the status page.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from appliance.app import Appliance
from appliance.audio.wav import wav_header
from appliance.clock import LoopClock
from appliance.conversation.events import EventSink
from appliance.conversation.ports import CallLine
from appliance.engines.stt.whisper import WhisperSpeechToText
from appliance.engines.vad.energy import EnergyVoiceActivity
from appliance.harness.voices import caller_voice
from appliance.settings import LocalSettings
from appliance.telephony.calls import Admission, Reservation
from appliance.telephony.local.device import SoundCard
from appliance.telephony.local.phone import LocalPhone
from appliance.telephony.local.wake import WakeListener, WakePhrase
from tests.conftest import ROOT
from tests.support.pulse import PulseServer, portaudio_sees
from tests.support.status import log_in, set_password

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture
def pulse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PulseServer]:
    """A PulseAudio of each test's own: a second card opened on a daemon after the first one's
    was closed heard nothing here (the wake log stayed empty); each alone passed."""
    server = PulseServer(tmp_path_factory.mktemp("pulse"))
    server.start()
    portaudio_sees(server)
    yield server
    server.stop()


async def _say(pulse: PulseServer, folder: Path, text: str) -> None:
    """The person at the box says `text` (espeak-ng) into its microphone; returns once said."""
    pcm = caller_voice(text)
    wav = folder / f"{abs(hash(text))}.wav"
    wav.write_bytes(wav_header(channels=1, rate=16_000, data_bytes=len(pcm)) + pcm)
    speaking = pulse.say(wav)
    assert await asyncio.to_thread(speaking.wait, 30) == 0


async def _until(ready: Callable[[], bool], limit_s: float, what: str) -> None:
    try:
        async with asyncio.timeout(limit_s):
            while not ready():  # noqa: ASYNC110 - counters of the phone's tasks: no event to await
                await asyncio.sleep(0.05)
    except TimeoutError:
        pytest.fail(f"{what} within {limit_s:.0f} s; the wake log: {_heard(logging.root)}")


def _heard(root: logging.Logger) -> list[str]:
    """What the wake listener logged (caplog's records), for a failure's message."""
    handlers = [h for h in root.handlers if hasattr(h, "records")]
    return [r.getMessage() for h in handlers for r in h.records if "local" in r.name]  # type: ignore[attr-defined]


class _Desk:
    """The router, scripted: it takes each conversation, notes it, and holds it until it ends."""

    def __init__(self) -> None:
        self.admission = Admission(clock=LoopClock(), max_calls=1)
        self.answered: list[CallLine] = []

    async def answer(
        self,
        line: CallLine,
        observe: EventSink | None = None,
        *,
        reservation: Reservation | None = None,
    ) -> str:
        self.answered.append(line)
        async for _ in line.listen():
            pass
        return "ended"


async def test_the_wake_phrase_answers_and_other_speech_does_not(
    pulse: PulseServer,
    whisper: WhisperSpeechToText,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="appliance.telephony.local.wake")
    desk = _Desk()
    wake = WakeListener(WakePhrase("hey Tess"), whisper, EnergyVoiceActivity())
    async with LocalPhone(SoundCard("pulse"), desk, answer="wake", wake=wake) as phone:
        await _say(pulse, tmp_path, "The weather is lovely today.")
        await _until(lambda: wake.transcribed == 1, 30, "the speech was not transcribed")
        assert (wake.ignored, desk.answered) == (1, [])
        await _say(pulse, tmp_path, "Hey Tess, are you there?")  # "Hey Tess!" alone: see README
        await _until(lambda: bool(desk.answered), 30, "the phrase did not answer")
        assert phone.line is not None and phone.line.info.line == "local"
        phone.line.end()
        await _until(lambda: phone.conversations == 1, 10, "the conversation did not end")
    assert (wake.transcribed, wake.ignored, wake.skipped) == (2, 1, 0)


def _spoken_to(snapshot: list[dict[str, object]]) -> str | None:
    """The id of the local call whose caller has been answered by the agent, if any."""
    for call in snapshot:
        lines = [line for line in call["lines"] if isinstance(line, dict)]  # type: ignore[attr-defined]
        speakers = [line["speaker"] for line in lines]
        if call["line"] == "local" and "caller" in speakers and speakers[-1] == "agent":
            return str(call["id"])
    return None


async def test_a_conversation_begun_by_the_phrase_is_recorded_and_listed(
    pulse: PulseServer, appliance: Appliance, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="appliance.telephony.local")
    local = LocalSettings(audio_device="pulse", answer="wake", echo_cancel=False)
    async with appliance.local_phone(local) as phone:
        await _say(pulse, tmp_path, "Hey Tess, what are your opening hours?")
        await _until(lambda: phone.line is not None, 60, "the phrase did not answer")
        await _until(lambda: _spoken_to(appliance.live.snapshot()) is not None, 120, "no reply")
        call_id = _spoken_to(appliance.live.snapshot())
        assert phone.line is not None
        phone.line.end()
        await _until(lambda: phone.conversations == 1, 30, "the conversation did not end")
    env = {**os.environ, "APPLIANCE_DATA_DIR": str(appliance.settings.paths.data_dir)}
    listed = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "appliance", "--env-file", str(tmp_path / "none.env"),
         "calls", "list", "--json"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=60, check=True,
    )  # fmt: skip
    rows = [r for r in json.loads(listed.stdout) if call_id in (r["id"], r["line_call_id"])]
    assert len(rows) == 1, listed.stdout
    row = rows[0]
    assert row["line"] == "local" and row["ended"] is not None and row["caller_turns"] >= 1, row
    assert row["recording"], row
    set_password(appliance.settings.paths.admin_password)
    async with (
        appliance.web_server("127.0.0.1", 0) as server,
        httpx.AsyncClient(base_url=server.url, timeout=30.0) as http,
    ):
        await log_in(http)
        calls = await http.get("/calls")
        detail = await http.get(f"/calls/{row['id']}")
    assert calls.status_code == 200 and row["id"] in calls.text
    assert detail.status_code == 200 and "hours" in detail.text.lower(), detail.text


class _Button:
    """What the phone uses of the GPIO button (`open`, `pressed`, `close`), pressed by the test:
    there is no GPIO chip here to press (tests/unit/test_button.py says why)."""

    def __init__(self) -> None:
        self.is_open = False
        self.waits = 0
        """Calls of `pressed()` so far: the phone waiting for a press."""
        self._waiting: list[asyncio.Future[None]] = []

    def open(self) -> _Button:
        self.is_open = True
        return self

    def close(self) -> None:
        self.is_open = False

    def press(self) -> None:
        """A press: returns `pressed()` to whoever waits (as the GPIO one, only a press made
        after the wait began counts)."""
        waiting, self._waiting = self._waiting, []
        for future in waiting:
            if not future.done():
                future.set_result(None)

    async def pressed(self) -> None:
        future = asyncio.get_running_loop().create_future()
        self._waiting.append(future)
        self.waits += 1
        await future


async def test_a_press_answers_and_a_second_hangs_up(pulse: PulseServer) -> None:
    desk, button = _Desk(), _Button()
    phone = LocalPhone(SoundCard("pulse"), desk, answer="button", button=button)  # type: ignore[arg-type]
    async with phone:
        assert button.is_open
        await _until(lambda: button.waits == 1, 10, "the phone did not wait for a press")
        assert desk.answered == [] and phone.line is None  # the room alone answers nothing
        button.press()
        await _until(lambda: bool(desk.answered), 10, "the press did not answer")
        assert phone.line is not None and phone.line.info.line == "local"
        await _until(lambda: button.waits == 2, 10, "the conversation did not wait for a press")
        button.press()
        await _until(lambda: phone.conversations == 1, 10, "the press did not hang up")
        await _until(lambda: button.waits == 3, 10, "the phone did not wait to answer again")
        assert len(desk.answered) == 1
    assert not button.is_open
