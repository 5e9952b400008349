"""The SIP line under attack: legitimate calls during an INVITE flood, and memory over many calls.

    .venv/bin/python -m bench.sip_hostile [--runs 3] [--calls 200] [--json results.json]

No models: the listener answers with the test suite's probe (it plays a tone and listens), on
loopback, in this process, so the RSS figures are this process's (pjsua2, the listener, the
sessions), the appliance less its models.

Flood: the box takes calls three at a time, ten a source per 10 s (the default rate), in the
pjsua2 wheel's four pjsua calls; the flood comes from a stranger (outside SIP_ALLOWED_SOURCES)
and then from an allowed peer. Two calls from 127.0.0.1 are in progress
(5 s each, sipp echoing our audio) when a second source (127.0.0.2) sends 200 INVITEs 10 ms
apart and never ACKs; meanwhile 127.0.0.1 places five new calls of 500 ms, one at a time, two a
second. A call is answered when sipp got 200 OK, and kept when it then lasted until sipp hung
up, its BYE was answered 200, and our tone came back in its echo (audio both ways). Each figure
is the median over `--runs` floods.

Memory: `--calls` sequential calls of 300 ms with RTP echo; RSS at the start, after half of
them, and after all.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from appliance.clock import LoopClock
from appliance.telephony.calls import Admission
from tests.support.sip import FakeCalls, Probe, RawSip, fake_listener, final_codes, run_sipp

HELD = 2
NEW = 5
FLOOD = 200
FLOODER = "127.0.0.2"


def rss_kb() -> int:
    """This process's resident set size, in kB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


FLOODER_IS = {"a stranger": "127.0.0.1/32", "an allowed peer": "127.0.0.0/8"}
"""Whom the flood comes from: SIP_ALLOWED_SOURCES for each case."""


def _admission(allowed: str) -> Callable[[LoopClock], Admission]:
    def made(clock: LoopClock) -> Admission:
        return Admission(clock=clock, max_calls=3, allowed=[ipaddress.ip_network(allowed)])

    return made


def _answered_and_ended(messages: str) -> tuple[int, int]:
    """From sipp's message log: calls that got 200 OK to their INVITE, and BYEs answered 200."""
    oks = re.findall(r"^SIP/2\.0 200 .*?^CSeq: *\d+ (INVITE|BYE)", messages, re.M | re.S)
    return oks.count("INVITE"), oks.count("BYE")


async def flood_once(work: Path, allowed: str) -> dict[str, int]:
    """One flood, beside calls in progress and calls placed while it lasts; what each got."""
    for folder in ("held", "new"):
        (work / folder).mkdir(parents=True)
    async with fake_listener(admission=_admission(allowed), probe=Probe) as calls:
        held = asyncio.create_task(
            run_sipp(calls.port, "-m", str(HELD), "-l", str(HELD), "-r", "10", "-d", "5000",
                     "-rtp_echo", service="held", work_dir=work / "held", limit_s=60)
        )  # fmt: skip
        await until(lambda: _heard(calls, "held") >= HELD or held.done(), within_s=15)
        new = asyncio.create_task(
            run_sipp(calls.port, "-m", str(NEW), "-l", "1", "-r", "2", "-d", "500",
                     "-rtp_echo", service="new", work_dir=work / "new", limit_s=60)
        )  # fmt: skip
        flooder = RawSip(calls.port, source=FLOODER)
        try:
            invites = [flooder.invite(f"flood{i}") for i in range(FLOOD)]
            flood_finals = final_codes(await flooder.flood(invites, spacing_s=0.01))
        finally:
            flooder.close()
        held_run, new_run = await held, await new
        held_ok, held_ended = _answered_and_ended(held_run.messages)
        new_ok, new_ended = _answered_and_ended(new_run.messages)
        return {
            "held": HELD,
            "held_kept": min(held_ok, held_ended, _heard(calls, "held")),
            "new_placed": NEW,
            "new_answered": new_ok,
            "new_kept": min(new_ended, _heard(calls, "new")),
            "flood_answered_200": sum(code == 200 for code in flood_finals.values()),
            "flood_refused": sum(code >= 300 for code in flood_finals.values()),
            "flood_unanswered": FLOOD - len(flood_finals),
        }


