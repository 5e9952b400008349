"""The default stack's memory: resident set size after start and over many calls.

    MODELS_DIR=... python -m bench.resident [--calls 200] [--every 25] [--json F]

Starts the appliance as `serve` does (the installed default models), then answers `--calls`
calls one after another through the in-process WAV line, each caller saying one short
recording (tests/fixtures/audio/cards) and hanging up, with the post-call jobs (summaries,
caller facts, embeddings) running beside them as in `serve`. The process's RSS (VmRSS) is
sampled after start and every `--every` calls, once that many calls' post-call jobs have run.
Growth per call is the slope of a least-squares line through the samples after the first
(the first calls warm the caches).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from appliance.app import Appliance
from appliance.conversation.ports import CallInfo
from appliance.harness.call import run_wav_call
from appliance.settings import Settings
from appliance.telephony.script import HangUp, Speak
from appliance.telephony.wavfile import load_wav

ROOT = Path(__file__).resolve().parents[1]
CARDS = sorted((ROOT / "tests" / "fixtures" / "audio" / "cards").glob("*.wav"))


def rss_mb() -> float:
    """This process's resident set size, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


async def run(calls: int, every: int) -> dict[str, object]:
    app = Appliance.build(Settings.load(None))
    print("Loading models ...", file=sys.stderr, flush=True)
    started = time.monotonic()
    await app.start()
    samples = [(0, rss_mb())]
    print(f"started in {time.monotonic() - started:.0f} s: {samples[0][1]:.0f} MB",
          file=sys.stderr, flush=True)  # fmt: skip
    runner = app.records.runner
    try:
        for n in range(1, calls + 1):
            card = CARDS[n % len(CARDS)]
            info = CallInfo(call_id=f"rss-{n}", line="wav", caller=f"+1555010{n % 50:04d}")
            await run_wav_call(
                app.answer, [Speak(load_wav(card).pcm, label=card.name), HangUp()],
                clock=app.clock, info=info,
            )  # fmt: skip
            if n % every == 0 or n == calls:
                if runner is not None:
                    await runner.run_until_idle()
                samples.append((n, rss_mb()))
                print(f"{n} calls: {samples[-1][1]:.0f} MB", file=sys.stderr, flush=True)
    finally:
        await app.aclose()
    later = samples[1:]
    slope = (
        float(np.polyfit([n for n, _ in later], [mb for _, mb in later], 1)[0])
        if len(later) > 1
        else float("nan")
    )
    return {
        "after_start_mb": round(samples[0][1], 1),
        "after_calls_mb": round(samples[-1][1], 1),
        "calls": calls,
        "growth_kb_per_call": round(slope * 1024, 1),
        "samples": samples,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--every", type=int, default=25, help="sample RSS every N calls")
    parser.add_argument("--json", type=Path, help="write the result here")
    args = parser.parse_args(argv)
    result = asyncio.run(run(args.calls, args.every))
    print(
        f"RSS after start {result['after_start_mb']} MB, after {result['calls']} calls "
        f"{result['after_calls_mb']} MB ({result['growth_kb_per_call']} kB a call after the first "
        f"{args.every})"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
