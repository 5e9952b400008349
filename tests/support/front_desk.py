"""The front-desk scenario suite run through `appliance harness` (the real engines, real-time
calls) over business.example.toml, with the weather from a fake Open-Meteo on a loopback port.

Shared by tests/integration/test_front_desk.py (a few scenarios, the default model) and
`bench/front_desk.py` (all of them, per model).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

from tests.support.fake_weather import Day, FakeWeather, fake_weather

__all__ = ["PROFILE", "SUITE", "harness", "run_suite", "summary"]

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "tests" / "scenarios" / "front-desk"
PROFILE = ROOT / "business.example.toml"


def run_suite(
    data: Path, models_dir: Path | None, model: str | None, only: list[str] | None = None
) -> list[dict[str, object]]:
    """Run the suite (or the scenarios named in `only`); the harness's JSON results."""
    zone = ZoneInfo("America/New_York")
    today = dt.datetime.now(zone).date()
    days = [
        Day(today + dt.timedelta(days=n), wmo=61 if n == 0 else 2, high_c=8.0 + n, low_c=1.0 + n,
            precipitation=70 if n == 0 else 10)
        for n in range(7)
    ]  # fmt: skip
    paths = [str(SUITE / f"{name}.yaml") for name in only] if only else [str(SUITE)]
    now = dt.datetime.now(dt.UTC).timestamp()
    with fake_weather(FakeWeather(zone=zone.key, now=now, days=days)) as served:
        env = {
            **os.environ,
            "APPLIANCE_DATA_DIR": str(data),
            "AGENT_NAME": "Sam",
            "BUSINESS_FILE": str(PROFILE),
            "OPEN_METEO_URL": served.url,
            "OPEN_METEO_GEOCODING_URL": served.url,
            **({"MODELS_DIR": str(models_dir)} if models_dir else {}),
            **({"LLM_MODEL": model} if model else {}),
        }
        return harness(paths, env)


def harness(paths: list[str], env: dict[str, str]) -> list[dict[str, object]]:
    """`appliance harness PATHS --json` in `env`: its results (the harness ran every scenario
    even when some failed)."""
    done = subprocess.run(
        [sys.executable, "-m", "appliance", "harness", *paths, "--json"],
        capture_output=True, text=True, env=env, timeout=3000, cwd=ROOT, check=False,
    )  # fmt: skip
    if not done.stdout:
        raise RuntimeError(f"the harness printed nothing: {done.stderr[-2000:]}")
    results: list[dict[str, object]] = json.loads(done.stdout)
    return results


def summary(results: list[dict[str, object]]) -> tuple[int, int, list[str]]:
    """(caller turns passed, caller turns, every failure named by its scenario)."""
    passed = sum(int(str(r["utterances_passed"])) for r in results)
    total = sum(int(str(r["utterances"])) for r in results)
    failures = [
        f"{r['name']}: {failure}"
        for r in results
        for failure in r["failures"]  # type: ignore[attr-defined]
    ]
    return passed, total, failures
