"""The admin password's hash, sessions and the login throttle, on their own."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from appliance.web.password import (
    DEFAULT_COST,
    MIN_LENGTH,
    PasswordRecord,
    load_password,
    save_password,
)
from appliance.web.sessions import LoginThrottle, Sessions
from tests.support.status import CHEAP


class Now:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_the_default_cost_is_one_of_owasps_scrypt_settings() -> None:
    # OWASP's Password Storage Cheat Sheet lists these as equivalent minimums.
    owasp = {(2**17, 8, 1), (2**16, 8, 2), (2**15, 8, 3), (2**14, 8, 5), (2**13, 8, 10)}
    assert (DEFAULT_COST.n, DEFAULT_COST.r, DEFAULT_COST.p) in owasp
    assert DEFAULT_COST.memory == 32 * 1024 * 1024


def test_a_password_matches_itself_only() -> None:
    record = PasswordRecord.create("correct horse", CHEAP)
    assert record.matches("correct horse")
    assert not record.matches("correct horsf")
    assert not record.matches("")
    again = PasswordRecord.create("correct horse", CHEAP)
    assert again.salt != record.salt and again.fingerprint != record.fingerprint
    with pytest.raises(ValueError, match=str(MIN_LENGTH)):
        PasswordRecord.create("short", CHEAP)


def test_the_stored_record_is_private_and_holds_no_password(tmp_path: Path) -> None:
    path = tmp_path / "data" / "admin-password.json"
    assert load_password(path) is None
    save_password(path, PasswordRecord.create("correct horse", CHEAP))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "correct horse" not in path.read_text()
    loaded = load_password(path)
    assert loaded is not None and loaded.matches("correct horse")
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind
    path.write_text("{not json")
    assert load_password(path) is None


def test_a_session_ends_idle_old_logged_out_or_with_a_new_password() -> None:
    now = Now()
    sessions = Sessions(now=now, idle_s=60, lifetime_s=300, max_open=3)
    a = sessions.open("fp1")
    assert sessions.find(a.token, "fp1") is a
    assert sessions.find(a.token, "fp2") is None  # the password was set again
    assert sessions.find(a.token, "fp1") is None  # ... and the session is gone for good
    b = sessions.open("fp1")
    now.t += 59
    assert sessions.find(b.token, "fp1") is b  # seen: idle time starts again
    now.t += 61
    assert sessions.find(b.token, "fp1") is None
    c = sessions.open("fp1")
    for _ in range(6):
        now.t += 50
        assert sessions.find(c.token, "fp1") is c
    now.t += 50
    assert sessions.find(c.token, "fp1") is None  # past its lifetime, however busy
    d = sessions.open("fp1")
    sessions.close(d.token)
    assert sessions.find(d.token, "fp1") is None
    assert sessions.find(None, "fp1") is None and sessions.find("made-up", "fp1") is None


def test_sessions_are_bounded_oldest_first() -> None:
    sessions = Sessions(now=Now(), max_open=3)
    opened = [sessions.open("fp") for _ in range(5)]
    assert len(sessions) == 3
    assert [sessions.find(s.token, "fp") is not None for s in opened] == [False] * 2 + [True] * 3
    assert len({s.csrf for s in opened}) == 5


def test_guessing_is_slowed_more_and_more_per_source() -> None:
    now = Now()
    throttle = LoginThrottle(now=now, free=5, max_wait_s=8)
    for _ in range(5):
        assert throttle.wait_s("10.0.0.9") == 0
        throttle.failed("10.0.0.9")
    waits = []
    for _ in range(5):
        waits.append(throttle.wait_s("10.0.0.9"))
        now.t += waits[-1]
        assert throttle.wait_s("10.0.0.9") == 0
        throttle.failed("10.0.0.9")
    assert waits == [1, 2, 4, 8, 8]
    assert throttle.wait_s("10.0.0.10") == 0  # another source is not slowed
    now.t += 8
    throttle.succeeded("10.0.0.9")
    assert throttle.wait_s("10.0.0.9") == 0


def test_the_throttle_remembers_a_bounded_number_of_sources() -> None:
    now = Now()
    throttle = LoginThrottle(now=now, free=0, max_sources=10)
    for i in range(50):
        throttle.failed(f"10.0.{i}.1")
    assert sum(throttle.wait_s(f"10.0.{i}.1") > 0 for i in range(50)) == 10
    assert throttle.wait_s("10.0.49.1") > 0 and throttle.wait_s("10.0.0.1") == 0
