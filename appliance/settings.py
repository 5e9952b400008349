"""Every setting of the appliance, loaded once from the environment and `.env`.

One frozen model per section. The environment variable names are the ones in `.env.example`
(the seed's names are kept as they were), and the environment is read under those names only:
a variable such as `PORT` or `LEVEL`, set for some other program, must not configure the box.
Attribute names are what the code reads, and what Python callers construct sections with.
Nothing else in the package reads `os.environ`: the composition root passes sections down.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import difflib
import ipaddress
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, Self

from dotenv import dotenv_values
from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "DEPRECATED_NAMES",
    "SECTIONS",
    "CallSettings",
    "ConversationSettings",
    "EngineSettings",
    "InferenceSettings",
    "IntegrationSettings",
    "LogSettings",
    "PathSettings",
    "RecordSettings",
    "ServiceSettings",
    "Settings",
    "SipSettings",
    "TwilioSettings",
    "WebSettings",
    "ZeroconfSettings",
    "config_warnings",
    "env_names",
]


DEPRECATED_NAMES: Mapping[str, str] = MappingProxyType(
    {"BARGE_IN_MIN_SPEECH_MS": "TURN_MIN_SPEECH_MS"}
)
"""Old environment names still read (with a warning at start-up), and the names replacing them."""


def _env(name: str) -> AliasChoices:
    """The documented name first (it wins), then any old name it replaced."""
    return AliasChoices(name, *(old for old, new in DEPRECATED_NAMES.items() if new == name))


def _documented(field: FieldInfo) -> str:
    """The environment name `.env.example` lists for a field."""
    alias = field.validation_alias
    assert isinstance(alias, AliasChoices) and isinstance(alias.choices[0], str)
    return alias.choices[0]


class _Section(BaseSettings):
    # No `populate_by_name`/`validate_by_name`: with either, pydantic-settings also reads each
    # field from the environment under its attribute name (`PORT`, `LEVEL`, `DATA_DIR`).
    model_config = SettingsConfigDict(
        frozen=True,
        extra="ignore",
        env_file_encoding="utf-8",
        env_ignore_empty=True,  # `NAME=` in .env means "use the default"
    )

    def __init__(self, **values: Any) -> None:
        """Python callers name fields by attribute (`WebSettings(port=9000)`).

        Without this, pydantic would silently ignore such a keyword (`extra="ignore"`): inputs
        are matched by the documented names only."""
        known = type(self).model_fields
        super().__init__(
            **{(_documented(known[k]) if k in known else k): v for k, v in values.items()}
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

    @property
    def admin_password(self) -> Path:
        """The status page's password hash, written by `appliance admin set-password`."""
        return self.data_dir / "admin-password.json"


