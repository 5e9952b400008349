"""The OpenAI-compatible engines against a fake OpenAI on loopback, through a fault proxy,
and behind local engines in the fallback chains: a local engine that fails or is slower than
its budget yields to the API, and the turn still gets its words, its reply and its voice."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from appliance.app.engines import build_engines
from appliance.audio.frame import SAMPLE_RATE
from appliance.clock import LoopClock
from appliance.conversation.ports import EngineError, Message, TextDelta, ToolCall, ToolSpec
from appliance.engines.api.client import ApiEndpoint
from appliance.engines.api.llm import ApiLanguageModel
from appliance.engines.api.stt import ApiSpeechToText
from appliance.engines.api.tts import ApiTextToSpeech
from appliance.engines.fallback import (
    FallbackLanguageModel,
    FallbackSpeechToText,
    FallbackTextToSpeech,
    Option,
)
from appliance.observability.metrics import Metrics
from appliance.settings import EngineSettings
from tests.support.fake_openai import FakeOpenAI, serving
from tests.support.fakes import ScriptedLanguageModel, ToneSpeechToText, ToneTextToSpeech, say
from tests.support.fault_proxy import FaultProxy, proxying

BUDGET_S = 0.3
HANGS_S = 3600.0
"""A local engine that never answers in the test's lifetime."""
ASKED = [Message("system", "Be brief."), Message("user", "Can I book a table?")]
BOOK = ToolSpec(
    name="book_table",
    description="Book a table.",
    parameters={"type": "object", "properties": {"people": {"type": "integer"}}},
)


@pytest.fixture
def openai() -> Iterator[FakeOpenAI]:
    with serving(FakeOpenAI()) as fake:
        yield fake


@pytest.fixture
def proxy(openai: FakeOpenAI) -> Iterator[tuple[FaultProxy, ApiEndpoint]]:
    with proxying(openai.url) as (faults, url):
        yield faults, ApiEndpoint(url, openai.key, timeout_s=10)


class Made:
    """Makes API engines, and closes them (their connections) at the test's end."""

    def __init__(self) -> None:
        self.engines: list[ApiLanguageModel | ApiSpeechToText | ApiTextToSpeech] = []

    def llm(self, endpoint: ApiEndpoint, model: str = "m") -> ApiLanguageModel:
        self.engines.append(ApiLanguageModel(endpoint, model=model))
        return self.engines[-1]  # type: ignore[return-value]

    def stt(self, endpoint: ApiEndpoint, model: str = "whisper-1") -> ApiSpeechToText:
        self.engines.append(ApiSpeechToText(endpoint, model=model))
        return self.engines[-1]  # type: ignore[return-value]

    def tts(self, endpoint: ApiEndpoint, audio_format: str = "pcm") -> ApiTextToSpeech:
        made = ApiTextToSpeech(
            endpoint,
            model="tts-1",
            voice="alloy",
            audio_format=audio_format,  # type: ignore[arg-type]
        )
        self.engines.append(made)
        return made


@pytest.fixture
async def made() -> AsyncIterator[Made]:
    engines = Made()
    yield engines
    for engine in engines.engines:
        await engine.close()


def _endpoint(fake: FakeOpenAI, timeout_s: float = 10) -> ApiEndpoint:
    return ApiEndpoint(fake.url, fake.key, timeout_s=timeout_s)


async def _text(model: ApiLanguageModel | FallbackLanguageModel) -> str:
    outputs = [o async for o in model.stream(ASKED)]
    return "".join(o.text for o in outputs if isinstance(o, TextDelta))


# --- the adapters, on OpenAI's wire format ------------------------------------------------------


async def test_speech_to_text_uploads_the_turn_as_16khz_wav(made: Made, openai: FakeOpenAI) -> None:
    stt = made.stt(_endpoint(openai), "whisper-1")
    transcript = await stt.transcribe(say("hello", "weather"))
    assert transcript.text == openai.heard and transcript.engine == "api:whisper-1"
    assert [path for path, _ in openai.requests] == ["/v1/audio/transcriptions"]


