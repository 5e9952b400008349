"""The tools that keep the code honest run as part of the suite: lint, format, types, layers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "appliance", "tests", "bench"],
        ["ruff", "format", "--check", "appliance", "tests", "bench"],
        ["mypy"],
        ["lint-imports"],
    ],
    ids=lambda c: " ".join(c[:2]),
)
def test_tool_is_clean(command: list[str]) -> None:
    done = subprocess.run(
        [str(BIN / command[0]), *command[1:]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_shell_scripts_pass_shellcheck() -> None:
    scripts = [
        ROOT / "install.sh",
        ROOT / ".ci" / "run",
        *sorted((ROOT / "firmware-scripts").glob("*.sh")),
    ]
    done = subprocess.run(
        ["shellcheck", *map(str, scripts)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_nothing_reads_the_workplace_shared_folder() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for folder in ("appliance", "tests", "bench", ".ci")
        for path in (ROOT / folder).rglob("*")
        if path.is_file()
        and path.suffix in {".py", ".sh", ".yaml", ".toml", ""}
        and path != Path(__file__)
        and "../shared" in path.read_text(errors="ignore")
    ]
    assert offenders == []
