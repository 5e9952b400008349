"""Who holds a port: nobody, a running TEL3SIS (its status page or its SIP line), or another
program.

`appliance serve` asks before it loads its models (a minute on a small board) so that a port in
use is one line naming the fix, not a traceback a minute later; `appliance doctor` asks so that
the box's own running `serve` is recognised as such rather than called a conflict. A wildcard
bind address is probed on loopback.
"""

from __future__ import annotations

import errno
import socket
import urllib.request
import uuid
from typing import Literal

__all__ = ["Kind", "bind_error", "in_use", "probe_address", "sip_answers_as", "web_answers_as"]

Kind = Literal["tcp", "udp"]
_PROBE_S = 1.0
_WILDCARDS = frozenset({"0.0.0.0", "::", ""})  # noqa: S104 - the names of "every address"


def bind_error(address: str, port: int, kind: Kind) -> OSError | None:
    """Why `address:port` cannot be bound now (None: it can), for TCP or UDP.

    TCP binds with SO_REUSEADDR, as the servers do, so a connection lingering in TIME_WAIT
    does not count as the port being taken; a listening socket still does."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock_type = socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM
    with socket.socket(family, sock_type) as sock:
        if kind == "tcp":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError as exc:
            return exc
    return None


def in_use(error: OSError) -> bool:
    """Whether a bind failed because something else holds the port (not for lack of rights)."""
    return error.errno == errno.EADDRINUSE


def probe_address(address: str) -> str:
    """Where to reach a server bound to `address` from this machine."""
    return "127.0.0.1" if address in _WILDCARDS else address


def web_answers_as(address: str, port: int, marker: str, timeout: float = _PROBE_S) -> bool:
    """Whether the web server on `address:port` serves a login page that names `marker`."""
    host = probe_address(address)
    url = f"http://{host}:{port}/login"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            body: bytes = reply.read(65536)
    except (OSError, ValueError):
        return False
    return marker.encode() in body


def sip_answers_as(address: str, port: int, marker: str, timeout: float = _PROBE_S) -> bool:
    """Whether the SIP server on `address:port` (UDP) answers an OPTIONS naming `marker` in its
    reply (pjsua2 puts its user agent in the Server/User-Agent header)."""
    host = probe_address(address)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect((host, port))
            local, local_port = sock.getsockname()[:2]
            sock.send(_options(host, port, local, local_port))
            reply = sock.recv(65536)
        except OSError:
            return False
    return reply.startswith(b"SIP/2.0") and marker.encode() in reply


def _options(host: str, port: int, local: str, local_port: int) -> bytes:
    tag = uuid.uuid4().hex[:12]
    lines = [
        f"OPTIONS sip:probe@{host}:{port} SIP/2.0",
        f"Via: SIP/2.0/UDP {local}:{local_port};branch=z9hG4bK{tag};rport",
        "Max-Forwards: 70",
        f"From: <sip:probe@{local}>;tag={tag}",
        f"To: <sip:probe@{host}:{port}>",
        f"Call-ID: {tag}@{local}",
        "CSeq: 1 OPTIONS",
        f"Contact: <sip:probe@{local}:{local_port}>",
        "Accept: application/sdp",
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()
