"""Admission control, shared by every line: sources, rate, credentials, slots; and how long
the router holds a call's slot."""

from __future__ import annotations

import ipaddress

import pytest

from appliance.telephony.calls import Admission, Credentials, Verdict, parse_networks
from appliance.telephony.digest import DigestAuth
from tests.support.digest import URI, digest_answer
from tests.support.hand_clock import HandClock


def _admission(**extra: object) -> tuple[Admission, HandClock]:
    clock = HandClock()
    return Admission(clock=clock, **extra), clock  # type: ignore[arg-type]


def test_sources_outside_the_allowed_networks_are_forbidden() -> None:
    gate, _ = _admission(allowed=parse_networks("10.0.0.0/8, 192.0.2.7"), max_calls=2)
    assert gate.has_allowed_sources
    assert gate.check("10.1.2.3") is Verdict.ADMIT
    assert gate.check("192.0.2.7") is Verdict.ADMIT
    assert gate.check("192.0.2.8") is Verdict.FORBIDDEN
    assert gate.check("not an address") is Verdict.FORBIDDEN
    assert gate.check(None) is Verdict.ADMIT  # a line with no source address (the speaker)


def test_parse_networks_names_the_bad_entry() -> None:
    assert parse_networks("") == ()
    with pytest.raises(ValueError, match=r"'10\.0\.0\.300'"):
        parse_networks("10.0.0.0/8, 10.0.0.300")


def test_each_source_is_rate_limited_in_a_sliding_window() -> None:
    gate, clock = _admission(rate_limit=3, rate_window_s=10.0, max_calls=5)
    assert [gate.check("192.0.2.1") for _ in range(4)][-1] is Verdict.RATE_LIMITED
    assert gate.check("192.0.2.2") is Verdict.ADMIT  # another source has its own window
    clock.t += 10.5
    assert gate.check("192.0.2.1") is Verdict.ADMIT


def test_sources_whose_window_has_passed_are_forgotten() -> None:
    gate, clock = _admission(rate_limit=3, rate_window_s=10.0, max_calls=5)
    for i in range(1000):  # a flood from spoofed addresses, one INVITE each
        gate.check(f"198.51.{i // 256}.{i % 256}")
    assert gate.tracked_sources == 1000
    clock.t += 5.0
    gate.check("192.0.2.1")
    assert gate.tracked_sources == 1001  # still inside their window: remembered
    clock.t += 5.5
    gate.check("192.0.2.1")
    assert gate.tracked_sources == 1  # only the source heard from within the window is left
    assert [gate.check("192.0.2.1") for _ in range(2)][-1] is Verdict.RATE_LIMITED


def test_a_reservation_takes_the_slot_at_once() -> None:
    gate, _ = _admission(max_calls=1, rate_limit=0)
    assert gate.check("192.0.2.1") is Verdict.ADMIT
    held = gate.reserve()
    # A second INVITE checked before the first call's session started finds the slot taken.
    assert gate.check("192.0.2.1") is Verdict.BUSY
    with held:
        assert gate.active == 1
    assert gate.active == 0
    held.release()  # releasing twice gives back nothing more
    assert gate.active == 0
    with gate.slot():
        assert gate.check("192.0.2.1") is Verdict.BUSY


def test_with_auth_set_a_call_must_prove_who_it_is() -> None:
    clock = HandClock()
    auth = DigestAuth(username="pbx", password="letmein", realm="tel3sis", clock=clock)
    gate = Admission(clock=clock, max_calls=1, rate_limit=0, auth=auth)
    assert gate.check("192.0.2.1", Credentials("INVITE", None, URI)) is Verdict.UNAUTHORIZED
    answer = digest_answer(auth.challenge(), user="pbx", password="letmein")
    assert gate.check("192.0.2.1", Credentials("INVITE", answer, URI)) is Verdict.ADMIT


def test_auth_does_not_apply_to_lines_that_carry_no_credentials() -> None:
    clock = HandClock()
    auth = DigestAuth(username="pbx", password="letmein", realm="tel3sis", clock=clock)
    gate = Admission(clock=clock, max_calls=1, rate_limit=0, auth=auth)
    assert gate.check("192.0.2.1") is Verdict.ADMIT


def test_sources_are_checked_before_credentials_and_credentials_before_slots() -> None:
    clock = HandClock()
    auth = DigestAuth(username="pbx", password="letmein", realm="tel3sis", clock=clock)
    gate = Admission(
        clock=clock,
        max_calls=1,
        allowed=[ipaddress.ip_network("192.0.2.0/24")],
        rate_limit=0,
        auth=auth,
    )
    assert gate.check("198.51.100.1") is Verdict.FORBIDDEN
    with gate.slot():
        wrong = Credentials("INVITE", "Digest username=pbx", URI)
        assert gate.check("192.0.2.1", wrong) is Verdict.UNAUTHORIZED  # nothing said of slots
    assert gate.refusal == "reject"
