"""The sound card's watchdog, its decisions alone: looks at the callback count on a timeline of
seconds, no stream (the real stream dying under it: tests/integration/test_speakerphone.py)."""

from __future__ import annotations

import pytest

from appliance.telephony.local.watchdog import Action, StreamWatch


def _looks(watch: StreamWatch, timeline: list[tuple[float, int]]) -> list[Action]:
    return [watch.look(now, beats, active=True) for now, beats in timeline]


def _running(watch: StreamWatch) -> StreamWatch:
    """`watch` on a stream started at 0 s whose callback has run (25 times by 0.5 s)."""
    watch.started(0.0, 0)
    assert watch.look(0.5, 25, active=True) is Action.KEEP
    return watch


def test_a_stream_whose_callback_runs_is_left_alone() -> None:
    watch = _running(StreamWatch(stall_s=1.0))
    assert _looks(watch, [(0.5 * i, 25 * i) for i in range(2, 20)]) == [Action.KEEP] * 18
    assert watch.down_since is None


def test_a_callback_that_stops_for_a_second_is_a_stopped_stream() -> None:
    watch = _running(StreamWatch(stall_s=1.0))
    # The callback ran until the look at 1.0 s, then never again.
    actions = _looks(watch, [(1.0, 50), (1.5, 50), (2.0, 50)])
    assert actions == [Action.KEEP, Action.KEEP, Action.STOPPED]
    assert watch.down_since == 1.0
    assert watch.look(2.5, 50, active=True) is Action.KEEP  # the card is reopening it
    assert watch.failed(2.6) == 0.5
    assert watch.look(3.1, 50, active=True) is Action.RETRY


def test_a_stream_portaudio_no_longer_calls_active_is_stopped_at_the_next_look() -> None:
    """Its thread ended on an error (`PaAlsaStream_WaitForFrames` failed): no second to wait."""
    watch = _running(StreamWatch(stall_s=1.0))
    assert watch.look(1.0, 40, active=False) is Action.STOPPED
    assert watch.down_since == 1.0


def test_one_late_look_does_not_condemn_the_stream() -> None:
    """The watching thread held up for 3 s (by the same load that delays the callback): the
    count has not moved since its last look, but one look is not enough."""
    watch = _running(StreamWatch(stall_s=1.0))
    assert watch.look(3.5, 25, active=True) is Action.KEEP
    assert watch.look(4.0, 40, active=True) is Action.KEEP  # the callback was only waiting
    assert watch.down_since is None


def test_a_new_stream_has_longer_for_its_first_callback() -> None:
    """Through a sound server that has just started, the first callback came 1.9 s late."""
    watch = StreamWatch(stall_s=1.0, first_s=4.0)
    watch.started(10.0, 7)
    assert _looks(watch, [(10.5, 7), (11.0, 7), (12.0, 7), (13.5, 7)]) == [Action.KEEP] * 4
    assert watch.look(14.0, 7, active=True) is Action.STOPPED  # it never will
    watch.reopened(14.1, 7)
    assert _looks(watch, [(14.6, 7), (15.1, 7), (15.6, 7), (16.0, 9)]) == [Action.KEEP] * 4
    # Once it has called back, a second without is enough.
    assert _looks(watch, [(16.5, 9), (17.0, 9)]) == [Action.KEEP, Action.STOPPED]


def test_a_missing_device_is_retried_with_backoff_then_reopened() -> None:
    watch = _running(StreamWatch(stall_s=1.0, retry_s=(0.5, 1.0, 2.0)))
    assert _looks(watch, [(1.0, 25), (1.5, 25)]) == [Action.KEEP, Action.STOPPED]
    assert [watch.failed(1.5), watch.failed(2.0), watch.failed(3.0), watch.failed(5.0)] == [
        0.5, 1.0, 2.0, 2.0,
    ]  # fmt: skip
    # The last try was at 5.0 s, the next is due at 7.0 s: the looks before it wait.
    assert _looks(watch, [(5.5, 25), (6.5, 25), (7.0, 25)]) == [Action.KEEP] * 2 + [Action.RETRY]
    assert watch.reopened(7.1, 25) == pytest.approx(6.6)  # silent since the look at 0.5 s
    assert watch.down_since is None


def test_after_a_reopen_the_next_outage_starts_its_backoff_afresh() -> None:
    watch = _running(StreamWatch(stall_s=1.0, retry_s=(0.5, 1.0)))
    watch.look(1.0, 25, active=False)
    watch.failed(1.0)
    watch.failed(1.5)
    watch.reopened(3.0, 25)
    actions = _looks(watch, [(3.5, 30), (4.0, 30), (4.5, 30)])
    assert actions == [Action.KEEP, Action.KEEP, Action.STOPPED]
    assert watch.failed(4.5) == 0.5


def test_a_watch_needs_a_retry_interval() -> None:
    with pytest.raises(ValueError, match="at least one"):
        StreamWatch(retry_s=())
