"""Whole Twilio calls through the real local engines: the caller is played over Media Streams."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from appliance.app import Appliance
from appliance.conversation.events import ReplyInterrupted
from appliance.harness.twilio import CallObservers, TwilioCaller
from appliance.harness.wer import wer
from appliance.settings import TwilioSettings
from appliance.telephony.wavfile import HangUp, Speak, load_wav
from tests.conftest import AUDIO
from tests.support.twilio import ACCOUNT_SID, AUTH_TOKEN, PUBLIC_URL

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(loop_scope="session")
async def caller(appliance: Appliance) -> AsyncIterator[TwilioCaller]:
    """A fake Twilio in front of the real appliance's web app, on a loopback port."""
    observers = CallObservers()
    account = TwilioSettings(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, base_url=PUBLIC_URL)
    async with appliance.web_server("127.0.0.1", 0, twilio=account, observe=observers) as web:
        yield TwilioCaller(
            server_url=web.url,
            public_url=PUBLIC_URL,
            auth_token=AUTH_TOKEN,
            clock=appliance.clock,
            observers=observers,
            account_sid=ACCOUNT_SID,
        )


async def test_a_recorded_caller_is_heard_and_the_reply_is_heard_back(
    appliance: Appliance, caller: TwilioCaller
) -> None:
    audio = load_wav(AUDIO / "goforward.wav").pcm
    report = await caller.call([Speak(audio), HangUp()])
    # The call is over (its records may still be being written): the next caller is answered.
    assert appliance.desk.admission.active == 0
    # One sentence is usually one turn; where the endpoint falls depends on how fast the
    # transcript came (a loaded machine), so the caller's words are checked across the turns.
    turns = report.turns
    assert turns and turns[-1].reply.strip()
    said = " ".join(t.transcript for t in turns)
    assert wer("go forward ten meters", said) <= 0.15, said
    assert report.ended == "caller hung up"
    # The reply as the caller's ear played it (mu-law off the wire), transcribed back.
    # (The reply may begin in the recording's trailing silence, before the caller's side ends.)
    voice = next(e for e in report.timeline if e.what == "caller-voice")
    answer = next(e for e in report.timeline if e.what == "agent-start" and e.at_ms > voice.at_ms)
    reply_audio = b"".join(report.line.agent_audio[answer.at_ms // 20 :])
    transcript = await appliance.engines.stt.transcribe(reply_audio)
    reply = " ".join(t.reply for t in turns)
    print(f"said: {reply!r}\nheard back: {transcript.text!r}")
    # Whisper tiny hears a mu-law "forward" as "for" now and then: one word in four.
    assert wer(reply, transcript.text) <= 0.3
    # Every frame sent was marked, and every mark came back as played.
    (trace,) = [t for t in caller.traces.values() if t.call_sid == report.line.info.call_id]
    assert len(trace.played_marks) == len(trace.marked) > 0
    assert trace.flushed_marks == [] and trace.clears == []


async def test_a_caller_cutting_in_is_cleared_and_only_marked_text_is_kept(
    caller: TwilioCaller,
) -> None:
    first = load_wav(AUDIO / "goforward.wav").pcm
    second = load_wav(AUDIO / "cards" / "005.wav").pcm
    report = await caller.call(
        [Speak(first), Speak(second, after="agent-start", offset_ms=200), HangUp()]
    )
    (trace,) = [t for t in caller.traces.values() if t.call_sid == report.line.info.call_id]
    assert trace.started_at is not None
    voice = next(e for e in report.timeline if e.what == "caller-voice" and e.step == 1)
    onset = trace.started_at + voice.at_ms / 1000
    clears = [round((t - onset) * 1000) for t in trace.clears if t >= onset]
    # Timing is measured by bench/twilio_latency.py; on a shared 2-core machine only its
    # order is checked here: the clear follows the caller's voice, within the turn.
    print(f"clear after the caller's voice: {clears} ms")
    assert clears and clears[0] < 1000
    # The cut reply keeps what the caller heard. (The second recording names three cards with
    # pauses between them: the agent may start on one and be cut again, so there may be more.)
    interruptions = [e for e in report.events if isinstance(e, ReplyInterrupted)]
    # On a loaded machine the reply can be a first short sentence ("Okay,") that has played out
    # by the time the caller's voice is detected, the rest not yet written: then the caller
    # spoke into a pause, and there is nothing to cut. Whenever a reply was cut, it was cut
    # right: it keeps what the caller heard, and nothing Twilio had not played.
    assert interruptions or not report.turns[0].interrupted
    for interrupted in interruptions:
        (cut,) = [t for t in report.turns if t.turn == interrupted.turn]
        assert cut.interrupted and cut.reply == interrupted.heard
    played = {int(n.partition(".")[2]) for n in trace.played_marks if n.startswith("0.")}
    flushed = {int(n.partition(".")[2]) for n in trace.flushed_marks if n.startswith("0.")}
    # Audio Twilio had not played when the clear came was dropped and never counted as heard.
    assert not flushed or max(played) < min(flushed)
    print(f"interrupted turns: {len(interruptions)}, marks flushed by the clear: {len(flushed)}")
    assert report.turns[-1].transcript and not report.turns[-1].interrupted
