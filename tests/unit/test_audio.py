"""Pure PCM code: frames, G.711, resampling, rings, WAV parsing and headers."""

from __future__ import annotations

import struct
import threading

import numpy as np
import pytest

from appliance.audio.frame import (
    FRAME_BYTES,
    frames_of,
    pcm_ms,
    rms_dbfs,
    silence,
    to_float,
    to_pcm,
)
from appliance.audio.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from appliance.audio.resample import Resampler, resample
from appliance.audio.ring import FrameRing
from appliance.audio.vad import EnergyVad
from appliance.audio.wav import WavFormatError, decode_wav, wav_header


def _sine(hz: float, ms: float, rate: int = 16_000, level: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * ms / 1000)) / rate
    return np.sin(2 * np.pi * hz * t) * level


def test_frames_split_and_pad() -> None:
    pcm = bytes(range(256)) * 5  # 1280 bytes = two frames exactly
    assert [len(f) for f in frames_of(pcm)] == [FRAME_BYTES, FRAME_BYTES]
    last = list(frames_of(pcm + b"\x01\x02"))[-1]
    assert len(last) == FRAME_BYTES and last[:2] == b"\x01\x02" and set(last[2:]) == {0}
    assert pcm_ms(silence(50)) == 1000


def test_loudness() -> None:
    assert rms_dbfs(silence()) == -120.0
    full = to_pcm(_sine(440, 100, level=1.0))
    assert -4 < rms_dbfs(full) < -2  # a full-scale sine is -3 dBFS


# --- G.711: reference points from ITU-T G.711 tables ---------------------------------------------


def test_ulaw_reference_values() -> None:
    assert ulaw_decode(bytes([0xFF, 0x7F, 0x80, 0x00])) == struct.pack("<4h", 0, 0, 32124, -32124)
    assert ulaw_encode(struct.pack("<3h", 0, 32767, -32768)) == bytes([0xFF, 0x80, 0x00])


def test_alaw_reference_values() -> None:
    assert alaw_decode(bytes([0xD5, 0x55, 0xAA, 0x2A])) == struct.pack("<4h", 8, -8, 32256, -32256)
    assert alaw_encode(struct.pack("<2h", 0, 32767)) == bytes([0xD5, 0xAA])


@pytest.mark.parametrize(
    ("encode", "decode"), [(ulaw_encode, ulaw_decode), (alaw_encode, alaw_decode)]
)
def test_g711_round_trip_error_is_small(encode, decode) -> None:  # type: ignore[no-untyped-def]
    pcm = to_pcm(_sine(1000, 200, rate=8000, level=0.8))
    back = np.frombuffer(decode(encode(pcm)), "<i2").astype(float)
    original = np.frombuffer(pcm, "<i2").astype(float)
    snr = 10 * np.log10(np.sum(original**2) / np.sum((original - back) ** 2))
    assert snr > 30  # companding keeps ~38 dB SNR on a loud tone


def test_g711_codes_decode_to_themselves_again() -> None:
    codes = bytes(range(256))
    assert ulaw_encode(ulaw_decode(codes)) == bytes(0xFF if c == 0x7F else c for c in codes)
    assert alaw_encode(alaw_decode(codes)) == codes


# --- resampling --------------------------------------------------------------------------------


def test_resample_keeps_pitch_and_duration() -> None:
    pcm = to_pcm(_sine(440, 500, rate=22_050))
    out = np.frombuffer(resample(pcm, 22_050, 16_000), "<i2").astype(float)
    assert abs(len(out) - 8000) <= 2
    spectrum = np.abs(np.fft.rfft(out))
    assert abs(np.fft.rfftfreq(len(out), 1 / 16_000)[spectrum.argmax()] - 440) < 3


def test_streaming_resampler_matches_whole_buffer() -> None:
    pcm = to_pcm(_sine(300, 400, rate=8000))
    stream = Resampler(8000, 16_000)
    pieces = [stream.convert(pcm[i : i + 320]) for i in range(0, len(pcm), 320)]
    pieces.append(stream.convert(b"", last=True))
    joined = np.frombuffer(b"".join(pieces), "<i2").astype(float)
    whole = np.frombuffer(resample(pcm, 8000, 16_000), "<i2").astype(float)
    assert abs(len(joined) - len(whole)) <= 4
    n = min(len(joined), len(whole)) - 100
    assert np.max(np.abs(joined[100:n] - whole[100:n])) < 200  # no seams between chunks


# --- ring --------------------------------------------------------------------------------------


