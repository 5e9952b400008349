"""What an operator sees when something is wrong: one line naming the fix, exit status 2, never
a traceback. Real processes, real sockets and a real database; no model is loaded."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.audio.wav import wav_header
from appliance.conversation.ports import CallInfo
from appliance.memory import calls
from appliance.memory.db import connect
from tests.conftest import ROOT
from tests.support.ports import free_port

SIP_ID = "a84b4c76e66710a84b4c76e66710abcd"
"""A 32-character SIP Call-ID, as trunks send them."""


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "APPLIANCE_DATA_DIR": str(tmp_path / "data"),
        "RECORDINGS_DIR": str(tmp_path / "recordings"),
        "WEB_BIND_ADDRESS": "127.0.0.1",
        "SIP_BIND_ADDRESS": "127.0.0.1",
        "WEB_PORT": str(free_port()),
        "SIP_PORT": str(free_port(socket.SOCK_DGRAM)),
        **extra,
    }


def _appliance(
    *args: str, env: dict[str, str], stdin: int | None = subprocess.DEVNULL, limit_s: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "appliance", "--env-file", "/nonexistent/.env", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        stdin=stdin,
        timeout=limit_s,
        check=False,
    )


def _one_line_error(done: subprocess.CompletedProcess[str], *needles: str) -> str:
    """The one line on stderr, after checking the exit status and that there is no traceback."""
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def held_tcp() -> Iterator[int]:
    """A loopback TCP port that another program listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_serve_with_its_web_port_taken_says_so_before_loading_models(
    tmp_path: Path, held_tcp: int
) -> None:
    started = time.monotonic()
    done = _appliance("serve", env=_env(tmp_path, WEB_PORT=str(held_tcp)))
    line = _one_line_error(done, f":{held_tcp}", "another program", "set WEB_PORT")
    assert "Loading models" not in done.stderr, line
    assert time.monotonic() - started < 30


def test_serve_with_a_speakerphone_button_that_is_not_there_says_so_before_loading_models(
    tmp_path: Path,
) -> None:
    env = _env(
        tmp_path, LOCAL_LINE="true", LOCAL_ANSWER="button", LOCAL_BUTTON="/dev/gpiochip97:17",
        LOCAL_AUDIO_DEVICE="no-such-card",
    )  # fmt: skip
    done = _appliance("serve", env=env)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("appliance serve:")]
    assert any("no sound device 'no-such-card'" in line for line in lines), done.stderr
    assert any("no GPIO chip /dev/gpiochip97" in line for line in lines), done.stderr
    assert "Loading models" not in done.stderr and "Traceback" not in done.stderr


