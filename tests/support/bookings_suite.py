"""The booking scenario suite: tests/scenarios/bookings through `appliance harness` (the real
engines, real-time calls) against a real Radicale server, then the calendar itself checked.

Before the run the calendar is given what the scenarios need: the `move` and `cancel` callers'
own appointments, and a day (next Thursday) with every slot taken. After it, each scenario's
`CHECKS` entry reads the calendar: a scenario passes only if its conversation passed and the
calendar holds what it must and nothing it must not.

Shared by tests/integration/test_booking_scenarios.py (a few scenarios) and
`bench/bookings.py` (all of them).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from appliance.bookings.calendar import Appointment
from appliance.bookings.dav import CalDavCalendar
from appliance.bookings.slots import at_local, day_bounds
from appliance.conversation.profile import BusinessProfile
from tests.support.front_desk import harness
from tests.support.radicale import PASSWORD, USER, Radicale

__all__ = ["SUITE", "run_bookings", "summary"]

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "tests" / "scenarios" / "bookings"
PROFILE = ROOT / "business.example.toml"
CALENDAR = "Bookings"
SOMEONE_ELSE = "+15550100999"


@dataclass(frozen=True, slots=True)
class Days:
    """The days the scenarios name, resolved as the appliance resolves them."""

    profile: BusinessProfile

    def day(self, said: str) -> dt.date:
        day = self.profile.resolve_day(said, dt.datetime.now(dt.UTC))
        assert day is not None, said
        return day

    def at(self, said: str, hour: int, minute: int = 0) -> dt.datetime:
        return at_local(self.day(said), dt.time(hour, minute), self.profile.timezone)


Check = Callable[[Days, list[Appointment]], list[str]]
"""What is wrong with the calendar after a scenario (every appointment in the next 3 weeks)."""


def _of(caller: str, held: list[Appointment]) -> list[Appointment]:
    return [a for a in held if a.caller == caller]


def _booked(caller: str, day: str, hour: int, minute: int = 0) -> Check:
    def check(days: Days, held: list[Appointment]) -> list[str]:
        own = _of(caller, held)
        at = days.at(day, hour, minute)
        if [a.start for a in own] != [at]:
            return [f"calendar: {caller} should hold one appointment at {at}, holds {own}"]
        return []

    return check


def _nothing_for(caller: str) -> Check:
    def check(days: Days, held: list[Appointment]) -> list[str]:
        own = _of(caller, held)
        return [f"calendar: nothing should be booked for {caller}, found {own}"] if own else []

    return check


CHECKS: dict[str, Check] = {
    "book": _booked("+15550100301", "next tuesday", 10),
    "changed-mind": _nothing_for("+15550100302"),
    "outside-hours": _nothing_for("+15550100303"),
    "ambiguous-time": _booked("+15550100304", "next tuesday", 15, 30),
    "full-day": _nothing_for("+15550100305"),
    "move": _booked("+15550100306", "next wednesday", 14),
    "cancel": _nothing_for("+15550100307"),
}


def _seed(profile: BusinessProfile) -> list[Appointment]:
    """The move and cancel callers' appointments, and next Thursday taken from open to close."""
    days = Days(profile)
    seeded = [
        _appointment("move", days.at("next tuesday", 9), 30, "Emergency visit", "+15550100306"),
        _appointment("cancel", days.at("next monday", 11), 45, "Check-up and cleaning",
                     "+15550100307"),
    ]  # fmt: skip
    thursday = days.day("next thursday")
    for n, (start, end) in enumerate(profile.hours_on(thursday).ranges):
        begin = at_local(thursday, start, profile.timezone)
        minutes = int((at_local(thursday, end, profile.timezone) - begin).total_seconds() // 60)
        seeded.append(_appointment(f"full-{n}", begin, minutes, "Filling", SOMEONE_ELSE))
    return seeded


def _appointment(
    name: str, start: dt.datetime, minutes: int, service: str, caller: str
) -> Appointment:
    end = start + dt.timedelta(minutes=minutes)
    return Appointment(f"seed-{name}@tests", start, end, service, caller)


def run_bookings(
    models_dir: Path | None, model: str | None = None, only: list[str] | None = None
) -> list[dict[str, object]]:
    """Run the suite (or the scenarios named in `only`) and check the calendar; the harness's
    JSON results, each scenario's calendar failures added to its own."""
    profile = BusinessProfile.load(PROFILE)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        (folder / "radicale").mkdir()
        server = Radicale(folder / "radicale")
        try:
            server.calendar(CALENDAR)
            calendar = CalDavCalendar(
                server.url, username=USER, password=PASSWORD, calendar=CALENDAR
            )
            for appointment in _seed(profile):
                asyncio.run(calendar.save(appointment))
            results = _harness(folder, server.url, models_dir, model, only)
            start, _ = day_bounds(dt.datetime.now(profile.timezone).date(), profile.timezone)
            held = asyncio.run(calendar.between(start, start + dt.timedelta(days=21)))
        finally:
            server.stop()
    days = Days(profile)
    for result in results:
        check = CHECKS.get(str(result["name"]))
        wrong = check(days, held) if check is not None else ["no calendar check for it"]
        if wrong:
            result["passed"] = False
            result["failures"] = [*result["failures"], *wrong]  # type: ignore[misc]
    return results


def _harness(
    folder: Path, url: str, models_dir: Path | None, model: str | None, only: list[str] | None
) -> list[dict[str, object]]:
    paths = [str(SUITE / f"{name}.yaml") for name in only] if only else [str(SUITE)]
    env = {
        **os.environ,
        "APPLIANCE_DATA_DIR": str(folder / "data"),
        "AGENT_NAME": "Sam",
        "BUSINESS_FILE": str(PROFILE),
        "CALDAV_URL": url,
        "CALDAV_USERNAME": USER,
        "CALDAV_PASSWORD": PASSWORD,
        "CALDAV_CALENDAR": CALENDAR,
        **({"MODELS_DIR": str(models_dir)} if models_dir else {}),
        **({"LLM_MODEL": model} if model else {}),
    }
    return harness(paths, env)


def summary(results: list[dict[str, object]]) -> tuple[int, int, list[str]]:
    """(scenarios passed, scenarios, every failure named by its scenario)."""
    passed = sum(1 for r in results if r["passed"])
    failures = [
        f"{r['name']}: {failure}"
        for r in results
        for failure in r["failures"]  # type: ignore[attr-defined]
    ]
    return passed, len(results), failures
