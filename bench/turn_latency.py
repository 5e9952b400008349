"""Turn latency over the real recordings: the streaming pipeline against a naive sequential one.

    .venv/bin/python bench/turn_latency.py [--repeats 3] [--json results.json]
    .venv/bin/python bench/turn_latency.py --models qwen2.5-coder-0.5b-instruct \\
        qwen2.5-coder-1.5b-instruct [--repeats 2]
    .venv/bin/python bench/turn_latency.py --safety [--repeats 3]

For each recording in tests/fixtures/audio, a simulated call plays it to the agent in real time
(through the WAV line, exactly as `appliance call` does) and records the turn's stage timings.
In the same run, on the same inputs and engines, a naive pipeline answers the same turn: wait for
the endpoint silence, transcribe the whole turn, generate the whole reply, synthesize the whole
reply. Runs alternate between the two so both see the same machine load. Prints p50/p95 of
every stage and the ratio of the naive turn latency to the streaming one.

With `--models`, the streaming pipeline is compared across language models instead: one
appliance per model (the same settings otherwise), the models taking turns on each recording,
and the ratio of each model's p50 turn latency to the first's.

With `--safety`, the streaming pipeline is compared with and without the safety screen (the
caller's words and each of the agent's sentences screened): one appliance, the screen on and
off in turn on each recording (which goes first alternates), and the difference of the p50
turn latencies over the pairs that got the same reply (a different reply is different work).
Before each call the model's cache is set back to the calls' common opening: otherwise the
second call of a pair finds the first's words already evaluated (measured: its first token came
~300 ms sooner, whichever mode went second). Also printed: what the screens themselves held each
turn up by, from the turn's own timings.

With `--fallback`, the streaming pipeline is compared with and without an API engine after each
local one (`STT/LLM/TTS_API_BASE_URL`), on one appliance, the two in turn on each recording: a
healthy local engine must not be slowed by the chain (its budget's timer, its bookkeeping). The
API engines point at a closed loopback port: a healthy turn never asks them, and the run fails
if one was asked. The chains are wrapped around the appliance's own (one more layer than a
configured box has), so the figure is an upper bound.

The target (p50 turn latency <= 700 ms on two cores) is reported here, never asserted in a test.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

from appliance.app import Appliance
from appliance.app.engines import api_engines
from appliance.audio.frame import frames_of
from appliance.conversation.ports import Message, TextDelta
from appliance.conversation.session import Engines
from appliance.conversation.turns import Ended, Endpointer
from appliance.engines.fallback import (
    FallbackLanguageModel,
    FallbackSpeechToText,
    FallbackTextToSpeech,
    Option,
)
from appliance.harness.call import run_wav_call
from appliance.settings import Settings
from appliance.telephony.wavfile import HangUp, Speak, load_wav

ROOT = Path(__file__).resolve().parents[1]
AUDIO = ROOT / "tests" / "fixtures" / "audio"
TARGET_P50_MS = 700.0
STAGES = ("endpoint", "stt", "llm_first_token", "first_sentence", "tts_first_audio", "turn")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


async def _streaming_turn(app: Appliance, pcm: bytes) -> dict[str, float] | None:
    timings, _ = await _answered(app, pcm)
    return timings


async def _answered(app: Appliance, pcm: bytes) -> tuple[dict[str, float] | None, str]:
    """The turn's stage timings, and what the agent answered."""
    report = await run_wav_call(app.answer, [Speak(pcm), HangUp()], clock=app.clock)
    turns = [t for t in report.turns if "turn" in t.timings_ms]
    return (dict(turns[0].timings_ms), turns[0].reply) if turns else (None, "")


async def _endpoint_ms(app: Appliance, pcm: bytes) -> float:
    """The silence the naive pipeline waits: the endpointer's, without a transcript to hint."""
    endpointer = Endpointer(app.session_config.turn)
    detector = app.engines.vad.detector()
    frames = list(frames_of(pcm)) + list(frames_of(bytes(32_000)))
    for i, frame in enumerate(frames):
        for event in endpointer.push(frame, await detector.probability(frame), at=i * 0.02):
            if isinstance(event, Ended):
                return (i * 0.02 - event.speech_end) * 1000
    return float("nan")


