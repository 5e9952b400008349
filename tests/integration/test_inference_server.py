"""The LAN inference server's wire: the `openai` SDK against it on loopback, its key, its
refusals (OpenAI's error objects), and finding it by zeroconf.

The engines behind it here are the scripted tone engines (no model loads): what is checked is
the server's side of OpenAI's protocol. The real engines answer through it in
test_inference_models.py. Zeroconf is bound to 127.0.0.1 only: nothing is multicast.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
import pytest_asyncio
from pydantic import SecretStr

from appliance import __version__
from appliance.app import Appliance
from appliance.app.inference import inference_key_problem, lan_servers
from appliance.audio.frame import SAMPLE_RATE
from appliance.audio.wav import decode_wav, wav_header
from appliance.clock import LoopClock
from appliance.conversation.ports import Message, TextDelta, ToolCall
from appliance.inference.advertise import InferenceAdvertisement
from appliance.inference.discovery import discover, first_token_ms, probe_ms
from appliance.inference.server import InferencePorts, InferenceServer
from appliance.settings import InferenceSettings, Settings, WebSettings, config_warnings
from tests.support.fakes import (
    ScriptedLanguageModel,
    ToneSpeechToText,
    ToneTextToSpeech,
    dominant_hz,
    say,
    sentence_hz,
)

KEY = "test-key-0123456789abcdef"
LOOPBACK = ["127.0.0.1"]
MAX_UPLOAD = 256 * 1024
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@dataclasses.dataclass
class Served:
    server: InferenceServer
    stt: ToneSpeechToText
    llm: ScriptedLanguageModel
    tts: ToneTextToSpeech

    @property
    def url(self) -> str:
        return self.server.base_url

    def client(self, key: str = KEY) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.url, api_key=key, max_retries=0, timeout=10)


@pytest_asyncio.fixture
async def served() -> AsyncIterator[Served]:
    clock = LoopClock()
    stt = ToneSpeechToText(clock, delay_s=0.0)
    llm = ScriptedLanguageModel(clock, first_token_s=0.0, token_s=0.0)
    tts = ToneTextToSpeech(clock, delay_s=0.0, ms_per_char=20)
    server = InferenceServer(
        InferencePorts(stt=stt, llm=llm, tts=tts),
        api_key=KEY,
        host="127.0.0.1",
        port=0,
        max_upload_bytes=MAX_UPLOAD,
    )
    async with server:
        yield Served(server, stt, llm, tts)


def wav(pcm: bytes, rate: int = SAMPLE_RATE) -> bytes:
    return wav_header(channels=1, rate=rate, data_bytes=len(pcm)) + pcm


# --- the SDK as the client ------------------------------------------------------------------


async def test_the_sdk_transcribes_a_wav_as_json_and_as_text(served: Served) -> None:
    audio = wav(say("hello", "weather"))
    async with served.client() as client:
        as_json = await client.audio.transcriptions.create(
            model="whisper", file=("hello.wav", audio, "audio/wav")
        )
        as_text = await client.audio.transcriptions.create(
            model="whisper", file=("hello.wav", audio, "audio/wav"), response_format="text"
        )
    assert as_json.text == "hello weather"
    assert as_text == "hello weather"


async def test_a_wav_at_another_rate_is_converted_before_it_is_heard(served: Served) -> None:
    from appliance.audio.resample import resample

    audio = wav(resample(say("paris"), SAMPLE_RATE, 44_100), rate=44_100)
    async with served.client() as client:
        heard = await client.audio.transcriptions.create(
            model="any", file=("paris.wav", audio, "audio/wav")
        )
    assert heard.text == "paris"


async def test_the_sdk_chats_whole_and_streamed(served: Served) -> None:
    served.llm.replies = ["It is sunny today.", "It is sunny today."]
    async with served.client() as client:
        whole = await client.chat.completions.create(
            model="local",
            messages=[
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Weather?"}]},
            ],
        )
        stream = await client.chat.completions.create(
            model="local", messages=[{"role": "user", "content": "Weather?"}], stream=True
        )
        pieces = [chunk async for chunk in stream]
    assert whole.choices[0].message.content == "It is sunny today."
    assert whole.choices[0].finish_reason == "stop"
    assert whole.model == "scripted-llm"
    text = "".join(c.choices[0].delta.content or "" for c in pieces)
    assert text == "It is sunny today."
    assert len(pieces) >= 4  # streamed word by word, not as one piece
    assert pieces[0].choices[0].delta.role == "assistant"
    assert pieces[-1].choices[0].finish_reason == "stop"
    assert served.llm.seen[0] == [
        Message(role="system", content="Be brief."),
        Message(role="user", content="Weather?"),
    ]


async def test_tools_reach_the_model_and_its_call_comes_back_as_tool_calls(
    served: Served,
) -> None:
    call = ToolCall(id="call_1", name="weather", arguments='{"city": "Paris"}')
    served.llm.replies = [[TextDelta("Let me look."), call], [call], "Sunny."]
    async with served.client() as client:
        whole = await client.chat.completions.create(
            model="local",
            messages=[{"role": "user", "content": "Weather in Paris?"}],
            tools=[WEATHER_TOOL],  # type: ignore[list-item]
        )
        stream = await client.chat.completions.create(
            model="local",
            messages=[{"role": "user", "content": "Weather in Paris?"}],
            tools=[WEATHER_TOOL],  # type: ignore[list-item]
            stream=True,
        )
        pieces = [chunk async for chunk in stream]
        after = await client.chat.completions.create(
            model="local",
            messages=[
                {"role": "user", "content": "Weather in Paris?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21 C"},
            ],
            tools=[WEATHER_TOOL],  # type: ignore[list-item]
        )
    message = whole.choices[0].message
    assert message.content == "Let me look."
    assert message.tool_calls is not None and len(message.tool_calls) == 1
    assert message.tool_calls[0].function.name == "weather"  # type: ignore[union-attr]
    assert json.loads(message.tool_calls[0].function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]
    assert whole.choices[0].finish_reason == "tool_calls"
    streamed = [c.choices[0].delta.tool_calls for c in pieces if c.choices[0].delta.tool_calls]
    assert len(streamed) == 1 and streamed[0][0].function.name == "weather"  # type: ignore[union-attr]
    assert streamed[0][0].index == 0 and streamed[0][0].id == "call_1"
    assert pieces[-1].choices[0].finish_reason == "tool_calls"
    assert served.llm.tools_seen[0][0].name == "weather"
    assert served.llm.tools_seen[0][0].parameters["properties"] == {"city": {"type": "string"}}
    assert after.choices[0].message.content == "Sunny."
    assert served.llm.seen[2][1:] == [
        Message(role="assistant", content="", tool_calls=(call,)),
        Message(role="tool", content="sunny, 21 C", tool_call_id="call_1"),
    ]


async def test_tool_choice_none_hides_the_tools(served: Served) -> None:
    async with served.client() as client:
        await client.chat.completions.create(
            model="local",
            messages=[{"role": "user", "content": "Hi"}],
            tools=[WEATHER_TOOL],  # type: ignore[list-item]
            tool_choice="none",
        )
    assert served.llm.tools_seen == [[]]


async def test_the_sdk_streams_speech_as_wav_and_as_pcm(served: Served) -> None:
    text = "Hello there."
    async with served.client() as client:
        async with client.audio.speech.with_streaming_response.create(
            model="piper", voice="alloy", input=text, response_format="wav"
        ) as answer:
            assert answer.headers["content-type"] == "audio/wav"
            as_wav = b"".join([chunk async for chunk in answer.iter_bytes()])
        async with client.audio.speech.with_streaming_response.create(
            model="piper", voice="alloy", input=text, response_format="pcm"
        ) as answer:
            as_pcm = b"".join([chunk async for chunk in answer.iter_bytes()])
        async with client.audio.speech.with_streaming_response.create(
            model="piper",
            voice="alloy",
            input=text,
            response_format="pcm",
            extra_body={"sample_rate": SAMPLE_RATE},
        ) as answer:
            native = b"".join([chunk async for chunk in answer.iter_bytes()])
    voice = b"".join([c async for c in served.tts.synthesize(text)])
    assert native == voice  # at the box's own rate: the voice's samples untouched
    # OpenAI's pcm and wav are 24 kHz: 1.5 times the samples, the same tone.
    assert abs(len(as_pcm) / len(voice) - 1.5) < 0.01
    pcm24 = np.frombuffer(as_pcm, "<i2")
    spectrum = np.abs(np.fft.rfft(pcm24))
    assert abs(np.argmax(spectrum) * 24_000 / len(pcm24) - sentence_hz(text)) < 10
    decoded = decode_wav(as_wav)
    assert decoded.source_rate == 24_000 and decoded.source_channels == 1
    assert abs(dominant_hz(decoded.pcm) - sentence_hz(text)) < 10


async def test_models_are_listed(served: Served) -> None:
    async with served.client() as client:
        names = [model.id async for model in client.models.list()]
    assert names == ["tone-stt", "scripted-llm", "tone-tts"]


# --- the key --------------------------------------------------------------------------------


async def test_a_wrong_or_missing_key_is_refused_before_the_body_is_read(
    served: Served,
) -> None:
    async with served.client("wrong-key-0123456789") as client:
        with pytest.raises(openai.AuthenticationError) as wrong:
            await client.chat.completions.create(
                model="local", messages=[{"role": "user", "content": "Hi"}]
            )
    assert wrong.value.status_code == 401
    assert wrong.value.code == "invalid_api_key"
    assert "INFERENCE_API_KEY" in wrong.value.message
    # A huge body declared, none of it sent: the answer comes without waiting for it.
    unsent = await _head_only(served.server.port, "/v1/audio/transcriptions", 10**9)
    async with httpx.AsyncClient(timeout=5) as http:
        bare = await http.get(f"{served.url}/models")
    assert unsent.startswith(b"HTTP/1.1 401 ")
    assert bare.status_code == 401 and "Bearer" in bare.json()["error"]["message"]
    assert served.stt.calls == 0 and served.llm.seen == []


async def _head_only(port: int, path: str, length: int, key: str = "wrong") -> bytes:
    """The status line and headers of the answer to a request whose body is never sent."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: {length}\r\n"
            "\r\n".encode()
        )
        async with asyncio.timeout(5):
            return await reader.readuntil(b"\r\n\r\n")
    finally:
        writer.close()
        await writer.wait_closed()


