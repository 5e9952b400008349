"""INVITEs from many spoofed sources leave nothing behind in admission's rate map once their
window has passed (issue 13), while a call in progress goes on undisturbed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from appliance.clock import LoopClock
from appliance.telephony.calls import Admission
from tests.support.sip import LOOPBACK, Probe, RawSip, fake_listener
from tests.support.sip_beside import call_beside, until

pytestmark = pytest.mark.timeout(120)
SOURCES = 30


def _open_to_anyone(clock: LoopClock) -> Admission:
    return Admission(clock=clock, max_calls=1, rate_limit=5, rate_window_s=3.0)


async def test_the_rate_map_forgets_a_flood_of_sources(tmp_path: Path) -> None:
    async with (
        fake_listener(admission=_open_to_anyone, probe=Probe) as calls,
        call_beside(calls, tmp_path, seconds=8.0),
    ):
        gate = calls.admission
        flood = [RawSip(calls.port, source=f"127.0.1.{i + 1}") for i in range(SOURCES)]
        trunk = RawSip(calls.port)
        try:
            for i, raw in enumerate(flood):
                raw.sock.sendto(raw.invite(f"spoof{i}").encode(), (LOOPBACK, calls.port))
                await asyncio.sleep(0.05)  # under the pace at which pjsua refuses by itself
            # Every source was counted (each INVITE found the one slot taken: 486) ...
            await until(lambda: gate.tracked_sources > SOURCES // 2, within_s=10, what="counted")

            # ... and once their window has passed, the trunk's next INVITE sweeps them out.
            for attempt in range(40):
                if gate.tracked_sources <= 2:
                    break
                trunk.sock.sendto(trunk.invite(f"sweep{attempt}").encode(), (LOOPBACK, calls.port))
                await trunk.listen(0.25)
            assert gate.tracked_sources <= 2, gate.tracked_sources
        finally:
            for raw in [*flood, trunk]:
                raw.close()
