"""Settings: each in .env.example, loaded once, environment over file, bad values refused."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from appliance.settings import SECTIONS, Settings

ROOT = Path(__file__).resolve().parents[2]
SEED_NAMES = {
    "OPENAI_API_KEY", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "ELEVEN_LABS_API_KEY", "REDIS_URL",
    "DATABASE_URL", "ESCALATION_PHONE_NUMBER", "TOKEN_ENCRYPTION_KEY", "GOOGLE_CLIENT_ID",
    "GOOGLE_CLIENT_SECRET", "SENDGRID_API_KEY", "SENDGRID_FROM_EMAIL", "NOTIFY_EMAIL", "BASE_URL",
    "APPLIANCE_DATA_DIR", "MODELS_DIR",
}  # fmt: skip


def _env_names() -> set[str]:
    names = set()
    for section in SECTIONS:
        for field in section.model_fields.values():
            alias = field.validation_alias
            names.update(alias.choices if hasattr(alias, "choices") else [alias])  # type: ignore[union-attr]
    return names


def test_env_example_lists_every_setting_and_nothing_else() -> None:
    text = (ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", text, re.MULTILINE))
    assert listed == _env_names()
    assert listed >= SEED_NAMES


def test_the_example_file_itself_loads_as_the_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in _env_names():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    settings = Settings.load(ROOT / ".env.example")
    data = tmp_path / ".local" / "share" / "tel3sis"
    assert settings.paths.data_dir == data
    assert settings.paths.models == data / "models"
    assert settings.paths.database_url == f"sqlite:///{data / 'tel3sis.db'}"
    assert settings.engines.stt_model == "whisper-tiny.en"
    assert settings.web.port == 8080
    assert settings.twilio.auth_token is None


def test_environment_wins_over_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("WEB_PORT=9000\nAPPLIANCE_DATA_DIR=/srv/box\nTWILIO_AUTH_TOKEN=from-file\n")
    monkeypatch.setenv("WEB_PORT", "9100")
    monkeypatch.delenv("MODELS_DIR", raising=False)  # tests run with MODELS_DIR set
    settings = Settings.load(env_file)
    assert settings.web.port == 9100
    assert settings.paths.models == Path("/srv/box/models")
    assert settings.twilio.auth_token is not None
    assert settings.twilio.auth_token.get_secret_value() == "from-file"
    assert "from-file" not in repr(settings.twilio)  # secrets never print


def test_sections_are_frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings.load(None)
    with pytest.raises(ValidationError):
        settings.web.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WEB_PORT", "70000"),
        ("STT_THREADS", "0"),
        ("LOG_LEVEL", "LOUD"),
        ("ENDPOINT_SILENCE_MS", "soon"),
    ],
)
def test_bad_values_are_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=name):
        Settings.load(None)