def test_the_server_will_not_start_without_a_key() -> None:
    clock = LoopClock()
    ports = InferencePorts(
        stt=ToneSpeechToText(clock), llm=ScriptedLanguageModel(clock), tts=ToneTextToSpeech(clock)
    )
    for key in (None, "", "short"):
        with pytest.raises(ValueError, match="INFERENCE_API_KEY"):
            InferenceServer(ports, api_key=key, host="127.0.0.1", port=0, max_upload_bytes=1)


def test_serve_is_refused_before_loading_without_a_key(tmp_path: Path) -> None:
    base = Settings.load(None)
    off = dataclasses.replace(base, inference=InferenceSettings())
    wanted = dataclasses.replace(base, inference=InferenceSettings(inference_server=True))
    keyed = dataclasses.replace(
        base, inference=InferenceSettings(inference_server=True, inference_api_key=SecretStr(KEY))
    )
    assert inference_key_problem(off) is None
    assert "INFERENCE_API_KEY" in (inference_key_problem(wanted) or "")
    assert inference_key_problem(keyed) is None
    moved = dataclasses.replace(base, inference=InferenceSettings(inference_port=9000))
    assert "INFERENCE_PORT acts on nothing: INFERENCE_SERVER is false" in config_warnings(
        moved, None, {"INFERENCE_PORT": "9000"}
    )
    assert config_warnings(keyed, None, {"INFERENCE_SERVER": "true"}) == []