class EngineSettings(_Section):
    """Which local models run, how hard they may use the CPU, and their latency budgets."""

    stt_model: str = Field(default="whisper-tiny.en", validation_alias=_env("STT_MODEL"))
    stt_threads: int = Field(default=2, ge=1, validation_alias=_env("STT_THREADS"))
    stt_beam_size: int = Field(default=1, ge=1, le=10, validation_alias=_env("STT_BEAM_SIZE"))
    stt_budget_ms: int = Field(default=3000, ge=100, validation_alias=_env("STT_BUDGET_MS"))
    """A local transcription slower than this yields to the next engine."""
    llm_model: str = Field(
        default="qwen2.5-coder-1.5b-instruct", validation_alias=_env("LLM_MODEL")
    )
    """The 1.5B: 86% of the front-desk scenarios against the 0.5B's 51% (README, "Which
    language model"); a board short of memory sets the 0.5B."""
    llm_threads: int = Field(default=2, ge=1, validation_alias=_env("LLM_THREADS"))
    llm_context_tokens: int = Field(
        default=4096, ge=512, validation_alias=_env("LLM_CONTEXT_TOKENS")
    )
    llm_max_tokens: int = Field(default=160, ge=16, validation_alias=_env("LLM_MAX_TOKENS"))
    llm_temperature: float = Field(
        default=0.3, ge=0.0, le=2.0, validation_alias=_env("LLM_TEMPERATURE")
    )
    llm_seed: int = Field(default=-1, ge=-1, le=0xFFFFFFFF, validation_alias=_env("LLM_SEED"))
    """Sampling seed; -1 draws a new one (as llama.cpp does), any other repeats the same replies."""
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
    turn_model: str = Field(default="smart-turn-v3.2", validation_alias=_env("TURN_MODEL"))
    """Hears from the voice whether a pause ends the caller's turn (a pause that sounds
    unfinished waits longer); `none` leaves it to the words alone."""
    embed_model: str = Field(
        default="multilingual-e5-small-q4", validation_alias=_env("EMBED_MODEL")
    )
    """Embeds call summaries and caller facts for recall."""
    engine_timeout_s: float = Field(default=60.0, gt=0, validation_alias=_env("ENGINE_TIMEOUT_S"))
    """How long one model call (a load, a warm-up, a turn) may take before it is abandoned."""
    # --- fallback engines behind an OpenAI-compatible API (cloud, or a server on the LAN) -------
    openai_api_key: SecretStr | None = Field(default=None, validation_alias=_env("OPENAI_API_KEY"))
    """The key of every API engine that has none of its own."""
    openai_base_url: str | None = Field(default=None, validation_alias=_env("OPENAI_BASE_URL"))
    """The base URL (`https://host/v1`) of every API engine that has none of its own."""
    stt_api_base_url: str | None = Field(default=None, validation_alias=_env("STT_API_BASE_URL"))
    stt_api_key: SecretStr | None = Field(default=None, validation_alias=_env("STT_API_KEY"))
    stt_api_model: str = Field(default="whisper-1", validation_alias=_env("STT_API_MODEL"))
    llm_api_base_url: str | None = Field(default=None, validation_alias=_env("LLM_API_BASE_URL"))
    llm_api_key: SecretStr | None = Field(default=None, validation_alias=_env("LLM_API_KEY"))
    llm_api_model: str = Field(default="gpt-4o-mini", validation_alias=_env("LLM_API_MODEL"))
    tts_api_base_url: str | None = Field(default=None, validation_alias=_env("TTS_API_BASE_URL"))
    tts_api_key: SecretStr | None = Field(default=None, validation_alias=_env("TTS_API_KEY"))
    tts_api_model: str = Field(default="tts-1", validation_alias=_env("TTS_API_MODEL"))
    tts_api_voice: str = Field(default="alloy", validation_alias=_env("TTS_API_VOICE"))
    tts_api_format: Literal["pcm", "wav"] = Field(
        default="pcm", validation_alias=_env("TTS_API_FORMAT")
    )
    """`pcm` (raw PCM16, as OpenAI sends it) or `wav` (the rate read from its header)."""
    tts_api_sample_rate: int = Field(
        default=24_000, ge=8000, validation_alias=_env("TTS_API_SAMPLE_RATE")
    )
    """Hertz of `pcm` speech (OpenAI's is 24 kHz)."""
    # --- further fallbacks: Deepgram (speech to text) and ElevenLabs (voice), last in chain ---
    deepgram_api_key: SecretStr | None = Field(
        default=None, validation_alias=_env("DEEPGRAM_API_KEY")
    )
    """With it, Deepgram follows the local speech to text (and any API engine) in its chain."""
    deepgram_base_url: str = Field(
        default="https://api.deepgram.com", validation_alias=_env("DEEPGRAM_BASE_URL")
    )
    """Deepgram's API; changed only for a proxy or a test server."""
    deepgram_model: str = Field(default="nova-3", validation_alias=_env("DEEPGRAM_MODEL"))
    eleven_labs_api_key: SecretStr | None = Field(
        default=None, validation_alias=_env("ELEVEN_LABS_API_KEY")
    )
    """With it, ElevenLabs follows the local voice (and any API engine) in its chain."""
    eleven_labs_base_url: str = Field(
        default="https://api.elevenlabs.io", validation_alias=_env("ELEVEN_LABS_BASE_URL")
    )
    """ElevenLabs' API; changed only for a proxy or a test server."""
    eleven_labs_voice_id: str = Field(
        default="21m00Tcm4TlvDq8ikWAM", validation_alias=_env("ELEVEN_LABS_VOICE_ID")
    )
    """A voice of the account's library, by its ID (the default is "Rachel", a stock voice)."""
    eleven_labs_model: str = Field(
        default="eleven_flash_v2_5", validation_alias=_env("ELEVEN_LABS_MODEL")
    )
    """The quickest to its first sound; `eleven_multilingual_v2` sounds better, later."""

    def cloud_key(self, stage: Literal["stt", "llm", "tts"]) -> str | None:
        """The key of the stage's cloud speech engine (Deepgram for stt, ElevenLabs for tts);
        None when it has none: no such engine joins the stage's chain."""
        secret = {"stt": self.deepgram_api_key, "tts": self.eleven_labs_api_key}.get(stage)
        return secret.get_secret_value() if secret is not None else None

    def api(self, stage: Literal["stt", "llm", "tts"]) -> tuple[str | None, str | None] | None:
        """(base URL, key) of the stage's API engine, each falling back to the `OPENAI_` one;
        None when neither is set: the stage has no API engine, its local one is alone."""
        base = getattr(self, f"{stage}_api_base_url") or self.openai_base_url
        secret: SecretStr | None = getattr(self, f"{stage}_api_key") or self.openai_api_key
        key = secret.get_secret_value() if secret is not None else None
        return (base, key) if base or key else None


