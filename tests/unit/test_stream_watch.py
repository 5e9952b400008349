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
    watch = _running(StreamWatch(stall_s=1.0, first_s=0.0))
    assert _looks(watch, [(0.5 * i, 25 * i) for i in range(2, 20)]) == [Action.KEEP] * 18
    assert watch.down_since is None


def test_a_callback_that_stops_for_a_second_is_a_stopped_stream() -> None:
    watch = _running(StreamWatch(stall_s=1.0, first_s=0.0))
    # The callback ran until the look at 1.0 s, then never again.
    actions = _looks(watch, [(1.0, 50), (1.5, 50), (2.0, 50)])
    assert actions == [Action.KEEP, Action.KEEP, Action.STOPPED]
    assert watch.down_since == 1.0
    assert watch.look(2.5, 50, active=True) is Action.KEEP  # the card is reopening it
    assert watch.failed(2.6) == 0.5
    assert watch.look(3.1, 50, active=True) is Action.RETRY


def test_a_stream_portaudio_no_longer_calls_active_is_stopped_at_the_next_look() -> None:
    """Its thread ended on an error (`PaAlsaStream_WaitForFrames` failed): no second to wait."""
    watch = _running(StreamWatch(stall_s=1.0, first_s=0.0))
    assert watch.look(1.0, 40, active=False) is Action.STOPPED
    assert watch.down_since == 1.0


def test_one_late_look_does_not_condemn_the_stream() -> None:
    """The watching thread held up for 3 s (by the same load that delays the callback): the
    count has not moved since its last look, but one look is not enough."""
    watch = _running(StreamWatch(stall_s=1.0, first_s=0.0))
    assert watch.look(3.5, 25, active=True) is Action.KEEP
    assert watch.look(4.0, 40, active=True) is Action.KEEP  # the callback was only waiting
    assert watch.down_since is None


def test_a_new_stream_is_left_to_settle_before_a_silence_counts() -> None:
    """Through PulseAudio, every start: the first callback 1.8 s after it, a few more, then
    none for 1.9 s. With a second's bound from the start that was a false alarm at each start,
    and each reopen lost the words being said (the wake phrase was never heard)."""
    watch = StreamWatch(stall_s=1.0, first_s=6.0)
    watch.started(10.0, 0)
    timeline = [(10.5, 0), (11.0, 0), (11.5, 0), (12.0, 3), (12.5, 3), (13.0, 3), (13.5, 3)]
    timeline += [(14.0, 20), (14.5, 45), (15.0, 70)]
    assert _looks(watch, timeline) == [Action.KEEP] * len(timeline)
    # Once settled, a second without a callback is enough.
    assert _looks(watch, [(16.0, 120), (16.5, 120), (17.0, 120)]) == [Action.KEEP] * 2 + [
        Action.STOPPED
    ]
    assert watch.down_since == 16.0


def test_a_new_stream_that_never_calls_back_is_stopped_once_settled() -> None:
    watch = StreamWatch(stall_s=1.0, first_s=6.0)
    watch.started(10.0, 7)
    assert _looks(watch, [(10.5 + 0.5 * i, 7) for i in range(11)]) == [Action.KEEP] * 11
    assert watch.look(16.0, 7, active=True) is Action.STOPPED  # it never will
    assert watch.down_since == 10.0
    watch.reopened(16.1, 7)
    assert watch.look(16.6, 7, active=True) is Action.KEEP  # the new one settles afresh


def test_a_new_stream_portaudio_stops_is_stopped_at_once() -> None:
    """Settling is for silence: a stream whose thread ended will not come back."""
    watch = StreamWatch(stall_s=1.0, first_s=6.0)
    watch.started(10.0, 0)
    assert watch.look(10.5, 4, active=False) is Action.STOPPED


def test_a_missing_device_is_retried_with_backoff_then_reopened() -> None:
    watch = _running(StreamWatch(stall_s=1.0, first_s=0.0, retry_s=(0.5, 1.0, 2.0)))
    assert _looks(watch, [(1.0, 25), (1.5, 25)]) == [Action.KEEP, Action.STOPPED]
    assert [watch.failed(1.5), watch.failed(2.0), watch.failed(3.0), watch.failed(5.0)] == [
        0.5, 1.0, 2.0, 2.0,
    ]  # fmt: skip
    # The last try was at 5.0 s, the next is due at 7.0 s: the looks before it wait.
    assert _looks(watch, [(5.5, 25), (6.5, 25), (7.0, 25)]) == [Action.KEEP] * 2 + [Action.RETRY]
    assert watch.reopened(7.1, 25) == pytest.approx(6.6)  # silent since the look at 0.5 s
    assert watch.down_since is None


def test_after_a_reopen_the_next_outage_starts_its_backoff_afresh() -> None:
    watch = _running(StreamWatch(stall_s=1.0, first_s=0.0, retry_s=(0.5, 1.0)))
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
