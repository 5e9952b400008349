"""The speakerphone line through a real audio stack: a PulseAudio daemon started here, PortAudio
reaching it through ALSA's pulse plugin, the box's speaker and microphone as virtual devices,
and the room's echo as a loopback from the speaker into the microphone (tests/support/pulse.py).

Measured here (numbers in README, "The speakerphone"): the canceller's ERLE through the whole
stack, and how soon a caller who speaks over the agent stops it. The conversations run the real
`CallSession` on scripted engines: the agent's voice is recorded speech (an echo canceller
learns a room from broadband sound; a pure tone trains it at one frequency only), the caller's
is a recording, and what it said is scripted. What is tested is the line, its echo canceller
and barge-in, not the models. The card has learnt the room before each conversation (6 s of the
agent's voice), as a box's card has from its earlier calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from appliance.audio.frame import FRAME_BYTES, rms_dbfs
from appliance.clock import LoopClock
from appliance.conversation.events import (
    AgentStartedSpeaking,
    EchoDismissed,
    Event,
    PhraseSpoken,
    ReplyFinished,
    ReplyInterrupted,
    TurnCompleted,
)
from appliance.conversation.phrases import PhraseCache
from appliance.conversation.ports import Transcript
from appliance.conversation.session import CallSession, Engines, SessionConfig
from appliance.conversation.tools import ToolRegistry
from appliance.engines.stt.whisper import WhisperSpeechToText
from appliance.engines.vad.energy import EnergyVoiceActivity
from appliance.harness.wer import wer
from appliance.telephony.local.device import SoundCard, SoundCardError
from appliance.telephony.local.echo import EchoCanceller
from appliance.telephony.local.line import LocalLine
from appliance.telephony.local.phone import local_call_info
from appliance.telephony.sip.media import CallMedia
from tests.support.calls import PERSONA
from tests.support.echo_room import AUDIO, agent_voice
from tests.support.fakes import ScriptedLanguageModel
from tests.support.pulse import PulseServer, portaudio_sees

LONG_REPLY = "Let me tell you everything about the opening hours of the shop this week."


@pytest.fixture(autouse=True)
def _hold_decisions_logged(caplog: pytest.LogCaptureFixture) -> None:
    """Each hold for speech over the agent, and how it ended, in a failing test's report."""
    caplog.set_level(logging.DEBUG, logger="appliance.conversation.session")


@pytest.fixture(scope="module")
def pulse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PulseServer]:
    server = PulseServer(tmp_path_factory.mktemp("pulse"))
    server.start()
    server.add_echo(delay_ms=40, gain_db=-9.0)
    portaudio_sees(server)
    yield server
    server.stop()


class _RecordedVoice:
    """The agent's voice: recorded speech, 70 ms a character, then a short pause."""

    name = "recorded-voice"

    def __init__(self) -> None:
        self._speech = agent_voice().astype("<i2").tobytes()
        self._at = 0

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        size = 2 * int(16_000 * 0.07 * len(text))
        if self._at + size > len(self._speech):
            self._at = 0
        chunk, self._at = self._speech[self._at : self._at + size], self._at + size
        yield chunk + bytes(2 * 16_000 * 60 // 1000)


class _Scripted:
    """The caller's words, as scripted (what is tested is not the recognizer)."""

    name = "scripted-stt"

    async def transcribe(self, pcm: bytes) -> Transcript:
        return Transcript(text="What are your hours?", confidence=1.0, engine=self.name)


class _Speech:
    """A port that plays a recording and keeps what the microphone heard."""

    def __init__(self, pcm: bytes) -> None:
        self._out = [pcm[i : i + FRAME_BYTES] for i in range(0, len(pcm), FRAME_BYTES)]
        self._out = [f for f in self._out if len(f) == FRAME_BYTES]
        self.heard: list[bytes] = []
        self.done = asyncio.Event()
        self.more = asyncio.Event()
        """Set when the microphone has heard more."""
        self._loop = asyncio.get_running_loop()

    def received(self, pcm: bytes) -> None:
        self.heard.append(pcm)
        with contextlib.suppress(RuntimeError):  # the loop has closed
            self._loop.call_soon_threadsafe(self.more.set)

    def quiet(self) -> bool:
        """The microphone heard nothing for the last 300 ms."""
        return len(self.heard) > 15 and all(rms_dbfs(f) < -70.0 for f in self.heard[-15:])

    def requested(self) -> bytes | None:
        if self._out:
            return self._out.pop(0)
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self.done.set)
        return None