def test_ring_drops_oldest_and_counts() -> None:
    ring = FrameRing(3)
    for i in range(5):
        ring.push(bytes([i]))
    assert ring.dropped == 2
    assert [ring.pop(), ring.pop(), ring.pop(), ring.pop()] == [b"\x02", b"\x03", b"\x04", None]


def test_ring_is_safe_across_threads() -> None:
    ring = FrameRing(10_000)

    def producer() -> None:
        for _ in range(5000):
            ring.push(b"x")

    threads = [threading.Thread(target=producer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert len(ring) + ring.dropped == 20_000
    assert ring.clear() == len(ring) or len(ring) == 0


def test_energy_vad_separates_speech_from_silence() -> None:
    vad = EnergyVad()
    quiet = [
        vad.probability(to_pcm(np.random.default_rng(1).normal(0, 0.001, 320))) for _ in range(20)
    ]
    loud = [vad.probability(to_pcm(_sine(200, 20, level=0.3))) for _ in range(5)]
    assert max(quiet) < 0.2 and min(loud) > 0.8


# --- WAV ---------------------------------------------------------------------------------------


def _wav(
    samples: bytes, *, tag: int = 1, channels: int = 1, rate: int = 16_000, bits: int = 16
) -> bytes:
    block = max(1, channels * bits // 8)
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * block, block, bits)
    return (
        b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(samples)) + b"WAVE"
        + b"fmt " + struct.pack("<I", len(fmt)) + fmt
        + b"data" + struct.pack("<I", len(samples)) + samples
    )  # fmt: skip


def test_plain_16k_mono_passes_through_untouched() -> None:
    pcm = to_pcm(_sine(440, 100))
    audio = decode_wav(_wav(pcm))
    assert audio.pcm == pcm and audio.conversions == [] and not audio.truncated


def test_stereo_44k_24bit_is_converted() -> None:
    mono = _sine(440, 200, rate=44_100)
    ints = (np.repeat(mono, 2) * 8_388_607).astype(np.int32)
    packed = b"".join(int(v).to_bytes(4, "little", signed=True)[:3] for v in ints)
    audio = decode_wav(_wav(packed, channels=2, rate=44_100, bits=24))
    assert audio.conversions == [
        "24-bit PCM -> 16-bit PCM",
        "2 channels -> mono",
        "44100 Hz -> 16000 Hz",
    ]
    assert abs(len(audio.pcm) / 2 - 3200) <= 2
    assert -10 < rms_dbfs(audio.pcm) < -8  # a 0.5 sine is -9 dBFS


def test_float_and_mulaw_and_8bit_are_converted() -> None:
    tone = _sine(300, 100)
    as_float = decode_wav(_wav(tone.astype("<f4").tobytes(), tag=3, bits=32))
    as_ulaw = decode_wav(
        _wav(ulaw_encode(to_pcm(_sine(300, 100, rate=8000))), tag=7, rate=8000, bits=8)
    )
    as_u8 = decode_wav(_wav(((tone * 127) + 128).astype(np.uint8).tobytes(), bits=8))
    for audio in (as_float, as_ulaw, as_u8):
        assert abs(len(audio.pcm) - 3200) <= 4
        assert -12 < rms_dbfs(audio.pcm) < -7


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "is empty"),
        (b"ID3\x03\x00 this is an mp3", "not a RIFF/WAVE file"),
        (_wav(b"\x00" * 64, tag=0x11, bits=4), "IMA ADPCM"),
        (_wav(b"\x00" * 64, tag=0x55), "MP3"),
        (b"RIFF\x10\x00\x00\x00WAVEjunk\x00\x00\x00\x00", "no fmt chunk"),
        (_wav(b"", channels=0), "damaged"),
    ],
)
def test_unusable_files_are_refused_with_a_reason(data: bytes, message: str) -> None:
    with pytest.raises(WavFormatError, match=message):
        decode_wav(data, name="caller.wav")


def test_a_recording_cut_short_is_read_up_to_where_it_stops() -> None:
    pcm = to_pcm(_sine(440, 100))
    data = wav_header(channels=1, rate=16_000, data_bytes=10 * len(pcm)) + pcm
    audio = decode_wav(data)
    assert audio.truncated and audio.pcm == pcm


def test_header_round_trips() -> None:
    pcm = to_pcm(_sine(440, 50))
    assert decode_wav(wav_header(channels=1, rate=16_000, data_bytes=len(pcm)) + pcm).pcm == pcm
    np.testing.assert_allclose(to_float(pcm), np.frombuffer(pcm, "<i2") / 32768.0)
