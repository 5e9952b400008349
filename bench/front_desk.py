"""The front-desk scenario suite's pass rate, per language model, on this machine.

    .venv/bin/python -m bench.front_desk [MODEL ...] [--only NAME ...]

Runs tests/scenarios/front-desk through `appliance harness` (the real engines, real-time calls)
once per model, over business.example.toml, with the weather from a fake Open-Meteo on a
loopback port, and prints the caller turns passed and every failure. Models are manifest names
(`appliance models list`); none given runs the default.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from appliance.settings import Settings
from tests.support.front_desk import run_suite, summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="manifest names (default: the default model)")
    parser.add_argument("--only", nargs="*", help="scenario names to run (default: all)")
    parser.add_argument("--json", type=Path, help="write every model's results here")
    args = parser.parse_args()
    everything: dict[str, object] = {}
    # The installed models, found before the data dir moves to a scratch one for the run.
    models_dir = Settings.load(None).paths.models
    for model in args.models or [None]:
        started = time.monotonic()
        with tempfile.TemporaryDirectory() as data:
            results = run_suite(Path(data), models_dir, model, args.only)
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