async def _mic_while_playing(echo: EchoCanceller | None, seconds: float) -> list[bytes]:
    far = agent_voice()[: int(16_000 * seconds)].astype("<i2").tobytes()
    card = SoundCard("pulse", echo=echo)
    await asyncio.to_thread(card.open)
    try:
        port = _Speech(far)
        card.connect(port)
        async with asyncio.timeout(seconds + 10):
            await port.done.wait()
    finally:
        await asyncio.to_thread(card.close)
    assert card.stats.frames_in > 0
    return port.heard


def _level_db(frames: list[bytes]) -> float:
    pcm = np.frombuffer(b"".join(frames), dtype="<i2").astype(np.float64)
    return float(10 * np.log10(np.mean(pcm**2) + 1.0))


async def test_the_echo_is_cancelled_through_pulseaudio(pulse: PulseServer) -> None:
    seconds = 16.0
    raw = await _mic_while_playing(None, seconds)
    clean = await _mic_while_playing(EchoCanceller(tail_ms=200), seconds)
    # The same frames of both takes (the first `n` the card delivered: the takes' lengths differ
    # by a frame or two), second by second from the 6th on, their median: on one machine
    # the echo's delay through PulseAudio's loopback drifted at the stream's start (~50
    # samples in 3 s) and the canceller gave under 16 dB until its 9th second; the median of
    # seconds 4-12 was then 11.7 dB.
    n = min(len(raw), len(clean))
    seconds_erle = [
        _level_db(raw[start : start + 50]) - _level_db(clean[start : start + 50])
        for start in range(300, n - 50 + 1, 50)
    ]
    erle = float(np.median(seconds_erle))
    print(f"ERLE through PulseAudio: {erle:.1f} dB (each second: {np.round(seconds_erle, 1)})")
    assert _level_db(raw[300:n]) > 40.0  # the echo is there to cancel
    # The median second, not the last ones: measured here, the canceller's ERLE swings from
    # second to second with the speech played (one second fell from 54 to 11 dB with the
    # measured delay steady to 1 ms), so one bad second decided a last-3.5-s measurement.
    assert erle > 15.0


def test_a_missing_device_is_named_with_the_devices_there_are(pulse: PulseServer) -> None:
    with pytest.raises(SoundCardError, match=r"no sound device 'no-such-card'.*pulse"):
        SoundCard("no-such-card").open()
    with pytest.raises(SoundCardError, match=r"no sound device 99 "):
        SoundCard(99).open()


@dataclass
class _Timed:
    """The call's media, with the instant each frame crossed the card (monotonic seconds)."""

    media: CallMedia
    caller: list[tuple[float, float]] = field(default_factory=list)
    """(when, dBFS) of each microphone frame, after echo cancellation."""
    agent: list[tuple[float, bool]] = field(default_factory=list)
    """(when, whether the agent spoke) of each frame the card played."""

    def received(self, pcm: bytes) -> None:
        self.caller.append((time.monotonic(), rms_dbfs(pcm)))
        self.media.received(pcm)

    def requested(self) -> bytes | None:
        frame = self.media.requested()
        self.agent.append((time.monotonic(), frame is not None))
        return frame