async def _naive_turn(app: Appliance, pcm: bytes) -> dict[str, float]:
    """Whole STT, then the whole reply, then all of its speech: no overlap, no streaming."""
    persona = app.session_config.persona
    endpoint = await _endpoint_ms(app, pcm)
    started = time.perf_counter()
    said = (await app.engines.stt.transcribe(pcm)).text
    stt = time.perf_counter()
    messages = [
        Message("system", persona.system_prompt),
        Message("assistant", persona.greeting),
        Message("user", said),
    ]
    reply = "".join(
        [
            o.text
            async for o in app.engines.llm.stream(messages, app.tools.specs())
            if isinstance(o, TextDelta)
        ]
    )
    llm = time.perf_counter()
    audio = b"".join([chunk async for chunk in app.engines.tts.synthesize(reply or "Okay.")])
    tts = time.perf_counter()
    assert audio
    return {
        "endpoint": endpoint,
        "stt": (stt - started) * 1000,
        "llm": (llm - stt) * 1000,
        "tts": (tts - llm) * 1000,
        "turn": endpoint + (tts - started) * 1000,
    }


def _table(title: str, runs: list[dict[str, float]], stages: tuple[str, ...]) -> list[str]:
    lines = [title, f"  {'stage':<16}{'p50 ms':>9}{'p95 ms':>9}{'n':>5}"]
    for stage in stages:
        values = [r[stage] for r in runs if stage in r]
        if values:
            p50, p95 = statistics.median(values), _percentile(values, 0.95)
            lines.append(f"  {stage:<16}{p50:>9.0f}{p95:>9.0f}{len(values):>5}")
    return lines


async def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs per recording and pipeline")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    parser.add_argument("--models", nargs="+", help="compare these language models instead")
    parser.add_argument(
        "--safety", action="store_true", help="compare with and without the safety screen"
    )
    parser.add_argument(
        "--fallback", action="store_true", help="compare with and without the API fallbacks"
    )
    args = parser.parse_args()
    if args.fallback:
        return await _compare_fallback(args.repeats, args.json)
    if args.models:
        return await _compare_models(args.models, args.repeats, args.json)
    if args.safety:
        return await _compare_safety(args.repeats, args.json)

    recordings = sorted(AUDIO.rglob("*.wav"))
    app = Appliance.build(Settings.load(None))
    print(f"loading models: {await app.start()}", file=sys.stderr)
    streaming: list[dict[str, float]] = []
    naive: list[dict[str, float]] = []
    try:
        for repeat in range(args.repeats):
            for path in recordings:
                pcm = load_wav(path).pcm
                timings = await _streaming_turn(app, pcm)
                if timings is not None:
                    streaming.append(timings)
                naive.append(await _naive_turn(app, pcm))
                took = timings["turn"] if timings else float("nan")
                print(
                    f"[{repeat + 1}/{args.repeats}] {path.name}: streaming {took:.0f} ms, "
                    f"naive {naive[-1]['turn']:.0f} ms",
                    file=sys.stderr,
                )
    finally:
        await app.aclose()

    stream_p50 = statistics.median(r["turn"] for r in streaming)
    naive_p50 = statistics.median(r["turn"] for r in naive)
    verdict = "met" if stream_p50 <= TARGET_P50_MS else "NOT met"
    naive_stages = ("endpoint", "stt", "llm", "tts", "turn")
    lines = [
        f"turn latency over {len(recordings)} recordings x {args.repeats} runs "
        f"(STT {app.settings.engines.stt_model}, LLM {app.settings.engines.llm_model})",
        *_table(
            "streaming pipeline (speculative STT, streamed LLM -> sentences -> TTS)",
            streaming,
            STAGES,
        ),
        *_table("naive sequential pipeline (endpoint, whole STT, LLM, TTS)", naive, naive_stages),
        f"ratio naive/streaming p50 turn latency: {naive_p50 / stream_p50:.2f}x",
        f"target p50 <= {TARGET_P50_MS:.0f} ms: {verdict} ({stream_p50:.0f} ms)",
    ]
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps({"streaming": streaming, "naive": naive}, indent=2))
    return 0


async def _compare_models(models: list[str], repeats: int, json_path: Path | None) -> int:
    """The streaming turn on each recording, per model, the models alternating."""
    recordings = sorted(AUDIO.rglob("*.wav"))
    base = Settings.load(None)
    apps: dict[str, Appliance] = {}
    turns: dict[str, list[dict[str, float]]] = {model: [] for model in models}
    try:
        for model in models:
            engines = base.engines.model_copy(update={"llm_model": model})
            app = apps[model] = Appliance.build(dataclasses.replace(base, engines=engines))
            print(f"loading {model}: {await app.start()}", file=sys.stderr)
        for repeat in range(repeats):
            for path in recordings:
                pcm = load_wav(path).pcm
                for model, app in apps.items():
                    timings = await _streaming_turn(app, pcm)
                    if timings is not None:
                        turns[model].append(timings)
                    took = timings["turn"] if timings else float("nan")
                    print(f"[{repeat + 1}/{repeats}] {path.name} {model}: {took:.0f} ms",
                          file=sys.stderr)  # fmt: skip
    finally:
        for app in apps.values():
            await app.aclose()
    first = statistics.median(r["turn"] for r in turns[models[0]])
    lines = [f"turn latency over {len(recordings)} recordings x {repeats} runs, per model"]
    for model in models:
        lines += _table(f"{model} (streaming pipeline)", turns[model], STAGES)
        p50 = statistics.median(r["turn"] for r in turns[model])
        lines.append(f"  p50 turn {p50:.0f} ms, {p50 / first:.2f}x {models[0]}")
    print("\n".join(lines))
    if json_path:
        json_path.write_text(json.dumps(turns, indent=2))  # noqa: ASYNC240 - once, at the end
    return 0


