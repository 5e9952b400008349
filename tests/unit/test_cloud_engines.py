"""Deepgram's speech to text and ElevenLabs' voice against fakes on loopback that speak their
wire formats: what is sent, what is read back, each failure as an error that names its fix,
and each engine answering in its chain when the engines before it fail."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from appliance.app.engines import build_engines
from appliance.audio.frame import SAMPLE_RATE
from appliance.clock import LoopClock
from appliance.conversation.ports import EngineError
from appliance.engines.api.client import ApiEndpoint
from appliance.engines.api.stt import ApiSpeechToText
from appliance.engines.cloud.deepgram import DeepgramSpeechToText
from appliance.engines.cloud.elevenlabs import ElevenLabsTextToSpeech
from appliance.engines.cloud.service import CloudService
from appliance.engines.fallback import FallbackSpeechToText, FallbackTextToSpeech, Option
from appliance.observability.metrics import Metrics
from appliance.settings import (
    DEPRECATED_NAMES,
    EngineSettings,
    Settings,
    config_warnings,
    env_names,
)
from tests.support import fake_deepgram, fake_elevenlabs
from tests.support.fake_deepgram import FakeDeepgram
from tests.support.fake_elevenlabs import FakeElevenLabs
from tests.support.fakes import ToneSpeechToText, ToneTextToSpeech, say
from tests.support.fault_proxy import proxying

BUDGET_S = 0.3
SLOW_S = 0.3
"""The engines' timeout where a test holds the fake's first byte back."""
NOWHERE = "http://127.0.0.1:9"
"""Nothing listens here: a connection is refused at once."""


@pytest.fixture
def deepgram() -> Iterator[FakeDeepgram]:
    with fake_deepgram.serving(FakeDeepgram()) as fake:
        yield fake


@pytest.fixture
def eleven() -> Iterator[FakeElevenLabs]:
    with fake_elevenlabs.serving(FakeElevenLabs()) as fake:
        yield fake


class Made:
    """Makes the engines, and closes their connections at the test's end."""

    def __init__(self) -> None:
        self.engines: list[DeepgramSpeechToText | ElevenLabsTextToSpeech | ApiSpeechToText] = []

    def stt(
        self, fake: FakeDeepgram, *, key: str | None = None, timeout_s: float = 10
    ) -> DeepgramSpeechToText:
        service = CloudService(
            "Deepgram's speech to text",
            fake.url,
            key or fake.key,
            timeout_s=timeout_s,
            settings_prefix="DEEPGRAM",
        )
        made = DeepgramSpeechToText(service)
        self.engines.append(made)
        return made

    def tts(
        self,
        fake: FakeElevenLabs,
        *,
        key: str | None = None,
        voice_id: str | None = None,
        timeout_s: float = 10,
    ) -> ElevenLabsTextToSpeech:
        service = CloudService(
            "ElevenLabs' voice",
            fake.url,
            key or fake.key,
            timeout_s=timeout_s,
            settings_prefix="ELEVEN_LABS",
        )
        made = ElevenLabsTextToSpeech(service, voice_id=voice_id or fake.voice_id)
        self.engines.append(made)
        return made

    def api_stt(self, base_url: str) -> ApiSpeechToText:
        made = ApiSpeechToText(ApiEndpoint(base_url, "sk-x", timeout_s=5), model="whisper-1")
        self.engines.append(made)
        return made


@pytest.fixture
async def made() -> AsyncIterator[Made]:
    engines = Made()
    yield engines
    for engine in engines.engines:
        await engine.close()


async def _speech(tts: ElevenLabsTextToSpeech | FallbackTextToSpeech, text: str) -> bytes:
    return b"".join([chunk async for chunk in tts.synthesize(text)])


# --- Deepgram, on its wire format ---------------------------------------------------------


