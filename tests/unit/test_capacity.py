"""How many calls at once: from one turn's measured engine time, not the core count."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from appliance.app import Appliance
from appliance.app.capacity import TurnCost, calls_for
from appliance.app.engines import LocalEngines
from appliance.clock import LoopClock
from appliance.conversation.ports import EngineError
from appliance.telephony.calls import Admission, Verdict
from tests.conftest import settings_in


@pytest.mark.parametrize(
    ("stt_s", "first_s", "reply_s", "tts_s", "calls"),
    [
        (0.12, 0.20, 0.60, 0.05, 2),  # first audio 0.37 s, then 0.72 s behind each: 2 fit
        (0.12, 0.75, 1.60, 0.15, 1),  # the 1.5B here: one
        (0.05, 0.10, 0.20, 0.05, 3),  # a fast box: six would fit, the SIP line holds three
        (0.50, 1.50, 2.50, 0.40, 1),  # slower than the target: still one call, never none
    ],
)
def test_as_many_calls_as_can_take_a_turn_at_once_within_the_target(
    stt_s: float, first_s: float, reply_s: float, tts_s: float, calls: int
) -> None:
    cost = TurnCost(stt_s=stt_s, first_s=first_s, reply_s=reply_s, tts_s=tts_s)
    assert calls_for(cost, target_s=1.5, ceiling=3) == calls


def test_admission_takes_the_new_size_for_the_next_call() -> None:
    admission = Admission(clock=LoopClock(), max_calls=3, rate_limit=0)
    admission.active = 1
    assert admission.check("127.0.0.1") is Verdict.ADMIT
    admission.resize(1)
    assert admission.max_calls == 1
    assert admission.check("127.0.0.1") is Verdict.BUSY
    with pytest.raises(ValueError, match="at least 1"):
        admission.resize(0)


def _built(tmp_path: Path) -> Appliance:
    """An appliance built (nothing loaded) with MAX_CONCURRENT_CALLS unset."""
    settings = settings_in(tmp_path / "data", tmp_path / "models")
    assert settings.calls.max_concurrent_calls is None
    return Appliance.build(settings)


async def test_serve_admits_what_one_measured_turn_allows(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = _built(tmp_path)
    cost = TurnCost(stt_s=0.12, first_s=0.20, reply_s=0.60, tts_s=0.05)

    async def measured(*_: object) -> TurnCost:
        return cost

    monkeypatch.setattr(LocalEngines, "measure_turn", measured)
    with caplog.at_level(logging.INFO):
        await app._size_admission()
    await app.aclose()
    assert app.desk.admission.max_calls == calls_for(cost, target_s=1.5, ceiling=3) == 2
    assert "calls at once: 2, sized from one turn" in caplog.text


async def test_a_failed_probe_leaves_the_core_count_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = _built(tmp_path)
    before = app.desk.admission.max_calls

    async def broken(*_: object) -> TurnCost:
        raise EngineError("the model is not loaded")

    monkeypatch.setattr(LocalEngines, "measure_turn", broken)
    await app._size_admission()
    await app.aclose()
    assert app.desk.admission.max_calls == before
    assert "could not time a turn on the engines" in caplog.text
