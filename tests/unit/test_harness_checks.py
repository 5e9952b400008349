"""The harness's checks: a barge-in's stop, the tools a turn ran, numbers nobody gave."""

from __future__ import annotations

import numpy as np

from appliance.audio.frame import rms_dbfs
from appliance.conversation.events import Event, ToolFinished, ToolReadBack, TurnCompleted
from appliance.harness.call import CallReport
from appliance.harness.grounding import numbers_in, ungrounded
from appliance.harness.runner import _stop_after_voice, check, phone_line
from appliance.harness.scenario import Scenario
from appliance.telephony.script import EventKind, LineEvent, Recording


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


def test_numbers_are_read_in_digits_and_in_words() -> None:
    said = "It's $1,200.50, or twenty-five a month, at 9:30 on the 5th; the one I said."
    assert numbers_in(said) == {"1200.50", "25", "9", "30", "5"}


def test_a_number_nobody_gave_is_ungrounded() -> None:
    sources = ["On Saturday the 5th we're open from 9 AM to 1 PM.", "Price $350"]
    assert ungrounded("We open at nine on Saturday the 5th; whitening is 350.", sources) == []
    assert ungrounded("It is 72 degrees and we close at 6.", sources) == ["72", "6"]


def _report(*events: Event) -> CallReport:
    return CallReport(line=Recording(), ended="caller hung up", events=list(events))


def _scenario(**expect: object) -> Scenario:
    return Scenario.model_validate(
        {"name": "s", "caller": [{"text": "What time do you open?", "expect": expect}]}
    )


def _turn(reply: str) -> TurnCompleted:
    return TurnCompleted(
        turn=1, transcript="what time do you open", reply=reply, interrupted=False,
        timings_ms={"turn": 900.0}, starts_ms={},
    )  # fmt: skip


def test_a_tool_that_must_run_is_checked_by_name_and_success() -> None:
    hours = ToolFinished(turn=1, name="opening_hours", ok=True, result="We open at 9 AM.")
    ok = check(_scenario(tools=["opening_hours"]), _report(hours, _turn("At 9 AM.")))
    assert ok.failures == []
    missing = check(_scenario(tools=["opening_hours"]), _report(_turn("At 9 AM.")))
    assert missing.failures == [
        "turn 1: opening_hours did not run (ran: none)",
        "turn 1: reply says '9', which no tool, the profile or the caller gave",
    ]
    none = check(_scenario(tools=[]), _report(hours, _turn("At 9 AM.")))
    assert none.failures == ["turn 1: no tool should run, but opening_hours did"]


def test_the_profile_grounds_a_reply_and_grounding_can_be_switched_off() -> None:
    reply = _report(_turn("Whitening is $350."))
    assert check(_scenario(), reply, known="Teeth whitening, $350").failures == []
    assert check(_scenario(), reply).failures == [
        "turn 1: reply says '350', which no tool, the profile or the caller gave"
    ]
    assert check(_scenario(grounded=False), reply).failures == []


def test_a_read_back_grounds_the_numbers_it_says() -> None:
    """The read-back is the code's words from the tool's own plan ("That's Tuesday the 8th at
    10 AM"): a reply that says them is grounded, as on a tool's result."""
    said = "That's Tuesday the 8th at 10 AM. Shall I book it?"
    readback = ToolReadBack(turn=1, name="book_appointment", text=said)
    assert check(_scenario(), _report(readback, _turn(said))).failures == []
    assert check(_scenario(), _report(_turn(said))).failures == [
        "turn 1: reply says '8', which no tool, the profile or the caller gave",
        "turn 1: reply says '10', which no tool, the profile or the caller gave",
    ]


def test_a_mulaw_caller_is_band_limited_to_the_phone() -> None:
    rate = 16_000
    t = np.arange(rate) / rate
    high = (np.sin(2 * np.pi * 6_000 * t) * 8000).astype("<i2").tobytes()
    low = (np.sin(2 * np.pi * 1_000 * t) * 8000).astype("<i2").tobytes()
    assert rms_dbfs(phone_line(high)) < rms_dbfs(high) - 30  # above 4 kHz: gone
    assert abs(rms_dbfs(phone_line(low)) - rms_dbfs(low)) < 1.0  # speech band: kept


def test_a_word_the_reply_must_hold_may_have_alternatives() -> None:
    reply = _report(_turn("We open at nine."))
    assert check(_scenario(reply_contains=["9|nine"], grounded=False), reply).failures == []
    assert check(_scenario(reply_contains=["10|ten"], grounded=False), reply).failures == [
        "turn 1: reply lacks '10|ten'"
    ]


def test_caller_turns_are_counted_one_by_one() -> None:
    two = Scenario.model_validate({"name": "s", "caller": [{"text": "Hi."}, {"text": "Bye."}]})
    result = check(two, _report(_turn("Hello.")))
    assert result.utterances == 2
    assert result.failures == []  # turn 2 expected nothing, so its absence is no failure
    assert result.utterances_passed == 2
    result.failures.append("turn 2: reply lacks 'bye'")
    assert result.utterances_passed == 1
    result.failures.append("call ended with 'no input', expected 'caller hung up'")
    assert result.utterances_passed == 0