async def test_deepgram_hears_the_turn_sent_as_raw_linear16(
    made: Made, deepgram: FakeDeepgram
) -> None:
    turn = say("hello", "weather")
    transcript = await made.stt(deepgram).transcribe(turn)
    assert (transcript.text, transcript.confidence) == (deepgram.transcript, deepgram.confidence)
    assert transcript.engine == "deepgram:nova-3"
    (sent,) = deepgram.requests
    assert sent.path == "/v1/listen" and sent.body == turn
    assert sent.headers["authorization"] == f"Token {deepgram.key}"
    assert {k: sent.query[k] for k in ("encoding", "sample_rate", "channels", "model")} == {
        "encoding": "linear16",
        "sample_rate": "16000",
        "channels": "1",
        "model": "nova-3",
    }


async def test_deepgram_is_not_asked_about_a_click(made: Made, deepgram: FakeDeepgram) -> None:
    transcript = await made.stt(deepgram).transcribe(b"\x00\x01" * 100)
    assert (transcript.text, transcript.confidence) == ("", 0.0)
    assert deepgram.requests == []


async def test_deepgram_hearing_nothing_is_no_confidence(
    made: Made, deepgram: FakeDeepgram
) -> None:
    deepgram.transcript, deepgram.confidence = "", 0.42
    transcript = await made.stt(deepgram).transcribe(say("hello"))
    assert (transcript.text, transcript.confidence) == ("", 0.0)


async def test_deepgram_refusing_the_key_names_the_setting(
    made: Made, deepgram: FakeDeepgram
) -> None:
    with pytest.raises(EngineError, match=r"HTTP 401: Invalid credentials.*DEEPGRAM_API_KEY"):
        await made.stt(deepgram, key="dg-wrong").transcribe(say("hello"))


@pytest.mark.parametrize(
    ("status", "says"),
    [(429, r"too many requests \(HTTP 429: Too many requests"), (500, r"failing \(HTTP 500")],
)
async def test_deepgram_refusals_say_whose_fault_they_are(
    made: Made, deepgram: FakeDeepgram, status: int, says: str
) -> None:
    deepgram.refuse = status
    with pytest.raises(EngineError, match=says):
        await made.stt(deepgram).transcribe(say("hello"))


async def test_deepgram_answering_a_page_names_the_base_url(
    made: Made, deepgram: FakeDeepgram
) -> None:
    deepgram.html = True
    with pytest.raises(EngineError, match=r"answered text/html.*not JSON.*DEEPGRAM_BASE_URL"):
        await made.stt(deepgram).transcribe(say("hello"))


async def test_deepgram_answering_without_results_says_what_was_missing(made: Made) -> None:
    class Empty(FakeDeepgram):
        def answer(self, seconds: float) -> dict[str, object]:
            return {"metadata": {"duration": seconds}}

    with (
        fake_deepgram.serving(Empty()) as fake,
        pytest.raises(
            EngineError, match=r"no results\.channels\[0\]\.alternatives\[0\]\.transcript"
        ),
    ):
        await made.stt(fake).transcribe(say("hello"))


async def test_deepgram_slower_than_its_timeout_is_given_up(
    made: Made, deepgram: FakeDeepgram
) -> None:
    deepgram.hold = threading.Event()
    started = time.perf_counter()
    with pytest.raises(EngineError, match=r"no answer within 0\.3 s \(ENGINE_TIMEOUT_S\)"):
        await made.stt(deepgram, timeout_s=SLOW_S).transcribe(say("hello"))
    assert time.perf_counter() - started < SLOW_S + 2.0


# --- ElevenLabs, on its wire format ---------------------------------------------------------


async def test_elevenlabs_streams_its_pcm_in_pieces_as_they_come(
    made: Made, eleven: FakeElevenLabs
) -> None:
    eleven.rest_of_speech = threading.Event()
    stream = made.tts(eleven).synthesize("One two three four five.")
    first = await asyncio.wait_for(anext(stream), 5)  # before the fake has sent the rest
    eleven.rest_of_speech.set()
    chunks = [first, *[c async for c in stream]]
    assert len(chunks) > 2 and all(len(c) % 2 == 0 for c in chunks)  # odd pieces made whole
    pcm = b"".join(chunks)
    assert pcm == eleven.speech("One two three four five.")  # not one byte lost or moved
    assert len(pcm) / 2 / SAMPLE_RATE == pytest.approx(5 * eleven.seconds_per_word)
    (sent,) = eleven.requests
    assert sent.path == f"/v1/text-to-speech/{eleven.voice_id}/stream"
    assert sent.query == {"output_format": "pcm_16000"}
    assert sent.headers["xi-api-key"] == eleven.key
    assert sent.body == {"text": "One two three four five.", "model_id": "eleven_flash_v2_5"}


