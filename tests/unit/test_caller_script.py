"""The scripted caller: when it speaks, when it hangs up, and the timeline it keeps."""

from __future__ import annotations

from appliance.audio.frame import silence
from appliance.conversation.events import (
    AgentStartedSpeaking,
    AgentStoppedSpeaking,
    Event,
    TurnDiscarded,
)
from appliance.telephony.script import CallerScript, HangUp, Speak
from tests.support.fakes import tone

_LOUD = tone(440, 20)
_VOICE = tone(300, 200)  # ten frames of caller speech


def _run(script: CallerScript, agent: list[bool]) -> list[bytes | None]:
    """Tick as a line would: the agent speaks when told, and the call ends at a hang-up."""
    out: list[bytes | None] = []
    for speaking in agent:
        out.append(script.tick(_LOUD if speaking else silence(), agent_speaking=speaking))
        if out[-1] is None:
            break
    return out


def test_the_caller_answers_after_the_agent_is_quiet_for_the_gap() -> None:
    script = CallerScript([Speak(_VOICE, gap_ms=100), HangUp(gap_ms=60)])
    out = _run(script, [True] * 5 + [False] * 20 + [True] * 5 + [False] * 10)
    events = [(e.what, e.at_ms) for e in script.recording.timeline]
    # Quiet from 100 ms; on the fifth quiet tick (180 ms) the gap is met and the caller begins,
    # its first frame going out on the next tick.
    assert events[:3] == [("agent-start", 0), ("agent-stop", 100), ("caller-start", 180)]
    assert ("caller-voice", 200) in events and ("caller-end", 380) in events
    # The agent answered (500-580 ms), then was quiet for the HangUp's 60 ms: the caller hangs up.
    assert events[-3:] == [("agent-start", 500), ("agent-stop", 600), ("hangup", 640)]
    assert out[-1] is None and None not in out[:-1]
    assert len(script.recording.agent_audio) == len(out) == 33


def test_with_a_hangover_a_pause_is_not_the_end_of_the_reply() -> None:
    script = CallerScript([Speak(_VOICE, gap_ms=300)], hangover_ticks=10)
    _run(script, [True] * 5 + [False] * 6 + [True] * 5 + [False] * 30)
    events = [(e.what, e.at_ms) for e in script.recording.timeline]
    # One reply, not two: the 120 ms pause was shorter than the 200 ms hangover, and the stop
    # is dated to the first quiet tick, not to when the hangover ran out.
    assert events[:2] == [("agent-start", 0), ("agent-stop", 320)]
    # The gap is counted from that first quiet tick too (its 15th quiet tick: 320 + 280 ms).
    assert events[2] == ("caller-start", 600)


def test_a_barge_in_starts_part_way_into_the_reply() -> None:
    script = CallerScript([Speak(_VOICE, after="agent-start", offset_ms=80)])
    _run(script, [True] * 20)
    events = [(e.what, e.at_ms) for e in script.recording.timeline]
    assert events[:2] == [("agent-start", 0), ("caller-start", 80)]


def test_an_answer_that_begins_in_the_callers_trailing_silence_counts() -> None:
    # The caller's recording: ten voiced frames, then ten of silence. The agent answers 100 ms
    # into that silence and talks for 300 ms, then stays quiet.
    script = CallerScript([Speak(_VOICE + silence() * 10, gap_ms=100), HangUp(gap_ms=60)])
    agent = [False] * 15 + [True] * 15 + [False] * 30
    out = _run(script, [True] * 2 + [False] * 6 + agent)
    events = [(e.what, e.at_ms) for e in script.recording.timeline]
    # Caller: starts at 120 ms, first voice at 140, ends at 520; the agent begins answering at
    # 460, before the caller's side ended, and the caller hangs up once it has been quiet for
    # 60 ms (its stop is dated to the first quiet tick).
    assert events[2:6] == [
        ("caller-start", 120),
        ("caller-voice", 140),
        ("agent-start", 460),
        ("caller-end", 520),
    ]
    assert events[-2:] == [("agent-stop", 760), ("hangup", 800)]
    assert out[-1] is None


def test_speech_already_playing_when_the_caller_spoke_is_not_an_answer() -> None:
    # The agent talks over the whole of the caller's recording (a greeting that was not
    # cleared): the caller does not take that for an answer and waits for the next one.
    script = CallerScript([Speak(_VOICE, after="agent-start", offset_ms=40), HangUp(gap_ms=60)])
    out = _run(script, [True] * 30 + [False] * 10 + [True] * 5 + [False] * 10)
    events = [(e.what, e.at_ms) for e in script.recording.timeline]
    assert events[:4] == [
        ("agent-start", 0),
        ("caller-start", 40),
        ("caller-voice", 60),
        ("caller-end", 240),
    ]
    assert events[-3:] == [("agent-start", 800), ("agent-stop", 900), ("hangup", 940)]
    assert out[-1] is None


