"""Settings: each in .env.example, read under its documented name only, environment over file,
bad values refused, and start-up warnings for settings that will not do what was meant."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from appliance.settings import (
    DEPRECATED_NAMES,
    SECTIONS,
    PathSettings,
    Settings,
    TwilioSettings,
    WebSettings,
    config_warnings,
    env_names,
)

ROOT = Path(__file__).resolve().parents[2]
SEED_NAMES = {
    "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "REDIS_URL", "DATABASE_URL",
    "ESCALATION_PHONE_NUMBER", "SENDGRID_API_KEY", "SENDGRID_FROM_EMAIL", "NOTIFY_EMAIL",
    "BASE_URL", "APPLIANCE_DATA_DIR", "MODELS_DIR", "OPENAI_API_KEY", "OPENAI_BASE_URL",
    "ELEVEN_LABS_API_KEY", "GOOGLE_CLIENT_ID", "GOOGLE_CLIENT_SECRET", "TOKEN_ENCRYPTION_KEY",
}  # fmt: skip
"""The seed's names still read, each by the feature it names."""
GENERIC_NAMES = {"PORT", "HOST", "LEVEL", "FORMAT", "DATA_DIR", "USERNAME", "PASSWORD", "ENABLED"}
"""Set for other programs on many machines; none may configure the box."""


def _example_keys() -> set[str]:
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^([A-Z][A-Z0-9_]*)=", text, re.MULTILINE))


def _clean(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    """No setting from the test runner's own environment, and a home of the test's own."""
    for name in [*env_names(), *DEPRECATED_NAMES]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)


def _reaches_a_setting(defaults: Settings) -> bool:
    """Whether the environment changes a setting from `defaults`, or is refused."""
    try:
        return Settings.load(None) != defaults
    except ValidationError:
        return True


