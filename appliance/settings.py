"""Every setting of the appliance, loaded once from the environment and `.env`.

One frozen model per section. The environment variable names are the ones in `.env.example`
(the seed's names are kept as they were); attribute names are what the code reads. Nothing
else in the package reads `os.environ`: the composition root passes sections down.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Self

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "SECTIONS",
    "CallSettings",
    "ConversationSettings",
    "EngineSettings",
    "IntegrationSettings",
    "LogSettings",
    "PathSettings",
    "ServiceSettings",
    "Settings",
    "TwilioSettings",
    "WebSettings",
]


def _env(name: str) -> AliasChoices:
    return AliasChoices(name)


class _Section(BaseSettings):
    model_config = SettingsConfigDict(
        frozen=True,
        extra="ignore",
        env_file_encoding="utf-8",
        populate_by_name=True,
        env_ignore_empty=True,  # `NAME=` in .env means "use the default"
    )


def _default_data_dir() -> Path:
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "share") / "tel3sis"


class PathSettings(_Section):
    """Where the appliance keeps its data."""

    data_dir: Path = Field(
        default_factory=_default_data_dir, validation_alias=_env("APPLIANCE_DATA_DIR")
    )
    """The database, recordings and caches live here."""
    models_dir: Path | None = Field(default=None, validation_alias=_env("MODELS_DIR"))
    """Installed model files; defaults to `<data_dir>/models`."""
    database_url: str | None = Field(default=None, validation_alias=_env("DATABASE_URL"))
    """`sqlite:///path`; defaults to `<data_dir>/tel3sis.db`."""
    recordings_dir: Path | None = Field(default=None, validation_alias=_env("RECORDINGS_DIR"))
    """Call recordings; defaults to `<data_dir>/recordings`."""

    @model_validator(mode="after")
    def _fill_defaults(self) -> Self:
        data = self.data_dir.expanduser()
        updates: dict[str, object] = {"data_dir": data}
        if self.models_dir is None:
            updates["models_dir"] = data / "models"
        if self.database_url is None:
            updates["database_url"] = f"sqlite:///{data / 'tel3sis.db'}"
        if self.recordings_dir is None:
            updates["recordings_dir"] = data / "recordings"
        for key, value in updates.items():
            object.__setattr__(self, key, value)
        return self

    @property
    def models(self) -> Path:
        assert self.models_dir is not None
        return self.models_dir.expanduser()

    @property
    def recordings(self) -> Path:
        assert self.recordings_dir is not None
        return self.recordings_dir.expanduser()

    @property
    def cache(self) -> Path:
        return self.data_dir / "cache"


class EngineSettings(_Section):
    """Which local models run, how hard they may use the CPU, and their latency budgets."""

    stt_model: str = Field(default="whisper-tiny.en", validation_alias=_env("STT_MODEL"))
    stt_threads: int = Field(default=2, ge=1, validation_alias=_env("STT_THREADS"))
    stt_beam_size: int = Field(default=1, ge=1, le=10, validation_alias=_env("STT_BEAM_SIZE"))
    stt_budget_ms: int = Field(default=3000, ge=100, validation_alias=_env("STT_BUDGET_MS"))
    """A local transcription slower than this yields to the next engine."""
    llm_model: str = Field(
        default="qwen2.5-coder-0.5b-instruct", validation_alias=_env("LLM_MODEL")
    )
    llm_threads: int = Field(default=2, ge=1, validation_alias=_env("LLM_THREADS"))
    llm_context_tokens: int = Field(
        default=4096, ge=512, validation_alias=_env("LLM_CONTEXT_TOKENS")
    )
    llm_max_tokens: int = Field(default=160, ge=16, validation_alias=_env("LLM_MAX_TOKENS"))
    llm_temperature: float = Field(
        default=0.3, ge=0.0, le=2.0, validation_alias=_env("LLM_TEMPERATURE")
    )
    llm_budget_ms: int = Field(default=4000, ge=100, validation_alias=_env("LLM_BUDGET_MS"))
    """Time to the first token after which the next engine is tried."""
    tts_voice: str = Field(default="piper-en_US-joe-medium", validation_alias=_env("TTS_VOICE"))
    tts_threads: int = Field(default=2, ge=1, validation_alias=_env("TTS_THREADS"))
    tts_length_scale: float = Field(
        default=1.0, gt=0.3, lt=3.0, validation_alias=_env("TTS_LENGTH_SCALE")
    )
    """Above 1 speaks slower."""
    tts_budget_ms: int = Field(default=2000, ge=100, validation_alias=_env("TTS_BUDGET_MS"))
    vad_model: str = Field(default="silero-vad", validation_alias=_env("VAD_MODEL"))
    """`silero-vad`, or `energy` for the model-free detector."""
    openai_api_key: SecretStr | None = Field(default=None, validation_alias=_env("OPENAI_API_KEY"))
    openai_base_url: str | None = Field(default=None, validation_alias=_env("OPENAI_BASE_URL"))
    eleven_labs_api_key: SecretStr | None = Field(
        default=None, validation_alias=_env("ELEVEN_LABS_API_KEY")
    )


class ConversationSettings(_Section):
    """How the agent talks: persona, turn-taking and patience."""

    agent_name: str = Field(default="Tess", validation_alias=_env("AGENT_NAME"))
    business_name: str = Field(default="the front desk", validation_alias=_env("BUSINESS_NAME"))
    """Who the agent answers for, as it will be said aloud ("Hello, this is Tess at ...")."""
    persona_file: Path | None = Field(default=None, validation_alias=_env("PERSONA_FILE"))
    """A persona/system prompt to use instead of the built-in one."""
    greeting: str | None = Field(default=None, validation_alias=_env("GREETING"))
    """Spoken on answer; the persona's greeting when unset."""
    endpoint_silence_ms: int = Field(
        default=500, ge=100, le=3000, validation_alias=_env("ENDPOINT_SILENCE_MS")
    )
    """Silence that ends the caller's turn (the transcript so far may shorten or lengthen it)."""
    barge_in_min_speech_ms: int = Field(
        default=120, ge=40, le=2000, validation_alias=_env("BARGE_IN_MIN_SPEECH_MS")
    )
    """Caller speech over the agent this long interrupts the agent."""
    no_input_timeout_s: float = Field(
        default=8.0, ge=1.0, le=120.0, validation_alias=_env("NO_INPUT_TIMEOUT_S")
    )
    """Silence after the agent finishes before it asks whether the caller is still there."""
    max_history_turns: int = Field(
        default=12, ge=2, le=200, validation_alias=_env("MAX_HISTORY_TURNS")
    )
    max_call_minutes: float = Field(default=30.0, gt=0, validation_alias=_env("MAX_CALL_MINUTES"))


