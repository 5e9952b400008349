"""A real call, watched over the status page's event stream, then counted on /metrics.

The call is a recording played through the router as a phone line's call would be (the real
models, in real time); the page's client is plain HTTP here (the browser test drives Chromium).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from appliance import __version__
from appliance.app import Appliance
from appliance.conversation.ports import CallInfo
from appliance.harness.call import run_wav_call
from appliance.telephony.wavfile import HangUp, Speak, load_wav
from tests.conftest import AUDIO
from tests.support.status import log_in, set_password

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def _events(http: httpx.AsyncClient) -> AsyncIterator[tuple[str, dict[str, object]]]:
    async with http.stream("GET", "/api/live") as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        kind = ""
        async for line in stream.aiter_lines():
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: "):
                yield kind, json.loads(line.removeprefix("data: "))


async def test_a_call_is_seen_live_and_counted_on_metrics(appliance: Appliance) -> None:
    set_password(appliance.settings.paths.admin_password)
    caller = load_wav(AUDIO / "goforward.wav").pcm
    info = CallInfo(call_id=f"live-{uuid.uuid4().hex[:8]}", line="wav", caller="+15550131")
    async with (
        appliance.web_server("127.0.0.1", 0) as server,
        httpx.AsyncClient(base_url=server.url, timeout=30.0) as http,
    ):
        await log_in(http)
        before = _samples((await http.get("/metrics")).text)
        seen: list[tuple[str, dict[str, object]]] = []
        async with asyncio.timeout(180):
            events = _events(http)
            kind, first = await anext(events)
            assert kind == "snapshot" and first["dropped"] == 0
            call = asyncio.create_task(
                run_wav_call(
                    appliance.answer,
                    [Speak(caller, label="goforward"), HangUp()],
                    clock=appliance.clock,
                    info=info,
                    max_call_s=120,
                )
            )
            async for kind, data in events:
                seen.append((kind, data))
                if data.get("type") == "ended" and data.get("id") == info.call_id:
                    break
            await events.aclose()
            report = await call
        after_text = (await http.get("/metrics")).text
    assert report.ended == "caller hung up"
    mine = [d for k, d in seen if k == "update" and d.get("id", info.call_id) == info.call_id]
    assert mine[0]["type"] == "call" and mine[0]["call"]["caller"] == "+15550131"  # type: ignore[index]
    said = [(d["speaker"], str(d["text"])) for d in mine if d["type"] == "line"]
    heard = report.turns[0]
    assert ("caller", heard.transcript) in said and "forward" in heard.transcript.lower()
    assert ("agent", heard.reply) in said and heard.reply
    timings = next(
        d["timings_ms"]
        for d in mine
        if d["type"] == "line" and d["speaker"] == "agent" and d["turn"] == 1
    )
    assert set(timings) >= {"endpoint", "stt", "llm_first_token", "tts_first_audio", "turn"}  # type: ignore[arg-type]

    after = _samples(after_text)

    def grew(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert grew("tel3sis_calls_total", line="wav", outcome="caller-hung-up") == 1
    assert _value(after, "tel3sis_active_calls", line="wav") == 0
    assert grew("tel3sis_turn_latency_seconds_count") >= 1
    for stage in ("endpoint", "stt", "llm_first_token", "first_sentence", "tts_first_audio"):
        assert grew("tel3sis_stage_seconds_count", stage=stage) >= 1, stage
    engines = appliance.settings.engines
    assert grew("tel3sis_engine_real_time_factor_count", engine=engines.stt_model) >= 1
    assert grew("tel3sis_engine_real_time_factor_count", engine=engines.tts_voice) >= 1
    assert _value(after, "tel3sis_health", part="models") == 1
    assert _value(after, "tel3sis_health", part="disk") == 1
    assert 0 < _value(after, "tel3sis_disk_used_ratio") < 1
    assert (
        _value(after, "tel3sis_job_queue_depth") >= 1
    )  # its summary waits: nothing runs jobs here
    models = ",".join(appliance.model_names)
    assert _value(after, "tel3sis_build_info", version=__version__, models=models) == 1
    promtool = shutil.which("promtool")
    assert promtool is not None, "./install.sh --dev installs promtool (Debian's prometheus)"
    linted = await asyncio.to_thread(
        subprocess.run,
        [promtool, "check", "metrics"],
        input=after_text,
        capture_output=True,
        text=True,
        check=False,
    )
    assert linted.returncode == 0, linted.stdout + linted.stderr
