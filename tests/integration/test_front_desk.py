"""The default language model at the front desk: a few of tests/scenarios/front-desk through
`appliance harness`, the real engines in real time, one for each thing a caller came for (the
hours worked out in code, the weather, the time, a person, a fact of the profile, a goodbye).

The whole suite (35 caller turns, about ten minutes) is `bench/front_desk.py`; its pass rate per
model is in the README. The tests' other calls run on the 0.5B (`PIPELINE_LLM`); these run on the
model a board gets by default.
"""

from __future__ import annotations

from pathlib import Path

from appliance.settings import EngineSettings
from tests.support.front_desk import run_suite, summary

DEFAULT_LLM = EngineSettings.model_fields["llm_model"].default
SCENARIOS = ["hours-saturday", "weather-tomorrow", "time-now", "a-person", "address", "goodbye"]


def test_the_default_model_does_the_front_desks_job(tmp_path: Path, models_dir: Path) -> None:
    results = run_suite(tmp_path / "data", models_dir, DEFAULT_LLM, SCENARIOS)
    assert sorted(str(r["name"]) for r in results) == sorted(SCENARIOS)
    passed, total, failures = summary(results)
    assert failures == [], f"{passed}/{total} caller turns passed"
    assert passed == total == len(SCENARIOS)