async def test_elevenlabs_is_not_asked_to_say_nothing(made: Made, eleven: FakeElevenLabs) -> None:
    assert await _speech(made.tts(eleven), "...") == b""
    assert eleven.requests == []


async def test_elevenlabs_closed_early_is_clean(made: Made, eleven: FakeElevenLabs) -> None:
    tts = made.tts(eleven)
    stream = tts.synthesize("A long sentence that the caller interrupts half way through.")
    assert await anext(stream)
    await stream.aclose()  # type: ignore[attr-defined]
    assert await _speech(tts, "Still working.")


@pytest.mark.parametrize(
    ("fault", "says"),
    [
        ("key", r"HTTP 401: Invalid API key\); check ELEVEN_LABS_API_KEY"),
        ("voice", r"HTTP 404: A voice with the voice_id nobody was not found.*the model or voice"),
        (429, r"too many requests \(HTTP 429: Too many concurrent requests"),
        (500, r"failing \(HTTP 500: An internal error occurred"),
    ],
)
async def test_elevenlabs_refusals_say_what_to_fix(
    made: Made, eleven: FakeElevenLabs, fault: str | int, says: str
) -> None:
    if isinstance(fault, int):
        eleven.refuse = fault
    tts = made.tts(
        eleven,
        key="xi-wrong" if fault == "key" else None,
        voice_id="nobody" if fault == "voice" else None,
    )
    with pytest.raises(EngineError, match=says):
        await _speech(tts, "Hello.")


async def test_elevenlabs_answering_a_page_names_the_base_url(
    made: Made, eleven: FakeElevenLabs
) -> None:
    eleven.html = True
    with pytest.raises(EngineError, match=r"answered text/html.*not audio.*ELEVEN_LABS_BASE_URL"):
        await _speech(made.tts(eleven), "Hello.")


async def test_elevenlabs_slower_than_its_timeout_is_given_up(
    made: Made, eleven: FakeElevenLabs
) -> None:
    eleven.hold = threading.Event()
    started = time.perf_counter()
    with pytest.raises(EngineError, match=r"no answer within 0\.3 s"):
        await _speech(made.tts(eleven, timeout_s=SLOW_S), "Hello.")
    assert time.perf_counter() - started < SLOW_S + 2.0


async def test_elevenlabs_reset_mid_speech_ends_it_with_an_error(
    made: Made, eleven: FakeElevenLabs
) -> None:
    with proxying(f"{eleven.url}/") as (faults, url):
        faults.fault = "reset"  # the answer's head and its first 64 bytes pass, then a reset
        tts = made.tts(FakeElevenLabs(url=url.rstrip("/")))
        got: list[bytes] = []
        with pytest.raises(EngineError, match="dropped the connection"):
            async for chunk in tts.synthesize("One two three four five."):
                got.append(chunk)  # noqa: PERF401 - kept chunk by chunk: the stream raises
    assert 0 < sum(len(c) for c in got) < len(eleven.speech("One two three four five."))


async def test_an_unreachable_service_says_so(made: Made) -> None:
    with pytest.raises(EngineError, match="could not reach it"):
        await _speech(made.tts(FakeElevenLabs(url=NOWHERE)), "Hello.")
    with pytest.raises(EngineError, match="could not reach it"):
        await made.stt(FakeDeepgram(url=NOWHERE)).transcribe(say("hello"))


# --- the chains: last, after the local engine and any API engine ------------------------------


async def test_deepgram_answers_when_the_local_and_api_engines_fail(
    made: Made, deepgram: FakeDeepgram
) -> None:
    whisper = ToneSpeechToText(LoopClock(), delay_s=0, fail=True, name="whisper")
    chain = FallbackSpeechToText(
        [Option(whisper, BUDGET_S), Option(made.api_stt(f"{NOWHERE}/v1"), BUDGET_S),
         Option(made.stt(deepgram))]
    )  # fmt: skip
    transcript = await chain.transcribe(say("hello", "weather"))
    assert (transcript.text, transcript.engine) == (deepgram.transcript, "deepgram:nova-3")
    assert chain.active == "deepgram:nova-3" and len(deepgram.requests) == 1