def test_serve_with_its_sip_port_taken_says_so(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        done = _appliance("serve", env=_env(tmp_path, SIP_PORT=str(port)))
    _one_line_error(done, "SIP port", f":{port}", "set SIP_PORT")


def test_set_password_without_a_terminal_offers_stdin(tmp_path: Path) -> None:
    env = _env(tmp_path)
    _one_line_error(_appliance("admin", "set-password", env=env), "--stdin", "no terminal")
    assert not (tmp_path / "data" / "admin-password.json").exists()
    piped = subprocess.run(
        [sys.executable, "-m", "appliance", "admin", "set-password", "--password-stdin"],
        input="correct horse battery\n",
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert piped.returncode == 0, piped.stderr
    assert (tmp_path / "data" / "admin-password.json").exists()


@pytest.fixture
def three_calls(tmp_path: Path) -> dict[str, str]:
    """A database holding two calls whose ids share a start, and one with a 32-character SIP id;
    returns the environment that points at it."""
    env = _env(tmp_path)
    conn = connect(tmp_path / "data" / "tel3sis.db")
    try:
        for n, call_id in enumerate(["cli-abc1", "cli-abc2", SIP_ID]):
            info = CallInfo(call_id=call_id, line="sip", caller=f"+1555000{n}")
            opened = calls.open_call(conn, info, started=1_700_000_000.0 + n, owner="t", memory="")
            calls.save_caller_words(conn, opened, turn=1, text="hello " * 40, started=0, ended=1)
    finally:
        conn.close()
    return env


def test_the_database_the_fixture_writes_is_the_one_the_command_reads(
    three_calls: dict[str, str],
) -> None:
    listed = _appliance("calls", "list", "--json", env=three_calls)
    assert listed.returncode == 0, listed.stderr
    assert SIP_ID in listed.stdout


def test_an_ambiguous_id_lists_the_calls_it_could_mean(three_calls: dict[str, str]) -> None:
    line = _one_line_error(_appliance("calls", "show", "cli-abc", env=three_calls), "more than one")
    assert "cli-abc1" in line and "cli-abc2" in line
    shown = _appliance("calls", "show", "cli-abc2", env=three_calls)
    assert shown.returncode == 0 and "cli-abc2" in shown.stdout


@pytest.mark.parametrize("limit", ["0", "-3"])
def test_a_limit_below_one_is_refused(three_calls: dict[str, str], limit: str) -> None:
    done = _appliance("calls", "list", "--limit", limit, env=three_calls)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"--limit: {limit} is not at least 1" in done.stderr


def test_a_long_sip_id_keeps_the_list_in_columns(three_calls: dict[str, str]) -> None:
    done = _appliance("calls", "list", env=three_calls)
    assert done.returncode == 0, done.stderr
    header, *rows = done.stdout.splitlines()
    column = header.index("STARTED")
    assert len(rows) == 3
    for row in rows:
        assert row[column : column + 4] == "2023", (header, row)
    cut = next(row.split()[0] for row in rows if row.startswith(SIP_ID[:8]))
    assert cut.endswith("\u2026") and len(cut) < len(SIP_ID)
    # The cut id, ellipsis and all, still finds the call.
    shown = _appliance("calls", "show", cut, env=three_calls)
    assert shown.returncode == 0 and SIP_ID in shown.stdout, shown.stderr


def test_export_to_a_folder_that_cannot_be_made_names_the_fix(
    three_calls: dict[str, str], tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    done = _appliance("calls", "export", "cli-abc1", "--out", str(blocker / "out"), env=three_calls)
    _one_line_error(done, "cannot export to", "--out")


def test_show_into_a_closed_pipe_exits_quietly(three_calls: dict[str, str]) -> None:
    # `appliance calls show ID | head -1`: the reader leaves before the writer has written.
    process = subprocess.Popen(
        [sys.executable, "-m", "appliance", "calls", "show", "cli-abc1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=three_calls,
        cwd=ROOT,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    with process.stderr:
        errors = process.stderr.read().decode()
    assert process.wait(timeout=60) == 0, errors
    assert errors == ""


@pytest.mark.parametrize("kind", ["zero bytes", "header only"])
def test_a_wav_with_no_audio_places_no_call(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "empty.wav"
    header = wav_header(channels=1, rate=16_000, data_bytes=0)
    path.write_bytes(b"" if kind == "zero bytes" else header)
    started = time.monotonic()
    done = _appliance("call", "--wav", str(path), env=_env(tmp_path))
    _one_line_error(done, str(path), "no audio" if kind == "header only" else "empty")
    assert time.monotonic() - started < 30


def test_doctor_checks_the_sip_port_the_admin_password_and_load(
    tmp_path: Path, held_tcp: int
) -> None:
    done = _appliance("doctor", env=_env(tmp_path, WEB_PORT=str(held_tcp)))
    lines = done.stdout.splitlines()

    def check(name: str) -> str:
        return next(line for line in lines if line[6:].startswith(name))

    assert check("web port").startswith("WARN") and "another program" in check("web port")
    assert check("SIP port").startswith("OK") and "is free" in check("SIP port")
    assert check("admin password").startswith("WARN")
    assert "appliance admin set-password" in done.stdout
    assert check("load").split()[0] in ("OK", "WARN") and "cores" in check("load")
    assert "embeddings" in check("model multilingual-e5-small-q4")


def test_dial_with_nothing_listening_says_so_at_once(tmp_path: Path) -> None:
    env = _env(tmp_path)
    started = time.monotonic()
    done = _appliance("dial", "--say", "hello", env=env)
    _one_line_error(done, f"127.0.0.1:{env['SIP_PORT']}", "appliance serve")
    assert time.monotonic() - started < 15  # not the 15 s a call waits to be answered
