"""The wake phrase without a sound card or a model: the forgiving match, and the listener over a
scripted card (frames handed to whatever port it connects, as the card's audio thread does)
with a scripted recognizer (what it "heard" is given; the recognizer itself is tested through
PulseAudio in tests/integration/test_speakerphone_wake.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from appliance.audio.frame import FRAME_BYTES, frames_of
from appliance.conversation.ports import Transcript
from appliance.engines.vad.energy import EnergyVoiceActivity
from appliance.telephony.local.device import Port
from appliance.telephony.local.phone import Doorbell
from appliance.telephony.local.wake import (
    WakeListener,
    WakePhrase,
    default_wake_phrase,
)
from appliance.telephony.sip.media import CallMedia
from tests.support.fakes import quiet, say
from tests.support.hand_clock import HandClock


@pytest.mark.parametrize(
    ("heard", "rest"),
    [
        ("Hey Tess.", ""),
        ("hey, TESS!", ""),
        ("Hey test.", ""),  # a small recognizer's mishearing of a name
        ("Hey Jess, what are your hours?", "what are your hours"),
        ("Heytess", ""),
        ("Okay. Hey Tess, are you open on Sunday?", "are you open on sunday"),
        ("Hé Téss", ""),
    ],
)
def test_the_phrase_is_found_forgivingly(heard: str, rest: str) -> None:
    found = WakePhrase(default_wake_phrase("Tess")).find(heard)
    assert found is not None, heard
    assert found.rest == rest


@pytest.mark.parametrize(
    "heard",
    ["", "Yes.", "A test.", "They guess so.", "What are your hours?", "Tess", "Hey there."],
)
def test_other_speech_is_not_the_phrase(heard: str) -> None:
    assert WakePhrase("hey Tess").find(heard) is None


def test_a_phrase_of_no_words_is_refused_by_its_setting() -> None:
    with pytest.raises(ValueError, match="LOCAL_WAKE_PHRASE"):
        WakePhrase(" ?! ")


class _Card:
    """A sound card's microphone as plain calls: each frame goes to the port connected now."""

    def __init__(self) -> None:
        self.port: Port | None = None

    def connect(self, port: Port | None) -> None:
        self.port = port

    async def speak(self, pcm: bytes) -> None:
        """The room's audio, frame by frame, each taken by the listener before the next (as
        at 50 frames a second). The words are tones: what they say is the recognizer's script."""
        for frame in frames_of(pcm):
            port = self.port
            if port is not None:
                port.received(frame)
            async with asyncio.timeout(5):
                while isinstance(port, CallMedia) and len(port.inbound) and not port.ended:  # noqa: ASYNC110 - popping the ring sets no event
                    await asyncio.sleep(0)
            await asyncio.sleep(0)


class _Heard:
    """The recognizer, scripted: what it hears in each utterance, in turn."""

    name = "scripted-stt"

    def __init__(self, *texts: str) -> None:
        self._texts: Iterator[str] = iter(texts)
        self.utterances: list[bytes] = []

    async def transcribe(self, pcm: bytes) -> Transcript:
        self.utterances.append(pcm)
        return Transcript(text=next(self._texts), confidence=1.0, engine=self.name)


def _listener(stt: _Heard, **options: object) -> WakeListener:
    return WakeListener(WakePhrase("hey Tess"), stt, EnergyVoiceActivity(), **options)  # type: ignore[arg-type]


async def _until_heard(card: _Card, listener: WakeListener, *room: bytes) -> list[bytes]:
    waiting = asyncio.create_task(listener.wait(card))
    for pcm in room:
        await card.speak(pcm)
    await card.speak(quiet(1000))
    async with asyncio.timeout(5):
        return await waiting


