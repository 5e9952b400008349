"""What the LAN inference server adds to each engine: the same request direct and through it.

    flock /tmp/heavy.lock .venv/bin/python -m bench.lan_inference [--runs 5]

Loads whisper (tiny.en), the 0.5B and piper once, serves them on loopback, and for each engine
times `--runs` requests made straight to the engine and through the server with the `openai`
SDK: the transcription of tests/fixtures/audio/goforward.wav (3 s), the first token of a short
chat, the first audio byte of one sentence (`--rate`: at OpenAI's 24 kHz, or 16000 for the
voice's own samples). Also the discovery probe's round trip. Prints the
medians; loopback, so a LAN adds its own round trip (a few ms on wired Ethernet) on top.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

import openai

from appliance.audio.wav import decode_wav
from appliance.conversation.ports import Message
from appliance.engines.llm.llama import LlamaLanguageModel
from appliance.engines.offload import Offloader
from appliance.engines.stt.whisper import WhisperSpeechToText
from appliance.engines.tts.piper import PiperTextToSpeech
from appliance.inference.discovery import probe_ms
from appliance.inference.server import InferencePorts, InferenceServer
from appliance.settings import Settings
from tests.conftest import AUDIO, PIPELINE_LLM

KEY = "bench-key-0123456789abcdef"
SENTENCE = "The weather in Paris is sunny today."
PROMPT = [Message("system", "Answer in one short sentence."), Message("user", "Say hello.")]


async def _median_ms(runs: int, once: Callable[[], Awaitable[object]]) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        await once()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


async def _main(runs: int, rate: int) -> None:
    extra = {"sample_rate": rate}
    models = Settings.load(None).paths.models
    workers = [Offloader("stt"), Offloader("llm"), Offloader("tts")]
    stt = WhisperSpeechToText(models / "whisper-tiny.en", offloader=workers[0], name="tiny.en")
    llm = LlamaLanguageModel(
        models / PIPELINE_LLM / "model.gguf", offloader=workers[1], temperature=0.0, seed=42
    )
    tts = PiperTextToSpeech(
        models / "piper-en_US-joe-medium" / "en_US-joe-medium.onnx", offloader=workers[2]
    )
    await asyncio.gather(stt.load(), llm.load(), tts.load())
    audio = (AUDIO / "goforward.wav").read_bytes()
    pcm = decode_wav(audio).pcm
    server = InferenceServer(
        InferencePorts(stt=stt, llm=llm, tts=tts),
        api_key=KEY,
        host="127.0.0.1",
        port=0,
        max_upload_bytes=25 << 20,
    )
    async with server, openai.AsyncOpenAI(base_url=server.base_url, api_key=KEY) as sdk:

        async def transcribe_direct() -> None:
            await stt.transcribe(pcm)

        async def transcribe_served() -> None:
            await sdk.audio.transcriptions.create(model="x", file=("a.wav", audio, "audio/wav"))

        async def first_token_direct() -> None:
            stream = llm.stream(PROMPT)
            await anext(aiter(stream))
            await stream.aclose()  # type: ignore[attr-defined]

        async def first_token_served() -> None:
            stream = await sdk.chat.completions.create(
                model="x",
                messages=[{"role": m.role, "content": m.content} for m in PROMPT],  # type: ignore[misc]
                stream=True,
            )
            async for chunk in stream:
                if chunk.choices[0].delta.content:
                    break
            await stream.close()

        async def first_audio_direct() -> None:
            chunks = tts.synthesize(SENTENCE)
            await anext(aiter(chunks))
            await chunks.aclose()  # type: ignore[attr-defined]

        async def first_audio_served() -> None:
            async with sdk.audio.speech.with_streaming_response.create(
                model="x", voice="x", input=SENTENCE, response_format="pcm", extra_body=extra
            ) as answer:
                async for _ in answer.iter_bytes():
                    break

        rows = [
            ("transcription, 3 s WAV", transcribe_direct, transcribe_served),
            ("chat, first token", first_token_direct, first_token_served),
            ("speech, first audio", first_audio_direct, first_audio_served),
        ]
        await first_token_direct()  # the prompt's prefix in the cache, as in a call
        print(f"{'request':<26} {'direct ms':>10} {'served ms':>10} {'added ms':>9}")
        for name, direct, served in rows:
            straight = await _median_ms(runs, direct)
            through = await _median_ms(runs, served)
            print(f"{name:<26} {straight:>10.1f} {through:>10.1f} {through - straight:>9.1f}")
        probe = await probe_ms(server.base_url, KEY)
        print(f"{'discovery probe':<26} {'':>10} {probe or 0:>10.1f}")
    for worker in workers:
        await worker.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rate", type=int, default=24_000, help="speech's sample rate (Hz)")
    args = parser.parse_args()
    asyncio.run(_main(args.runs, args.rate))


if __name__ == "__main__":
    main()
