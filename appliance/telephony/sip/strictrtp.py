"""Strict RTP: a call's RTP socket takes packets from the first source it heard, and no other.

pjmedia 2.15 moves a call's remote RTP address to whoever sends it RTP: at once when the
stream has not yet heard a good packet from the offered address, otherwise after
`PJMEDIA_RTP_NAT_PROBATION_CNT` (10) packets in a row from elsewhere (stream.c asks
transport_udp.c to switch). An attacker on the LAN then hears the agent and speaks into the
caller's turn. The switch can be turned off only at compile time
(`PJMEDIA_TRANSPORT_SWITCH_REMOTE_ADDR`) or per transport (`PJMEDIA_UDP_NO_SRC_ADDR_CHECKING`,
which pjsua never passes and no pjsua2 setting reaches); either way pjmedia would still play
whatever arrives.

So the kernel filters instead, as Asterisk's `strictrtp` does in user space: once the first RTP
packet of a call has arrived (pjsua2 reports its source), the call's RTP socket is `connect()`ed
to that source. A connected UDP socket receives datagrams from its peer only; sending with an
explicit address (pjmedia's `sendto`) still goes where pjmedia says, which is the same peer,
since nothing else reaches it to be switched to. The socket is pjmedia's own, found by its port
among the process's descriptors and connected through a duplicate (both name one socket).
A media update (re-INVITE, hold) may move the peer, so it lets the call learn again.

Left out: RTCP (statistics only, never audio). The window before the first packet is the
learning window of any latching scheme; random RTP ports keep an attacker from aiming at it.
A connected socket also hears ICMP errors from its peer; pjmedia restarts a transport (on a
fresh, unconnected socket) only after 20 errors in a row, which a peer that has gone causes at
the end of a call, when it no longer matters.
"""

from __future__ import annotations

import ctypes
import logging
import os
import socket
import stat
from pathlib import Path
from typing import Any

__all__ = ["Bound", "latch", "unlatch"]

_log = logging.getLogger(__name__)
_FDS = Path("/proc/self/fd")
_INTERNET = (socket.AF_INET, socket.AF_INET6)

Bound = tuple[Any, ...]
"""A socket's own address, as `getsockname()` gives it: (host, port, ...)."""


def latch(local_port: int, source: tuple[str, int]) -> Bound | None:
    """Connect the UDP socket bound to `local_port` to `source`; returns the address it was
    bound to (for `unlatch`), or None when there is no such socket."""
    fd = _udp_socket_on(local_port)
    if fd is None:
        return None
    with socket.socket(fileno=os.dup(fd)) as sock:
        bound: Bound = sock.getsockname()
        sock.connect(source)
    return bound


def unlatch(bound: Bound) -> None:
    """Let the socket bound to `bound` hear any source again: connect it to AF_UNSPEC, then bind
    it back to its port if the kernel let go of it (it does when the port was picked for it)."""
    fd = _udp_socket_on(bound[1])
    if fd is None:
        return
    unspecified = (ctypes.c_ubyte * 16)()  # a sockaddr whose family is AF_UNSPEC (0)
    if _libc().connect(fd, unspecified, len(unspecified)) != 0:
        _log.warning("could not unlatch RTP port %d: errno %d", bound[1], ctypes.get_errno())
        return
    with socket.socket(fileno=os.dup(fd)) as sock:
        if sock.getsockname()[1] != bound[1]:
            sock.bind(bound)


def _udp_socket_on(port: int) -> int | None:
    """The descriptor of this process's UDP socket bound to `port`, if there is one."""
    for entry in _FDS.iterdir():
        fd = int(entry.name)
        try:
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
            with socket.socket(fileno=os.dup(fd)) as sock:
                internet = sock.family in _INTERNET and sock.type == socket.SOCK_DGRAM
                if internet and sock.getsockname()[1] == port:
                    return fd
        except OSError:
            continue  # closed meanwhile, or not an internet socket
    return None


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)
