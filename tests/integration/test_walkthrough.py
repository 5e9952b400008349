"""The README's walkthrough, as a new operator runs it on a fresh data directory: every
`.venv/bin/appliance` command in "Try a call" and "Call records and memory", in the README's
order, with `appliance serve` running from where the README starts it. Each exits 0 and none
prints a traceback. On the way: what `serve` tells the operator, `doctor` recognising the
running box as its own, a second `serve` refused in one line, `dial` hearing the agent answer,
and `serve` stopping cleanly on SIGTERM.

The commands are read from README.md itself, so an example that stops working fails here.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.support.ports import free_port
from tests.support.serving import wait_for_line

pytestmark = [pytest.mark.slow, pytest.mark.models, pytest.mark.timeout(600)]

SECTIONS = ("## Try a call", "## Call records and memory")
EXAMPLE_ID = "cli-3f2a"
"""The call id the README's examples show; the walkthrough uses the newest call's instead."""


def readme_commands() -> list[list[str]]:
    """Each `.venv/bin/appliance` command of the walkthrough's sections, as arguments."""
    text = (ROOT / "README.md").read_text()
    commands = []
    for heading in SECTIONS:
        start = text.index(f"\n{heading}\n")
        end = text.find("\n## ", start + 1)
        for block in re.findall(r"```sh\n(.*?)```", text[start:end], re.DOTALL):
            for line in block.splitlines():
                words = shlex.split(line, comments=True)
                if words and words[0] == ".venv/bin/appliance":
                    commands.append(words[1:])
    return commands


def test_the_walkthrough_is_where_the_test_expects_it() -> None:
    commands = readme_commands()
    assert ["serve", "&"] in commands
    assert [c[0] for c in commands].count("dial") == 1
    assert ["calls", "list"] in commands and ["calls", "show", EXAMPLE_ID] in commands


async def _appliance(
    *args: str, env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "appliance", *args]
    return await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, env=env, timeout=240, cwd=cwd,
        check=False, stdin=subprocess.DEVNULL,
    )  # fmt: skip


async def _newest_call(env: dict[str, str], cwd: Path) -> dict[str, object]:
    listed = await _appliance("calls", "list", "--json", env=env, cwd=cwd)
    calls: list[dict[str, object]] = json.loads(listed.stdout)
    assert calls, listed.stderr
    return calls[0]


async def _serve(env: dict[str, str], cwd: Path) -> tuple[asyncio.subprocess.Process, str]:
    """`appliance serve`, once ready for calls, and what it told the operator until then."""
    serve = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "appliance", "serve",
        cwd=cwd, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert serve.stderr is not None
    log: list[str] = []
    try:
        await asyncio.wait_for(wait_for_line(serve.stderr, "ready for calls on", log), 180)
    except BaseException:
        serve.kill()
        await serve.wait()
        raise
    return serve, "".join(log)


async def _check_the_running_box(env: dict[str, str], cwd: Path, told: str) -> None:
    web_port = env["WEB_PORT"]
    assert any(line.startswith("Ready (") for line in told.splitlines()), told
    assert f"Status page: http://127.0.0.1:{web_port}/" in told, told
    assert "admin password is not set" in told and "appliance admin set-password" in told
    # No Twilio account is configured: the box does not claim to take Twilio calls.
    assert "twilio" not in told.splitlines()[-1].lower(), told
    assert "Twilio is not configured" in told

    doctor = await _appliance("doctor", env=env, cwd=cwd)
    ports = [line for line in doctor.stdout.splitlines() if " port " in line]
    assert len(ports) == 2 and all("own `appliance serve`" in p for p in ports), ports
    assert "change the port" not in doctor.stdout

    again = await _appliance("serve", env=env, cwd=cwd)
    assert again.returncode == 2, again.stderr
    assert again.stderr.count("\n") == 1 and "already running" in again.stderr
    assert "Loading models" not in again.stderr and "Traceback" not in again.stderr


def _check_output(args: list[str], out: str, folder: Path) -> None:
    """What each kind of walkthrough command must have printed or written."""
    match args:
        case ["call", *_]:
            assert "heard:" in out and "reply:" in out, out
        case ["dial", *_]:
            assert "answered" in out and "agent:" in out, out
            assert "the agent answered" in out, out  # an answer to what the caller said
        case ["calls", "export", *_]:
            exported = folder / args[args.index("--out") + 1]
            names = {p.name for p in exported.iterdir()}
            assert {"recording.wav", "transcript.txt", "call.json"} <= names, names
        case ["calls", "list"]:
            assert "no calls recorded yet" not in out, out


async def test_the_readme_walkthrough_runs_from_a_fresh_data_directory(
    tmp_path: Path, models_dir: Path
) -> None:
    folder = tmp_path / "checkout"  # where the operator stands: the README's paths resolve
    folder.mkdir()
    (folder / "tests").symlink_to(ROOT / "tests")
    env = {
        **os.environ,
        "MODELS_DIR": str(models_dir),
        "APPLIANCE_DATA_DIR": str(tmp_path / "data"),
        "WEB_BIND_ADDRESS": "127.0.0.1",
        "WEB_PORT": str(free_port()),
        "SIP_BIND_ADDRESS": "127.0.0.1",
        "SIP_PORT": str(free_port(socket.SOCK_DGRAM)),
        "SIP_RTP_PORT": "0",
        "LOG_LEVEL": "INFO",
    }
    serve: asyncio.subprocess.Process | None = None
    told = ""
    try:
        for written in readme_commands():
            if written == ["serve", "&"]:
                serve, told = await _serve(env, folder)
                await _check_the_running_box(env, folder, told)
                continue
            args = written
            if EXAMPLE_ID in written:
                newest = str((await _newest_call(env, folder))["id"])
                args = [newest if a == EXAMPLE_ID else a for a in written]
            done = await _appliance(*args, env=env, cwd=folder)
            out = done.stdout + done.stderr
            assert done.returncode == 0, f"appliance {shlex.join(args)}:\n{out}"
            assert "Traceback" not in out, f"appliance {shlex.join(args)}:\n{out}"
            _check_output(args, out, folder)
        assert serve is not None, "the README's walkthrough never starts `appliance serve`"
        serve.send_signal(signal.SIGTERM)
        assert serve.stderr is not None
        rest = (await asyncio.wait_for(serve.stderr.read(), 60)).decode(errors="replace")
        assert await asyncio.wait_for(serve.wait(), 30) == 0, rest
    finally:
        if serve is not None and serve.returncode is None:
            serve.kill()
            await serve.wait()
    text = told + rest
    assert "call answered on sip" in text and "stopping" in text, text
    assert "Traceback" not in text, text