class ConversationSettings(_Section):
    """How the agent talks: persona, turn-taking and patience."""

    agent_name: str = Field(default="Tess", validation_alias=_env("AGENT_NAME"))
    business_name: str = Field(default="the front desk", validation_alias=_env("BUSINESS_NAME"))
    """Who the agent answers for, as it will be said aloud ("Hello, this is Tess at ...")."""
    persona_file: Path | None = Field(default=None, validation_alias=_env("PERSONA_FILE"))
    """A persona/system prompt to use instead of the built-in one."""
    greeting: str | None = Field(default=None, validation_alias=_env("GREETING"))
    """Spoken on answer; the persona's greeting when unset."""
    business_file: Path | None = Field(default=None, validation_alias=_env("BUSINESS_FILE"))
    """The business profile (TOML or YAML): hours, holidays, services, FAQ, people to reach."""
    endpoint_silence_ms: int = Field(
        default=500, ge=100, le=3000, validation_alias=_env("ENDPOINT_SILENCE_MS")
    )
    """Silence that ends the caller's turn (the transcript so far may shorten or lengthen it)."""
    turn_min_speech_ms: int = Field(
        default=120, ge=40, le=2000, validation_alias=_env("TURN_MIN_SPEECH_MS")
    )
    """Caller speech this long starts a turn (and, over the agent, interrupts it)."""
    no_input_timeout_s: float = Field(
        default=8.0, ge=1.0, le=120.0, validation_alias=_env("NO_INPUT_TIMEOUT_S")
    )
    """Silence after the agent finishes before it asks whether the caller is still there."""
    max_history_turns: int = Field(
        default=12, ge=2, le=200, validation_alias=_env("MAX_HISTORY_TURNS")
    )
    max_call_minutes: float = Field(default=30.0, gt=0, validation_alias=_env("MAX_CALL_MINUTES"))
    safety_screen: bool = Field(default=True, validation_alias=_env("SAFETY_SCREEN"))
    """Screen the caller's words and the agent's sentences (rules, then the classifier)."""
    safety_classifier_file: Path | None = Field(
        default=None, validation_alias=_env("SAFETY_CLASSIFIER_FILE")
    )
    """A classifier trained by `appliance safety train`, instead of the one shipped."""
    safety_abuse_turns: int = Field(
        default=3, ge=1, le=20, validation_alias=_env("SAFETY_ABUSE_TURNS")
    )
    """The caller's turns the screen may refuse before the call is ended politely."""


class CallSettings(_Section):
    """How many calls at once, shared by every line."""

    max_concurrent_calls: int | None = Field(
        default=None, ge=1, validation_alias=_env("MAX_CONCURRENT_CALLS")
    )
    """Calls beyond this get a busy signal. Unset, `serve` measures one turn's engine time at
    start and admits as many calls as such turns fit, one after another, in `TURN_TARGET_MS`
    (`app/capacity.py`), at least one and at most `SIP_PJSUA_MAX_CALLS` less one."""


