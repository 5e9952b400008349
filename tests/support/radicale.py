"""A real Radicale CalDAV server on a free loopback port, started and stopped by the test.

Its storage is a folder of the test's; its one account is `USER` with `PASSWORD` (htpasswd,
plain), so a wrong password gets the real 401. `calendar()` makes a calendar and returns a
`caldav` handle on it, for the test to read back exactly what the server holds.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import caldav
import requests

__all__ = ["PASSWORD", "USER", "Radicale"]

USER = "desk"
PASSWORD = "s3cret-desk"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Radicale:
    def __init__(self, folder: Path) -> None:
        self.port = _free_port()
        users = folder / "users"
        users.write_text(f"{USER}:{PASSWORD}\n", encoding="utf-8")
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "radicale",
                *("--server-hosts", f"127.0.0.1:{self.port}"),
                *("--storage-filesystem-folder", str(folder / "collections")),
                *("--auth-type", "htpasswd", "--auth-htpasswd-filename", str(users)),
                *("--auth-htpasswd-encryption", "plain", "--logging-level", "warning"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._wait_until_it_answers()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def _wait_until_it_answers(self) -> None:
        deadline = time.monotonic() + 20
        while True:
            try:
                requests.get(self.url, timeout=0.5)
                return
            except requests.ConnectionError:
                if time.monotonic() > deadline or self._process.poll() is not None:
                    raise
                time.sleep(0.05)

    def client(self) -> caldav.DAVClient:
        return caldav.DAVClient(self.url, username=USER, password=PASSWORD)

    def calendar(self, name: str = "Bookings") -> caldav.Calendar:
        principal = self.client().principal()  # type: ignore[no-untyped-call]
        return principal.make_calendar(name=name)

    def stop(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(5)
