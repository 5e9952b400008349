"""What a SIP request must be to reach pjsip: the rules pjsip 2.15.1 does not keep (issue 13).

`Screen.refusal` decides; `pjscreen.PjScreen` asks it about every request before pjsip's user
agent layer sees it, and answers (or drops) the request itself when it says so.

- A request whose To and From tags match a dialog is handed to that dialog whatever its
  Call-ID: pjsip's UA layer looks dialogs up by their tags alone. Someone who learnt a call's
  tags could re-INVITE into it with another Call-ID (it was answered 200; issue 13 saw the
  caller's BYE get 500 after it and the call hold its slot 31 s). Such a request matches no dialog
  (RFC 3261 section 12.2.2), so it gets 481, as pjsip answers for unknown tags.
- Over UDP pjsip reads a datagram into a buffer of `PJSIP_MAX_PKT_LEN` (4000) bytes and parses
  whatever fitted, so a 64 KB datagram was taken, cut short, as a request; and it took a
  Content-Length larger than the body that came, or two different ones (its parser drops one
  that is not a number; over TCP we refuse that too). RFC 3261 section 18.3 says such a message
  is discarded; a request gets 513 (too large) or 400 so that a real client learns why.
- Requests outside a dialog other than INVITE (OPTIONS, MESSAGE, SUBSCRIBE ...) are answered by
  pjsua (200 for OPTIONS and MESSAGE) whoever sends them: only INVITEs went through admission.
  From a source outside SIP_ALLOWED_SOURCES they now get 403, or nothing when strangers are
  refused in silence. ACK and CANCEL belong to an INVITE's transaction, and in-dialog requests
  to a dialog that exists (a transfer target's NOTIFY may come from anywhere).
- A stranger's INVITE gets its 403 here too, statelessly, before pjsua spends one of its calls
  and two RTP sockets on it: under a stranger's flood, the pjsua calls held by paced refusals
  (calltable.py) left none for a legitimate caller (bench/sip_hostile.py: 2 of 5 answered).
  When strangers are refused in silence their INVITEs still go to admission, which holds them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from appliance.telephony.sip.message import header_values

__all__ = ["DROP", "Request", "Screen", "datagram_fault"]

DROP = 0
"""`Screen.refusal`'s answer for a request that gets no response at all."""
_CONTENT_LENGTH = re.compile(r"[0-9]{1,9}")
_TRANSACTION_ONLY = frozenset({"ACK", "CANCEL"})


@dataclass(frozen=True, slots=True)
class Request:
    """What the screen needs to know of one received request."""

    method: str
    source: str
    """The IP address it came from."""
    in_dialog: bool
    """It has a To tag: it claims to belong to a dialog."""
    datagram: bool
    """It came over UDP; `raw` is then the whole datagram as read."""
    raw: bytes
    read_limit: int
    """The most bytes pjsip reads of one datagram (a datagram that fills them was cut short)."""


class Screen:
    """The rules above; `allows` says whether a source may use the box (admission's list), and
    `told(method, code)` hears of each request refused (from the thread that screens)."""

    def __init__(
        self,
        allows: Callable[[str], bool] = lambda _: True,
        *,
        silent: bool = False,
        told: Callable[[str, int], None] = lambda _, __: None,
    ):
        self._allows = allows
        self._silent = silent
        self.told = told

    def refusal(self, request: Request, dialog_known: Callable[[], bool]) -> int | None:
        """None: pjsip may have the request; else the status code to answer it with, or DROP.

        `dialog_known` says whether a dialog has the request's Call-ID and tags (asked only of
        requests that claim a dialog)."""
        fault = datagram_fault(request.raw, request.read_limit) if request.datagram else None
        fault = fault or _content_length_fault(request.raw)
        if fault is not None:
            return DROP if request.method == "ACK" else fault
        if request.in_dialog:
            if request.method in ("REGISTER", "CANCEL") or dialog_known():
                return None
            return DROP if request.method == "ACK" else 481
        if request.method in _TRANSACTION_ONLY or self._allows(request.source):
            return None
        if self._silent:
            return None if request.method == "INVITE" else DROP
        return 403


def datagram_fault(raw: bytes, read_limit: int) -> int | None:
    """Why a datagram cannot be taken as it is (513, 400), or None when it can: it filled the
    read buffer (so it was longer and was cut), its headers never end, or its body is shorter
    than its Content-Length says."""
    if len(raw) >= read_limit:
        return 513
    head, blank, body = raw.partition(b"\r\n\r\n")
    if not blank:
        head, blank, body = raw.partition(b"\n\n")
    if not blank:
        return 400
    lengths = header_values(head.decode("latin-1"), "Content-Length")
    if lengths and lengths[0].isdigit() and int(lengths[0]) > len(body):
        return 400
    return None


def _content_length_fault(raw: bytes) -> int | None:
    """400 when Content-Length is not a plain number, or is given twice with two values."""
    lengths = header_values(raw.decode("latin-1"), "Content-Length")
    if any(not _CONTENT_LENGTH.fullmatch(value) for value in lengths):
        return 400
    if len({int(value) for value in lengths}) > 1:
        return 400
    return None
