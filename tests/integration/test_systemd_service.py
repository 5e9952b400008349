"""`appliance serve` under systemd's notify protocol, with a real socket standing in for systemd."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_serve_reports_ready_pings_the_watchdog_and_reports_stopping(
    tmp_path: Path, models_dir: Path
) -> None:
    address = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as systemd:
        systemd.bind(str(address))
        systemd.setblocking(False)
        loop = asyncio.get_running_loop()
        env = {
            **os.environ,
            "APPLIANCE_DATA_DIR": str(tmp_path / "data"),
            "MODELS_DIR": str(models_dir),
            "NOTIFY_SOCKET": str(address),
            "WATCHDOG_USEC": "400000",  # pings every 0.2 s
        }
        env.pop("WATCHDOG_PID", None)
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "appliance", "serve",
            stderr=asyncio.subprocess.PIPE, env=env, cwd=ROOT,
        )  # fmt: skip
        try:
            async with asyncio.timeout(120):
                assert await loop.sock_recv(systemd, 4096) == b"READY=1\nSTATUS=answering calls"
                for _ in range(3):
                    assert await loop.sock_recv(systemd, 4096) == b"WATCHDOG=1"
            process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(30):
                said = await loop.sock_recv(systemd, 4096)
                while said == b"WATCHDOG=1":
                    said = await loop.sock_recv(systemd, 4096)
                assert said == b"STOPPING=1\nSTATUS=stopping"
                assert await process.wait() == 0
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
