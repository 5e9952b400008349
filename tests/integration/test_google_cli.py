"""`appliance tokens` and `appliance calendar` as an operator runs them, against Google faked on
loopback and the box's real database (the fake asks for polls a second apart)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import apsw
import pytest

from appliance.cli import main
from appliance.memory.tokens import TokenKey
from appliance.settings import DEPRECATED_NAMES, env_names
from tests.support.fake_google import FakeGoogle, fake_google


@pytest.fixture
def google() -> Iterator[FakeGoogle]:
    with fake_google(FakeGoogle(interval=1, operator_acts_after=1)) as fake:
        yield fake


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, google: FakeGoogle) -> Path:
    """The appliance's settings in the environment; returns its data folder."""
    for name in [*env_names(), *DEPRECATED_NAMES]:
        monkeypatch.delenv(name, raising=False)
    data = tmp_path / "data"
    for name, value in {
        "APPLIANCE_DATA_DIR": str(data),
        "GOOGLE_CLIENT_ID": google.client_id,
        "GOOGLE_CLIENT_SECRET": google.client_secret,
        "GOOGLE_OAUTH_URL": google.url,
        "TOKEN_ENCRYPTION_KEY": TokenKey.new(),
    }.items():
        monkeypatch.setenv(name, value)
    return data


def _run(*args: str) -> int:
    return main(["--env-file", "/nonexistent/.env", *args])


def _key_ids(data: Path) -> list[str]:
    conn = apsw.Connection(str(data / "tel3sis.db"))
    try:
        return [str(row[0]) for row in conn.execute("SELECT key_id FROM sealed_tokens")]
    finally:
        conn.close()


def test_connect_rotate_and_disconnect_from_the_command_line(
    env: Path,
    google: FakeGoogle,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _run("calendar", "connect-google") == 0
    said = capsys.readouterr().out
    assert "open https://www.google.com/device and enter" in said
    assert "Connected: bookings now go to Google Calendar." in said
    old = TokenKey(str(os.environ["TOKEN_ENCRYPTION_KEY"]))
    assert _key_ids(env) == [old.id]
    assert _run("tokens", "rotate") == 1  # no old key named: nothing to rotate from
    assert "TOKEN_ENCRYPTION_KEY_OLD" in capsys.readouterr().err
    assert _run("tokens", "new-key") == 0
    new = capsys.readouterr().out.strip()
    monkeypatch.setenv("TOKEN_ENCRYPTION_KEY_OLD", os.environ["TOKEN_ENCRYPTION_KEY"])
    monkeypatch.setenv("TOKEN_ENCRYPTION_KEY", new)
    assert _run("tokens", "rotate") == 0
    assert "sealed 1 token set(s) again" in capsys.readouterr().out
    assert _key_ids(env) == [TokenKey(new).id]
    (refresh,) = google.refresh_tokens
    assert _run("calendar", "disconnect-google") == 0
    assert "Google has revoked the box's access" in capsys.readouterr().out
    assert google.revoked == [refresh] and _key_ids(env) == []


def test_without_a_key_connecting_fails_and_says_how_to_make_one(
    env: Path,
    google: FakeGoogle,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("TOKEN_ENCRYPTION_KEY")
    assert _run("calendar", "connect-google") == 1
    err = capsys.readouterr().err
    assert "connecting Google Calendar failed: TOKEN_ENCRYPTION_KEY is not set" in err
    assert "appliance tokens new-key" in err
    assert google.refresh_tokens == set()


def test_a_bad_key_is_refused_with_how_to_make_one(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TOKEN_ENCRYPTION_KEY", "hunter2")
    assert _run("calendar", "connect-google") == 2
    err = capsys.readouterr().err
    assert "TOKEN_ENCRYPTION_KEY must be 32 bytes" in err and "appliance tokens new-key" in err