class SipSettings(_Section):
    """The SIP line: a trunk or a PBX calls the box here (pjsua2, in process)."""

    sip_enabled: bool = Field(default=True, validation_alias=_env("SIP_ENABLED"))
    """`appliance serve` answers SIP calls."""
    bind_address: str = Field(default="0.0.0.0", validation_alias=_env("SIP_BIND_ADDRESS"))  # noqa: S104 - a LAN appliance answers its LAN
    sip_port: int = Field(default=5060, ge=0, le=65535, validation_alias=_env("SIP_PORT"))
    """For UDP and TCP alike; 0 picks a free port."""
    transports: str = Field(default="udp,tcp", validation_alias=_env("SIP_TRANSPORTS"))
    """`udp`, `tcp`, or both, comma-separated."""
    public_address: str | None = Field(default=None, validation_alias=_env("SIP_PUBLIC_ADDRESS"))
    """The address the trunk reaches the box at, when it is behind NAT (put in Contact and SDP)."""
    rtp_port: int = Field(default=10000, ge=0, le=65535, validation_alias=_env("SIP_RTP_PORT"))
    """First UDP port for call audio (RTP and RTCP); 0 picks free ports."""
    rtp_port_range: int = Field(default=200, ge=2, validation_alias=_env("SIP_RTP_PORT_RANGE"))
    codecs: str = Field(default="G722,PCMU,PCMA", validation_alias=_env("SIP_CODECS"))
    """Offered and accepted in this order; anything else is refused (488)."""
    registrar: str | None = Field(default=None, validation_alias=_env("SIP_REGISTRAR"))
    """Register with this registrar (`sip:sip.example.net`) so calls to the number reach us."""
    registrar_username: str | None = Field(default=None, validation_alias=_env("SIP_USERNAME"))
    registrar_password: SecretStr | None = Field(
        default=None, validation_alias=_env("SIP_PASSWORD")
    )
    register_expires_s: int = Field(
        default=300, ge=30, validation_alias=_env("SIP_REGISTER_EXPIRES_S")
    )
    """Registrations are refreshed before they run out, and retried when they fail."""
    allowed_sources: str = Field(default="", validation_alias=_env("SIP_ALLOWED_SOURCES"))
    """The trunk's or PBX's addresses (CIDRs, comma-separated); empty lets anyone call."""
    refusal: Literal["reject", "silent"] = Field(
        default="reject", validation_alias=_env("SIP_REFUSAL")
    )
    """INVITEs from other addresses get `reject` (403) or `silent` (no final answer); so do their
    requests outside a call (OPTIONS, MESSAGE, ...), which are never held."""
    inbound_username: str | None = Field(
        default=None, validation_alias=_env("SIP_INBOUND_USERNAME")
    )
    """When set (with the password), INVITEs must carry these digest credentials."""
    inbound_password: SecretStr | None = Field(
        default=None, validation_alias=_env("SIP_INBOUND_PASSWORD")
    )
    rate_limit: int = Field(default=20, ge=0, validation_alias=_env("SIP_RATE_LIMIT"))
    """INVITEs one address may send per window before the rest get 503 (0: no limit)."""
    rate_window_s: float = Field(default=10.0, gt=0, validation_alias=_env("SIP_RATE_WINDOW_S"))
    rtp_timeout_s: float = Field(default=30.0, ge=0, validation_alias=_env("SIP_RTP_TIMEOUT_S"))
    """A call whose caller sends no audio packets for this long is hung up (0: never)."""
    strict_rtp: bool = Field(default=True, validation_alias=_env("SIP_STRICT_RTP"))
    """Each call takes audio only from the first address that sends it some (as Asterisk's
    strictrtp); off, pjmedia follows whoever sends it enough packets."""
    ack_timeout_s: float = Field(default=4.0, ge=0, validation_alias=_env("SIP_ACK_TIMEOUT_S"))
    """An answered call whose ACK has not come within this long is given up (0: pjsip's 32 s)."""
    attended_transfer: bool = Field(default=True, validation_alias=_env("SIP_ATTENDED_TRANSFER"))
    """Hand callers over attended (the person hears the summary first) where the caller's side
    supports Replaces; false: always a blind REFER."""
    pjsua_max_calls: int = Field(
        default=4, ge=2, le=512, validation_alias=_env("SIP_PJSUA_MAX_CALLS")
    )
    """PJSUA_MAX_CALLS of the pjsua2 build: 4 in the pjsua2-python wheel, 32 from
    firmware-scripts/build-pjproject.sh. SIP calls beyond it, even ones being refused, get 486."""
    pj_log_level: int = Field(default=2, ge=0, le=5, validation_alias=_env("SIP_LOG_LEVEL"))
    """pjsua2's own log: 0 none, 1 errors, 2 warnings, 3 info, 4-5 SIP messages and debug."""

    @model_validator(mode="after")
    def _check(self) -> Self:
        kinds = [t.strip().lower() for t in self.transports.split(",") if t.strip()]
        if not kinds or set(kinds) - {"udp", "tcp"}:
            raise ValueError(f"SIP_TRANSPORTS: {self.transports!r} is not udp, tcp or udp,tcp")
        for raw in (part.strip() for part in self.allowed_sources.split(",")):
            if raw:
                try:
                    ipaddress.ip_network(raw, strict=False)
                except ValueError as exc:
                    raise ValueError(f"SIP_ALLOWED_SOURCES: {raw!r} is not a network") from exc
        if self.registrar and not (self.registrar_username and self.registrar_password):
            raise ValueError("SIP_REGISTRAR needs SIP_USERNAME and SIP_PASSWORD")
        if bool(self.inbound_username) != bool(self.inbound_password):
            raise ValueError("set both SIP_INBOUND_USERNAME and SIP_INBOUND_PASSWORD, or neither")
        return self


class TwilioSettings(_Section):
    """The Twilio account that routes calls to this box."""

    account_sid: str | None = Field(default=None, validation_alias=_env("TWILIO_ACCOUNT_SID"))
    auth_token: SecretStr | None = Field(default=None, validation_alias=_env("TWILIO_AUTH_TOKEN"))
    phone_number: str | None = Field(default=None, validation_alias=_env("TWILIO_PHONE_NUMBER"))
    base_url: str | None = Field(default=None, validation_alias=_env("BASE_URL"))
    """The public URL Twilio reaches this box at (signatures are checked against it)."""
    api_url: str = Field(default="https://api.twilio.com", validation_alias=_env("TWILIO_API_URL"))
    """Twilio's REST API (text messages); changed only for a proxy or a test server."""


