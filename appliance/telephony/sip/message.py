"""Small readers for the parts of a SIP message we use ourselves (pjsip parses the rest).

Everything here reads text that a stranger sent, so it never raises on odd input and clips what
it returns to a printable, bounded string before it reaches a log line.
"""

from __future__ import annotations

import re

__all__ = ["header", "header_values", "printable", "request_uri", "split_address", "uri_user"]

_COMPACT = {
    "f": "from",
    "t": "to",
    "i": "call-id",
    "m": "contact",
    "v": "via",
    "k": "supported",
    "l": "content-length",
}
_URI = re.compile(r"<?\s*(?:sips?|tel):([^@;>\s]*)", re.IGNORECASE)
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")


def printable(text: str, limit: int = 64) -> str:
    """`text` with anything but printable ASCII replaced by `?`, at most `limit` characters."""
    return _UNPRINTABLE.sub("?", text[:limit])


def header(message: str, name: str) -> str | None:
    """The first `name` header's value in a whole SIP message (folded lines joined)."""
    values = header_values(message, name)
    return values[0] if values else None


def header_values(message: str, name: str) -> list[str]:
    """Every `name` header's value in a whole SIP message, in order (folded lines joined; the
    compact form counts as the header)."""
    wanted = name.lower()
    head = message.split("\r\n\r\n", 1)[0].split("\n\n", 1)[0]
    values: list[str] = []
    taking = False
    for line in head.splitlines()[1:]:
        if line[:1] in (" ", "\t"):
            if taking:
                values[-1] += " " + line.strip()
            continue
        key, sep, rest = line.partition(":")
        key = key.strip().lower()
        taking = bool(sep) and _COMPACT.get(key, key) == wanted
        if taking:
            values.append(rest.strip())
    return values


def request_uri(message: str) -> str:
    """A request's Request-URI, as sent (`INVITE sip:a@b SIP/2.0` -> `sip:a@b`); empty for a
    start line that is not `METHOD URI VERSION`."""
    parts = message.split("\n", 1)[0].strip().split(" ")
    return parts[1] if len(parts) == 3 and parts[2].startswith("SIP/") else ""


def uri_user(value: str) -> str:
    """The user part of the URI in a From/To value (`+15551234567`), or the value clipped."""
    match = _URI.search(value)
    user = match.group(1) if match and match.group(1) else value
    return printable(user)


def split_address(address: str) -> tuple[str, int]:
    """`1.2.3.4:5060` or `[::1]:5060` -> (host, port); port 0 when there is none."""
    host, port = address, ""
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        port = rest.removeprefix(":")
    elif address.count(":") == 1:
        host, _, port = address.partition(":")
    return host, int(port) if port.isdigit() else 0
