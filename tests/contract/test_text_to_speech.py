"""The TextToSpeech contract, for every adapter: piper, the tone fake, a fallback chain."""

from __future__ import annotations

import contextlib

import pytest

from appliance.audio.frame import SAMPLE_RATE, rms_dbfs
from appliance.clock import LoopClock
from appliance.conversation.ports import TextToSpeech
from appliance.engines.fallback import FallbackTextToSpeech, Option
from tests.support.fakes import ToneTextToSpeech

pytestmark = pytest.mark.asyncio(loop_scope="session")

TEXT = "Thank you for calling. How can I help you today?"


# The real engines (and fallbacks onto them) load the installed models.
@pytest.fixture(
    params=[
        pytest.param("piper", marks=pytest.mark.models),
        "tone",
        pytest.param("fallback", marks=pytest.mark.models),
    ]
)
def tts(request: pytest.FixtureRequest) -> TextToSpeech:
    if request.param == "tone":
        return ToneTextToSpeech(LoopClock(), delay_s=0.01)
    piper = request.getfixturevalue("piper")
    if request.param == "piper":
        return piper  # type: ignore[no-any-return]
    broken = ToneTextToSpeech(LoopClock(), fail=True, name="broken")
    return FallbackTextToSpeech([Option(broken), Option(piper)])


async def test_speech_is_16k_pcm_of_a_plausible_length(tts: TextToSpeech) -> None:
    chunks = [chunk async for chunk in tts.synthesize(TEXT)]
    assert chunks and all(len(c) % 2 == 0 for c in chunks)
    pcm = b"".join(chunks)
    seconds = len(pcm) / 2 / SAMPLE_RATE
    assert 1.5 < seconds < 6.0  # 48 characters spoken at a natural rate
    assert rms_dbfs(pcm) > -40


async def test_closing_early_is_clean(tts: TextToSpeech) -> None:
    stream = tts.synthesize(TEXT + " " + TEXT)
    first = await anext(stream)  # type: ignore[call-overload]
    assert first
    aclose = getattr(stream, "aclose", None)
    assert aclose is not None
    await aclose()
    again = [c async for c in tts.synthesize("Still working.")]
    assert again


async def test_text_with_nothing_to_say_does_not_fail(tts: TextToSpeech) -> None:
    with contextlib.suppress(StopAsyncIteration):
        pcm = b"".join([c async for c in tts.synthesize("...")])
        assert len(pcm) % 2 == 0
