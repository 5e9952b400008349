"""The rules a SIP request must keep to reach pjsip (issue 13): pure decisions, no pjsip."""

from __future__ import annotations

import pytest

from appliance.telephony.sip.message import header_values, request_uri
from appliance.telephony.sip.screen import DROP, Request, Screen, datagram_fault

LIMIT = 4000


def _raw(method: str = "OPTIONS", *, headers: str = "", body: str = "") -> bytes:
    length = (
        "" if "ength:" in headers or "\r\nl:" in headers else f"Content-Length: {len(body)}\r\n"
    )
    return (
        f"{method} sip:tel3sis@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKx\r\n"
        f"From: <sip:a@192.0.2.9>;tag=1\r\nTo: <sip:tel3sis@192.0.2.1>\r\nCall-ID: c\r\n"
        f"CSeq: 1 {method}\r\n{headers}{length}\r\n{body}"
    ).encode()


def _request(
    method: str = "OPTIONS",
    *,
    source: str = "192.0.2.9",
    in_dialog: bool = False,
    datagram: bool = True,
    raw: bytes | None = None,
) -> Request:
    return Request(method, source, in_dialog, datagram, raw or _raw(method), LIMIT)


def _no_dialog() -> bool:
    return False


def test_a_well_formed_datagram_passes() -> None:
    assert datagram_fault(_raw(headers="Content-Type: text/plain\r\n", body="hi"), LIMIT) is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (_raw(headers=f"Subject: {'A' * 5000}\r\n")[:LIMIT], 513),  # filled the read: cut short
        (_raw().split(b"\r\n\r\n")[0], 400),  # the headers never end
        (_raw(headers="Content-Length: 500\r\n", body="short"), 400),
    ],
    ids=["truncated", "unterminated", "body-shorter-than-length"],
)
def test_datagram_faults(raw: bytes, expected: int) -> None:
    assert datagram_fault(raw, LIMIT) == expected


@pytest.mark.parametrize(
    "headers",
    ["Content-Length: abc\r\n", "Content-Length: -1\r\n", "Content-Length: 0\r\nl: 4\r\n"],
    ids=["not-a-number", "negative", "two-values"],
)
def test_a_bad_content_length_gets_400_over_any_transport(headers: str) -> None:
    for datagram in (True, False):
        raw = _raw(headers=headers)
        assert Screen().refusal(_request(raw=raw, datagram=datagram), _no_dialog) == 400


def test_the_same_length_twice_is_fine() -> None:
    raw = _raw(headers="Content-Length: 0\r\nl: 0\r\n")
    assert Screen().refusal(_request(raw=raw), _no_dialog) is None


def test_an_ack_that_breaks_a_rule_is_dropped_not_answered() -> None:
    raw = _raw("ACK", headers="Content-Length: 500\r\n")
    assert Screen().refusal(_request("ACK", raw=raw), _no_dialog) == DROP


def test_requests_outside_a_dialog_from_strangers_are_refused() -> None:
    screen = Screen(lambda source: source == "192.0.2.9")
    stranger = "198.51.100.7"
    assert screen.refusal(_request("OPTIONS"), _no_dialog) is None
    assert screen.refusal(_request("OPTIONS", source=stranger), _no_dialog) == 403
    assert screen.refusal(_request("MESSAGE", source=stranger), _no_dialog) == 403
    # A stranger's INVITE is refused before pjsua spends a call on it; ACK and CANCEL belong to
    # their INVITE's transaction.
    assert screen.refusal(_request("INVITE", source=stranger), _no_dialog) == 403
    for method in ("ACK", "CANCEL"):
        assert screen.refusal(_request(method, source=stranger), _no_dialog) is None
    silent = Screen(lambda _: False, silent=True)
    assert silent.refusal(_request("OPTIONS", source=stranger), _no_dialog) == DROP
    # In silence, INVITEs go on to admission, which holds them unanswered for a while.
    assert silent.refusal(_request("INVITE", source=stranger), _no_dialog) is None


def test_an_in_dialog_request_must_match_a_dialog_by_call_id_and_tags() -> None:
    screen = Screen(lambda _: False)  # in-dialog requests may come from anywhere
    assert screen.refusal(_request("INVITE", in_dialog=True), lambda: True) is None
    assert screen.refusal(_request("INVITE", in_dialog=True), _no_dialog) == 481
    assert screen.refusal(_request("BYE", in_dialog=True), _no_dialog) == 481
    assert screen.refusal(_request("ACK", in_dialog=True), _no_dialog) == DROP
    for method in ("REGISTER", "CANCEL"):  # never matched to a dialog by pjsip either
        assert screen.refusal(_request(method, in_dialog=True), _no_dialog) is None


def test_the_dialog_is_looked_up_only_for_requests_that_claim_one() -> None:
    def unexpected() -> bool:
        raise AssertionError("looked up")

    assert Screen().refusal(_request("OPTIONS"), unexpected) is None


def test_header_values_reads_every_value_compact_and_folded() -> None:
    message = "OPTIONS sip:x SIP/2.0\r\nContent-Length: 1\r\nSubject: a\r\n b\r\nl: 2\r\n\r\nl: 3"
    assert header_values(message, "content-length") == ["1", "2"]
    assert header_values(message, "Subject") == ["a b"]


def test_request_uri_is_the_start_lines_uri_as_sent() -> None:
    assert request_uri("INVITE sip:tel3sis@192.0.2.1:5060 SIP/2.0\r\nVia: x\r\n") == (
        "sip:tel3sis@192.0.2.1:5060"
    )
    assert request_uri("SIP/2.0 200 OK\r\n") == ""
