"""SIP calls over loopback with sipp: audio both ways, recorded speech, DTMF, concurrency.

These are about SIP mechanics, so the calls run scripted fake engines (or a `Probe` that plays
a tone and records what it hears); `test_sip_real_call.py` runs the real appliance.
"""

from __future__ import annotations

import struct
import threading
from pathlib import Path

import numpy as np
import pytest

from appliance.audio.frame import frames_of, rms_dbfs
from appliance.audio.g711 import alaw_decode
from appliance.audio.resample import Resampler
from appliance.clock import LoopClock
from appliance.conversation.events import CallEnded, DtmfReceived
from appliance.conversation.ports import CallInfo, CallLine, Handoff, Transferable
from appliance.conversation.session import SessionConfig
from appliance.harness.sipvia import SipVia
from appliance.observability.metrics import Metrics
from appliance.telephony.calls import Admission, CallDesk
from appliance.telephony.script import HangUp, Speak
from appliance.telephony.sip import SipConfig
from appliance.telephony.sip.listener import SinkFactory, SipListener
from tests.support.calls import PERSONA
from tests.support.fakes import dominant_hz, tone
from tests.support.sip import SIP_FIXTURES, Probe, fake_listener, run_sipp

pytestmark = pytest.mark.timeout(120)


async def test_rtp_echo_carries_audio_both_ways(tmp_path: Path) -> None:
    async with fake_listener(probe=Probe) as calls:
        run = await run_sipp(calls.port, "-m", "1", "-d", "3000", "-rtp_echo", work_dir=tmp_path)
    # Closing the listener stopped pjsua2's owner thread (its join did not time out).
    assert not any(thread.name == "sip-endpoint" for thread in threading.enumerate())
    assert run.returncode == 0, run.screen
    assert run.responses()[-2:] == [200, 200]  # INVITE answered, BYE acknowledged
    (probe,) = calls.sessions
    # sipp echoes every RTP packet back: the tone the probe played comes back to it.
    echoed = [f for f in probe.heard if rms_dbfs(f) > -35]
    tone_frames = probe.played * 200 / (200 + 300)
    assert len(echoed) >= 0.7 * tone_frames, (len(echoed), probe.played)
    assert abs(dominant_hz(b"".join(echoed)) - probe.tone_hz) < 30
    # Three seconds of call: one caller frame every 20 ms, with no stall.
    assert 120 <= len(probe.heard) <= 170
    assert probe.longest_gap_s() < 0.25


def _pcap_alaw_payloads(path: Path) -> list[bytes]:
    """The RTP payloads (PCMA, payload type 8) of a classic pcap of one RTP stream."""
    data = path.read_bytes()
    link = struct.unpack("<I", data[20:24])[0]
    header = {1: 14, 113: 16}[link]  # Ethernet, or Linux cooked capture
    payloads, offset = [], 24
    while offset + 16 <= len(data):
        captured = struct.unpack("<I", data[offset + 8 : offset + 12])[0]
        packet = data[offset + 16 : offset + 16 + captured]
        offset += 16 + captured
        ip = packet[header:]
        udp = ip[(ip[0] & 0x0F) * 4 :]
        rtp = udp[8:]
        if len(rtp) > 12 and rtp[1] & 0x7F == 8:
            payloads.append(rtp[12:])
    return payloads


def _envelope(pcm: bytes) -> np.ndarray:
    return np.array([rms_dbfs(f) for f in frames_of(pcm)])


async def test_recorded_speech_and_rfc4733_dtmf_from_a_pcap(tmp_path: Path) -> None:
    async with fake_listener(probe=lambda line: Probe(line, tone_hz=0.0)) as calls:
        run = await run_sipp(calls.port, "-m", "1", scenario="uac_pcap", work_dir=tmp_path)
    assert run.returncode == 0, run.screen
    (probe,) = calls.sessions
    (dtmf,) = calls.all_events(DtmfReceived)
    assert (dtmf.digit, dtmf.method) == ("1", "rfc4733")
    # Decode the recording ourselves (A-law, 8 kHz -> 16 kHz) and find it in what the line heard.
    sent = Resampler(8000, 16000).convert(
        b"".join(alaw_decode(p) for p in _pcap_alaw_payloads(SIP_FIXTURES / "pcap/g711a.pcap")),
        last=True,
    )
    reference = _envelope(sent)
    heard = _envelope(b"".join(probe.heard))
    assert len(reference) > 200  # several seconds of speech
    best = max(
        float(np.corrcoef(reference, heard[lag : lag + len(reference)])[0, 1])
        for lag in range(0, len(heard) - len(reference))
    )
    assert best > 0.95, best


async def test_dtmf_over_sip_info_is_an_event(tmp_path: Path) -> None:
    async with fake_listener() as calls:
        run = await run_sipp(
            calls.port, "-m", "1", scenario=str(SIP_FIXTURES / "info_dtmf.xml"), work_dir=tmp_path
        )
    assert run.returncode == 0, run.screen
    pressed = [(e.digit, e.method) for e in calls.all_events(DtmfReceived)]
    assert pressed == [("5", "sip-info"), ("#", "sip-info")]


