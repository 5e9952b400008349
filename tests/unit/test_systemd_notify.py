"""sd_notify: datagrams on a real unix socket, as systemd receives them."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.observability.systemd import ServiceNotifier


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    """A unix datagram socket standing in for systemd's notify socket."""
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(5)
        yield str(path), sock


def _received(sock: socket.socket) -> list[str]:
    return sock.recv(4096).decode().split("\n")


def test_states_arrive_as_newline_separated_assignments(
    listener: tuple[str, socket.socket],
) -> None:
    path, sock = listener
    notifier = ServiceNotifier(path, pid=os.getpid())
    assert notifier.enabled
    assert notifier.notify("READY=1", "STATUS=answering calls")
    assert _received(sock) == ["READY=1", "STATUS=answering calls"]


def test_an_abstract_socket_name_starts_with_at() -> None:
    name = f"tel3sis-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(5)
        assert ServiceNotifier(f"@{name}", pid=os.getpid()).notify("WATCHDOG=1")
        assert _received(sock) == ["WATCHDOG=1"]


def test_outside_systemd_nothing_is_sent_and_nothing_fails() -> None:
    notifier = ServiceNotifier(None, watchdog_usec=1_000_000, pid=os.getpid())
    assert not notifier.enabled
    assert not notifier.notify("READY=1")


def test_a_vanished_socket_is_reported_not_raised(tmp_path: Path) -> None:
    notifier = ServiceNotifier(str(tmp_path / "gone"), pid=os.getpid())
    assert not notifier.notify("READY=1")


def test_the_watchdog_pings_at_half_its_timeout_for_its_own_process_only() -> None:
    mine = ServiceNotifier("/run/x", watchdog_usec=30_000_000, watchdog_pid=42, pid=42)
    assert mine.watchdog_interval == 15.0
    inherited = ServiceNotifier("/run/x", watchdog_usec=30_000_000, watchdog_pid=42, pid=43)
    assert inherited.watchdog_interval is None
    assert ServiceNotifier("/run/x", pid=42).watchdog_interval is None


async def test_serving_says_ready_pings_from_the_loop_and_says_stopping(
    listener: tuple[str, socket.socket],
) -> None:
    path, sock = listener
    sock.setblocking(False)
    notifier = ServiceNotifier(path, watchdog_usec=2_000_000, pid=os.getpid())
    sleeps: list[float] = []
    pinged = asyncio.Event()

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 3:
            pinged.set()
        await asyncio.sleep(0)

    async with notifier.serving("answering calls", sleep):
        await pinged.wait()
    received = []
    while True:
        try:
            received.append(sock.recv(4096).decode())
        except BlockingIOError:
            break
    assert received[0] == "READY=1\nSTATUS=answering calls"
    assert received[-1] == "STOPPING=1\nSTATUS=stopping"
    pings = received[1:-1]
    assert len(pings) >= 3
    assert set(pings) == {"WATCHDOG=1"}
    assert set(sleeps) == {1.0}


async def test_a_stalled_loop_sends_no_pings(listener: tuple[str, socket.socket]) -> None:
    path, sock = listener
    sock.setblocking(False)
    notifier = ServiceNotifier(path, watchdog_usec=20_000, pid=os.getpid())
    async with notifier.serving("answering calls", asyncio.sleep):
        await asyncio.sleep(0.05)
        assert sock.recv(4096) == b"READY=1\nSTATUS=answering calls"
        while True:  # what the loop sent while it ran
            try:
                assert sock.recv(4096) == b"WATCHDOG=1"
            except BlockingIOError:
                break
        # A blocking call stalls the loop: pings come from the loop, not a thread, so none is
        # sent while it is stalled and systemd would restart the service.
        time.sleep(0.1)  # noqa: ASYNC251 - the stall is the point of this test
        with pytest.raises(BlockingIOError):
            sock.recv(4096)
