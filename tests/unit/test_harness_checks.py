"""The harness's measure of a barge-in: how long the agent went on after the caller cut in."""

from __future__ import annotations

from appliance.harness.runner import _stop_after_voice
from appliance.telephony.script import EventKind, LineEvent


def _timeline(*events: tuple[int, EventKind]) -> list[LineEvent]:
    return [LineEvent(at_ms=at, what=what, step=1 if what.startswith("caller") else -1)
            for at, what in events]  # fmt: skip


def test_an_agent_speaking_when_the_caller_cuts_in_is_measured_to_its_stop() -> None:
    timeline = _timeline(
        (1000, "agent-start"), (1800, "caller-start"), (1820, "caller-voice"),
        (1960, "agent-stop"), (4000, "caller-end"),
    )  # fmt: skip
    assert _stop_after_voice(timeline, 1) == 140


def test_a_caller_cutting_into_a_pause_between_sentences_finds_the_agent_quiet() -> None:
    timeline = _timeline(
        (1000, "agent-start"), (1700, "agent-stop"), (1800, "caller-start"),
        (1820, "caller-voice"), (4000, "caller-end"), (5000, "agent-start"), (6000, "agent-stop"),
    )  # fmt: skip
    assert _stop_after_voice(timeline, 1) == 0.0


def test_the_rest_of_a_reply_starting_over_the_caller_counts_until_it_stops() -> None:
    timeline = _timeline(
        (1000, "agent-start"), (1700, "agent-stop"), (1800, "caller-start"),
        (1820, "caller-voice"), (2100, "agent-start"), (3500, "agent-stop"), (4000, "caller-end"),
    )  # fmt: skip
    assert _stop_after_voice(timeline, 1) == 3500 - 1820


def test_no_voice_from_the_caller_is_no_measure() -> None:
    assert _stop_after_voice(_timeline((1000, "agent-start"), (1700, "agent-stop")), 1) is None
