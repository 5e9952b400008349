"""Mouth-to-ear latency of a turn over SIP, beside the same turns in process.

    python -m bench.sip_latency [--calls 3] [--codec PCMU]

Each call is one caller saying five short recordings (tests/fixtures/audio/cards), one turn at
a time, to the real appliance (the installed models). Calls alternate between the in-process
WAV line and real SIP over loopback (`appliance harness --via sip`'s caller: a second pjsua2
endpoint in its own process), so both see the same machine load.

Mouth-to-ear, per turn, at the caller's media edge: from the caller's last voiced frame (the
last RTP packet carrying its voice; louder than -45 dBFS) to the first voiced frame it hears
back. Over SIP that includes RTP over loopback and both jitter buffers; in process the caller
hands frames to the session directly. Accurate to a 20 ms tick. The appliance's own turn
latency (end of speech to first reply audio, as the session measures it) is shown beside. Both
move with the machine's load far more than with the line: compare medians of calls made under
the same load, and read the echo figure below for what SIP itself costs.

What SIP itself adds is measured apart, without the engines and so without their load: an echo
answers each call and plays back every frame at once, and the caller times its voice's round
trip (RTP out, the appliance's jitter buffer and conference bridge, RTP back, its own).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np

from appliance.app import Appliance
from appliance.audio.frame import frames_of, rms_dbfs
from appliance.conversation.ports import CallInfo, CallLine
from appliance.harness.call import CallReport, run_wav_call
from appliance.harness.sipvia import SipVia
from appliance.settings import Settings
from appliance.telephony.calls import Admission, CallDesk
from appliance.telephony.script import VOICED_DBFS, HangUp, Speak, Step
from appliance.telephony.wavfile import load_wav

ROOT = Path(__file__).resolve().parents[1]
CARDS = sorted((ROOT / "tests" / "fixtures" / "audio" / "cards").glob("*.wav"))


def mouth_to_ear(report: CallReport, send_lag: Sequence[int] = ()) -> list[float]:
    """Per caller turn: ms from its last voiced frame sent to the first voiced frame heard."""
    rec = report.line
    voiced_out = [rms_dbfs(f) > VOICED_DBFS for f in rec.caller_audio]
    voiced_in = [rms_dbfs(f) > VOICED_DBFS for f in rec.agent_audio]
    starts = [e.at_ms // 20 for e in rec.timeline if e.what == "caller-start"]
    ends = [e.at_ms // 20 for e in rec.timeline if e.what == "caller-end"]
    latencies = []
    for start, end in zip(starts, ends, strict=False):
        spoken = [t for t in range(start, min(end + 1, len(voiced_out))) if voiced_out[t]]
        if not spoken:
            continue
        last = spoken[-1]
        # Frames queued for the media clock go out that many ticks later (SIP only).
        sent = last + max(0, send_lag[last] - 1) if last < len(send_lag) else last
        heard = next((t for t in range(sent + 1, len(voiced_in)) if voiced_in[t]), None)
        if heard is not None:
            latencies.append((heard - sent) * 20.0)
    return latencies


def echo_round_trip(report: CallReport, send_lag: Sequence[int]) -> list[float]:
    """Per caller turn: ms from its first voiced frame sent to the first voiced echo heard."""
    rec = report.line
    voiced_out = [rms_dbfs(f) > VOICED_DBFS for f in rec.caller_audio]
    voiced_in = [rms_dbfs(f) > VOICED_DBFS for f in rec.agent_audio]
    trips = []
    for event in rec.timeline:
        if event.what != "caller-voice":
            continue
        first = event.at_ms // 20
        if first >= len(voiced_out) or not voiced_out[first]:
            continue
        sent = first + max(0, send_lag[first] - 1) if first < len(send_lag) else first
        heard = next((t for t in range(sent + 1, len(voiced_in)) if voiced_in[t]), None)
        if heard is not None:
            trips.append((heard - sent) * 20.0)
    return trips


class _Echo:
    """Stands in for a CallSession: a short beep (so the caller starts), then each frame back."""

    def __init__(self, line: CallLine) -> None:
        self._line = line

    async def run(self) -> str:
        for frame in frames_of(_beep()):
            await self._line.play(frame)
        async for frame in self._line.listen():
            # Only the newest frame waits: a backlog in the outbound buffer would add its own
            # length to every round trip (a reply's first frame never waits behind one).
            await self._line.clear()
            await self._line.play(frame)
        return "caller hung up"


def _beep() -> bytes:
    t = np.arange(1600) / 16000
    return (np.sin(2 * np.pi * 600 * t) * 8000).astype("<i2").tobytes()


async def measure_echo(app: Appliance, codec: str, calls: int) -> list[float]:
    """SIP round trips with an echo in place of the appliance's session."""
    desk = CallDesk(
        Admission(clock=app.clock, max_calls=1, rate_limit=0), lambda line, *_: _Echo(line),
        app.metrics,
    )  # fmt: skip
    burst = _beep() * 3
    steps: list[Step] = [Speak(burst, gap_ms=400) for _ in range(5)]
    trips: list[float] = []
    listener = partial(app.sip_listener, bind_address="127.0.0.1", port=0, rtp_port=0,
                       desk=desk, register=False)  # fmt: skip
    async with SipVia(lambda sinks: listener(sinks=sinks), codecs=[codec]) as sip:
        for n in range(calls):
            info = CallInfo(call_id=f"echo-{n}", line="sip", caller="bench")
            report = await sip.place([*steps, HangUp(gap_ms=300)], info=info)
            trips.extend(echo_round_trip(report, sip.results[-1]["send_lag"]))
    return trips