async def test_sequential_and_concurrent_calls(tmp_path: Path) -> None:
    def three_at_once(clock):  # type: ignore[no-untyped-def]
        return Admission(clock=clock, max_calls=3, rate_limit=0)

    async with fake_listener(admission=three_at_once, probe=Probe) as calls:
        one_by_one = await run_sipp(
            calls.port, "-m", "3", "-l", "1", "-d", "500", "-rtp_echo", work_dir=tmp_path
        )
        together = await run_sipp(
            calls.port, "-m", "3", "-l", "3", "-r", "10", "-d", "2000", "-rtp_echo",
            work_dir=tmp_path,
        )  # fmt: skip
        assert await calls.settled() == 0
    assert one_by_one.returncode == 0, one_by_one.screen
    assert together.returncode == 0, together.screen
    assert len(calls.sessions) == 6
    for probe in calls.sessions:
        assert probe.heard and probe.longest_gap_s() < 0.25
    # The three concurrent calls overlapped: each heard its own tone echoed, none another's.
    for probe in calls.sessions[3:]:
        assert len(probe.heard) >= 90


async def test_the_agent_hangs_up_with_bye(tmp_path: Path) -> None:
    """A session that ends the call itself (here: nobody speaks) sends BYE."""
    quick = SessionConfig(persona=PERSONA, no_input_timeout_s=1.0)
    async with fake_listener(session_config=quick) as calls:
        run = await run_sipp(
            calls.port, "-m", "1", scenario=str(SIP_FIXTURES / "wait_bye.xml"), work_dir=tmp_path
        )
    assert run.returncode == 0, run.screen
    assert run.received("BYE") == 1
    (ended,) = calls.all_events(CallEnded)
    assert ended.reason == "no input"


async def test_blind_transfer_sends_refer_and_hangs_up(tmp_path: Path) -> None:
    outcome: list[bool] = []

    async def transfer(line: CallLine) -> None:
        assert isinstance(line, Transferable)
        # The escalation number (no person named); raises TransferError when it does not go.
        await line.transfer(Handoff(target="", who="the office", summary=""))
        outcome.append(True)

    config = SipConfig(transfer_to="+15550100")
    probe = lambda line: Probe(line, action=transfer)  # noqa: E731
    async with fake_listener(config=config, probe=probe) as calls:
        run = await run_sipp(
            calls.port, "-m", "1", scenario=str(SIP_FIXTURES / "refer.xml"), work_dir=tmp_path
        )
    assert run.returncode == 0, run.screen
    assert outcome == [True]
    assert "Refer-To: <sip:+15550100@127.0.0.1>" in run.messages or (
        "Refer-To: sip:+15550100@127.0.0.1" in run.messages
    )
    assert run.received("BYE") == 1
    info = calls.sessions[0].line.info
    assert (info.line, info.caller) == ("sip", "caller")


async def test_a_call_over_tcp(tmp_path: Path) -> None:
    async with fake_listener(probe=Probe) as calls:
        assert calls.listener.status.listening[1].startswith("tcp 127.0.0.1:")
        run = await run_sipp(
            calls.port, "-m", "1", "-d", "1000", "-rtp_echo", "-t", "t1", work_dir=tmp_path
        )
    assert run.returncode == 0, run.screen
    assert "SIP/2.0/TCP" in run.messages
    (probe,) = calls.sessions
    assert probe.loud_frames() > 0


@pytest.mark.parametrize(("codec", "wideband"), [("G722", True), ("PCMA", False)])
async def test_the_codec_decides_the_bandwidth_the_appliance_hears(
    codec: str, wideband: bool
) -> None:
    """A 6 kHz tone from the caller survives G.722 (7 kHz audio) and not G.711 (3.4 kHz)."""
    clock = LoopClock()
    probes: list[Probe] = []

    def listener(sinks: SinkFactory) -> SipListener:
        def probe(line: CallLine, _: object) -> Probe:
            probes.append(Probe(line, tone_hz=440))
            return probes[-1]

        admission = Admission(clock=clock, max_calls=1, rate_limit=0)
        router = CallDesk(admission, lambda line, sink, _, __: probe(line, sink), Metrics())
        config = SipConfig(bind_address="127.0.0.1", port=0, rtp_port=0)
        return SipListener(config, router, clock=clock, metrics=Metrics(), sinks=sinks)

    high = tone(6000, 1000, level=0.3)
    async with SipVia(listener, codecs=[codec]) as via:
        await via.place(
            [Speak(high, after="agent-start"), HangUp(gap_ms=200)],
            info=CallInfo(call_id="codec", line="sip", caller="test"),
        )
    heard = b"".join(probes[0].heard)
    loudest = max(rms_dbfs(frame) for frame in frames_of(heard))
    if wideband:
        assert loudest > -20  # the tone is there, at about its level (-13 dBFS)
        assert abs(dominant_hz(max(frames_of(heard), key=rms_dbfs)) - 6000) < 100
    else:
        assert loudest < -40  # filtered out by the 8 kHz path
