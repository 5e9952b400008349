"""strictrtp: a latched socket hears its source only; unlatched, it hears anyone again."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from appliance.telephony.sip.strictrtp import latch, unlatch

LOOPBACK = "127.0.0.1"


def _udp() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((LOOPBACK, 0))
    sock.settimeout(2.0)
    return sock


@pytest.fixture
def sockets() -> Iterator[tuple[socket.socket, socket.socket, socket.socket]]:
    """The call's RTP socket, its caller, and someone else."""
    made = (_udp(), _udp(), _udp())
    yield made
    for sock in made:
        sock.close()


def _first_heard(rtp: socket.socket) -> bytes:
    return rtp.recvfrom(64)[0]


def test_a_latched_socket_drops_other_sources(
    sockets: tuple[socket.socket, socket.socket, socket.socket],
) -> None:
    rtp, caller, stranger = sockets
    port = rtp.getsockname()[1]
    assert latch(port, caller.getsockname()) is not None
    stranger.sendto(b"stranger", rtp.getsockname())
    caller.sendto(b"caller", rtp.getsockname())
    assert _first_heard(rtp) == b"caller"  # loopback keeps order: the stranger's was dropped
    rtp.sendto(b"reply", stranger.getsockname())  # an explicit address still goes there
    assert stranger.recvfrom(64)[0] == b"reply"


def test_an_unlatched_socket_hears_anyone_again(
    sockets: tuple[socket.socket, socket.socket, socket.socket],
) -> None:
    rtp, caller, stranger = sockets
    port = rtp.getsockname()[1]
    bound = latch(port, caller.getsockname())
    assert bound is not None
    unlatch(bound)
    assert rtp.getsockname() == (LOOPBACK, port)  # its port, though the system picked it
    stranger.sendto(b"stranger", rtp.getsockname())
    assert _first_heard(rtp) == b"stranger"


def test_no_socket_on_the_port_is_no_latch() -> None:
    with _udp() as probe:
        port = probe.getsockname()[1]
    assert latch(port, (LOOPBACK, 9)) is None
