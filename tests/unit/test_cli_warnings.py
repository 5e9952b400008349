"""The command warns at start-up about settings that will not do what was meant."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from appliance.cli import main


def test_a_mistyped_env_key_is_named_with_its_likely_meaning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("APPLIANCE_DATA_DIR", str(tmp_path / "data"))
    env = tmp_path / "box.env"
    env.write_text("WEBPORT=9000\nLLM_BUDGET_MS=100\n")
    main(["--env-file", str(env), "doctor"])
    err = capsys.readouterr().err
    assert "WEBPORT is no setting and is ignored (did you mean WEB_PORT?)" in err
    assert "LLM_BUDGET_MS acts on nothing" in err


def test_a_clean_env_file_gives_no_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("APPLIANCE_DATA_DIR", str(tmp_path / "data"))
    env = tmp_path / "box.env"
    env.write_text("WEB_PORT=9000\n")
    main(["--env-file", str(env), "doctor"])
    assert "WARNING" not in capsys.readouterr().err


@pytest.mark.parametrize(("set_to", "level"), [(None, logging.WARNING), ("DEBUG", logging.DEBUG)])
def test_a_command_other_than_serve_logs_at_log_level_only_when_it_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, set_to: str | None, level: int
) -> None:
    monkeypatch.setenv("APPLIANCE_DATA_DIR", str(tmp_path / "data"))
    if set_to is None:
        monkeypatch.delenv("LOG_LEVEL", raising=False)
    else:
        monkeypatch.setenv("LOG_LEVEL", set_to)
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", list(root.handlers))  # restored after the test
    monkeypatch.setattr(root, "level", root.level)
    main(["--env-file", str(tmp_path / "none.env"), "calls", "list"])
    assert root.level == level


def test_log_level_from_the_env_file_leaves_the_other_commands_quiet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APPLIANCE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("LOG_LEVEL", raising=False)
    env = tmp_path / "box.env"
    env.write_text("LOG_LEVEL=DEBUG\n")  # for `serve`, as in .env.example
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", list(root.handlers))
    monkeypatch.setattr(root, "level", root.level)
    main(["--env-file", str(env), "calls", "list"])
    assert root.level == logging.WARNING