async def _converse(
    pulse: PulseServer, tmp_path: Path, *, echo: bool, barge_in: bool
) -> tuple[list[Event], _Timed, SoundCard, float | None]:
    """Caller: "go forward ten meters"; agent: a long reply; caller (if `barge_in`): cards over it.
    Returns the events, the timings, the card and when the barge-in was played."""
    del tmp_path
    clock = LoopClock()
    # Always the long reply: a speculative reply (at a pause in the caller's words) that is
    # thrown away must not use up the script.
    llm = ScriptedLanguageModel(clock, respond=lambda _: LONG_REPLY)
    engines = Engines(stt=_Scripted(), llm=llm, tts=_RecordedVoice(), vad=EnergyVoiceActivity())
    events: list[Event] = []
    speaking, greeted, replied = asyncio.Event(), asyncio.Event(), asyncio.Event()

    def sink(event: Event) -> None:
        events.append(event)
        if isinstance(event, AgentStartedSpeaking) and event.turn == 1:
            speaking.set()
        if isinstance(event, PhraseSpoken):
            greeted.set()
        if isinstance(event, TurnCompleted) and event.turn == 1:
            replied.set()  # played to its end, or cut off

    card = SoundCard("pulse", echo=EchoCanceller(tail_ms=200) if echo else None)
    await asyncio.to_thread(card.open)
    warm_up = _Speech(agent_voice()[16_000 * 10 : 16_000 * 16].astype("<i2").tobytes())
    card.connect(warm_up)
    await asyncio.wait_for(warm_up.done.wait(), 20)
    async with asyncio.timeout(5):  # and its echo has died away: the room is quiet
        while not warm_up.quiet():
            await warm_up.more.wait()
            warm_up.more.clear()
    line = LocalLine(
        local_call_info(),
        CallMedia(asyncio.get_running_loop()),
        echo_frames=lambda: card.echo_frames,
    )  # as `converse` connects them
    timed = _Timed(line.media)
    card.connect(timed)
    session = CallSession(
        line, engines, SessionConfig(persona=PERSONA), tools=ToolRegistry([]),
        phrases=PhraseCache(engines.tts), clock=clock, sink=sink,
    )  # fmt: skip
    barged_at, cut_in = None, None
    try:
        async with asyncio.timeout(40), asyncio.TaskGroup() as tasks:
            call = tasks.create_task(session.run())
            # The greeting first: the caller speaks once it has played.
            await greeted.wait()
            hello = pulse.say(AUDIO / "goforward.wav")
            await asyncio.to_thread(hello.wait, 10)
            await speaking.wait()
            if barge_in:
                await asyncio.sleep(0.8)  # the caller's timeline: cut in 0.8 s into the reply
                if not any(isinstance(e, ReplyInterrupted) for e in events):  # cut already: no
                    barged_at = time.monotonic()
                    cut_in = pulse.say(AUDIO / "cards" / "005.wav")
            # The session's word that the reply is over, not a quiet spell at the card: a hold
            # for the echo is quiet too, and may outlast any fixed spell on a loaded machine.
            await replied.wait()
            while not timed.agent or timed.agent[-1][1]:  # noqa: ASYNC110 - the audio thread appends, no event
                await asyncio.sleep(0.02)  # until the card plays the silence after it
            line.end()
            await call
    finally:
        await asyncio.to_thread(card.close)
        if cut_in is not None:
            cut_in.terminate()
            await asyncio.to_thread(cut_in.wait, 10)
        print(_story(events))  # shown when a test fails: a whole repr of each is cut short
        print(f"card: {card.stats}; echo reach {card.echo_frames} frames")
        print(f"the room's echo loopback holds {pulse.echo_queued_ms()} ms")
    return events, timed, card, barged_at


def _story(events: list[Event]) -> str:
    """The conversation's events a line each, without the call's details."""
    lines = []
    for e in events:
        name = type(e).__name__
        match e:
            case EchoDismissed(held_ms=ms):
                lines.append(f"{name} {ms:.0f} ms")
            case ReplyFinished(text=text) | PhraseSpoken(text=text):
                lines.append(f"{name} {text!r}")
            case ReplyInterrupted(heard=heard):
                lines.append(f"{name} after {heard!r}")
            case _:
                lines.append(name)
    return "\n".join(lines)


def _barge_in_ms(timed: _Timed, barged_at: float) -> float:
    """From the first loud microphone frame after `barged_at` to the first silent frame the card
    played after it, at the card's callback (its buffers add their latency either side)."""
    onset = next((t for t, db in timed.caller if t >= barged_at and db > -30.0), None)
    assert onset is not None, [round(db) for t, db in timed.caller if t >= barged_at]
    stop = next((t for t, spoke in timed.agent if t >= onset and not spoke), None)
    assert stop is not None, [spoke for t, spoke in timed.agent if t >= onset]
    return (stop - onset) * 1000


async def test_a_caller_who_speaks_over_the_agent_stops_it_within_200_ms(
    pulse: PulseServer, tmp_path: Path
) -> None:
    """Measured on a reply the agent's own echo did not cut first. That happens (the canceller's
    leak, README: once in 8 suite runs here, by a -47 dBFS frame 12 frames after the hold)
    and is asserted against by `test_the_agent_does_not_interrupt_itself_on_its_echo`; here it
    leaves no barge-in to time, so the conversation is had once more, and said so."""
    events, timed, card, barged_at = await _converse(pulse, tmp_path, echo=True, barge_in=True)
    if barged_at is None:
        print("the reply was cut by its own echo before the caller spoke: once more")
        events, timed, card, barged_at = await _converse(pulse, tmp_path, echo=True, barge_in=True)
    assert barged_at is not None
    assert [e for e in events if isinstance(e, ReplyInterrupted)]
    assert timed.caller[-1][0] > barged_at, events  # not over before the caller cut in
    at_line = _barge_in_ms(timed, barged_at)
    acoustic = at_line + card.latency_ms
    print(f"barge-in: {at_line:.0f} ms at the line, {acoustic:.0f} ms speaker to speaker")
    assert at_line <= 200.0