class IntegrationSettings(_Section):
    """Outside services the tools and post-call jobs use."""

    escalation_phone_number: str | None = Field(
        default=None, validation_alias=_env("ESCALATION_PHONE_NUMBER")
    )
    sendgrid_api_key: SecretStr | None = Field(
        default=None, validation_alias=_env("SENDGRID_API_KEY")
    )
    sendgrid_from_email: str | None = Field(
        default=None, validation_alias=_env("SENDGRID_FROM_EMAIL")
    )
    sendgrid_api_url: str = Field(
        default="https://api.sendgrid.com", validation_alias=_env("SENDGRID_API_URL")
    )
    """SendGrid's API; changed only for a proxy or a test server."""
    notify_email: str | None = Field(default=None, validation_alias=_env("NOTIFY_EMAIL"))
    """Each call's summary and transcript are emailed here (needs the SendGrid settings)."""
    notify_sms: str | None = Field(default=None, validation_alias=_env("NOTIFY_SMS"))
    """Each call's summary and transcript are texted here (needs the Twilio account settings)."""
    notify_min_caller_turns: int = Field(
        default=1, ge=0, validation_alias=_env("NOTIFY_MIN_CALLER_TURNS")
    )
    """A call is worth an email or a text only when the caller spoke at least this many turns:
    a stranger's silent calls must not each cost a message."""
    notify_per_caller_per_hour: int = Field(
        default=2, ge=0, validation_alias=_env("NOTIFY_PER_CALLER_PER_HOUR")
    )
    """Emails (and, separately, texts) about one caller's calls in any hour; 0: no limit."""
    notify_per_hour: int = Field(default=20, ge=0, validation_alias=_env("NOTIFY_PER_HOUR"))
    """Emails (and, separately, texts) about all calls in any hour; 0: no limit."""
    notify_sms_per_day: int = Field(default=50, ge=0, validation_alias=_env("NOTIFY_SMS_PER_DAY"))
    """Texts about calls in any 24 hours, a cap on what they cost; 0: no limit."""
    redis_url: str | None = Field(default=None, validation_alias=_env("REDIS_URL"))
    """Live session state goes to Redis when set, in-process otherwise."""
    openweather_api_key: SecretStr | None = Field(
        default=None, validation_alias=_env("OPENWEATHER_API_KEY")
    )
    """Weather from OpenWeatherMap when set; from Open-Meteo (no key) otherwise."""
    open_meteo_url: str = Field(
        default="https://api.open-meteo.com", validation_alias=_env("OPEN_METEO_URL")
    )
    """Open-Meteo's forecast API; changed only for a proxy, a LAN mirror or a test server."""
    open_meteo_geocoding_url: str = Field(
        default="https://geocoding-api.open-meteo.com",
        validation_alias=_env("OPEN_METEO_GEOCODING_URL"),
    )
    """Where other towns are looked up when a caller asks about their weather."""
    openweather_api_url: str = Field(
        default="https://api.openweathermap.org", validation_alias=_env("OPENWEATHER_API_URL")
    )
    """OpenWeatherMap's API; changed only for a proxy or a test server."""
    caldav_url: str | None = Field(default=None, validation_alias=_env("CALDAV_URL"))
    """A CalDAV server (Nextcloud, Radicale, Fastmail, iCloud): with it, and hours and services in
    the business profile, the agent finds free times and books, moves and cancels appointments."""
    caldav_username: str | None = Field(default=None, validation_alias=_env("CALDAV_USERNAME"))
    caldav_password: SecretStr | None = Field(
        default=None, validation_alias=_env("CALDAV_PASSWORD")
    )
    """An app password where the server offers them (iCloud, Fastmail, Nextcloud)."""
    caldav_calendar: str | None = Field(default=None, validation_alias=_env("CALDAV_CALENDAR"))
    """The calendar's display name or URL path; the account's first calendar when empty."""
    booking_step_minutes: int = Field(
        default=30, gt=0, le=240, validation_alias=_env("BOOKING_STEP_MINUTES")
    )
    """Appointments start this many minutes apart, counted from each opening."""
    google_client_id: str | None = Field(default=None, validation_alias=_env("GOOGLE_CLIENT_ID"))
    """An OAuth client of type "TVs and Limited Input devices" (Google Cloud console): with it,
    the operator can connect Google Calendar from the status page, and bookings go there."""
    google_client_secret: SecretStr | None = Field(
        default=None, validation_alias=_env("GOOGLE_CLIENT_SECRET")
    )
    google_calendar_id: str = Field(default="primary", validation_alias=_env("GOOGLE_CALENDAR_ID"))
    """The Google calendar bookings go to: "primary", or another calendar's ID (its address)."""
    google_oauth_url: str = Field(
        default="https://oauth2.googleapis.com", validation_alias=_env("GOOGLE_OAUTH_URL")
    )
    """Google's OAuth endpoints; changed only for a proxy or a test server."""
    google_calendar_api_url: str = Field(
        default="https://www.googleapis.com/calendar/v3",
        validation_alias=_env("GOOGLE_CALENDAR_API_URL"),
    )
    """Google Calendar's API; changed only for a proxy or a test server."""
    token_encryption_key: SecretStr | None = Field(
        default=None, validation_alias=_env("TOKEN_ENCRYPTION_KEY")
    )
    """Seals OAuth tokens in the database (AES-GCM; 32 bytes, URL-safe base64). Make one with
    `appliance tokens new-key`; without it no token is stored."""
    token_encryption_key_old: SecretStr | None = Field(
        default=None, validation_alias=_env("TOKEN_ENCRYPTION_KEY_OLD")
    )
    """The key being replaced: tokens it sealed are sealed again under TOKEN_ENCRYPTION_KEY
    when next read, or at once by `appliance tokens rotate`."""

    @model_validator(mode="after")
    def _token_keys_are_keys(self) -> Self:
        for name, key in (
            ("TOKEN_ENCRYPTION_KEY", self.token_encryption_key),
            ("TOKEN_ENCRYPTION_KEY_OLD", self.token_encryption_key_old),
        ):
            if key is not None and not _is_token_key(key.get_secret_value()):
                raise ValueError(
                    f"{name} must be 32 bytes in URL-safe base64 (44 characters); make one "
                    "with `appliance tokens new-key`"
                )
        return self