@pytest.fixture
def defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Every setting at its default, in a clean environment the test may add to."""
    _clean(monkeypatch, tmp_path)
    return Settings.load(None)


def test_each_key_of_the_example_is_read_by_a_setting(
    defaults: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    unread = []
    for name in sorted(_example_keys()):
        with monkeypatch.context() as env:
            read = False
            for value in ("0", "1"):  # one of them differs from any default, or is refused
                env.setenv(name, value)
                read = read or _reaches_a_setting(defaults)
            if not read:
                unread.append(name)
    assert unread == []


def test_each_setting_is_in_the_example_under_its_documented_name() -> None:
    assert _example_keys() == set(env_names())
    assert _example_keys() >= SEED_NAMES
    assert not _example_keys() & set(DEPRECATED_NAMES)


@pytest.mark.parametrize("value", ["0", "1", "/x"])
@pytest.mark.parametrize("source", ["environment", "file"])
def test_attribute_names_and_generic_variables_configure_nothing(
    defaults: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, source: str
) -> None:
    documented = set(env_names())
    names = {field for section in SECTIONS for field in section.model_fields} | GENERIC_NAMES
    hostile = {
        spelled
        for name in names
        if name.upper() not in documented  # `sip_port` is SIP_PORT's own name, in lower case
        for spelled in (name.upper(), name.lower())
    }
    assert {"PORT", "port", "LEVEL", "DATA_DIR", "HOST", "BIND_ADDRESS"} <= hostile
    env_file = tmp_path / ".env"
    if source == "file":
        env_file.write_text("".join(f"{name}={value}\n" for name in sorted(hostile)))
    else:
        for name in hostile:
            monkeypatch.setenv(name, value)
    assert Settings.load(env_file) == defaults


def test_the_generic_variables_of_the_issue_leave_the_defaults(
    defaults: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PORT", "3000")
    monkeypatch.setenv("LEVEL", "DEBUG")
    monkeypatch.setenv("DATA_DIR", "/x")
    settings = Settings.load(None)
    assert settings.web.port == 8080
    assert settings.logs.level == "INFO"
    assert settings.paths.data_dir == defaults.paths.data_dir != Path("/x")


def test_the_documented_names_configure_the_box(
    defaults: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEB_PORT", "3000")
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("APPLIANCE_DATA_DIR", "/x")
    monkeypatch.setenv("LLM_SEED", "42")
    monkeypatch.setenv("TURN_MIN_SPEECH_MS", "200")
    settings = Settings.load(None)
    assert settings.web.port == 3000
    assert settings.logs.level == "DEBUG"
    assert settings.paths.models == Path("/x/models")
    assert (defaults.engines.llm_seed, settings.engines.llm_seed) == (-1, 42)
    assert settings.conversation.turn_min_speech_ms == 200


def test_the_old_name_of_turn_min_speech_still_works_and_the_new_one_wins(
    defaults: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BARGE_IN_MIN_SPEECH_MS", "300")
    assert Settings.load(None).conversation.turn_min_speech_ms == 300
    monkeypatch.setenv("TURN_MIN_SPEECH_MS", "200")
    assert Settings.load(None).conversation.turn_min_speech_ms == 200


def test_python_callers_construct_sections_by_attribute_name(
    defaults: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEB_PORT", "9100")  # a keyword wins over the environment
    assert WebSettings(port=9000, bind_address="127.0.0.1").port == 9000
    assert WebSettings(bind_address="127.0.0.1").bind_address == "127.0.0.1"
    paths = PathSettings(data_dir=tmp_path, models_dir=tmp_path / "m")
    assert (paths.models, paths.recordings) == (tmp_path / "m", tmp_path / "recordings")
    assert TwilioSettings(account_sid="AC1", base_url="https://x").base_url == "https://x"
    web = dataclasses.replace(defaults, web=WebSettings(metrics_public=True)).web
    assert web.metrics_public


def test_the_example_file_itself_loads_as_the_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _clean(monkeypatch, tmp_path)
    settings = Settings.load(ROOT / ".env.example")
    data = tmp_path / ".local" / "share" / "tel3sis"
    assert settings.paths.data_dir == data
    assert settings.paths.models == data / "models"
    assert settings.paths.database_url == f"sqlite:///{data / 'tel3sis.db'}"
    assert settings.engines.stt_model == "whisper-tiny.en"
    assert settings.web.port == 8080
    assert settings.twilio.auth_token is None
    assert settings == Settings.load(None)


def test_environment_wins_over_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("WEB_PORT=9000\nAPPLIANCE_DATA_DIR=/srv/box\nTWILIO_AUTH_TOKEN=from-file\n")
    monkeypatch.setenv("WEB_PORT", "9100")
    monkeypatch.delenv("MODELS_DIR", raising=False)  # the tests' own MODELS_DIR would win
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
        ("LLM_SEED", "-2"),
    ],
)
def test_bad_values_are_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=name):
        Settings.load(None)


def _warnings(
    env_file: Path, text: str, monkeypatch: pytest.MonkeyPatch, **environ: str
) -> list[str]:
    """The start-up warnings of settings loaded from `text` in a file and from `environ`."""
    env_file.write_text(text)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    return config_warnings(Settings.load(env_file), env_file, os.environ)


def test_a_copy_of_the_example_warns_of_nothing(defaults: Settings) -> None:
    assert config_warnings(defaults, ROOT / ".env.example", {}) == []
    assert config_warnings(defaults, None, {"PORT": "3000", "PATH": "/bin"}) == []


def test_a_key_of_the_file_that_is_no_setting_is_named_with_the_nearest_setting(
    defaults: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = tmp_path / ".env"
    found = _warnings(env_file, "WEBPORT=9000\nLOG_LEVEL=DEBUG\nQWERTYUIOP=1\n", monkeypatch)
    assert found == [
        f"{env_file}: WEBPORT is no setting and is ignored (did you mean WEB_PORT?)",
        f"{env_file}: QWERTYUIOP is no setting and is ignored",
    ]


def test_an_old_name_is_reported_with_its_new_one(
    defaults: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = tmp_path / ".env"
    old = "BARGE_IN_MIN_SPEECH_MS is deprecated: name it TURN_MIN_SPEECH_MS"
    assert _warnings(env_file, "BARGE_IN_MIN_SPEECH_MS=200\n", monkeypatch) == [old]
    assert _warnings(env_file, "", monkeypatch, BARGE_IN_MIN_SPEECH_MS="200") == [old]
    both = _warnings(env_file, "TURN_MIN_SPEECH_MS=150\n", monkeypatch)
    assert both == [f"{old} (TURN_MIN_SPEECH_MS is set too, and wins)"]


def test_a_budget_of_a_chain_of_one_engine_acts_on_nothing(
    defaults: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = tmp_path / ".env"
    text = "LLM_BUDGET_MS=2500\nSTT_BUDGET_MS=3000\n"
    found = _warnings(env_file, text, monkeypatch, TTS_BUDGET_MS="900")
    assert [line.split(" ")[0] for line in found] == ["LLM_BUDGET_MS", "TTS_BUDGET_MS"]
    assert "only engine" in found[0]  # STT_BUDGET_MS=3000 is the default: nothing to report


def test_a_budget_acts_once_its_stage_has_an_api_engine(
    defaults: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = tmp_path / ".env"
    text = "LLM_BUDGET_MS=2500\nTTS_BUDGET_MS=900\nLLM_API_BASE_URL=http://10.0.0.5:8000/v1\n"
    found = _warnings(env_file, text, monkeypatch)
    assert [line.split(" ")[0] for line in found] == ["TTS_BUDGET_MS"]
    assert _warnings(env_file, text, monkeypatch, OPENAI_API_KEY="sk-x") == []


def test_each_stage_takes_its_own_api_settings_before_the_openai_ones(
    defaults: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert [defaults.engines.api(stage) for stage in ("stt", "llm", "tts")] == [None] * 3
    monkeypatch.setenv("OPENAI_API_KEY", "sk-cloud")
    monkeypatch.setenv("LLM_API_BASE_URL", "http://10.0.0.5:8000/v1")
    monkeypatch.setenv("TTS_API_KEY", "sk-voice")
    engines = Settings.load(None).engines
    assert engines.api("stt") == (None, "sk-cloud")  # OpenAI's own URL
    assert engines.api("llm") == ("http://10.0.0.5:8000/v1", "sk-cloud")
    assert engines.api("tts") == (None, "sk-voice")


def test_settings_that_another_setting_leaves_unread(
    defaults: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = tmp_path / ".env"
    text = (
        "SIP_USERNAME=4930\nSIP_REFUSAL=silent\n"
        "ZEROCONF_ENABLED=false\nZEROCONF_INTERFACES=10.0.0.2\n"
    )
    assert [line.split(" ")[0] for line in _warnings(env_file, text, monkeypatch)] == [
        "SIP_USERNAME",
        "SIP_REFUSAL",
        "ZEROCONF_INTERFACES",
    ]
    heeded = "SIP_ALLOWED_SOURCES=10.0.0.0/8\nSIP_REFUSAL=silent\nZEROCONF_INTERFACES=10.0.0.2\n"
    assert _warnings(env_file, heeded, monkeypatch) == []


def test_google_without_a_token_key_is_warned_of_with_how_to_make_one(
    defaults: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = tmp_path / ".env"
    (warning,) = _warnings(
        env_file, "GOOGLE_CLIENT_ID=1-box.apps.googleusercontent.com\n", monkeypatch
    )
    assert warning.startswith("GOOGLE_CLIENT_ID acts on nothing: TOKEN_ENCRYPTION_KEY is not set")
    assert "appliance tokens new-key" in warning
    key = "TOKEN_ENCRYPTION_KEY=" + "A" * 43 + "=\n"
    assert _warnings(env_file, "GOOGLE_CLIENT_ID=1-box\n" + key, monkeypatch) == []
    (warning,) = _warnings(env_file, "GOOGLE_CALENDAR_ID=shop@example.com\n", monkeypatch)
    assert warning == "GOOGLE_CALENDAR_ID acts on nothing: GOOGLE_CLIENT_ID is not set"
