"""The front-desk scenario suite's pass rate, per language model, on this machine.

    .venv/bin/python -m bench.front_desk [MODEL ...] [--only NAME ...]

Runs tests/scenarios/front-desk through `appliance harness` (the real engines, real-time calls)
once per model, over business.example.toml, with the weather from a fake Open-Meteo on a
loopback port, and prints the caller turns passed and every failure. Models are manifest names
(`appliance models list`); none given runs the default.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

from tests.support.fake_weather import Day, FakeWeather, fake_weather

ROOT = Path(__file__).resolve().parents[1]
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="manifest names (default: the default model)")
    parser.add_argument("--only", nargs="*", help="scenario names to run (default: all)")
    parser.add_argument("--json", type=Path, help="write every model's results here")
    args = parser.parse_args()
    everything: dict[str, object] = {}
    for model in args.models or [None]:
        started = time.monotonic()
        with tempfile.TemporaryDirectory() as data:
            results = run_suite(Path(data), None, model, args.only)
        passed, total, failures = summary(results)
        name = model or "default"
        print(f"{name}: {passed}/{total} caller turns passed ({passed / total:.0%}) "
              f"in {time.monotonic() - started:.0f} s", flush=True)  # fmt: skip
        for failure in failures:
            print(f"  {failure}", flush=True)
        everything[name] = results
    if args.json:
        args.json.write_text(json.dumps(everything, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
