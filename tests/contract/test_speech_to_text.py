"""The SpeechToText contract, for every adapter: whisper, the scripted fake, a fallback chain."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import pytest

from appliance.audio.frame import frames_of, rms_dbfs, silence
from appliance.clock import LoopClock
from appliance.conversation.ports import SpeechToText
from appliance.conversation.profile import BusinessProfile
from appliance.engines.fallback import FallbackSpeechToText, Option
from appliance.engines.offload import Offloader
from appliance.engines.stt.whisper import WhisperSpeechToText
from appliance.harness.voices import caller_voice
from appliance.harness.wer import wer
from appliance.telephony.wavfile import load_wav
from tests.conftest import AUDIO, ROOT
from tests.support.fakes import ToneSpeechToText, say
from tests.support.recordings import KNOWN_MISSES, RECORDINGS, reference

pytestmark = pytest.mark.asyncio(loop_scope="session")


@dataclass
class Case:
    engine: SpeechToText
    speech: bytes
    said: str


# The real engines (and fallbacks onto them) load the installed models.
@pytest.fixture(
    params=[
        pytest.param("whisper", marks=pytest.mark.models),
        "tone",
        pytest.param("fallback", marks=pytest.mark.models),
    ]
)
def case(request: pytest.FixtureRequest) -> Case:
    if request.param == "tone":
        return Case(
            ToneSpeechToText(LoopClock(), delay_s=0.01), say("hello", "paris"), "hello paris"
        )
    whisper = request.getfixturevalue("whisper")
    recording = load_wav(AUDIO / "goforward.wav").pcm
    if request.param == "whisper":
        return Case(whisper, recording, "go forward ten meters")
    broken = ToneSpeechToText(LoopClock(), fail=True, name="broken")
    return Case(
        FallbackSpeechToText([Option(broken), Option(whisper)]), recording, "go forward ten meters"
    )


async def test_speech_is_transcribed(case: Case) -> None:
    result = await case.engine.transcribe(case.speech)
    assert wer(case.said, result.text) <= 0.15
    assert 0.0 <= result.confidence <= 1.0
    assert result.engine


async def test_silence_and_nothing_give_no_words(case: Case) -> None:
    for audio in (b"", silence(50)):
        result = await case.engine.transcribe(audio)
        assert not any(ch.isalnum() for ch in result.text), result


async def test_concurrent_calls_each_get_their_own_answer(case: Case) -> None:
    results = await asyncio.gather(*(case.engine.transcribe(case.speech) for _ in range(3)))
    assert all(wer(case.said, r.text) <= 0.15 for r in results)


@pytest.mark.models
async def test_the_business_s_words_are_heard_better_with_its_vocabulary(models_dir: Path) -> None:
    """Whisper tiny.en heard "Doctor Park", in espeak-ng's voice, as "Nokter Power"; with the
    profile's words as its prompt it hears the name, and silence still gives no words."""
    worker = Offloader("vocabulary-stt")
    plain = WhisperSpeechToText(models_dir / "whisper-tiny.en", offloader=worker)
    primed = WhisperSpeechToText(
        models_dir / "whisper-tiny.en",
        offloader=worker,
        vocabulary=BusinessProfile.load(ROOT / "business.example.toml").vocabulary(),
    )
    try:
        speech = caller_voice("I would like to talk to Doctor Park.")
        heard = [(await engine.transcribe(speech)).text for engine in (plain, primed)]
        assert "park" not in heard[0].lower()  # the mishearing this fixes is still there
        assert "park" in heard[1].lower(), heard
        assert (await primed.transcribe(silence(50))).text == ""
    finally:
        worker.close()


@pytest.mark.models
@pytest.mark.parametrize("recording", RECORDINGS, ids=lambda p: p.name)
async def test_each_recorded_caller_is_heard(recording: Path, whisper: WhisperSpeechToText) -> None:
    """What the line gives whisper is the VAD's utterance: the voice with ~200 ms either side, not
    the recording's leading and trailing room noise (on 004.wav's "five five" whole, whisper
    doubts there is speech at all and gives nothing)."""
    heard = (await whisper.transcribe(_utterance(load_wav(recording).pcm))).text
    bound = 0.3 if recording.name in KNOWN_MISSES else 0.15
    assert wer(reference(recording), heard) <= bound, heard


def _utterance(pcm: bytes, pad_frames: int = 10) -> bytes:
    frames = list(frames_of(pcm))
    voiced = [rms_dbfs(frame) > -45 for frame in frames]
    first, last = voiced.index(True), len(voiced) - voiced[::-1].index(True)
    return b"".join(frames[max(0, first - pad_frames) : last + pad_frames])