def _steps() -> list[Step]:
    return [*(Speak(load_wav(path).pcm, label=path.name) for path in CARDS), HangUp()]


_Found = tuple[list[float], list[float]]
"""Mouth-to-ear, and the appliance's own turn latency."""


def _row(name: str, found: _Found) -> str:
    values, turns = found
    if not values:
        return f"{name:<26} {'-':>5}"
    q = statistics.quantiles(values, n=10) if len(values) > 1 else values
    return (
        f"{name:<26} {len(values):>5} {statistics.median(values):>10.0f} {q[-1]:>7.0f} "
        f"{min(values):>6.0f} {max(values):>6.0f} {statistics.median(turns):>14.0f}"
    )


async def run(calls: int, codec: str) -> int:
    app = Appliance.build(Settings.load(None))
    print("Loading models ...", file=sys.stderr, flush=True)
    await app.start()
    print("Measuring the SIP round trip with an echo ...", file=sys.stderr, flush=True)
    trips = await measure_echo(app, codec, calls)
    found: dict[str, _Found] = {"wav": ([], []), "sip": ([], [])}
    try:
        async with SipVia(app.loopback_sip, codecs=[codec]) as sip:
            for n in range(calls):
                for name in ("wav", "sip"):
                    print(f"call {n + 1}/{calls} over {name}", file=sys.stderr, flush=True)
                    info = CallInfo(call_id=f"bench-{name}-{n}", line=name, caller="bench")
                    if name == "wav":
                        report = await run_wav_call(
                            app.answer,
                            _steps(), clock=app.clock, info=info,
                        )  # fmt: skip
                    else:
                        report = await sip.place(_steps(), info=info)
                    lag = sip.results[-1]["send_lag"] if name == "sip" else ()
                    found[name][0].extend(mouth_to_ear(report, lag))
                    found[name][1].extend(
                        t.timings_ms["turn"] for t in report.turns if "turn" in t.timings_ms
                    )
    finally:
        await app.aclose()
    print(f"Mouth-to-ear latency of a turn, {calls} calls of {len(CARDS)} turns each, medians")
    print(f"{'line':<26} {'turns':>5} {'median ms':>10} {'p90':>7} {'min':>6} {'max':>6} "
          f"{'appliance turn':>14}")  # fmt: skip
    print(_row("in process (WAV line)", found["wav"]))
    print(_row(f"SIP over loopback ({codec})", found["sip"]))
    if trips:
        print(
            f"SIP line alone, voice out and back ({codec}, echo): median "
            f"{statistics.median(trips):.0f} ms over {len(trips)} round trips "
            f"(min {min(trips):.0f}, max {max(trips):.0f})"
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=3, help="calls per line (default 3)")
    parser.add_argument("--codec", choices=("PCMU", "PCMA", "G722"), default="PCMU")
    args = parser.parse_args(argv)
    return asyncio.run(run(args.calls, args.codec))


if __name__ == "__main__":
    sys.exit(main())
