"""Fifty sequential SIP calls against a listener in this process, printing RSS as they go.

Run by tests/integration/test_sip_soak.py in a child process, so that a pj assertion (an abort)
or a hang at shutdown shows up as this process's exit status and output, not as a dead test run.
Prints `calls N rss_kb R objects O` after every ten calls (O: objects the Python collector
tracks) and `clean` once pjsua2 has been destroyed.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import tempfile
from pathlib import Path

from appliance.telephony.calls import Admission
from tests.support.sip import fake_listener, run_sipp

CALLS = int(sys.argv[1]) if len(sys.argv) > 1 else 50


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="sip-soak-"))
    # sipp places each call the moment the last one ends, a few milliseconds before that call's
    # session has given its slot back: two slots, so that instant is not a busy signal.
    two_slots = lambda clock: Admission(clock=clock, max_calls=2, rate_limit=0)  # noqa: E731
    async with fake_listener(admission=two_slots, record=False) as calls:
        status = calls.listener.status
        caller = asyncio.create_task(
            run_sipp(
                calls.port, "-m", str(CALLS), "-l", "1", "-r", "20", "-d", "300", "-rtp_echo",
                work_dir=work, limit_s=240,
            )
        )  # fmt: skip
        printed = 0
        while not caller.done():
            done = status.calls_answered - status.active_calls
            if done >= printed + 10 and done < CALLS:
                printed = done - done % 10  # every ten calls
                print(
                    f"calls {printed} rss_kb {rss_kb()} objects {len(gc.get_objects())}",
                    flush=True,
                )
            await asyncio.sleep(0.05)
        run = await caller
        ended = status.calls_answered - status.active_calls
        print(
            f"calls {ended} rss_kb {rss_kb()} objects {len(gc.get_objects())} "
            f"sipp {run.returncode}",
            flush=True,
        )
        if run.returncode != 0:
            print(run.screen, file=sys.stderr)
            return 1
    print("clean", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
