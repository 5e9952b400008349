"""build-pjproject.sh's checks that need no network (ShellCheck: see test_codebase.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

BUILD = ROOT / "firmware-scripts" / "build-pjproject.sh"
# ShellCheck runs over every script in tests/unit/test_codebase.py.


def _fake_venv(tmp_path: Path) -> Path:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    return venv


def test_a_tarball_that_fails_the_sha256_check_stops_the_build(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "pjproject-2.15.1.tar.gz").write_bytes(b"not the release")
    done = subprocess.run(
        [str(BUILD), "--venv", str(_fake_venv(tmp_path)), "--work", str(work)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 1
    assert "does not match sha256 8f3bd99c" in done.stderr
    assert not (work / "pjproject-2.15.1").exists()  # nothing was unpacked or built


def test_without_a_venv_it_says_what_to_do(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(BUILD), "--venv", str(tmp_path / "nowhere")],
        capture_output=True, text=True, check=False, timeout=30,
    )  # fmt: skip
    assert done.returncode == 1
    assert "run ./install.sh first" in done.stderr


def test_help_describes_the_options() -> None:
    done = subprocess.run([str(BUILD), "--help"], capture_output=True, text=True, check=True)
    assert "--venv DIR" in done.stdout and "--work DIR" in done.stdout