def _is_token_key(written: str) -> bool:
    try:
        return len(base64.urlsafe_b64decode(written.strip().encode("ascii"))) == 32
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return False


class RecordSettings(_Section):
    """Call records: recordings, transcripts, caller memory and how long they are kept."""

    record_calls: bool = Field(default=True, validation_alias=_env("RECORD_CALLS"))
    """Record each call (caller left, agent right); where the law asks, tell callers."""
    remember_callers: bool = Field(default=True, validation_alias=_env("REMEMBER_CALLERS"))
    """Keep facts and summaries per caller number and give them to the agent on their next call."""
    memory_min_confidence: float = Field(
        default=0.5, ge=0.0, le=1.0, validation_alias=_env("MEMORY_MIN_CONFIDENCE")
    )
    """A caller's turn heard with less speech-to-text confidence (0-1) gives no facts or name."""
    retention_days: int = Field(default=90, ge=0, validation_alias=_env("RETENTION_DAYS"))
    """Recordings and transcripts older than this many days are removed; 0 keeps them for ever."""


class WebSettings(_Section):
    """The local web app (status page, Twilio webhooks, /metrics)."""

    bind_address: str = Field(default="0.0.0.0", validation_alias=_env("WEB_BIND_ADDRESS"))  # noqa: S104 - a LAN appliance serves its LAN
    port: int = Field(default=8080, ge=1, le=65535, validation_alias=_env("WEB_PORT"))
    metrics_public: bool = Field(default=False, validation_alias=_env("METRICS_PUBLIC"))
    """Open /metrics and /healthz without a login to the LAN (private and loopback addresses,
    not through a proxy), for Prometheus; everything else always needs the admin login."""
    turn_target_ms: int = Field(
        default=1500, ge=100, le=60_000, validation_alias=_env("TURN_TARGET_MS")
    )
    """How long a caller should wait, at most, for a reply to begin (milliseconds): the status
    page's health judges the recent turns against it."""


class ZeroconfSettings(_Section):
    """Finding the box on the LAN: mDNS/DNS-SD (zeroconf) as `tel3sis-<id>.local`."""

    zeroconf_enabled: bool = Field(default=True, validation_alias=_env("ZEROCONF_ENABLED"))
    """`appliance serve` advertises the status page (`_http._tcp`) and SIP (`_sip._udp`)."""
    zeroconf_interfaces: str = Field(default="all", validation_alias=_env("ZEROCONF_INTERFACES"))
    """`all`, or the addresses of the interfaces to advertise on, comma-separated."""

    @property
    def addresses(self) -> list[str] | None:
        """The interface addresses, or None for all of them."""
        if self.zeroconf_interfaces.strip().lower() == "all":
            return None
        return [part.strip() for part in self.zeroconf_interfaces.split(",") if part.strip()]

    @model_validator(mode="after")
    def _check(self) -> Self:
        for address in self.addresses or ():
            try:
                ipaddress.ip_address(address)
            except ValueError as exc:
                raise ValueError(
                    f"ZEROCONF_INTERFACES: {address!r} is not an IP address (or use `all`)"
                ) from exc
        if self.addresses == []:
            raise ValueError("ZEROCONF_INTERFACES: give `all` or at least one address")
        return self


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


class InferenceSettings(_Section):
    """The box as a LAN inference server (OpenAI's API), and finding one on the LAN."""

    inference_server: bool = Field(default=False, validation_alias=_env("INFERENCE_SERVER"))
    """`appliance serve` also answers speech to text, chat and speech for the LAN, and
    advertises it (`_tel3sis-infer._tcp`); needs INFERENCE_API_KEY."""
    inference_port: int = Field(
        default=8081, ge=1, le=65535, validation_alias=_env("INFERENCE_PORT")
    )
    """Where it listens, at WEB_BIND_ADDRESS."""
    inference_api_key: SecretStr | None = Field(
        default=None, validation_alias=_env("INFERENCE_API_KEY")
    )
    """The key clients send (`Authorization: Bearer <key>`), 16 characters or more; a board
    that uses a LAN server sends the same key."""
    inference_max_upload_mb: int = Field(
        default=25, ge=1, le=512, validation_alias=_env("INFERENCE_MAX_UPLOAD_MB")
    )
    """Largest request body, in MB (an audio file to transcribe); a larger one is refused (413)."""
    lan_inference: Literal["off", "auto"] = Field(
        default="off", validation_alias=_env("LAN_INFERENCE")
    )
    """`auto`: at start-up, find the LAN's inference servers (zeroconf) and make the fastest
    each stage's first fallback (the language model's first engine when clearly faster)."""


