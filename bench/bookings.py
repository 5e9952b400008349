"""The booking scenario suite's pass rate on this machine, checked on a real CalDAV calendar.

    .venv/bin/python -m bench.bookings [--model NAME] [--only NAME ...] [--json FILE]

Runs tests/scenarios/bookings through `appliance harness` (the real engines, real-time calls)
over business.example.toml with a Radicale server on loopback as the calendar, then reads the
calendar: a scenario passes when its conversation did and the calendar holds what it must.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from appliance.settings import Settings
from tests.support.bookings_suite import run_bookings, summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a manifest name (default: the default model)")
    parser.add_argument("--only", nargs="*", help="scenario names to run (default: all)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    started = time.monotonic()
    results = run_bookings(Settings.load(None).paths.models, args.model, args.only)
    passed, total, failures = summary(results)
    print(f"{args.model or 'default'}: {passed}/{total} booking scenarios passed "
          f"({passed / total:.0%}) in {time.monotonic() - started:.0f} s", flush=True)  # fmt: skip
    for failure in failures:
        print(f"  {failure}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0 if passed == total else 1


if __name__ == "__main__":
    sys.exit(main())