@pytest.mark.parametrize("audio_format", ["pcm", "wav"])
async def test_speech_streams_in_pieces_at_16khz(
    made: Made, openai: FakeOpenAI, audio_format: str
) -> None:
    openai.rest_of_speech = threading.Event()
    tts = made.tts(_endpoint(openai), audio_format)
    stream = tts.synthesize("One two three four five.")
    first = await asyncio.wait_for(anext(stream), 5)  # before the server has sent the rest
    openai.rest_of_speech.set()
    chunks = [first, *[c async for c in stream]]
    seconds = sum(len(c) for c in chunks) / 2 / SAMPLE_RATE
    assert seconds == pytest.approx(5 * openai.seconds_per_word, abs=0.01)


async def test_text_streams_and_a_tool_call_arrives_whole(made: Made, openai: FakeOpenAI) -> None:
    llm = made.llm(_endpoint(openai), "gpt-4o-mini")
    assert (await _text(llm)).strip() == openai.reply
    openai.reply = ("book_table", '{"people": 4}')
    outputs = [o async for o in llm.stream(ASKED, [BOOK])]
    assert outputs == [ToolCall(id="call_abc123", name="book_table", arguments='{"people": 4}')]


async def test_a_wrong_key_is_an_engine_error_that_names_the_fix(
    made: Made, openai: FakeOpenAI
) -> None:
    llm = made.llm(ApiEndpoint(openai.url, "sk-wrong", timeout_s=10))
    with pytest.raises(EngineError, match="check its key"):
        await _text(llm)


# --- faults between the adapter and its server ----------------------------------------------


@pytest.mark.parametrize(("fault", "says"), [("error", "HTTP 500"), ("html", "text/html")])
async def test_a_broken_answer_is_an_engine_error(
    made: Made, proxy: tuple[FaultProxy, ApiEndpoint], fault: str, says: str
) -> None:
    faults, endpoint = proxy
    faults.fault = fault  # type: ignore[assignment]
    with pytest.raises(EngineError, match=says):
        await _text(made.llm(endpoint, "m"))
    with pytest.raises(EngineError, match=says):
        _ = [c async for c in made.tts(endpoint).synthesize("Hi.")]
    if fault == "error":
        with pytest.raises(EngineError, match=says):
            await made.stt(endpoint, "m").transcribe(say("hello"))


async def test_a_reset_mid_stream_ends_the_reply_with_an_error(
    made: Made,
    proxy: tuple[FaultProxy, ApiEndpoint],
) -> None:
    faults, endpoint = proxy
    faults.fault, faults.reset_after_events = "reset", 3  # the role event, and two words
    got: list[str] = []
    with pytest.raises(EngineError, match="language model"):
        async for output in made.llm(endpoint, "m").stream(ASKED):
            assert isinstance(output, TextDelta)
            got.append(output.text)
    assert got and "".join(got).strip() != FakeOpenAI().reply


async def test_a_server_slower_than_the_timeout_is_an_engine_error(
    made: Made,
    proxy: tuple[FaultProxy, ApiEndpoint],
) -> None:
    faults, endpoint = proxy
    faults.fault = "slow"
    slow = ApiEndpoint(endpoint.base_url, endpoint.api_key, timeout_s=0.5)
    with pytest.raises(EngineError, match=r"no answer within 0\.5 s"):
        await made.stt(slow, "m").transcribe(say("hello"))


# --- the chains: the local engine first, the API after it -----------------------------------


async def test_a_hanging_local_model_yields_to_the_api_within_its_budget(
    made: Made,
    openai: FakeOpenAI,
) -> None:
    hanging = ScriptedLanguageModel(LoopClock(), first_token_s=HANGS_S, name="local")
    chain = FallbackLanguageModel(
        [Option(hanging, BUDGET_S), Option(made.llm(_endpoint(openai), "m"))]
    )
    started = time.perf_counter()
    stream = chain.stream(ASKED)
    first = await anext(stream)
    took = time.perf_counter() - started
    rest = [o async for o in stream]
    assert BUDGET_S <= took < BUDGET_S + 1.0
    said = "".join(o.text for o in [first, *rest] if isinstance(o, TextDelta))
    assert said.strip() == openai.reply
    assert chain.active == "api:m"


async def test_a_failing_local_model_trips_its_breaker_and_the_api_answers(
    made: Made,
    openai: FakeOpenAI,
) -> None:
    failing = ScriptedLanguageModel(LoopClock(), first_token_s=0, fail=True, name="local")
    chain = FallbackLanguageModel(
        [Option(failing, BUDGET_S), Option(made.llm(_endpoint(openai), "m"))]
    )
    for _ in range(4):
        assert (await _text(chain)).strip() == openai.reply
    assert len(failing.seen) == 3  # the breaker opened after three failures: the fourth skips it
    assert chain.resting == ("local",)