async def test_other_speech_is_ignored_and_the_phrase_answers() -> None:
    card, stt = _Card(), _Heard("The weather is nice today.", "Hey, Tess.")
    listener = _listener(stt)
    other, phrase = say("weather", "paris", "time"), say("hello", "more")
    handed = await _until_heard(card, listener, quiet(300), other, quiet(1000), phrase)
    assert (listener.transcribed, listener.ignored, listener.skipped) == (2, 1, 0)
    assert len(stt.utterances[1]) >= len(phrase)  # the whole phrase, its start not clipped
    assert len(stt.utterances[1]) < len(phrase) + len(quiet(1200))  # only it
    assert all(frame == bytes(FRAME_BYTES) for frame in handed)  # not the phrase itself
    assert card.port is None


class _Slow(_Heard):
    """The recognizer takes its time: until the test says it is done."""

    def __init__(self, *texts: str) -> None:
        super().__init__(*texts)
        self.started, self.done = asyncio.Event(), asyncio.Event()

    async def transcribe(self, pcm: bytes) -> Transcript:
        self.started.set()
        await self.done.wait()
        return await super().transcribe(pcm)


async def test_what_is_said_while_the_phrase_is_transcribed_is_kept() -> None:
    card, stt = _Card(), _Slow("Hey Tess.")
    waiting = asyncio.create_task(_listener(stt).wait(card))
    await card.speak(say("hello", "more") + quiet(1000))
    await asyncio.wait_for(stt.started.wait(), 5)
    question = say("weather", "paris")
    await card.speak(question)
    stt.done.set()
    handed = await asyncio.wait_for(waiting, 5)
    assert b"".join(handed).endswith(question)


async def test_a_question_asked_with_the_phrase_is_handed_to_the_conversation() -> None:
    card, stt = _Card(), _Heard("Hey Tess, what are your hours?")
    utterance = say("hello", "more", "weather", "paris", "time")
    handed = await _until_heard(
        card, WakeListener(WakePhrase("hey Tess"), stt, EnergyVoiceActivity()), utterance
    )
    assert b"".join(handed).startswith(stt.utterances[0])


async def test_silence_is_never_transcribed() -> None:
    card, stt = _Card(), _Heard()
    listener = _listener(stt)
    waiting = asyncio.create_task(listener.wait(card))
    await card.speak(quiet(5000))
    assert stt.utterances == []
    waiting.cancel()


class _NeverSpeech:
    """A detector that hears no speech in anything (a door slammed, music)."""

    name = "never"

    def detector(self) -> _NeverSpeech:
        return self

    async def probability(self, frame: bytes) -> float:
        return 0.0


async def test_a_loud_room_without_speech_goes_back_to_the_doorbell() -> None:
    card, stt = _Card(), _Heard()
    listener = WakeListener(WakePhrase("hey Tess"), stt, _NeverSpeech())
    waiting = asyncio.create_task(listener.wait(card))
    await card.speak(say("hello", "more", "weather"))
    assert isinstance(card.port, CallMedia)  # listening for speech
    await card.speak(quiet(2500))
    assert isinstance(card.port, Doorbell)
    assert stt.utterances == []
    waiting.cancel()


async def test_transcriptions_are_capped_per_minute() -> None:
    clock = HandClock()
    card, stt = _Card(), _Heard("one", "three")
    listener = _listener(stt, per_minute=1, clock=clock)
    waiting = asyncio.create_task(listener.wait(card))
    for _ in range(2):
        await card.speak(say("weather", "time") + quiet(1000))
    assert (listener.transcribed, listener.skipped) == (1, 1)
    clock.t += 60
    await card.speak(say("weather", "time") + quiet(1000))
    assert (listener.transcribed, listener.skipped) == (2, 1)
    waiting.cancel()


class _Broken:
    name = "broken-stt"

    def __init__(self) -> None:
        self.calls = 0

    async def transcribe(self, pcm: bytes) -> Transcript:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("the worker timed out")
        return Transcript(text="hey tess", confidence=1.0, engine=self.name)


async def test_a_failed_transcription_leaves_the_phone_listening() -> None:
    card, stt = _Card(), _Broken()
    listener = WakeListener(WakePhrase("hey Tess"), stt, EnergyVoiceActivity())
    utterance = say("hello", "more") + quiet(1000)
    await _until_heard(card, listener, utterance, utterance)
    assert stt.calls == 2
