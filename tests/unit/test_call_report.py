"""What `appliance call` prints about a call: heard words are never reported as silence."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from appliance.conversation.events import CallEnded, TranscriptFinal, TurnCompleted
from appliance.harness.call import CallReport
from appliance.harness.report import print_call
from appliance.telephony.wavfile import LineEvent


@dataclass
class _Heard:
    """A call's recording with nothing in it (what was said is in the events)."""

    agent_audio: list[bytes] = field(default_factory=list)
    caller_audio: list[bytes] = field(default_factory=list)
    timeline: list[LineEvent] = field(default_factory=list)

    def write_agent_wav(self, path: Path) -> None:
        del path


def test_a_caller_heard_but_not_answered_in_time_is_not_called_silent(
    capsys: pytest.CaptureFixture[str],
) -> None:
    report = CallReport(
        line=_Heard(),
        ended="time limit",
        events=[
            TranscriptFinal(turn=1, text="Are you open on Sunday?", confidence=0.9, engine="w"),
            CallEnded(reason="time limit", at=70.0),
        ],
    )
    print_call(report, reply_wav=None)
    out = capsys.readouterr().out
    assert "said nothing" not in out
    assert "Are you open on Sunday?" in out and "not answered" in out


def test_answered_turns_are_not_repeated_as_unanswered(capsys: pytest.CaptureFixture[str]) -> None:
    report = CallReport(
        line=_Heard(),
        ended="caller hung up",
        events=[
            TranscriptFinal(turn=1, text="Hello", confidence=0.9, engine="w"),
            TurnCompleted(turn=1, transcript="Hello", reply="Hi there.", interrupted=False),
        ],
    )
    print_call(report, reply_wav=None)
    out = capsys.readouterr().out
    assert "not answered" not in out and "reply: Hi there." in out


def test_a_call_with_no_words_still_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    print_call(CallReport(line=_Heard(), ended="no input"), reply_wav=None)
    assert "The caller said nothing the agent could hear." in capsys.readouterr().out