@dataclasses.dataclass
class _SafetyRuns:
    """Turn timings with the screen and without, by recording pair."""

    same_reply: dict[str, list[dict[str, float]]] = dataclasses.field(
        default_factory=lambda: {"screened": [], "unscreened": []}
    )
    """Pairs that got the same reply: the same work, with and without the screen."""
    every: dict[str, list[dict[str, float]]] = dataclasses.field(
        default_factory=lambda: {"screened": [], "unscreened": []}
    )
    """Every pair the screen did not refuse (the replies may differ)."""
    refused: list[str] = dataclasses.field(default_factory=list)

    def add(
        self, name: str, pair: dict[str, tuple[dict[str, float], str]], refusals: set[str]
    ) -> None:
        if pair["screened"][1] in refusals:
            self.refused.append(name)  # a refusal is no clean turn: not compared
            return
        same = pair["screened"][1] == pair["unscreened"][1]
        for mode, (timings, _) in pair.items():
            self.every[mode].append(timings)
            if same:  # another reply is another amount of work
                self.same_reply[mode].append(timings)

    def report(self, title: str) -> list[str]:
        turns, every = self.same_reply, self.every
        p50 = {mode: statistics.median(r["turn"] for r in runs) for mode, runs in turns.items()}
        all50 = {mode: statistics.median(r["turn"] for r in runs) for mode, runs in every.items()}
        held = [r.get("screen", 0.0) + r.get("screen_hold", 0.0) for r in every["screened"]]
        return [
            title,
            *_table("screened", turns["screened"], STAGES),
            *_table("unscreened", turns["unscreened"], STAGES),
            f"the screen adds {p50['screened'] - p50['unscreened']:+.0f} ms at the p50 turn "
            f"({p50['screened'] / p50['unscreened']:.3f}x) over {len(turns['screened'])} pairs "
            "with the same reply",
            f"over all {len(every['screened'])} pairs not refused (replies may differ): "
            f"{all50['screened'] - all50['unscreened']:+.0f} ms at the p50 turn",
            "what the screens held the turn up by (the caller's screen, and the first "
            f"sentence's audio waiting for its check): p50 {statistics.median(held):.1f} ms, "
            f"p95 {_percentile(held, 0.95):.1f} ms",
            f"refused by the screen (not compared): {len(self.refused)} turns "
            f"({', '.join(sorted(set(self.refused))) or 'none'})",
        ]


async def _compare_safety(repeats: int, json_path: Path | None) -> int:
    """The streaming turn on each recording with the safety screen and without, alternating."""
    recordings = sorted(AUDIO.rglob("*.wav"))
    app = Appliance.build(Settings.load(None))
    screen = app.screen
    if screen is None:
        print("SAFETY_SCREEN is off: nothing to compare", file=sys.stderr)
        return 1
    print(f"loading models: {await app.start()}", file=sys.stderr)
    runs = _SafetyRuns()
    refusals = {app.session_config.persona.refusal, *app.session_config.persona.refusals.values()}
    try:
        await _answered(app, load_wav(recordings[0]).pcm)  # the first call after start is slow
        for repeat in range(repeats):
            for path in recordings:
                pcm = load_wav(path).pcm
                pair: dict[str, tuple[dict[str, float], str]] = {}
                order = (
                    ("screened", "unscreened") if repeat % 2 == 0 else ("unscreened", "screened")
                )
                for mode in order:
                    app.screen = screen if mode == "screened" else None
                    await app.warm_opening()  # the second call must not find the first's words
                    timings, reply = await _answered(app, pcm)
                    if timings is not None:
                        pair[mode] = (timings, reply)
                    took = timings["turn"] if timings else float("nan")
                    print(f"[{repeat + 1}/{repeats}] {path.name} {mode}: {took:.0f} ms {reply!r}",
                          file=sys.stderr)  # fmt: skip
                if len(pair) == 2:
                    runs.add(path.name, pair, refusals)
    finally:
        app.screen = screen
        await app.aclose()
    title = (
        f"turn latency over {len(recordings)} recordings x {repeats} runs, with and without "
        f"the safety screen ({screen.name}; LLM {app.settings.engines.llm_model})"
    )
    print("\n".join(runs.report(title)))
    if json_path:
        data = {"same_reply": runs.same_reply, "all": runs.every}
        json_path.write_text(json.dumps(data, indent=2))  # noqa: ASYNC240 - once, at the end
    return 0