async def test_the_agent_does_not_interrupt_itself_on_its_echo(
    pulse: PulseServer, tmp_path: Path
) -> None:
    """The canceller leaks now and then through this stack (its ERLE falls from 40-55 dB to
    about 10 dB for a second when the loopback's delay shifts: README), and the leak sounds
    like a caller; the session holds the agent rather than cutting it off, and carries on."""
    events, *_ = await _converse(pulse, tmp_path, echo=True, barge_in=False)
    assert not [e for e in events if isinstance(e, ReplyInterrupted)]
    assert [e.text for e in events if isinstance(e, ReplyFinished)] == [LONG_REPLY]
    held = [round(e.held_ms) for e in events if isinstance(e, EchoDismissed)]
    print(f"held for its echo: {len(held)} times, {held} ms")


async def test_without_the_canceller_the_echo_reaches_the_session(
    pulse: PulseServer, tmp_path: Path
) -> None:
    """The room's echo is loud enough to be taken for a caller: without the canceller the
    agent is held for it (and would cut itself off at once without the hold:
    tests/unit/test_echo_hold.py). The hold is no canceller, though. Usually the reply is held
    again and again and heard to its end, but in 3 of 6 runs of the integration suite (CI's
    among them), and in 2 of 19 runs of this test outside it, its first hold ended "the
    caller" and the reply was cut. So what is asserted is the echo held, not the reply
    finished: the canceller is on unless `LOCAL_ECHO_CANCEL=false`, and with it the reply
    finishes (`test_the_agent_does_not_interrupt_itself_on_its_echo`)."""
    events, *_ = await _converse(pulse, tmp_path, echo=False, barge_in=False)
    held = [e for e in events if isinstance(e, EchoDismissed)]
    print(f"held for the echo {len(held)} times: {[round(e.held_ms) for e in held]} ms")
    assert held
    finished = [e.text for e in events if isinstance(e, ReplyFinished)] == [LONG_REPLY]
    print("the reply was heard to its end" if finished else "the reply was cut")


class _Counting:
    """A port that plays the agent's voice over and over and notes when each microphone frame
    arrived; `expect(n)` is an event set once `n` more frames have arrived."""

    def __init__(self, pcm: bytes) -> None:
        self._out = [
            pcm[i : i + FRAME_BYTES] for i in range(0, len(pcm) - FRAME_BYTES, FRAME_BYTES)
        ]
        self.requests = 0
        self.arrivals: list[float] = []
        """When each microphone frame arrived (monotonic seconds)."""
        self._loop = asyncio.get_running_loop()
        self._wanted: int | None = None
        self._enough = asyncio.Event()

    def expect(self, frames: int) -> asyncio.Event:
        self._enough = asyncio.Event()
        self._wanted = len(self.arrivals) + frames
        return self._enough

    def received(self, pcm: bytes) -> None:
        del pcm
        self.arrivals.append(time.monotonic())
        if self._wanted is not None and len(self.arrivals) >= self._wanted:
            self._wanted = None
            with contextlib.suppress(RuntimeError):  # the loop has closed
                self._loop.call_soon_threadsafe(self._enough.set)

    def requested(self) -> bytes | None:
        self.requests += 1
        return self._out[self.requests % len(self._out)]