class CallSettings(_Section):
    """How many calls at once, shared by every line."""

    max_concurrent_calls: int | None = Field(
        default=None, ge=1, validation_alias=_env("MAX_CONCURRENT_CALLS")
    )
    """Calls beyond this get a busy signal; defaults to the CPU count less one (at least one)."""


class TwilioSettings(_Section):
    """The Twilio account that routes calls to this box."""

    account_sid: str | None = Field(default=None, validation_alias=_env("TWILIO_ACCOUNT_SID"))
    auth_token: SecretStr | None = Field(default=None, validation_alias=_env("TWILIO_AUTH_TOKEN"))
    phone_number: str | None = Field(default=None, validation_alias=_env("TWILIO_PHONE_NUMBER"))
    base_url: str | None = Field(default=None, validation_alias=_env("BASE_URL"))
    """The public URL Twilio reaches this box at (signatures are checked against it)."""


class IntegrationSettings(_Section):
    """Outside services the tools and post-call jobs use."""

    escalation_phone_number: str | None = Field(
        default=None, validation_alias=_env("ESCALATION_PHONE_NUMBER")
    )
    token_encryption_key: SecretStr | None = Field(
        default=None, validation_alias=_env("TOKEN_ENCRYPTION_KEY")
    )
    google_client_id: str | None = Field(default=None, validation_alias=_env("GOOGLE_CLIENT_ID"))
    google_client_secret: SecretStr | None = Field(
        default=None, validation_alias=_env("GOOGLE_CLIENT_SECRET")
    )
    sendgrid_api_key: SecretStr | None = Field(
        default=None, validation_alias=_env("SENDGRID_API_KEY")
    )
    sendgrid_from_email: str | None = Field(
        default=None, validation_alias=_env("SENDGRID_FROM_EMAIL")
    )
    notify_email: str | None = Field(default=None, validation_alias=_env("NOTIFY_EMAIL"))
    redis_url: str | None = Field(default=None, validation_alias=_env("REDIS_URL"))
    """Live session state goes to Redis when set, in-process otherwise."""


class WebSettings(_Section):
    """The local web app (status page, Twilio webhooks, /metrics)."""

    bind_address: str = Field(default="0.0.0.0", validation_alias=_env("WEB_BIND_ADDRESS"))  # noqa: S104 - a LAN appliance serves its LAN
    port: int = Field(default=8080, ge=1, le=65535, validation_alias=_env("WEB_PORT"))


class LogSettings(_Section):
    """Logging."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", validation_alias=_env("LOG_LEVEL")
    )
    format: Literal["text", "json"] = Field(default="text", validation_alias=_env("LOG_FORMAT"))


class ServiceSettings(_Section):
    """Set by systemd when it runs the appliance as a `Type=notify` service; leave them empty."""

    notify_socket: str | None = Field(default=None, validation_alias=_env("NOTIFY_SOCKET"))
    """Where readiness, watchdog pings and stopping are reported (`@name` is abstract)."""
    watchdog_usec: int | None = Field(default=None, ge=1, validation_alias=_env("WATCHDOG_USEC"))
    """Microseconds without a ping after which systemd restarts the service."""
    watchdog_pid: int | None = Field(default=None, ge=1, validation_alias=_env("WATCHDOG_PID"))
    """The process the watchdog is meant for; another process must not ping it."""


SECTIONS: tuple[type[_Section], ...] = (
    PathSettings,
    EngineSettings,
    ConversationSettings,
    CallSettings,
    TwilioSettings,
    IntegrationSettings,
    WebSettings,
    LogSettings,
    ServiceSettings,
)
"""Every section, in the order `.env.example` lists them."""


@dataclass(frozen=True, slots=True)
class Settings:
    """All sections, loaded together."""

    paths: PathSettings
    engines: EngineSettings
    conversation: ConversationSettings
    calls: CallSettings
    twilio: TwilioSettings
    integrations: IntegrationSettings
    web: WebSettings
    logs: LogSettings
    service: ServiceSettings

    @classmethod
    def load(cls, env_file: Path | None = Path(".env")) -> Settings:
        """Read the environment, and `env_file` when it exists; the environment wins."""
        found = env_file if env_file is not None and env_file.is_file() else None
        sections = [section(_env_file=found) for section in SECTIONS]  # type: ignore[call-arg]
        return cls(*sections)  # type: ignore[arg-type]