def _with_api_fallbacks(app: Appliance) -> Engines:
    """The appliance's chains, each followed by an API engine that nothing answers at."""
    eng = app.settings.engines
    nowhere = eng.model_copy(update={"openai_base_url": "http://127.0.0.1:9/v1"})
    api = api_engines(nowhere)
    local = app.engines
    return dataclasses.replace(
        local,
        stt=FallbackSpeechToText(
            [Option(local.stt, eng.stt_budget_ms / 1000), *(Option(e) for e in api.stt)]
        ),
        llm=FallbackLanguageModel(
            [Option(local.llm, eng.llm_budget_ms / 1000), *(Option(e) for e in api.llm)]
        ),
        tts=FallbackTextToSpeech(
            [Option(local.tts, eng.tts_budget_ms / 1000), *(Option(e) for e in api.tts)]
        ),
    )


def _paired_differences(
    pairs: list[dict[str, tuple[dict[str, float], str]]], stage: str
) -> list[float]:
    """Milliseconds `stage` took with the fallbacks more than without, pair by pair."""
    return [
        pair["with fallbacks"][0][stage] - pair["local only"][0][stage]
        for pair in pairs
        if stage in pair["with fallbacks"][0] and stage in pair["local only"][0]
    ]


async def _compare_fallback(repeats: int, json_path: Path | None) -> int:
    """The streaming turn on each recording with the API fallbacks and without, alternating;
    compared pair by pair, on the pairs that got the same reply (run with LLM_TEMPERATURE=0)."""
    recordings = sorted(AUDIO.rglob("*.wav"))
    app = Appliance.build(Settings.load(None))
    print(f"loading models: {await app.start()}", file=sys.stderr)
    modes = {"local only": app.engines, "with fallbacks": _with_api_fallbacks(app)}
    pairs: list[dict[str, tuple[dict[str, float], str]]] = []
    try:
        await _answered(app, load_wav(recordings[0]).pcm)  # the first call after start is slow
        for repeat in range(repeats):
            for i, path in enumerate(recordings):
                pcm = load_wav(path).pcm
                order = list(modes) if (repeat + i) % 2 == 0 else list(reversed(modes))
                pair: dict[str, tuple[dict[str, float], str]] = {}
                for mode in order:
                    app.engines = modes[mode]
                    await app.warm_opening()  # the second call must not find the first's words
                    timings, reply = await _answered(app, pcm)
                    if timings is not None:
                        pair[mode] = (timings, reply)
                    took = timings["turn"] if timings else float("nan")
                    print(f"[{repeat + 1}/{repeats}] {path.name} {mode}: {took:.0f} ms {reply!r}",
                          file=sys.stderr)  # fmt: skip
                if len(pair) == 2:
                    pairs.append(pair)
    finally:
        app.engines = modes["local only"]
        await app.aclose()
    chains = modes["with fallbacks"]
    answered = [str(getattr(c, "active", "")) for c in (chains.stt, chains.llm, chains.tts)]
    asked = [engine for engine in answered if engine.startswith("api:")]
    same = [p for p in pairs if p["local only"][1] == p["with fallbacks"][1]]
    lines = [
        f"turn latency over {len(recordings)} recordings x {repeats} runs, with and without "
        f"the API fallbacks (LLM {app.settings.engines.llm_model}); {len(same)} of "
        f"{len(pairs)} pairs got the same reply",
        *(line for mode in modes for line in _table(mode, [p[mode][0] for p in same], STAGES)),
        "with fallbacks minus local only, pair by pair (median over the same-reply pairs):",
        *(
            f"  {stage:<16}{statistics.median(diffs):>+9.0f} ms"
            for stage in STAGES
            if (diffs := _paired_differences(same, stage))
        ),
        f"API engines asked: {', '.join(asked) or 'none'}",
    ]
    print("\n".join(lines))
    if json_path:
        json_path.write_text(json.dumps(pairs, indent=2))  # noqa: ASYNC240 - once, at the end
    return 0 if not asked else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