def _run_with_session(
    script: CallerScript, agent: list[bool], said: dict[int, Event]
) -> list[bytes | None]:
    """As `_run`, and before tick `i` the session tells the script `said[i]`."""
    out: list[bytes | None] = []
    for i, speaking in enumerate(agent):
        if i in said:
            script.observe(said[i])
        out.append(script.tick(_LOUD if speaking else silence(), agent_speaking=speaking))
        if out[-1] is None:
            break
    return out


# The agent answers for 100 ms, pauses 400 ms between two sentences (a loaded machine), and
# says its second sentence for 100 ms. The caller's recording ends at 380 ms (as above).
_PAUSED_REPLY = [True] * 5 + [False] * 20 + [True] * 5 + [False] * 20 + [True] * 5 + [False] * 20


def test_without_the_sessions_events_a_long_pause_is_taken_for_the_end() -> None:
    script = CallerScript([Speak(_VOICE, gap_ms=100), HangUp(gap_ms=300)])
    _run(script, _PAUSED_REPLY)
    events = [(e.what, e.at_ms) for e in script.recording.timeline]
    # The reply began at 500 ms and paused at 600 ms: on the pause's 15th quiet tick (880 ms)
    # the caller took it for the end and hung up on the second sentence.
    assert events[-3:] == [("agent-start", 500), ("agent-stop", 600), ("hangup", 880)]


def test_with_the_sessions_events_the_caller_waits_for_the_reply_to_end() -> None:
    script = CallerScript([Speak(_VOICE, gap_ms=100), HangUp(gap_ms=300)])
    said: dict[int, Event] = {
        0: AgentStartedSpeaking(turn=0, at=0.0),
        5: AgentStoppedSpeaking(turn=0, at=0.1),
        25: AgentStartedSpeaking(turn=1, at=0.5),
        # ... no stop during the 400 ms pause: the reply goes on ...
        55: AgentStoppedSpeaking(turn=1, at=1.1),
    }
    out = _run_with_session(script, _PAUSED_REPLY, said)
    events = [(e.what, e.at_ms) for e in script.recording.timeline]
    # The caller stays through the pause, hears the second sentence (1000-1100 ms), and hangs
    # up once the session has said the agent stopped and 300 ms of quiet have passed.
    assert events[-5:] == [
        ("agent-start", 500),
        ("agent-stop", 600),
        ("agent-start", 1000),
        ("agent-stop", 1100),
        ("hangup", 1380),
    ]
    assert out[-1] is None


def test_a_reply_dropped_before_it_was_heard_does_not_hold_the_caller() -> None:
    script = CallerScript([Speak(_VOICE, gap_ms=100), HangUp(gap_ms=60)])
    said: dict[int, Event] = {
        0: AgentStartedSpeaking(turn=0, at=0.0),
        5: AgentStoppedSpeaking(turn=0, at=0.1),
        25: AgentStartedSpeaking(turn=1, at=0.5),
        30: AgentStoppedSpeaking(turn=1, at=0.6),
        # A second reply is queued and dropped before any of it reached the caller's ear: the
        # session says no AgentStoppedSpeaking for it, only that the turn was discarded.
        31: AgentStartedSpeaking(turn=2, at=0.62),
        32: TurnDiscarded(turn=2, reason="caller went on before the reply"),
    }
    out = _run_with_session(script, [True] * 5 + [False] * 20 + [True] * 5 + [False] * 10, said)
    events = [(e.what, e.at_ms) for e in script.recording.timeline]
    assert events[-3:] == [("agent-start", 500), ("agent-stop", 600), ("hangup", 640)]
    assert out[-1] is None


def test_a_caller_who_gives_up_hangs_up_in_a_pause_the_session_says_is_mid_reply() -> None:
    script = CallerScript([Speak(_VOICE, gap_ms=100), HangUp(gap_ms=300, in_pause=True)])
    said: dict[int, Event] = {
        0: AgentStartedSpeaking(turn=0, at=0.0),
        5: AgentStoppedSpeaking(turn=0, at=0.1),
        25: AgentStartedSpeaking(turn=1, at=0.5),
    }
    out = _run_with_session(script, _PAUSED_REPLY, said)
    events = [(e.what, e.at_ms) for e in script.recording.timeline]
    # As without events: on the pause's 15th quiet tick (880 ms) the caller has had enough.
    assert events[-3:] == [("agent-start", 500), ("agent-stop", 600), ("hangup", 880)]
    assert out[-1] is None