def test_appliance_serve_says_what_to_set_and_loads_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from appliance.cli import EXIT_FAILED, main

    monkeypatch.setenv("INFERENCE_SERVER", "true")
    monkeypatch.setenv("APPLIANCE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MODELS_DIR", str(tmp_path / "no-models"))  # loading would fail on these
    assert main(["--env-file", str(tmp_path / "none.env"), "serve"]) == EXIT_FAILED
    said = capsys.readouterr().err
    assert "INFERENCE_SERVER=true needs INFERENCE_API_KEY" in said
    assert "Loading models" not in said


# --- bad input: OpenAI's error objects --------------------------------------------------------


async def _post(served: Served, path: str, **kwargs: object) -> httpx.Response:
    async with httpx.AsyncClient(timeout=5, headers={"Authorization": f"Bearer {KEY}"}) as http:
        return await http.post(f"{served.url}{path}", **kwargs)  # type: ignore[arg-type]


def _error(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    return dict(error)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": []}, "messages"),
        ({"model": "x"}, "messages"),
        ({"messages": [{"role": "user", "content": "hi"}], "n": 2}, "n"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
            "messages[0].content",
        ),
        (
            {"messages": [{"role": "user", "content": "hi"}], "tool_choice": "required"},
            "tool_choice",
        ),
        ({"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "web"}]}, "tools"),
    ],
)
async def test_a_chat_the_model_cannot_answer_is_a_400_naming_the_field(
    served: Served, body: dict[str, object], param: str
) -> None:
    error = _error(await _post(served, "/chat/completions", json=body), 400)
    assert error["param"] == param and error["type"] == "invalid_request_error"
    assert served.llm.seen == []


async def test_the_sdk_raises_a_bad_request_as_openai_would(served: Served) -> None:
    async with served.client() as client:
        with pytest.raises(openai.BadRequestError) as refused:
            await client.audio.speech.create(
                model="piper", voice="alloy", input="Hi", response_format="mp3"
            )
    assert refused.value.param == "response_format"
    assert "wav or pcm" in refused.value.message


async def test_bad_bodies_and_media_types(served: Served) -> None:
    not_json = await _post(
        served, "/chat/completions", content=b"{", headers={"Content-Type": "application/json"}
    )
    _error(not_json, 400)
    as_text = await _post(served, "/chat/completions", content=b"hi")
    assert _error(as_text, 415)["code"] == "unsupported"
    json_to_stt = await _post(served, "/audio/transcriptions", json={"file": "x"})
    _error(json_to_stt, 415)
    mp3 = await _post(
        served, "/audio/transcriptions", files={"file": ("a.mp3", b"ID3\x04" + bytes(500))}
    )
    assert "ffmpeg" in str(_error(mp3, 415)["message"])
    no_file = await _post(served, "/audio/transcriptions", files={"model": (None, "whisper")})
    assert _error(no_file, 400)["param"] == "file"
    srt = await _post(
        served,
        "/audio/transcriptions",
        files={"file": ("a.wav", wav(say("hello")))},
        data={"response_format": "srt"},
    )
    assert _error(srt, 400)["param"] == "response_format"
    broken = await _post(
        served, "/audio/transcriptions", files={"file": ("a.wav", b"RIFF\0\0\0\0WAVEjunk")}
    )
    assert _error(broken, 400)["param"] == "file"
    empty_speech = await _post(served, "/audio/speech", json={"input": " "})
    assert _error(empty_speech, 400)["param"] == "input"
    assert served.stt.calls == 0
    unknown = await _post(served, "/nowhere", json={})
    _error(unknown, 404)


async def test_a_body_over_the_cap_is_a_413_declared_or_streamed(served: Served) -> None:
    big = wav(bytes(MAX_UPLOAD))
    declared = await _post(served, "/audio/transcriptions", files={"file": ("big.wav", big)})
    assert _error(declared, 413)["code"] == "request_too_large"

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
        yield (
            b'--x\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n'
            b"Content-Type: audio/wav\r\n\r\n"
        )
        for _ in range(8):
            yield bytes(MAX_UPLOAD // 4)

    streamed = await _post(
        served,
        "/audio/transcriptions",
        content=chunked(),
        headers={"Content-Type": "multipart/form-data; boundary=x"},
    )
    _error(streamed, 413)
    assert served.stt.calls == 0
    async with served.client() as client:  # the cap is on the body, not on the connection
        fine = await client.audio.transcriptions.create(
            model="whisper", file=("hello.wav", wav(say("hello")), "audio/wav")
        )
    assert fine.text == "hello"


async def test_a_failing_engine_is_a_503_and_a_stream_that_fails_says_so(
    served: Served,
) -> None:
    served.llm.fail = True
    served.tts.fail = True
    async with served.client() as client:
        with pytest.raises(openai.InternalServerError) as llm:
            await client.chat.completions.create(
                model="local", messages=[{"role": "user", "content": "Hi"}], stream=True
            )
        with pytest.raises(openai.InternalServerError) as tts:
            await client.audio.speech.create(model="piper", voice="alloy", input="Hi")
    assert llm.value.status_code == 503 and "scripted LLM failure" in llm.value.message
    assert tts.value.status_code == 503


# --- zeroconf: advertised, found, probed ------------------------------------------------------


async def test_a_board_finds_the_server_by_zeroconf_and_measures_it(served: Served) -> None:
    box = InferenceAdvertisement(
        box="c0ffee",
        version=__version__,
        port=served.server.port,
        models={"stt": "whisper-tiny.en", "llm": "qwen", "tts": "piper"},
        interfaces=LOOPBACK,
    )
    async with box:
        found = await discover(KEY, wait_s=20, enough=1, interfaces=LOOPBACK)
        wrong_key = await discover("not-the-key-123456", wait_s=20, enough=1, interfaces=LOOPBACK)
        itself = await discover(KEY, wait_s=20, enough=1, skip_box="c0ffee", interfaces=LOOPBACK)
    assert [server.base_url for server in found] == [served.url]
    assert found[0].box == "c0ffee"
    assert found[0].models == {"stt": "whisper-tiny.en", "llm": "qwen", "tts": "piper"}
    assert found[0].latency_ms is not None and 0 < found[0].latency_ms < 1000
    assert wrong_key == []  # seen, but it refuses the key: no use to the board
    assert itself == []
    async with openai.AsyncOpenAI(base_url=found[0].base_url, api_key=KEY, max_retries=0) as sdk:
        models = [m.id async for m in sdk.models.list()]
    assert "scripted-llm" in models


async def test_a_probe_of_nothing_is_none() -> None:
    from tests.support.ports import free_port

    assert await probe_ms(f"http://127.0.0.1:{free_port()}/v1", KEY, timeout_s=1) is None


async def test_the_first_token_is_timed_from_the_request(served: Served) -> None:
    served.llm.first_token_s = 0.2
    served.llm.replies = ["OK then."]
    took = await first_token_ms(served.url, KEY)
    assert took is not None and 200 <= took < 2000
    assert await first_token_ms(served.url, "not-the-key-123456") is None


async def test_serve_with_inference_server_on_serves_and_advertises_it(
    app_settings: Settings,
) -> None:
    from tests.support.ports import free_port

    port = free_port()
    settings = dataclasses.replace(
        app_settings,
        web=WebSettings(bind_address="127.0.0.1", port=free_port()),
        inference=InferenceSettings(
            inference_server=True,
            inference_port=port,
            inference_api_key=SecretStr(KEY),
            lan_inference="auto",
        ),
    )
    assert settings.zeroconf.addresses == LOOPBACK
    app = Appliance.build(settings)  # nothing is loaded: /v1/models needs no model
    await app.records.start()
    app.records.use_runner(busy=lambda: False)
    stop = asyncio.Event()
    serving = asyncio.create_task(app.serve(stop))
    try:
        found = await discover(KEY, wait_s=20, enough=1, interfaces=LOOPBACK)
        mine = await lan_servers(settings, wait_s=2)
        async with httpx.AsyncClient(timeout=5) as http:
            listed = await http.get(
                f"http://127.0.0.1:{port}/v1/models", headers={"Authorization": f"Bearer {KEY}"}
            )
    finally:
        stop.set()
        await serving
        await app.aclose()
    assert [server.base_url for server in found] == [f"http://127.0.0.1:{port}/v1"]
    assert found[0].models["llm"] == settings.engines.llm_model
    assert listed.json()["data"][0]["id"] == settings.engines.stt_model
    assert mine == []  # the box does not count itself among the LAN's servers
