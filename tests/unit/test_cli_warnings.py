"""The command warns at start-up about settings that will not do what was meant."""

from __future__ import annotations

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