class LocalSettings(_Section):
    """The speakerphone line: a person talking to the box itself (USB speakerphone or HAT)."""

    local_line: bool = Field(default=False, validation_alias=_env("LOCAL_LINE"))
    """`appliance serve` answers the speakerphone too."""
    audio_device: str | None = Field(default=None, validation_alias=_env("LOCAL_AUDIO_DEVICE"))
    """The sound device: its index or (part of) its name, as `appliance doctor` lists them;
    empty for the system default."""
    sample_rate: int | None = Field(
        default=None, ge=8000, le=192000, validation_alias=_env("LOCAL_SAMPLE_RATE")
    )
    """Hertz at the device; empty for the device's own default (converted to 16 kHz inside)."""
    answer: Literal["sound", "always", "wake", "button"] = Field(
        default="sound", validation_alias=_env("LOCAL_ANSWER")
    )
    """`sound`: answer when someone speaks to the box; `always`: a conversation at once and
    another after each ends (a kiosk); `wake`: answer when someone says LOCAL_WAKE_PHRASE;
    `button`: answer (and hang up) with the push button at LOCAL_BUTTON."""
    answer_level_dbfs: float = Field(
        default=-40.0, le=0, validation_alias=_env("LOCAL_ANSWER_LEVEL_DBFS")
    )
    """How loud the room must be, held for 300 ms, to answer with LOCAL_ANSWER=sound (and to
    listen for the wake phrase with LOCAL_ANSWER=wake)."""
    wake_phrase: str = Field(default="", validation_alias=_env("LOCAL_WAKE_PHRASE"))
    """What answers with LOCAL_ANSWER=wake; empty for "hey" and AGENT_NAME ("hey Tess")."""
    button: str = Field(default="", validation_alias=_env("LOCAL_BUTTON"))
    """The push button for LOCAL_ANSWER=button: a GPIO chip and line, `/dev/gpiochip0:17` (an
    offset) or `gpiochip0:GPIO17` (a line's name), wired between the pin and ground."""
    latency_ms: int = Field(default=50, ge=5, le=500, validation_alias=_env("LOCAL_LATENCY_MS"))
    """The sound card's buffering each way: lower answers a barge-in sooner, higher survives a
    busy CPU without underruns (`appliance talk` prints how many there were)."""
    echo_cancel: bool = Field(default=True, validation_alias=_env("LOCAL_ECHO_CANCEL"))
    """Remove the agent's own voice from the microphone (libspeexdsp)."""
    echo_tail_ms: int = Field(
        default=200, ge=20, le=1000, validation_alias=_env("LOCAL_ECHO_TAIL_MS")
    )
    """Milliseconds of echo the canceller models beyond the sound card's own latency."""

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.answer == "button" and not self.button.strip():
            raise ValueError("LOCAL_ANSWER=button needs LOCAL_BUTTON (e.g. /dev/gpiochip0:17)")
        return self

    @property
    def device(self) -> str | int | None:
        """The device as sounddevice takes it: an index, a name, or None for the default."""
        if not self.audio_device:
            return None
        return int(self.audio_device) if self.audio_device.isdigit() else self.audio_device


SECTIONS: tuple[type[_Section], ...] = (
    PathSettings,
    EngineSettings,
    ConversationSettings,
    CallSettings,
    SipSettings,
    TwilioSettings,
    IntegrationSettings,
    RecordSettings,
    WebSettings,
    ZeroconfSettings,
    LogSettings,
    ServiceSettings,
    InferenceSettings,
    LocalSettings,
)
"""Every section, in the order `.env.example` lists them."""


@dataclass(frozen=True, slots=True)
class Settings:
    """All sections, loaded together."""

    paths: PathSettings
    engines: EngineSettings
    conversation: ConversationSettings
    calls: CallSettings
    sip: SipSettings
    twilio: TwilioSettings
    integrations: IntegrationSettings
    records: RecordSettings
    web: WebSettings
    zeroconf: ZeroconfSettings
    logs: LogSettings
    service: ServiceSettings
    inference: InferenceSettings
    local: LocalSettings = dataclasses.field(default_factory=LocalSettings)

    @classmethod
    def load(cls, env_file: Path | None = Path(".env")) -> Settings:
        """Read the environment, and `env_file` when it exists; the environment wins."""
        found = env_file if env_file is not None and env_file.is_file() else None
        sections = [section(_env_file=found) for section in SECTIONS]
        return cls(*sections)  # type: ignore[arg-type]