async def test_elevenlabs_speaks_when_the_local_voice_fails(
    made: Made, eleven: FakeElevenLabs
) -> None:
    piper = ToneTextToSpeech(LoopClock(), delay_s=0, fail=True, name="piper")
    chain = FallbackTextToSpeech([Option(piper, BUDGET_S), Option(made.tts(eleven))])
    pcm = await _speech(chain, "Certainly, for four.")
    assert pcm == eleven.speech("Certainly, for four.")
    assert chain.active == "elevenlabs:eleven_flash_v2_5"


async def test_a_healthy_local_voice_never_asks_elevenlabs(
    made: Made, eleven: FakeElevenLabs
) -> None:
    piper = ToneTextToSpeech(LoopClock(), delay_s=0, name="piper")
    chain = FallbackTextToSpeech([Option(piper, BUDGET_S), Option(made.tts(eleven))])
    assert await _speech(chain, "Hello.")
    assert eleven.requests == [] and chain.active == "piper"


async def test_the_box_puts_each_keyed_cloud_engine_last_in_its_chain(tmp_path: Path) -> None:
    eng = EngineSettings(
        openai_api_key="sk-x",
        openai_base_url=f"{NOWHERE}/v1",
        deepgram_api_key="dg",
        eleven_labs_api_key="xi",
    )
    local = build_engines(eng, tmp_path, metrics=Metrics(), clock=LoopClock())  # loads nothing
    keyless = build_engines(
        eng.model_copy(update={"deepgram_api_key": None}),
        tmp_path,
        metrics=Metrics(),
        clock=LoopClock(),
    )
    try:
        stt, tts = local.chains.stt, local.chains.tts
        assert stt.engines == (eng.stt_model, "api:whisper-1", "deepgram:nova-3")  # type: ignore[attr-defined]
        assert tts.engines == (eng.tts_voice, "api:tts-1", "elevenlabs:eleven_flash_v2_5")  # type: ignore[attr-defined]
        assert keyless.chains.stt.engines == (eng.stt_model, "api:whisper-1")  # type: ignore[attr-defined]
        assert local.job_llm.engines == (eng.llm_model,)  # summaries stay on the box
    finally:
        for box in (local, keyless):
            await box.close_api()
            for worker in box.workers:
                worker.close()


# --- settings -------------------------------------------------------------------------------


def _warnings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> list[str]:
    """Start-up warnings for `text` as the .env, in an environment clean of settings."""
    for name in [*env_names(), *DEPRECATED_NAMES]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    env_file = tmp_path / ".env"
    env_file.write_text(text)
    return config_warnings(Settings.load(env_file), env_file, os.environ)


def test_a_cloud_key_makes_its_stage_budget_act(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    budgets = "STT_BUDGET_MS=2000\nTTS_BUDGET_MS=900\n"
    alone = _warnings(tmp_path, monkeypatch, budgets)
    assert [line.split(" ")[0] for line in alone] == ["STT_BUDGET_MS", "TTS_BUDGET_MS"]
    keyed = budgets + "DEEPGRAM_API_KEY=dg\nELEVEN_LABS_API_KEY=xi\n"
    assert _warnings(tmp_path, monkeypatch, keyed) == []


def test_cloud_settings_without_their_key_are_warned_of(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = "DEEPGRAM_MODEL=nova-2\nELEVEN_LABS_VOICE_ID=abc\n"
    assert _warnings(tmp_path, monkeypatch, text) == [
        "DEEPGRAM_MODEL acts on nothing: DEEPGRAM_API_KEY is not set",
        "ELEVEN_LABS_VOICE_ID acts on nothing: ELEVEN_LABS_API_KEY is not set",
    ]
    keyed = text + "DEEPGRAM_API_KEY=dg\nELEVEN_LABS_API_KEY=xi\n"
    assert _warnings(tmp_path, monkeypatch, keyed) == []
