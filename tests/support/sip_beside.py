"""A legitimate call held beside an attack, and the checks that the attack left it alone."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from tests.support.sip import FakeCalls, Probe, run_sipp


async def until(condition: Callable[[], bool], *, within_s: float, what: str) -> None:
    """Poll `condition` every 20 ms; AssertionError naming `what` if it is not true in time."""
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within_s:.0f} s: {what}")
        await asyncio.sleep(0.02)


@dataclass
class LegitCall:
    """The call sipp is holding: its session's probe, and what sipp has sent and received."""

    probe: Probe
    log_dir: Path

    def messages(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.log_dir.glob("*messages.log"))

    def tags(self) -> tuple[str, str]:
        """(the caller's From tag, our To tag), as the 200 OK to the INVITE carried them."""
        ok = self.messages().split("SIP/2.0 200 OK", 1)[1]
        sender = re.search(r"^From:.*;tag=([^;\s>]+)", ok, re.M | re.I)
        ours = re.search(r"^To:.*;tag=([^;\s>]+)", ok, re.M | re.I)
        assert sender and ours, ok
        return sender.group(1), ours.group(1)


@contextlib.asynccontextmanager
async def call_beside(
    calls: FakeCalls,
    work_dir: Path,
    *,
    seconds: float = 4.0,
    args: tuple[str, ...] = (),
    scenario: str = "uac",
) -> AsyncIterator[LegitCall]:
    """A call from 127.0.0.1 echoing our audio for `seconds`; once sipp has hung up, check it
    was answered, heard us and was heard throughout, and that its BYE was answered 200."""
    log_dir = work_dir / "legit"
    log_dir.mkdir()
    caller = asyncio.create_task(
        run_sipp(calls.port, "-m", "1", "-d", str(int(seconds * 1000)), "-rtp_echo", *args,
                 scenario=scenario, work_dir=log_dir, limit_s=seconds + 20)
    )  # fmt: skip
    await until(
        lambda: caller.done() or any(s.heard for s in calls.sessions), within_s=10, what="answer"
    )
    assert calls.sessions, (await caller).screen
    legit = LegitCall(calls.sessions[0], log_dir)
    yield legit
    run = await caller
    assert run.returncode == 0, f"the legitimate call was harmed: {run.screen}"
    assert run.received("BYE") == 0  # sipp hung up as planned; the box never did
    assert run.responses()[-1] == 200  # its BYE was answered
    probe = legit.probe
    assert len(probe.heard) >= 0.7 * seconds * 50  # the caller was heard throughout ...
    assert probe.longest_gap_s() < 0.5
    assert probe.loud_frames() > 0  # ... and our tone came back in its echo: it heard us
