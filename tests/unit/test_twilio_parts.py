"""Twilio's parts on their own: the message vocabulary, stream tokens, the line's pacing and marks,
and the 16 <-> 8 kHz converter at the line's edge."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import numpy as np
import pytest

from appliance.audio.frame import FRAME_BYTES
from appliance.audio.halfband import HalfBandResampler
from appliance.clock import LoopClock
from appliance.conversation.ports import CallInfo
from appliance.telephony.twilio.line import LineConfig, TwilioLine
from appliance.telephony.twilio.messages import (
    Clear,
    Connected,
    Dtmf,
    Mark,
    Media,
    ProtocolError,
    Start,
    Stop,
    encode_from_twilio,
    encode_to_twilio,
    parse_from_twilio,
    parse_to_twilio,
)
from appliance.telephony.twilio.tokens import StreamTokens
from tests.support.hand_clock import HandClock
from tests.support.virtual_time import run_virtual

# --- messages -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        Connected(),
        Start("MZ1", "CA1", "AC1", {"token": "t"}),
        Media(b"\x00\xff" * 80, chunk=3, timestamp_ms=40),
        Dtmf("7"),
        Mark("0.12"),
        Stop("CA1", "AC1"),
    ],
)
def test_messages_from_twilio_round_trip(message: object) -> None:
    text = encode_from_twilio(message, stream_sid="MZ1", sequence=5)  # type: ignore[arg-type]
    assert parse_from_twilio(text) == message
    if not isinstance(message, Connected):
        assert json.loads(text)["sequenceNumber"] == "5"


def test_twilios_documented_start_message_parses() -> None:
    text = json.dumps(
        {
            "event": "start",
            "sequenceNumber": "1",
            "start": {
                "accountSid": "AC123",
                "streamSid": "MZ123",
                "callSid": "CA123",
                "tracks": ["inbound"],
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                "customParameters": {"token": "abc"},
            },
            "streamSid": "MZ123",
        }
    )
    assert parse_from_twilio(text) == Start("MZ123", "CA123", "AC123", {"token": "abc"})


@pytest.mark.parametrize("message", [Media(b"\x7f" * 160), Mark("1.2"), Clear()])
def test_messages_to_twilio_round_trip(message: object) -> None:
    text = encode_to_twilio(message, "MZ9")  # type: ignore[arg-type]
    assert json.loads(text)["streamSid"] == "MZ9"
    assert parse_to_twilio(text) == message


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("not json", "not JSON"),
        ("[]", "not a JSON object"),
        ('{"event": "teleport"}', "unknown event"),
        ('{"event": "media", "media": {"payload": "!!"}}', "not base64"),
        ('{"event": "media"}', "without its `media`"),
        ('{"event": "mark", "mark": {"name": 3}}', "not a string"),
        (
            '{"event": "start", "start": {"callSid": "CA", "streamSid": "MZ",'
            ' "mediaFormat": {"encoding": "audio/l16", "sampleRate": 16000}}}',
            "unsupported media format",
        ),
        (b"\x00", "binary"),
    ],
)
def test_malformed_messages_are_protocol_errors(text: str | bytes, problem: str) -> None:
    with pytest.raises(ProtocolError, match=problem):
        parse_from_twilio(text)


# --- tokens ---------------------------------------------------------------------------------


def test_a_token_works_once_for_its_call_until_it_expires() -> None:
    clock = HandClock(100.0)
    tokens = StreamTokens(clock, ttl_s=30)
    token = tokens.issue("CA1", caller="+1555")
    assert tokens.pending == 1
    pending = tokens.redeem(token, "CA1")
    assert pending is not None and pending.caller == "+1555"
    assert tokens.redeem(token, "CA1") is None  # once
    assert tokens.redeem(tokens.issue("CA2"), "CA3") is None  # its own call only
    late = tokens.issue("CA4")
    clock.t += 31
    assert tokens.redeem(late, "CA4") is None
    assert tokens.pending == 0


def test_tokens_are_bounded_and_drop_the_oldest() -> None:
    tokens = StreamTokens(HandClock(100.0), capacity=3)
    issued = [tokens.issue(f"CA{n}") for n in range(5)]
    assert tokens.pending == 3
    assert tokens.redeem(issued[0], "CA0") is None
    assert tokens.redeem(issued[4], "CA4") is not None


# --- the line -------------------------------------------------------------------------------


class _Socket:
    """An in-memory websocket: what the line sends, stamped with the clock."""

    def __init__(self, clock: LoopClock) -> None:
        self.clock = clock
        self.incoming: asyncio.Queue[str | None] = asyncio.Queue()
        self.sent: list[tuple[float, dict[str, object]]] = []
        self.closed: int | None = None

    async def receive(self) -> str | bytes | None:
        return await self.incoming.get()

    async def send(self, text: str) -> None:
        if self.closed is not None:
            raise ConnectionError("closed")
        self.sent.append((self.clock.now(), json.loads(text)))

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed = code
        self.incoming.put_nowait(None)

    def events(self, kind: str) -> list[tuple[float, dict[str, object]]]:
        return [(t, m) for t, m in self.sent if m["event"] == kind]

    def echo(self, name: str) -> None:
        self.incoming.put_nowait(encode_from_twilio(Mark(name), stream_sid="MZ", sequence=0))


def _with_line(test: Callable[[TwilioLine, _Socket, LoopClock], Awaitable[None]]) -> None:
    async def main() -> None:
        clock = LoopClock()
        socket = _Socket(clock)
        line = TwilioLine(
            socket,
            Start("MZ", "CA1", "AC1"),
            info=CallInfo(call_id="CA1", line="twilio", caller="+1"),
            clock=clock,
            config=LineConfig(drain_grace_s=1.0),
        )

        async def call(_: TwilioLine) -> str:
            await test(line, socket, clock)
            return "done"

        assert await line.run(call) == "done"

    run_virtual(main())


def test_outbound_audio_is_paced_in_real_time_with_a_short_lead() -> None:
    async def test(line: TwilioLine, socket: _Socket, clock: LoopClock) -> None:
        started = clock.now()
        for _ in range(50):  # one second of audio
            await line.play(bytes(FRAME_BYTES))
        await asyncio.sleep(0.1)
        media = socket.events("media")
        assert len(media) == 50
        for n, (at, _) in enumerate(media):
            # Never more than 3 frames ahead of what Twilio has played.
            assert at - started >= (n - 3) * 0.02 - 1e-6
        assert media[-1][0] - started >= 0.9
        marks = [m["mark"]["name"] for _, m in socket.events("mark")]  # type: ignore[index]
        assert marks == [f"0.{n}" for n in range(50)]

    _with_line(test)


def test_marks_say_what_was_heard_and_a_clear_ignores_stale_echoes() -> None:
    async def test(line: TwilioLine, socket: _Socket, clock: LoopClock) -> None:
        for _ in range(6):
            await line.play(bytes(FRAME_BYTES))
        await asyncio.sleep(0.05)
        for n in range(3):
            socket.echo(f"0.{n}")
        await asyncio.sleep(0.01)
        assert await line.clear() == 3
        assert socket.events("clear")
        # Twilio flushes the marks it still held: they must not count as heard.
        for n in range(3, 6):
            socket.echo(f"0.{n}")
        await asyncio.sleep(0.01)
        assert await line.play(bytes(FRAME_BYTES)) == 3  # positions go on from what was heard
        await asyncio.sleep(0.05)
        assert socket.events("mark")[-1][1]["mark"] == {"name": "1.3"}
        socket.echo("1.3")
        assert await line.drain() == 4

    _with_line(test)


def test_drain_gives_up_when_marks_never_come_back() -> None:
    async def test(line: TwilioLine, socket: _Socket, clock: LoopClock) -> None:
        await line.play(bytes(FRAME_BYTES))
        started = clock.now()
        assert await line.drain() == 0
        assert 0.9 <= clock.now() - started <= 1.5

    _with_line(test)


# --- 16 <-> 8 kHz -----------------------------------------------------------------------------


def _tone(hz: float, rate: int, seconds: float = 0.5) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return (np.sin(2 * np.pi * hz * t) * 10000).astype("<i2").tobytes()


def _level_db(pcm: bytes) -> float:
    x = np.frombuffer(pcm, "<i2").astype(float)[200:]
    return float(20 * np.log10(np.sqrt(np.mean(x * x)) + 1e-9))


@pytest.mark.parametrize(
    ("hz", "min_db", "max_db"), [(300, -0.5, 0.5), (3000, -0.5, 0.5), (5000, -200, -60)]
)
def test_halfband_down_passes_the_voice_band_and_stops_aliases(
    hz: float, min_db: float, max_db: float
) -> None:
    down = HalfBandResampler(16_000, 8_000)
    source = _tone(hz, 16_000)
    out = b"".join(down.convert(source[i : i + 640]) for i in range(0, len(source), 640))
    assert len(out) == len(source) // 2  # 20 ms in, 20 ms out, every time
    assert min_db <= _level_db(out) - _level_db(source) <= max_db


def test_halfband_up_keeps_level_and_answers_every_chunk_at_once() -> None:
    up = HalfBandResampler(8_000, 16_000)
    source = _tone(1000, 8_000)
    chunks = [up.convert(source[i : i + 320]) for i in range(0, len(source), 320)]
    assert {len(c) for c in chunks} == {640}
    assert abs(_level_db(b"".join(chunks)) - _level_db(source)) < 0.5
    with pytest.raises(ValueError, match="16 and 8 kHz"):
        HalfBandResampler(22_050, 8_000)
