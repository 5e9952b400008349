"""The tools that keep the code honest run as part of the suite: lint, format, types, layers."""

from __future__ import annotations

import fnmatch
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.mark.tools
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


@pytest.mark.tools
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


_SHARED = "/".join(("..", "shared"))
"""The workplace's folder beside the checkout (spelled so this file does not name it)."""


def test_nothing_reads_the_workplace_shared_folder() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for folder in ("appliance", "tests", "bench", ".ci")
        for path in (ROOT / folder).rglob("*")
        if path.is_file()
        and path.suffix in {".py", ".sh", ".yaml", ".toml", ""}
        and _SHARED in path.read_text(errors="ignore")
    ]
    assert offenders == []


def test_every_data_file_of_the_package_is_installed_with_it() -> None:
    """A regular (non-editable) install, as on a board, carries only what package-data names."""
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]
    package = ROOT / "appliance"
    left_out = []
    for path in sorted(package.rglob("*")):
        if path.is_dir() or path.suffix in (".py", ".pyc") or "__pycache__" in path.parts:
            continue
        owners = [p for p in patterns if (ROOT / p.replace(".", "/")) in path.parents]
        relative = [path.relative_to(ROOT / p.replace(".", "/")).as_posix() for p in owners]
        if not any(
            fnmatch.fnmatch(rel, glob)
            for owner, rel in zip(owners, relative, strict=True)
            for glob in patterns[owner]
        ):
            left_out.append(path.relative_to(ROOT).as_posix())
    assert left_out == [], "add these to [tool.setuptools.package-data] in pyproject.toml"


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    commands = [line for line in readme.splitlines() if line.startswith("./install.sh")]
    assert commands == [
        "./install.sh && .venv/bin/appliance serve",
        "./install.sh --dev && .venv/bin/pytest",
    ]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert commands[1] in ci
