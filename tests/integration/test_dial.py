"""The check after an install, as README tells it: `appliance serve`, then `appliance dial` places
a real SIP call into it over loopback and prints what the agent said. On the way: what `serve`
tells the operator, `doctor` recognising the running box, and a second `serve` refused."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.support.ports import free_port

pytestmark = [pytest.mark.slow, pytest.mark.models, pytest.mark.timeout(240)]


async def _wait_for_line(stream: asyncio.StreamReader, text: str, seen: list[str]) -> None:
    while True:
        line = (await stream.readline()).decode(errors="replace")
        if not line:
            raise AssertionError(f"serve ended before logging {text!r}:\n{''.join(seen)}")
        seen.append(line)
        if text in line:
            return


async def _appliance(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "appliance", *args]
    return await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, env=env, timeout=120,
        cwd=ROOT, check=False, stdin=subprocess.DEVNULL,
    )  # fmt: skip


async def test_dial_calls_the_running_box_and_prints_what_the_agent_said(
    tmp_path: Path, models_dir: Path
) -> None:
    web_port, sip_port = free_port(), free_port(socket.SOCK_DGRAM)
    env = {
        **os.environ,
        "MODELS_DIR": str(models_dir),
        "APPLIANCE_DATA_DIR": str(tmp_path / "data"),
        "WEB_BIND_ADDRESS": "127.0.0.1",
        "WEB_PORT": str(web_port),
        "SIP_BIND_ADDRESS": "127.0.0.1",
        "SIP_PORT": str(sip_port),
        "SIP_RTP_PORT": "0",
        "LOG_LEVEL": "INFO",
    }
    serve = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "appliance", "--env-file", str(tmp_path / "none.env"), "serve",
        cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert serve.stderr is not None
    log: list[str] = []
    try:
        await asyncio.wait_for(_wait_for_line(serve.stderr, "ready for calls on", log), 150)
        told = "".join(log)
        assert f"Status page: http://127.0.0.1:{web_port}/" in told, told
        assert "admin password is not set" in told and "appliance admin set-password" in told
        # No Twilio account is configured: the box does not claim to take Twilio calls.
        assert "twilio" not in log[-1].lower(), log[-1]
        assert "Twilio is not configured" in told

        doctor = await _appliance("doctor", env=env)
        ports = [line for line in doctor.stdout.splitlines() if " port " in line]
        assert len(ports) == 2 and all("own `appliance serve`" in p for p in ports), ports
        assert "change the port" not in doctor.stdout

        again = await _appliance("serve", env=env)
        assert again.returncode == 2, again.stderr
        assert again.stderr.count("\n") == 1 and "already running" in again.stderr
        assert "Loading models" not in again.stderr and "Traceback" not in again.stderr

        dialled = await _appliance("dial", "--say", "Hello, are you open today?", "--json", env=env)
        assert dialled.returncode == 0, dialled.stderr
        result = json.loads(dialled.stdout)
        assert result["uri"] == f"sip:dial@127.0.0.1:{sip_port}"
        said = " ".join(part["text"] for part in result["agent"]).lower()
        assert "help" in said, result  # the greeting: "... How can I help you?"
        assert result["answer_ms"] is not None and result["answer_ms"] < 15_000, result
        caller_end = next(e["at_ms"] for e in result["timeline"] if e["what"] == "caller-end")
        answer = [p for p in result["agent"] if p["start_ms"] > caller_end]
        assert answer and answer[0]["text"], result  # and an answer to what the caller said
        serve.send_signal(signal.SIGTERM)
        rest = await asyncio.wait_for(serve.stderr.read(), 60)
        assert await asyncio.wait_for(serve.wait(), 30) == 0
    finally:
        if serve.returncode is None:
            serve.kill()
            await serve.wait()
    text = told + rest.decode(errors="replace")
    assert "call answered on sip" in text and "Traceback" not in text
