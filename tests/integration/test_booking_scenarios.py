"""Bookings by voice on the default language model: two of tests/scenarios/bookings through
`appliance harness` (the real engines in real time) against a real Radicale server, the
calendar read back afterwards: a yes at the read-back books exactly what was read back, a no
books nothing.

The whole suite (book, move, cancel, a full day, outside hours, an ambiguous time, a change of
mind) is `bench/bookings.py`; its pass rate is in the README.
"""

from __future__ import annotations

from pathlib import Path

from appliance.settings import EngineSettings
from tests.support.bookings_suite import run_bookings, summary

DEFAULT_LLM = EngineSettings.model_fields["llm_model"].default
SCENARIOS = ["book", "changed-mind"]


def test_a_booking_is_made_only_on_the_caller_s_yes(models_dir: Path) -> None:
    results = run_bookings(models_dir, DEFAULT_LLM, SCENARIOS)
    assert sorted(str(r["name"]) for r in results) == sorted(SCENARIOS)
    passed, total, failures = summary(results)
    assert failures == [], f"{passed}/{total} scenarios passed"