def _speaker_level_db(pulse: PulseServer, seconds: float) -> float:
    """The loudspeaker's level over `seconds`, read from its sink's monitor."""
    wanted = int(2 * 16_000 * seconds)
    with subprocess.Popen(
        ["parec", "--device=speaker.monitor", "--raw", "--format=s16le", "--rate=16000",
         "--channels=1"],
        env=pulse.env, stdout=subprocess.PIPE,
    ) as parec:  # fmt: skip
        assert parec.stdout is not None
        pcm = b""
        while len(pcm) < wanted and (chunk := parec.stdout.read(wanted - len(pcm))):
            pcm += chunk
        parec.terminate()
    return rms_dbfs(pcm[: len(pcm) // 2 * 2])


async def test_the_card_reopens_a_stream_that_stopped(pulse: PulseServer) -> None:
    """PortAudio's stream stops under the card and its callback never runs again: under heavy
    load the ALSA stream through the pulse plugin fails in `PaAlsaStream_WaitForFrames` and its
    thread ends (a conversation then hung in silence, the greeting never finished). Here the
    stream is stopped the way PortAudio stops it, from outside the card. The card notices,
    reopens the device and carries on: the same port, the same echo canceller."""
    card = SoundCard("pulse", echo=EchoCanceller(tail_ms=200))
    await asyncio.to_thread(card.open)
    port = _Counting(agent_voice().astype("<i2").tobytes())
    try:
        card.connect(port)
        await asyncio.wait_for(port.expect(50).wait(), 10)  # a second of the microphone
        stream = card._stream
        assert stream is not None
        stopped_at, requests_then = time.monotonic(), port.requests
        await asyncio.to_thread(stream.abort)
        await asyncio.wait_for(port.expect(50).wait(), 15)
        first = next(t for t in port.arrivals if t > stopped_at)
        print(f"microphone again {first - stopped_at:.2f} s after the stream stopped")
        assert card.stats.restarts == 1
        assert port.requests > requests_then  # the port is asked for the agent's voice again
        assert await asyncio.to_thread(_speaker_level_db, pulse, 2.0) > -50.0
    finally:
        await asyncio.to_thread(card.close)
    assert "speakerphone-watchdog" not in [t.name for t in threading.enumerate()]


async def _callers_through_the_card(
    pulse: PulseServer, *, agent: bool, echo: EchoCanceller | None
) -> list[tuple[bytes, str]]:
    """The callers of `callers()` speak into the box's microphone one after another while the
    agent talks (`agent`; else in a quiet room), the first after 6 s of the agent's voice (the
    canceller learns the room from it): what the card delivered for each, the frames a
    recorded call writes to its caller channel, from 300 ms before they spoke to 500 ms after."""
    voice = agent_voice().astype("<i2").tobytes()
    card = SoundCard("pulse", echo=echo)
    await asyncio.to_thread(card.open)
    port = _Speech(voice if agent else bytes(len(voice)))
    spoken: list[tuple[int, int, str]] = []
    try:
        card.connect(port)
        async with asyncio.timeout(30):
            while len(port.heard) < 300:
                await port.more.wait()
                port.more.clear()
        for number, text in _CALLERS:
            start = len(port.heard)
            say = pulse.say(AUDIO / number)
            await asyncio.to_thread(say.wait, 20)
            spoken.append((start, len(port.heard), text))
            await asyncio.sleep(0.6)  # its tail through the card's buffers, and a pause
        assert not port.done.is_set(), "the agent's voice ran out before the callers did"
    finally:
        await asyncio.to_thread(card.close)
    return [(b"".join(port.heard[max(0, a - 15) : b + 25]), text) for a, b, text in spoken]


_CARDS = (AUDIO / "cards" / "cards.transcription").read_text().splitlines()
_CALLERS = [
    *[
        (f"cards/{n:03d}.wav", _CARDS[n - 1].split("<s>")[1].split("</s>")[0].strip())
        for n in (1, 2, 3, 5)
    ],
    ("goforward.wav", "go forward ten meters"),
]
"""What the callers say (the recordings of `echo_room.callers()`), with their references."""


@pytest.mark.asyncio(loop_scope="session")
async def test_the_callers_words_come_through_the_echo_when_it_is_cancelled(
    pulse: PulseServer, whisper: WhisperSpeechToText
) -> None:
    """The caller channel's word error rate through the whole stack (PulseAudio, PortAudio, the
    card): callers speaking over the agent, with and without the canceller, and in a quiet room
    for the recognizer's own errors. The canceller must give back the callers' words as a quiet
    room would (double talk must not eat them)."""
    takes = {
        "quiet room": await _callers_through_the_card(pulse, agent=False, echo=None),
        "echo": await _callers_through_the_card(pulse, agent=True, echo=None),
        "cancelled": await _callers_through_the_card(
            pulse, agent=True, echo=EchoCanceller(tail_ms=200)
        ),
    }
    mean: dict[str, float] = {}
    for name, heard in takes.items():
        rates = []
        for audio, text in heard:
            said = await whisper.transcribe(audio)
            rates.append(wer(text, said.text))
            print(f"{name:10} {text!r}: {said.text!r}")
        mean[name] = sum(rates) / len(rates)
    print("caller WER through PulseAudio: " + ", ".join(f"{k} {v:.0%}" for k, v in mean.items()))
    assert mean["cancelled"] <= mean["quiet room"] + 0.1
    assert mean["echo"] >= mean["cancelled"]