async def test_a_started_local_stream_is_never_switched(made: Made, openai: FakeOpenAI) -> None:
    class Stumbling(ScriptedLanguageModel):
        async def _stream(self, messages, tools):  # type: ignore[no-untyped-def]
            yield TextDelta("Sure,")
            raise EngineError("the local model died mid-reply")

    chain = FallbackLanguageModel(
        [Option(Stumbling(LoopClock(), name="local"), BUDGET_S),
         Option(made.llm(_endpoint(openai), "m"))]
    )  # fmt: skip
    got: list[object] = []
    with pytest.raises(EngineError, match="mid-reply"):
        async for output in chain.stream(ASKED):
            got.append(output)  # noqa: PERF401 - kept item by item: the stream raises
    assert got == [TextDelta("Sure,")]
    assert openai.requests == []  # the caller heard the local start: no second voice


@pytest.mark.parametrize("local", ["fails", "too slow"])
async def test_speech_to_text_falls_back_to_the_api(
    made: Made, openai: FakeOpenAI, local: str
) -> None:
    whisper = ToneSpeechToText(
        LoopClock(), delay_s=HANGS_S if local == "too slow" else 0, fail=local == "fails"
    )
    chain = FallbackSpeechToText(
        [Option(whisper, BUDGET_S), Option(made.stt(_endpoint(openai), "whisper-1"))]
    )
    started = time.perf_counter()
    transcript = await chain.transcribe(say("hello", "weather"))
    assert time.perf_counter() - started < BUDGET_S + 1.0
    assert (transcript.text, transcript.engine) == (openai.heard, "api:whisper-1")


@pytest.mark.parametrize("local", ["fails", "too slow"])
async def test_the_voice_falls_back_to_the_api(made: Made, openai: FakeOpenAI, local: str) -> None:
    piper = ToneTextToSpeech(
        LoopClock(), delay_s=HANGS_S if local == "too slow" else 0, fail=local == "fails"
    )
    api = made.tts(_endpoint(openai))
    chain = FallbackTextToSpeech([Option(piper, BUDGET_S), Option(api)])
    started = time.perf_counter()
    stream = chain.synthesize("Certainly, for four.")
    first = await anext(stream)
    assert time.perf_counter() - started < BUDGET_S + 1.0
    audio = first + b"".join([c async for c in stream])
    assert len(audio) / 2 / SAMPLE_RATE == pytest.approx(3 * openai.seconds_per_word, abs=0.01)
    assert chain.active == "api:tts-1"


async def test_a_healthy_local_engine_never_asks_the_api(made: Made, openai: FakeOpenAI) -> None:
    local = ScriptedLanguageModel(LoopClock(), replies=["Hello."], first_token_s=0, name="local")
    chain = FallbackLanguageModel(
        [Option(local, BUDGET_S), Option(made.llm(_endpoint(openai), "m"))]
    )
    assert (await _text(chain)) == "Hello."
    await asyncio.sleep(0)
    assert openai.requests == [] and chain.active == "local"


async def test_the_box_puts_each_configured_api_engine_after_its_local_one(
    tmp_path: Path,
) -> None:
    eng = EngineSettings(openai_api_key="sk-x", llm_api_base_url="http://127.0.0.1:9/v1")
    local = build_engines(eng, tmp_path, metrics=Metrics(), clock=LoopClock())  # loads nothing
    try:
        chains = local.chains
        assert chains.stt.engines == (eng.stt_model, "api:whisper-1")  # type: ignore[attr-defined]
        assert chains.llm.engines == (eng.llm_model, "api:gpt-4o-mini")  # type: ignore[attr-defined]
        assert chains.tts.engines == (eng.tts_voice, "api:tts-1")  # type: ignore[attr-defined]
        assert local.job_llm.engines == (eng.llm_model,)  # summaries stay on the box
        alone = build_engines(EngineSettings(), tmp_path, metrics=Metrics(), clock=LoopClock())
        assert alone.chains.llm.engines == (eng.llm_model,)  # type: ignore[attr-defined]
        for worker in alone.workers:
            worker.close()
    finally:
        await local.close_api()
        for worker in local.workers:
            worker.close()
