"""The no-input reprompt and the call's time limit, on a clock the test moves by hand."""

from __future__ import annotations

from appliance.conversation.timers import CallTimers, Due
from tests.support.hand_clock import HandClock


def _timers(clock: HandClock) -> CallTimers:
    return CallTimers(clock, no_input_s=8.0, max_call_s=60.0)


def test_silence_gets_a_reprompt_then_a_goodbye_and_then_nothing() -> None:
    clock = HandClock()
    timers = _timers(clock)
    clock.t += 7.9
    assert timers.due(busy=False) is None
    clock.t += 0.1
    assert timers.due(busy=False) is Due.REPROMPT
    assert timers.due(busy=True) is None  # the reprompt is being said
    clock.t += 1.0
    timers.quiet_from_now()  # and has ended
    clock.t += 7.9
    assert timers.due(busy=False) is None
    clock.t += 0.1
    assert timers.due(busy=False) is Due.NO_INPUT
    clock.t += 100.0
    assert timers.due(busy=False) is None  # the goodbye is due once; nothing follows it


def test_speech_on_either_side_holds_the_no_input_timer() -> None:
    clock = HandClock()
    timers = _timers(clock)
    for _ in range(5):
        clock.t += 5.0
        assert timers.due(busy=True) is None
    clock.t += 5.0
    assert timers.due(busy=False) is None  # 5 s of quiet since the last busy moment
    clock.t += 3.0
    assert timers.due(busy=False) is Due.REPROMPT


def test_a_caller_who_speaks_after_a_reprompt_gets_a_reprompt_again() -> None:
    clock = HandClock()
    timers = _timers(clock)
    clock.t += 8.0
    assert timers.due(busy=False) is Due.REPROMPT
    timers.caller_spoke()
    assert timers.due(busy=True) is None
    clock.t += 8.0
    assert timers.due(busy=False) is Due.REPROMPT


def test_the_time_limit_comes_even_while_someone_speaks_and_only_once() -> None:
    clock = HandClock()
    timers = _timers(clock)
    clock.t += 59.9
    assert timers.due(busy=True) is None
    clock.t += 0.1
    assert timers.due(busy=True) is Due.TIME_LIMIT
    clock.t += 10.0
    assert timers.due(busy=False) is None
