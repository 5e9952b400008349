"""`appliance serve` with the SIP line: a real call, then SIGTERM in the middle of it."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT
from tests.support.serving import wait_for_line
from tests.support.sip import SIP_FIXTURES, free_port, run_sipp

pytestmark = [pytest.mark.timeout(180), pytest.mark.models]

_SIZED = re.compile(r"at once: (\d+), .* in (\d+) ms, (\d+) ms more .* the (\d+) ms turn target")


def _fits(first_ms: int, behind_ms: int, target_ms: int) -> int:
    """`capacity.calls_for` in the log's milliseconds, with the SIP line's ceiling of three."""
    room = target_ms - first_ms
    return max(1, min(3, 1 + room // behind_ms if room > 0 else 1))


async def test_sigterm_hangs_up_with_bye_and_destroys_pjsua_cleanly(
    tmp_path: Path, models_dir: Path
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "MODELS_DIR": str(models_dir),
        "APPLIANCE_DATA_DIR": str(tmp_path / "data"),
        "WEB_BIND_ADDRESS": "127.0.0.1",
        "WEB_PORT": str(web_port := free_port(socket.SOCK_STREAM)),
        "METRICS_PUBLIC": "true",
        "SIP_BIND_ADDRESS": "127.0.0.1",
        "SIP_PORT": str(port),
        "SIP_RTP_PORT": "0",
        "SIP_ALLOWED_SOURCES": "127.0.0.1/32",
        "SIP_RTP_TIMEOUT_S": "0",
        "VAD_MODEL": "energy",
        "LOG_LEVEL": "INFO",
    }
    serve = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "appliance", "--env-file", str(tmp_path / "none.env"), "serve",
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert serve.stderr is not None and serve.stdout is not None
    log: list[str] = []
    try:
        await asyncio.wait_for(wait_for_line(serve.stderr, "ready for calls on", log), 120)
        assert "sip" in log[-1], log[-1]
        # MAX_CONCURRENT_CALLS unset: sized from one turn measured on the engines at start.
        sized = next(line for line in log if "calls at once: " in line)
        found = _SIZED.search(sized)
        assert found is not None, sized
        calls, first_ms, behind_ms, target_ms = (int(n) for n in found.groups())
        # The log rounds to a millisecond: either side of it may have decided.
        assert calls in {_fits(first_ms + d, behind_ms, target_ms) for d in (-1, 0, 1)}, sized
        assert f"(at most {calls} at once)" in log[-1], log[-1]
        async with httpx.AsyncClient() as http:  # the status page sees the SIP line listening
            health = await http.get(f"http://127.0.0.1:{web_port}/healthz")
        assert health.json()["parts"]["sip"] == "ok", health.text
        caller = asyncio.create_task(
            run_sipp(port, "-m", "1", scenario=str(SIP_FIXTURES / "wait_bye.xml"),
                     work_dir=tmp_path, limit_s=60)
        )  # fmt: skip
        await asyncio.wait_for(wait_for_line(serve.stderr, "call answered on sip", log), 30)
        await asyncio.sleep(1.0)  # the greeting is playing
        serve.send_signal(signal.SIGTERM)
        run = await asyncio.wait_for(caller, 30)
        rest, out = await asyncio.wait_for(
            asyncio.gather(serve.stderr.read(), serve.stdout.read()), 30
        )
        code = await asyncio.wait_for(serve.wait(), 30)
    finally:
        if serve.returncode is None:
            serve.kill()
            await serve.wait()
    text = "".join(log) + rest.decode(errors="replace") + out.decode(errors="replace")
    assert run.returncode == 0, run.screen  # sipp was hung up on with a BYE and answered it
    assert run.received("BYE") == 1
    assert code == 0, text
    assert "SIP endpoint stopped" in text
    for sign in ("Assertion", "Traceback", "Fatal Python error", "terminate called"):
        assert sign not in text, text
    # The session ended when the line did, and every call slot was given back.
    assert "call ended:" in text
