"""A whole call through the real local engines, in process."""

from __future__ import annotations

import pytest

from appliance.app import Appliance
from appliance.conversation.events import TurnCompleted
from appliance.harness.call import run_wav_call
from appliance.harness.wer import wer
from appliance.telephony.wavfile import HangUp, Speak, load_wav
from tests.conftest import AUDIO

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_a_recorded_caller_is_heard_and_answered(appliance: Appliance) -> None:
    audio = load_wav(AUDIO / "goforward.wav").pcm
    report = await run_wav_call(
        appliance.answer,
        [Speak(audio), HangUp()],
        clock=appliance.clock,
    )
    # One sentence is usually one turn, but where the endpoint falls depends on how fast the
    # transcript came (a loaded machine): the caller's words are checked across the turns.
    turns = [e for e in report.events if isinstance(e, TurnCompleted)]
    assert turns
    said = " ".join(t.transcript for t in turns)
    assert wer("go forward ten meters", said) <= 0.15, said
    last = turns[-1]
    assert last.reply.strip()
    assert last.timings_ms["turn"] > 0
    assert report.ended == "caller hung up"
