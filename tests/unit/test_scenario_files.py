"""Every scenario shipped in tests/scenarios loads: a typo in one is found here, in a second, not
after a bench has loaded every model."""

from __future__ import annotations

import pytest

from appliance.harness.scenario import Scenario, load_scenarios
from tests.conftest import ROOT

FOLDERS = sorted(p for p in (ROOT / "tests" / "scenarios").iterdir() if p.is_dir())


@pytest.mark.parametrize("folder", [ROOT / "tests" / "scenarios", *FOLDERS], ids=lambda p: p.name)
def test_every_shipped_scenario_loads(folder: object) -> None:
    scenarios = load_scenarios([folder])  # type: ignore[list-item]
    assert scenarios and all(isinstance(s, Scenario) for s in scenarios)
    assert len({s.name for s in scenarios}) == len(scenarios)


def test_the_booking_scenarios_speak_for_their_own_numbers() -> None:
    bookings = load_scenarios([ROOT / "tests" / "scenarios" / "bookings"])
    numbers = [s.caller_id for s in bookings]
    assert all(numbers) and len(set(numbers)) == len(numbers)
