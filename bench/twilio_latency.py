"""Turn latency over Twilio Media Streams beside the in-process WAV line, with the real engines.

    MODELS_DIR=... .venv/bin/python bench/twilio_latency.py [--runs 5]

Each run places two calls per way in: one turn (goforward.wav, then hang up) and one barge-in
(the caller talks over the reply 200 ms into it). The Twilio way goes through everything a real
call does on this box: the signed webhook, uvicorn, the websocket, mu-law at 8 kHz both ways,
real-time pacing and mark echoes. Printed: medians over the runs, in milliseconds.

- endpoint, stt, llm first, session turn: the session's own timings of the turn (session turn:
  the VAD's end of speech to the first reply frame handed to the line);
- caller turn: last voiced caller frame to the first agent frame at the caller's ear, on the
  caller's 20 ms clock. On the WAV line that clock waits for the session, so processing stalls
  do not show; over Twilio the caller's clock runs on its own, as a real caller's does;
- barge-in stop: first voiced frame of the interruption to the agent going quiet at the ear;
- clear: first voiced frame to the `clear` arriving at Twilio (Twilio way only).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import secrets
import statistics
import tempfile
from pathlib import Path

from pydantic import SecretStr

from appliance.app import Appliance
from appliance.audio.frame import rms_dbfs
from appliance.harness.call import CallReport, run_wav_call
from appliance.harness.twilio import CallObservers, TwilioCaller
from appliance.settings import PathSettings, Settings, TwilioSettings
from appliance.telephony.wavfile import HangUp, Speak, Step, load_wav

AUDIO = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "audio"
PUBLIC = "https://tel3sis.invalid"
ACCOUNT = "AC" + "0" * 32
TOKEN = secrets.token_hex(16)


_STAGES = {"endpoint": "endpoint", "stt": "stt", "llm first": "llm_first_token",
           "session turn": "turn"}  # fmt: skip
"""Columns from the session's own timings of the turn."""


def _caller_turn_ms(report: CallReport) -> float | None:
    timeline = report.timeline
    end = next((e for e in timeline if e.what == "caller-end" and e.step == 0), None)
    if end is None:
        return None
    frames = report.line.caller_audio[: end.at_ms // 20 + 1]
    last_voiced = max((i for i, f in enumerate(frames) if rms_dbfs(f) > -45.0), default=None)
    start = next((e for e in timeline if e.what == "agent-start" and e.at_ms >= end.at_ms), None)
    if last_voiced is None or start is None:
        return None
    return float(start.at_ms - last_voiced * 20)


def _barge_stop_ms(report: CallReport) -> float | None:
    voice = next((e for e in report.timeline if e.what == "caller-voice" and e.step == 1), None)
    if voice is None:
        return None
    stop = next(
        (e for e in report.timeline if e.what == "agent-stop" and e.at_ms >= voice.at_ms), None
    )
    return None if stop is None else float(stop.at_ms - voice.at_ms)


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):.0f}" if values else "-"


async def main(runs: int) -> None:
    settings = Settings.load(None)
    data = Path(tempfile.mkdtemp(prefix="tel3sis-bench-"))
    settings = dataclasses.replace(
        settings, paths=PathSettings(data_dir=data, models_dir=settings.paths.models)
    )
    app = Appliance.build(settings)
    await app.start()
    first = load_wav(AUDIO / "goforward.wav").pcm
    second = load_wav(AUDIO / "cards" / "005.wav").pcm
    turn: list[Step] = [Speak(first), HangUp()]
    barge: list[Step] = [Speak(first), Speak(second, after="agent-start", offset_ms=200), HangUp()]
    figures: dict[str, dict[str, list[float]]] = {
        way: {name: [] for name in (*_STAGES, "caller turn", "barge-in stop", "clear")}
        for way in ("wav", "twilio")
    }
    failed = {"wav": 0, "twilio": 0}
    """Turns lost or answered with the trouble phrase: an engine failed (over budget, usually
    because the machine is loaded)."""
    observers = CallObservers()
    account = TwilioSettings(account_sid=ACCOUNT, auth_token=SecretStr(TOKEN), base_url=PUBLIC)
    try:
        async with app.web_server("127.0.0.1", 0, twilio=account, observe=observers) as web:
            twilio = TwilioCaller(
                server_url=web.url,
                public_url=PUBLIC,
                auth_token=TOKEN,
                clock=app.clock,
                observers=observers,
                account_sid=ACCOUNT,
            )
            for run in range(runs):
                for way in ("wav", "twilio"):
                    for steps in (turn, barge):
                        if way == "wav":
                            report = await run_wav_call(
                                app.answer,
                                steps,
                                clock=app.clock,
                            )
                        else:
                            report = await twilio.call(steps)
                        record(figures[way], report, twilio, barged=steps is barge)
                        trouble = app.session_config.persona.trouble
                        failed[way] += sum(t.reply == trouble for t in report.turns)
                        failed[way] += max(0, (2 if steps is barge else 1) - len(report.turns))
                print(f"run {run + 1}/{runs} done", flush=True)
    finally:
        await app.aclose()
    print(f"\nmedians over {runs} runs, ms (2-core machine, shared)")
    names = list(figures["wav"])
    print(f"{'way in':<8}" + "".join(f"{n:>14}" for n in names))
    for way, values in figures.items():
        print(f"{way:<8}" + "".join(f"{_median(values[n]):>14}" for n in names))
    print("turns an engine failed (each skews the medians): " + str(failed))


def record(
    into: dict[str, list[float]], report: CallReport, twilio: TwilioCaller, *, barged: bool
) -> None:
    if barged:
        stop = _barge_stop_ms(report)
        if stop is not None:
            into["barge-in stop"].append(stop)
        trace = twilio.traces.get(report.line.info.call_id)
        voice = next((e for e in report.timeline if e.what == "caller-voice" and e.step == 1), None)
        if trace is not None and trace.started_at is not None and voice is not None:
            onset = trace.started_at + voice.at_ms / 1000
            clears = [(t - onset) * 1000 for t in trace.clears if t >= onset]
            if clears:
                into["clear"].append(clears[0])
        return
    turns = report.turns
    for stage, key in _STAGES.items():
        if turns and key in turns[0].timings_ms:
            into[stage].append(turns[0].timings_ms[key])
    caller = _caller_turn_ms(report)
    if caller is not None:
        into["caller turn"].append(caller)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    asyncio.run(main(parser.parse_args().runs))