async def until(condition: Callable[[], bool], within_s: float) -> None:
    """Poll `condition` until true or `within_s` has passed (the figures then say what failed)."""
    deadline = time.monotonic() + within_s
    while not condition() and time.monotonic() < deadline:  # noqa: ASYNC110 - no event to await
        await asyncio.sleep(0.02)


def _heard(calls: FakeCalls, callee: str) -> int:
    """Calls to `callee` whose caller echoed our tone back: audio went both ways."""
    return sum(1 for p in calls.sessions if p.line.info.callee == callee and p.loud_frames())


async def memory(work: Path, count: int) -> dict[str, int]:
    """RSS (kB) at the start, after half the calls and after all of them."""
    two_slots = lambda clock: Admission(clock=clock, max_calls=2, rate_limit=0)  # noqa: E731
    samples = {"start": rss_kb()}
    async with fake_listener(admission=two_slots, record=False, probe=Probe) as calls:
        status = calls.listener.status
        samples["listening"] = rss_kb()
        for label, calls_now in ((f"after_{count // 2}", count // 2), (f"after_{count}", count)):
            done = status.calls_answered
            run = await run_sipp(
                calls.port, "-m", str(calls_now - done), "-l", "1", "-r", "20", "-d", "300",
                "-rtp_echo", work_dir=work, limit_s=600,
            )  # fmt: skip
            if run.returncode != 0:
                raise RuntimeError(f"sipp failed: {run.screen[-2000:]}")
            await calls.settled()
            samples[label] = rss_kb()
    return samples


async def run(runs: int, count: int) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="sip-hostile-"))
    figures: dict[str, object] = {}
    for who, allowed in FLOODER_IS.items():
        floods = []
        for n in range(runs):
            print(f"flood {n + 1}/{runs} from {who}", file=sys.stderr, flush=True)
            floods.append(await flood_once(work / f"{who}-{n}".replace(" ", "-"), allowed))
        figures[who] = floods
        _print_floods(who, allowed, floods)
    print(f"{count} sequential calls", file=sys.stderr, flush=True)
    rss = await memory(work, count)
    print("RSS of this process (the listener and probe sessions, no models)")
    for label, kb in rss.items():
        print(f"  {label:<12} {kb / 1024:8.1f} MB")
    figures["rss_kb"] = rss
    return figures


def _print_floods(who: str, allowed: str, floods: list[dict[str, int]]) -> None:
    median = {key: statistics.median(f[key] for f in floods) for key in floods[0]}
    print(
        f"Legitimate calls during a {FLOOD}-INVITE flood from {who} ({FLOODER}; "
        f"SIP_ALLOWED_SOURCES={allowed}), median of {len(floods)}"
    )
    print(f"  in progress when it began: {median['held_kept']:.0f} of {HELD} kept")
    print(f"  placed while it lasted:    {median['new_answered']:.0f} of {NEW} answered, "
          f"{median['new_kept']:.0f} kept")  # fmt: skip
    print(f"  the flood: {median['flood_answered_200']:.0f} answered 200, "
          f"{median['flood_refused']:.0f} refused, "
          f"{median['flood_unanswered']:.0f} unanswered")  # fmt: skip
    print("  per run (held kept, new answered/kept): " + "; ".join(
        f"{f['held_kept']}, {f['new_answered']}/{f['new_kept']}" for f in floods))  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="floods (default 3)")
    parser.add_argument("--calls", type=int, default=200, help="sequential calls (default 200)")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    args = parser.parse_args(argv)
    figures = asyncio.run(run(args.runs, args.calls))
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
