"""The real local engines answering the `openai` SDK through the LAN inference server.

One server over the session's whisper, llama (the tests' 0.5B, temperature 0) and piper, shared
by the module: each test is one request or two, the models load once.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import openai
import pytest
import pytest_asyncio

from appliance.audio.wav import decode_wav
from appliance.engines.llm.llama import LlamaLanguageModel
from appliance.engines.stt.whisper import WhisperSpeechToText
from appliance.engines.tts.piper import PiperTextToSpeech
from appliance.harness.wer import wer
from appliance.inference.server import InferencePorts, InferenceServer
from tests.conftest import AUDIO

pytestmark = pytest.mark.asyncio(loop_scope="session")

KEY = "test-key-0123456789abcdef"
SYSTEM = {
    "role": "system",
    "content": "You are a helpful phone assistant. Answer in one short sentence.",
}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def sdk(
    whisper: WhisperSpeechToText, llama: LlamaLanguageModel, piper: PiperTextToSpeech
) -> AsyncIterator[openai.AsyncOpenAI]:
    server = InferenceServer(
        InferencePorts(stt=whisper, llm=llama, tts=piper),
        api_key=KEY,
        host="127.0.0.1",
        port=0,
        max_upload_bytes=25 * 1024 * 1024,
    )
    async with (
        server,
        openai.AsyncOpenAI(
            base_url=server.base_url, api_key=KEY, max_retries=0, timeout=120
        ) as client,
    ):
        yield client


async def test_whisper_transcribes_an_uploaded_recording(sdk: openai.AsyncOpenAI) -> None:
    heard = await sdk.audio.transcriptions.create(
        model="whisper-1",
        file=("goforward.wav", (AUDIO / "goforward.wav").read_bytes(), "audio/wav"),
    )
    expected = (AUDIO / "goforward.txt").read_text().strip()  # "go forward ten meters"
    assert heard.text.lower().strip(" .").replace("10", "ten") == expected


async def test_the_model_answers_streamed(sdk: openai.AsyncOpenAI) -> None:
    stream = await sdk.chat.completions.create(
        model="local",
        messages=[SYSTEM, {"role": "user", "content": "Hello, who is this?"}],  # type: ignore[list-item]
        stream=True,
    )
    pieces = [chunk.choices[0].delta.content or "" async for chunk in stream]
    assert len([p for p in pieces if p]) > 1  # token by token, not one lump
    assert "".join(pieces).strip()


async def test_the_model_calls_a_tool_through_its_route(sdk: openai.AsyncOpenAI) -> None:
    answer = await sdk.chat.completions.create(
        model="local",
        messages=[SYSTEM, {"role": "user", "content": "What's the weather in Paris right now?"}],  # type: ignore[list-item]
        tools=[WEATHER],  # type: ignore[list-item]
    )
    calls = answer.choices[0].message.tool_calls
    assert answer.choices[0].finish_reason == "tool_calls"
    assert calls is not None and len(calls) == 1
    assert calls[0].function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(calls[0].function.arguments)["city"].lower() == "paris"  # type: ignore[union-attr]


async def test_piper_speaks_and_whisper_hears_it_back(sdk: openai.AsyncOpenAI) -> None:
    async with sdk.audio.speech.with_streaming_response.create(
        model="piper",
        voice="alloy",
        input="The weather in Paris is sunny today.",
        response_format="wav",
    ) as answer:
        chunks = [chunk async for chunk in answer.iter_bytes()]
    spoken = b"".join(chunks)
    audio = decode_wav(spoken)
    assert audio.source_rate == 24_000
    assert 0.8 < len(audio.pcm) / 2 / 16_000 < 4.0  # seconds of speech
    heard = await sdk.audio.transcriptions.create(
        model="whisper-1", file=("spoken.wav", spoken, "audio/wav"), response_format="text"
    )
    # piper's voice varies from run to run (its noise is not seeded); tiny.en once heard "pairs
    # of" for "Paris is": a word or two of seven may go.
    assert wer("The weather in Paris is sunny today.", heard) <= 0.3, heard
