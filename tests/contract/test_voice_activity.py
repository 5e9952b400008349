"""The VoiceActivity contract, for every adapter: Silero and the energy detector."""

from __future__ import annotations

import numpy as np
import pytest

from appliance.audio.frame import FRAME_BYTES, frames_of, silence
from appliance.conversation.ports import VoiceActivity
from appliance.engines.vad.energy import EnergyVoiceActivity
from appliance.telephony.wavfile import load_wav
from tests.conftest import AUDIO

pytestmark = pytest.mark.asyncio(loop_scope="session")


# Silero loads the installed model.
@pytest.fixture(
    params=[
        pytest.param("silero", marks=pytest.mark.models),
        "energy",
    ]
)
def vad(request: pytest.FixtureRequest) -> VoiceActivity:
    if request.param == "energy":
        return EnergyVoiceActivity()
    return request.getfixturevalue("silero")  # type: ignore[no-any-return]


async def _probabilities(vad: VoiceActivity, pcm: bytes) -> list[float]:
    detector = vad.detector()
    return [await detector.probability(frame) for frame in frames_of(pcm)]


async def test_speech_scores_high_and_silence_low(vad: VoiceActivity) -> None:
    speech = load_wav(AUDIO / "goforward.wav").pcm
    noise = (np.random.default_rng(3).normal(0, 30, 16_000)).astype("<i2").tobytes()
    quiet = await _probabilities(vad, silence(25) + noise)
    spoken = await _probabilities(vad, speech)
    assert max(quiet) < 0.5
    middle = spoken[len(spoken) // 3 : 2 * len(spoken) // 3]  # goforward.wav: speech in the middle
    assert sum(p >= 0.5 for p in middle) >= 0.7 * len(middle)
    assert all(0.0 <= p <= 1.0 for p in quiet + spoken)


async def test_each_call_gets_its_own_state(vad: VoiceActivity) -> None:
    speech = load_wav(AUDIO / "goforward.wav").pcm
    first = await _probabilities(vad, speech)
    second = await _probabilities(vad, speech)
    assert np.allclose(first, second, atol=1e-4)


async def test_a_wrong_sized_frame_is_refused(vad: VoiceActivity) -> None:
    with pytest.raises(ValueError, match=str(FRAME_BYTES)):
        await vad.detector().probability(b"\x00" * 100)
