"""Digest authentication (server side), checked with a client written from RFC 2617."""

from __future__ import annotations

import pytest

from appliance.telephony.digest import DigestAuth, DigestOutcome, parse_digest
from tests.support.digest import URI, digest_answer
from tests.support.hand_clock import HandClock


def test_the_test_client_matches_the_rfc_2617_example() -> None:
    value = digest_answer(
        'Digest realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093"',
        user="Mufasa",
        password="Circle Of Life",
        method="GET",
        uri="/dir/index.html",
    )
    assert 'response="6629fae49393a05397450978507c4ef1"' in value


@pytest.fixture
def auth() -> tuple[DigestAuth, HandClock]:
    clock = HandClock()
    return DigestAuth(username="pbx", password="letmein", realm="tel3sis", clock=clock), clock


def test_right_credentials_pass_once(auth: tuple[DigestAuth, HandClock]) -> None:
    digest, _ = auth
    answer = digest_answer(digest.challenge(), user="pbx", password="letmein")
    assert digest.verify("INVITE", answer, uri=URI) is DigestOutcome.OK
    # The same answer again is a replay (same nonce, same count).
    assert digest.verify("INVITE", answer, uri=URI) is DigestOutcome.WRONG


def test_sha256_is_accepted(auth: tuple[DigestAuth, HandClock]) -> None:
    digest, _ = auth
    answer = digest_answer(digest.challenge(), user="pbx", password="letmein", algorithm="SHA-256")
    assert digest.verify("INVITE", answer, uri=URI) is DigestOutcome.OK


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"password": "guess"}, DigestOutcome.WRONG),
        ({"user": "someone"}, DigestOutcome.WRONG),
        ({"method": "BYE"}, DigestOutcome.WRONG),
    ],
)
def test_wrong_credentials_fail(
    auth: tuple[DigestAuth, HandClock], change: dict[str, str], expected: DigestOutcome
) -> None:
    digest, _ = auth
    values = {"user": "pbx", "password": "letmein", "method": "INVITE"} | change
    answer = digest_answer(digest.challenge(), **values)
    assert digest.verify("INVITE", answer, uri=URI) is expected


def test_an_answer_computed_for_another_uri_is_refused(auth: tuple[DigestAuth, HandClock]) -> None:
    digest, _ = auth
    elsewhere = "sip:tel3sis@192.0.2.9"
    answer = digest_answer(digest.challenge(), user="pbx", password="letmein", uri=elsewhere)
    # A correct answer, for a request to another address: it proves nothing about this one.
    assert digest.verify("INVITE", answer, uri=URI) is DigestOutcome.WRONG
    assert digest.verify("INVITE", answer, uri=elsewhere) is DigestOutcome.OK


def test_a_nonce_we_did_not_issue_is_refused(auth: tuple[DigestAuth, HandClock]) -> None:
    digest, _ = auth
    forged = 'Digest realm="tel3sis", nonce="0123456789abcdef", algorithm=MD5, qop="auth"'
    answer = digest_answer(forged, user="pbx", password="letmein")
    assert digest.verify("INVITE", answer, uri=URI) is DigestOutcome.WRONG


def test_an_old_nonce_is_stale_and_the_new_challenge_says_so(
    auth: tuple[DigestAuth, HandClock],
) -> None:
    digest, clock = auth
    challenge = digest.challenge()
    clock.t += 301
    answer = digest_answer(challenge, user="pbx", password="letmein")
    assert digest.verify("INVITE", answer, uri=URI) is DigestOutcome.STALE
    assert "stale=true" in digest.challenge(stale=True)


@pytest.mark.parametrize(
    "value", [None, "", "Basic cGJ4OmxldG1laW4=", "Digest", "Digest " + "x=" * 5000]
)
def test_missing_or_garbled_values_never_pass(
    auth: tuple[DigestAuth, HandClock], value: str | None
) -> None:
    digest, _ = auth
    outcome = digest.verify("INVITE", value, uri=URI)
    assert outcome in (DigestOutcome.MISSING, DigestOutcome.WRONG)


def test_parse_digest_reads_quoted_and_bare_values() -> None:
    params = parse_digest('Digest username="a\\"b", nc=00000001, qop=auth, realm="r, s"')
    assert params == {"username": 'a"b', "nc": "00000001", "qop": "auth", "realm": "r, s"}
    assert parse_digest("Basic abc") is None
