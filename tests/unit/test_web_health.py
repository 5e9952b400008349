"""Health sources, the board that asks them, the box's readings, waterfalls and recording paths."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pydantic import SecretStr

from appliance.clock import LoopClock
from appliance.conversation.ports import EngineError, Transcript
from appliance.engines.fallback import FallbackSpeechToText, Option
from appliance.observability import system
from appliance.observability.metrics import Metrics
from appliance.settings import TwilioSettings
from appliance.web.health import Health, HealthBoard, NotConfigured, overall
from appliance.web.parts import EngineHealth, SipHealth, TwilioHealth
from appliance.web.status import recording_file
from appliance.web.waterfall import waterfall
from tests.support.status import STARTS, TIMINGS


@dataclass
class Counted:
    part: str
    level: str = "ok"
    asked: int = 0

    async def health(self) -> Health:
        self.asked += 1
        return Health(self.part, self.level, f"asked {self.asked}")  # type: ignore[arg-type]


class Broken:
    part = "broken"

    async def health(self) -> Health:
        raise OSError("no such device")


class Stuck:
    part = "stuck"

    async def health(self) -> Health:
        await asyncio.sleep(3600)
        raise AssertionError


def test_the_board_reports_failing_and_hung_sources_and_sets_the_gauge() -> None:
    async def main() -> None:
        metrics = Metrics()
        counted = Counted("disk")
        off = NotConfigured("sip")
        board = HealthBoard(
            [counted, Broken(), Stuck(), off],
            clock=LoopClock(),
            metrics=metrics,
            timeout_s=0.2,
            max_age_s=60,
        )
        parts = {p.part: p for p in await board.check()}
        assert parts["disk"].level == "ok"
        assert parts["broken"].level == "fail" and "OSError" in parts["broken"].summary
        assert parts["stuck"].level == "fail" and "no answer" in parts["stuck"].summary
        assert parts["sip"] == Health("sip", "off", "not configured")
        assert overall(list(parts.values())) == "fail"
        await board.check()
        assert counted.asked == 1  # within max_age: the last answers
        await board.check(max_age_s=0)
        assert counted.asked == 2
        sample = metrics.registry.get_sample_value
        assert sample("tel3sis_health", {"part": "disk"}) == 1
        assert sample("tel3sis_health", {"part": "broken"}) == 0
        assert sample("tel3sis_health", {"part": "sip"}) is None  # not configured: absent

    asyncio.run(main())


def test_overall_is_the_worst_part_and_off_is_no_fault() -> None:
    assert overall([Health("a", "off", ""), Health("b", "ok", "")]) == "ok"
    assert overall([Health("a", "off", "")]) == "ok"
    assert overall([Health("a", "warn", ""), Health("b", "ok", "")]) == "warn"
    assert overall([]) == "ok"


@dataclass
class Stt:
    name: str
    fail: bool = False

    async def transcribe(self, pcm: bytes) -> Transcript:
        if self.fail:
            raise EngineError("the device is gone")
        return Transcript(text="hi", confidence=1.0, engine=self.name)


def test_an_engine_part_warns_while_a_fallback_answers() -> None:
    async def main() -> None:
        local, cloud = Stt("whisper", fail=True), Stt("cloud")
        chain = FallbackSpeechToText([Option(local, 1.0), Option(cloud, 1.0)])
        part = EngineHealth("stt", chain)
        assert (await part.health()).level == "ok"
        await chain.transcribe(b"\0" * 640)
        health = await part.health()
        assert health.level == "warn"
        assert health.summary == "fallback in use: cloud answers for whisper"
        local.fail = False
        for _ in range(3):
            await chain.transcribe(b"\0" * 640)
        assert (await part.health()).level == "ok"

    asyncio.run(main())


@dataclass(frozen=True)
class Registration:
    state: str = "off"
    code: int = 0
    reason: str = ""
    expires_s: int = 0
    changed_at: float = 0.0


@dataclass
class SipStatus:
    """Shaped like the SIP line's status object (its branch's `SipStatus`)."""

    listening: list[str] = field(default_factory=list)
    registration: Registration = field(default_factory=Registration)
    active_calls: int = 0


@pytest.mark.parametrize(
    ("status", "level", "summary"),
    [
        (SipStatus(), "fail", "not listening"),
        (SipStatus(["udp 0.0.0.0:5060"]), "ok", "listening (no registrar)"),
        (
            SipStatus(["udp 0.0.0.0:5060"], Registration("registered", 200, "OK")),
            "ok",
            "registered",
        ),
        (SipStatus(["udp 0.0.0.0:5060"], Registration("registering")), "warn", "registering"),
        (
            SipStatus(["udp 0.0.0.0:5060"], Registration("failed", 403, "Forbidden")),
            "fail",
            "registration lost: 403 Forbidden",
        ),
    ],
)
def test_the_sip_part_reads_the_lines_status(status: SipStatus, level: str, summary: str) -> None:
    health = asyncio.run(SipHealth(status).health())
    assert (health.level, health.summary) == (level, summary)


def test_the_twilio_part_never_shows_the_token() -> None:
    token = "s3cr3t-token-value-0123456789abcdef"
    full = TwilioSettings(
        account_sid="AC" + "1234" * 8,
        auth_token=SecretStr(token),
        phone_number="+15550001111",
        base_url="https://box.example.com",
    )
    health = asyncio.run(TwilioHealth(full).health())
    assert health.level == "ok"
    shown = repr(health)
    assert token not in shown and "AC...1234" in shown and "1234" * 8 not in shown
    assert ("voice webhook", "https://box.example.com/twilio/voice") in health.facts
    partial = asyncio.run(TwilioHealth(TwilioSettings(account_sid="AC1")).health())
    assert partial.level == "warn" and "TWILIO_AUTH_TOKEN, BASE_URL" in partial.summary
    assert asyncio.run(TwilioHealth(TwilioSettings()).health()).level == "off"


def test_the_pi_firmware_and_kernel_readings_are_parsed(tmp_path: Path) -> None:
    throttled = system.parse_throttled("throttled=0x50005\n")
    assert throttled.now == ["under-voltage", "throttled"]
    assert throttled.since_boot == ["under-voltage", "throttled"]
    assert system.parse_throttled("throttled=0x0").flags == 0
    with pytest.raises(ValueError):
        system.parse_throttled("error=1")
    for zone, milli in (("thermal_zone0", "48500"), ("thermal_zone1", "71250"), ("x", "99000")):
        (tmp_path / zone).mkdir()
        (tmp_path / zone / "temp").write_text(milli + "\n")
    assert system.cpu_temperature(tmp_path) == 71.25
    assert system.cpu_temperature(tmp_path / "none") is None
    assert [system.temperature_level(c) for c in (50, 75, 85)] == ["ok", "warn", "fail"]
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:  4000000 kB\nMemFree: 10 kB\nMemAvailable:  1000000 kB\n")
    assert system.memory(meminfo) == system.MemoryReading(4_096_000_000, 1_024_000_000)
    gib = 1024**3
    assert system.disk_level(system.DiskReading(tmp_path, 100 * gib, 50 * gib)) == "ok"
    assert system.disk_level(system.DiskReading(tmp_path, 100 * gib, 9 * gib)) == "warn"
    assert system.disk_level(system.DiskReading(tmp_path, 4 * gib, 1.5 * gib)) == "warn"
    assert system.disk_level(system.DiskReading(tmp_path, 100 * gib, 2 * gib)) == "fail"
    assert system.throttling(vcgencmd=str(tmp_path / "no-such-program")) is None


def test_a_waterfall_places_each_stage_where_it_began() -> None:
    chart = waterfall(TIMINGS, STARTS)
    assert chart is not None and chart.exact
    bars = {b.key: b for b in chart.bars}
    assert list(bars) == [
        "endpoint",
        "stt",
        "recall",
        "llm_first_token",
        "first_sentence",
        "tts_first_audio",
        "turn",
    ]
    scale = bars["turn"].width / 640
    assert bars["endpoint"].x == bars["turn"].x == chart.zero_x
    assert bars["stt"].x == pytest.approx(chart.zero_x + 160 * scale, abs=0.2)
    assert (
        bars["tts_first_audio"].x + bars["tts_first_audio"].width
        <= bars["turn"].x + bars["turn"].width + 0.5
    )
    assert [t[1] for t in chart.ticks] == ["0", "200", "400", "600"]
    assert all(b.x + b.width <= chart.value_x for b in chart.bars)
    early = waterfall({"stt": 100.0, "turn": 500.0}, {"stt": -120.0, "turn": 0.0})
    assert early is not None and early.bars[0].x < early.zero_x  # speculation began early
    rough = waterfall(TIMINGS, {})
    assert rough is not None and not rough.exact
    assert {b.x for b in rough.bars} == {rough.zero_x}
    assert waterfall({}, {}) is None


def test_only_wavs_inside_the_recordings_folder_are_served(tmp_path: Path) -> None:
    root = tmp_path / "recordings"
    (root / "2026" / "01").mkdir(parents=True)
    good = root / "2026" / "01" / "a.wav"
    good.write_bytes(b"RIFF")
    (tmp_path / "secret.wav").write_bytes(b"RIFF")
    (root / "notes.txt").write_text("x")
    (root / "link.wav").symlink_to(tmp_path / "secret.wav")
    (root / "year").symlink_to(root / "2026")
    assert recording_file(root, "2026/01/a.wav") == good
    assert recording_file(root, "year/01/a.wav") == good  # a link that stays inside is fine
    for bad in (
        "../secret.wav",
        "2026/../../secret.wav",
        "/etc/passwd",
        "//secret.wav",
        "2026/./01/a.wav",
        "link.wav",
        "notes.txt",
        "2026\\01\\a.wav",
        "missing.wav",
        "2026/01/a.wav\0.txt",
        "",
    ):
        assert recording_file(root, bad) is None, bad