def env_names() -> dict[str, tuple[type[_Section], str]]:
    """Every documented environment name, with the section and the attribute it sets."""
    return {
        _documented(field): (section, name)
        for section in SECTIONS
        for name, field in section.model_fields.items()
    }


_BUDGETS: Mapping[str, str] = MappingProxyType(
    {
        "STT_BUDGET_MS": "speech recognizer",
        "LLM_BUDGET_MS": "language model",
        "TTS_BUDGET_MS": "voice",
    }
)
"""The fallback chains' budgets. The last engine left in a chain has none (it has nothing to
yield to): a budget acts only when the stage has an API or cloud engine after its local one."""
_STAGES: Mapping[str, Literal["stt", "llm", "tts"]] = MappingProxyType(
    {"STT_BUDGET_MS": "stt", "LLM_BUDGET_MS": "llm", "TTS_BUDGET_MS": "tts"}
)


def config_warnings(
    settings: Settings, env_file: Path | None, environ: Mapping[str, str]
) -> list[str]:
    """One line for each setting that will not do what whoever set it meant, to log at start-up.

    `env_file` and `environ` are what `settings` were loaded from (`Settings.load`): keys of
    the file that are no setting, old names, and values that nothing reads. A value that is
    the default changes nothing, so it is not reported (a copy of `.env.example` is quiet)."""
    in_file = _read_env_file(env_file)
    named = {key.upper() for source in (in_file, environ) for key, value in source.items() if value}
    given = named & _changed(settings)
    known = env_names()
    found: list[str] = []
    for key in in_file:
        if key.upper() not in known and key.upper() not in DEPRECATED_NAMES:
            close = difflib.get_close_matches(key.upper(), known, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            found.append(f"{env_file}: {key} is no setting and is ignored{hint}")
    for old, new in DEPRECATED_NAMES.items():
        if old in named:
            wins = f" ({new} is set too, and wins)" if new in named else ""
            found.append(f"{old} is deprecated: name it {new}{wins}")
    found += (
        f"{name} acts on nothing: the {engine} is the only engine of its chain, and the last "
        "engine left has no budget"
        for name, engine in _BUDGETS.items()
        if name in given
        and settings.engines.api(_STAGES[name]) is None
        and settings.engines.cloud_key(_STAGES[name]) is None
    )
    found += _unheeded(settings, given)
    return found


def _read_env_file(env_file: Path | None) -> dict[str, str | None]:
    """The file's keys and values, parsed as `Settings.load` parses them (python-dotenv)."""
    if env_file is None or not env_file.is_file():
        return {}
    return dotenv_values(env_file, encoding="utf-8")


def _changed(settings: Settings) -> set[str]:
    """The documented names of the settings that hold other than their defaults."""
    changed = set()
    for item in fields(settings):
        section = getattr(settings, item.name)
        for name, field in type(section).model_fields.items():
            if field.default_factory is None and getattr(section, name) != field.default:
                changed.add(_documented(field))
    return changed


def _unheeded(settings: Settings, given: set[str]) -> Iterator[str]:
    """Settings given a value that another setting leaves unread."""
    sip, zeroconf, integ = settings.sip, settings.zeroconf, settings.integrations
    rules = (
        (("SIP_USERNAME", "SIP_PASSWORD", "SIP_REGISTER_EXPIRES_S"), not sip.registrar,
         "SIP_REGISTRAR is not set"),
        (("SIP_REFUSAL",), not sip.allowed_sources.strip(),
         "SIP_ALLOWED_SOURCES is empty, so no address is refused"),
        (("ZEROCONF_INTERFACES",), not zeroconf.zeroconf_enabled, "ZEROCONF_ENABLED is false"),
        (("GOOGLE_CLIENT_SECRET", "GOOGLE_CALENDAR_ID"), not integ.google_client_id,
         "GOOGLE_CLIENT_ID is not set"),
        (("GOOGLE_CLIENT_ID",), integ.token_encryption_key is None,
         "TOKEN_ENCRYPTION_KEY is not set, so Google Calendar cannot be connected (make a key "
         "with `appliance tokens new-key`)"),
        (("TOKEN_ENCRYPTION_KEY_OLD",), integ.token_encryption_key is None,
         "TOKEN_ENCRYPTION_KEY is not set"),
        (("INFERENCE_PORT", "INFERENCE_MAX_UPLOAD_MB"), not settings.inference.inference_server,
         "INFERENCE_SERVER is false"),
        (("DEEPGRAM_BASE_URL", "DEEPGRAM_MODEL"), settings.engines.deepgram_api_key is None,
         "DEEPGRAM_API_KEY is not set"),
        (("ELEVEN_LABS_BASE_URL", "ELEVEN_LABS_VOICE_ID", "ELEVEN_LABS_MODEL"),
         settings.engines.eleven_labs_api_key is None, "ELEVEN_LABS_API_KEY is not set"),
    )  # fmt: skip
    for names, unread, why in rules:
        if unread:
            yield from (f"{name} acts on nothing: {why}" for name in names if name in given)
