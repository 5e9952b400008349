"""Turn latency with N calls at once, each over real SIP on loopback.

    MODELS_DIR=... python -m bench.concurrent_calls [--calls 1 2 3] [--rounds 2] [--json F]

For each N, N callers (each a second pjsua2 endpoint in its own process, as `appliance harness
--via sip` places calls) ring the real appliance (the installed models) at the same moment and
each says the five short recordings of tests/fixtures/audio/cards, one turn at a time. Every
caller turn is measured twice: mouth to ear at the caller's media edge (its last voiced frame
sent to the first voiced frame heard back, to a 20 ms tick) and the appliance's own turn
latency (end of speech to first reply audio). A turn the agent never answered counts as the
call's length, not as missing.

The N=1 row is measured in the same run, so each row's ratio to it is what the other calls
cost a caller, whatever the machine's load. MAX_CONCURRENT_CALLS is set to the largest N.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from appliance.app import Appliance
from appliance.conversation.ports import CallInfo
from appliance.harness.call import CallReport
from appliance.harness.sipvia import SipVia
from appliance.settings import Settings
from appliance.telephony.script import HangUp, Speak, Step
from appliance.telephony.wavfile import load_wav
from bench.sip_latency import mouth_to_ear

ROOT = Path(__file__).resolve().parents[1]
CARDS = sorted((ROOT / "tests" / "fixtures" / "audio" / "cards").glob("*.wav"))


def _steps() -> list[Step]:
    return [*(Speak(load_wav(path).pcm, label=path.name) for path in CARDS), HangUp()]


_STAGES = ("endpoint", "stt", "llm_first_token", "first_sentence", "tts_first_audio")
"""The turn's stages whose medians each row also reports (where a turn's time went)."""


def _p95(values: Sequence[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) > 1 else values[0]


async def _one_round(sip: SipVia, n: int, round_: int) -> list[tuple[CallReport, list[int]]]:
    """N calls placed at the same moment; each report with its caller's send lag."""

    async def call(k: int) -> tuple[CallReport, list[int]]:
        info = CallInfo(call_id=f"bench-{n}-{round_}-{k}", line="sip", caller=f"bench-{k}")
        report = await sip.place(_steps(), info=info)
        return report, list(sip.by_call[info.call_id].get("send_lag", []))

    return list(await asyncio.gather(*(call(k) for k in range(n))))


async def run(sizes: Sequence[int], rounds: int) -> dict[str, dict[str, float | int]]:
    os.environ["MAX_CONCURRENT_CALLS"] = str(max(sizes))
    app = Appliance.build(Settings.load(None))
    print("Loading models ...", file=sys.stderr, flush=True)
    await app.start()
    rows: dict[str, dict[str, float | int]] = {}
    try:
        async with SipVia(app.loopback_sip) as sip:
            for n in sizes:
                ear: list[float] = []
                turns: list[float] = []
                stages: dict[str, list[float]] = {stage: [] for stage in _STAGES}
                unanswered = 0
                started = time.monotonic()
                for round_ in range(rounds):
                    print(f"{n} call(s) at once, round {round_ + 1}/{rounds}", file=sys.stderr,
                          flush=True)  # fmt: skip
                    for report, lag in await _one_round(sip, n, round_):
                        measured = mouth_to_ear(report, lag)
                        ear.extend(measured)
                        turns.extend(
                            t.timings_ms["turn"] for t in report.turns if "turn" in t.timings_ms
                        )
                        for stage, took in stages.items():
                            took.extend(
                                t.timings_ms[stage] for t in report.turns if stage in t.timings_ms
                            )
                        unanswered += max(0, len(CARDS) - len(measured))
                rows[str(n)] = {
                    "calls": n * rounds,
                    "turns": len(ear),
                    "unanswered": unanswered,
                    "ear_p50_ms": statistics.median(ear) if ear else float("nan"),
                    "ear_p95_ms": _p95(ear) if ear else float("nan"),
                    "turn_p50_ms": statistics.median(turns) if turns else float("nan"),
                    "turn_p95_ms": _p95(turns) if turns else float("nan"),
                    "wall_s": round(time.monotonic() - started, 1),
                    **{
                        f"{stage}_p50_ms": statistics.median(took) if took else float("nan")
                        for stage, took in stages.items()
                    },
                }
    finally:
        await app.aclose()
    return rows


def _print(rows: dict[str, dict[str, float | int]]) -> None:
    base = rows.get("1")
    print(f"{'calls at once':>13} {'turns':>6} {'unanswered':>10} {'ear p50':>8} {'ear p95':>8} "
          f"{'turn p50':>9} {'turn p95':>9} {'p95 / 1 call':>12}")  # fmt: skip
    for n, row in rows.items():
        ratio = (
            f"{row['turn_p95_ms'] / base['turn_p95_ms']:.2f}x"
            if base and base["turn_p95_ms"]
            else "-"
        )
        print(
            f"{n:>13} {row['turns']:>6} {row['unanswered']:>10} {row['ear_p50_ms']:>8.0f} "
            f"{row['ear_p95_ms']:>8.0f} {row['turn_p50_ms']:>9.0f} {row['turn_p95_ms']:>9.0f} "
            f"{ratio:>12}"
        )
    for n, row in rows.items():
        print(f"{n} at once, stage medians: " + ", ".join(
            f"{stage} {row[f'{stage}_p50_ms']:.0f} ms" for stage in _STAGES))  # fmt: skip
    load = os.getloadavg()
    print(f"load average at the end: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} "
          f"on {os.cpu_count()} cores")  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--calls", type=int, nargs="+", default=[1, 2, 3],
                        help="how many calls at once, each a row (default 1 2 3)")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=2, help="times each row is placed")
    parser.add_argument("--json", type=Path, help="write the rows here")
    args = parser.parse_args(argv)
    rows = asyncio.run(run(args.calls, args.rounds))
    _print(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
