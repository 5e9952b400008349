"""The speakerphone's echo canceller (libspeexdsp) on recorded speech with its echo mixed in.

The room (tests/support/echo_room.py): the agent's voice comes back 40 ms late at -9 dB with a
reflection, and callers speak over it. Echo return loss enhancement (ERLE) is measured where
only the echo is heard, after 5 s to learn; the callers must come through whole, which whisper
checks (caller WER with echo, with and without cancellation; numbers in README, "The
speakerphone").
"""

from __future__ import annotations

import numpy as np
import pytest

from appliance.audio.delay import EchoDelay
from appliance.audio.frame import FRAME_SAMPLES, SAMPLE_RATE, frames_of, silence
from appliance.engines.stt.whisper import WhisperSpeechToText
from appliance.harness.wer import wer
from appliance.telephony.local.echo import EchoCanceller
from tests.support.echo_room import Room, cancelled, erle_db, room


@pytest.fixture(scope="module")
def speakerphone_room() -> Room:
    return room()


def test_the_echo_is_cancelled_by_more_than_25_db(speakerphone_room: Room) -> None:
    r = speakerphone_room
    out = cancelled(r.mic, r.far, EchoCanceller(tail_ms=200))
    erle = erle_db(r.mic, out, r.echo_only)
    print(f"ERLE {erle:.1f} dB")
    assert erle > 40.0


def test_the_callers_voice_comes_through_double_talk(speakerphone_room: Room) -> None:
    r = speakerphone_room
    out = cancelled(r.mic, r.far, EchoCanceller(tail_ms=200))
    for where, text in r.spoken:
        assert erle_db(r.mic, out, where) < 3.0, text  # the caller is not cancelled too


def test_a_far_end_out_of_step_with_the_echo_cancels_nothing(speakerphone_room: Room) -> None:
    """Why the card pairs frames by count and measures the delay: a reference that is not the
    audio that made the echo (here, a second late) leaves the echo in."""
    r = speakerphone_room
    late = silence(50) + r.far
    out = cancelled(r.mic, late, EchoCanceller(tail_ms=200))
    assert erle_db(r.mic, out, r.echo_only) < 6.0


def test_frames_of_another_size_are_refused() -> None:
    canceller = EchoCanceller()
    with pytest.raises(ValueError, match="640-byte"):
        canceller.process(silence(), bytes(100))
    canceller.close()
    canceller.close()


def test_the_echo_delay_is_found_in_the_audio(speakerphone_room: Room) -> None:
    r = speakerphone_room
    shift = 7 * FRAME_SAMPLES + 123  # 157.7 ms, as a sound card's buffers add
    mic = bytes(shift * 2) + r.mic
    delay = EchoDelay()
    found = []
    for far, near in zip(frames_of(r.far), frames_of(mic), strict=False):
        delay.push(far, near)
        found.append(delay.estimate())
    measured = [lag for lag in found if lag is not None]
    assert found[:99] == [None] * 99  # not before its window is full
    expected = shift + int(SAMPLE_RATE * 0.040)  # the room's own 40 ms
    assert measured and all(abs(lag - expected) <= 2 for lag in measured[-100:])


def test_no_delay_is_claimed_from_silence_or_noise() -> None:
    delay = EchoDelay()
    noise = np.random.default_rng(1).normal(0, 2000, FRAME_SAMPLES * 120).astype("<i2").tobytes()
    for far, near in zip(frames_of(silence(120)), frames_of(noise), strict=True):
        delay.push(far, near)
    assert delay.estimate() is None
    other = np.random.default_rng(2).normal(0, 2000, FRAME_SAMPLES * 120).astype("<i2").tobytes()
    for far, near in zip(frames_of(other), frames_of(noise), strict=True):
        delay.push(far, near)
    assert delay.estimate() is None


@pytest.mark.asyncio(loop_scope="session")
async def test_the_caller_is_understood_through_the_echo_only_when_it_is_cancelled(
    speakerphone_room: Room, whisper: WhisperSpeechToText
) -> None:
    r = speakerphone_room
    out = cancelled(r.mic, r.far, EchoCanceller(tail_ms=200))
    margin = SAMPLE_RATE * 3 // 10
    rates: dict[str, list[float]] = {"no echo": [], "echo": [], "cancelled": []}
    for where, text in r.spoken:
        window = slice(2 * (where.start - margin), 2 * (where.stop + margin))
        for name, audio in (("no echo", r.callers), ("echo", r.mic), ("cancelled", out)):
            heard = await whisper.transcribe(audio[window])
            rates[name].append(wer(text, heard.text))
            print(f"{name:9} {text!r}: {heard.text!r}")
    mean = {name: sum(values) / len(values) for name, values in rates.items()}
    print(
        f"caller WER: without echo {mean['no echo']:.0%}, with echo {mean['echo']:.0%}, "
        f"echo cancelled {mean['cancelled']:.0%}"
    )
    assert mean["cancelled"] <= mean["no echo"] + 0.05
    assert mean["echo"] >= mean["cancelled"] + 0.3
