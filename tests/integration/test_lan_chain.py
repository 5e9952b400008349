"""`LAN_INFERENCE=auto`: a board finds a LAN inference server by zeroconf and its calls use it.

The server is the real `InferenceServer` over the scripted tone engines (test_inference_server's
`served`), advertised by real zeroconf bound to 127.0.0.1 (nothing is multicast). The board's
engines are built from settings as `Appliance.build` builds them, over a models folder with no
models in it: each local engine fails when asked (no model loads), so what answers a turn is the
LAN server, and the turn's record names it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from pydantic import SecretStr

from appliance import __version__
from appliance.app.engines import LocalEngines, build_engines
from appliance.app.inference import browse_lan, join_lan_servers, local_first_token_ms
from appliance.clock import LoopClock
from appliance.conversation.events import TurnCompleted
from appliance.conversation.phrases import PhraseCache
from appliance.conversation.session import CallSession, Engines, SessionConfig
from appliance.conversation.tools import ToolRegistry
from appliance.engines.vad.energy import EnergyVoiceActivity
from appliance.harness.call import run_wav_call
from appliance.inference.advertise import InferenceAdvertisement
from appliance.inference.discovery import LanServer
from appliance.observability.metrics import Metrics
from appliance.settings import InferenceSettings, PathSettings, Settings, ZeroconfSettings
from appliance.telephony.wavfile import HangUp, Speak
from tests.integration.test_inference_server import KEY, LOOPBACK, Served, served  # noqa: F401
from tests.support.calls import PERSONA
from tests.support.fakes import ScriptedLanguageModel, say

BOX = "c0ffee"
LAN = f"lan:tel3sis-{BOX}"
REPLY = "It is sunny today."


def board_settings(tmp_path: Path) -> Settings:
    """A board with LAN_INFERENCE=auto, browsing on loopback only, and no models installed."""
    base = Settings.load(None)
    (tmp_path / "models").mkdir()
    # A cloud API engine too (nothing listens there): the LAN server must come before it.
    cloud = {"openai_api_key": SecretStr("sk-test"), "openai_base_url": "http://127.0.0.1:9/v1"}
    return dataclasses.replace(
        base,
        engines=base.engines.model_copy(update=cloud),
        paths=PathSettings(data_dir=tmp_path / "data", models_dir=tmp_path / "models"),
        inference=InferenceSettings(inference_api_key=SecretStr(KEY), lan_inference="auto"),
        zeroconf=ZeroconfSettings(zeroconf_interfaces="127.0.0.1"),
    )


@pytest_asyncio.fixture
async def board(tmp_path: Path) -> AsyncIterator[tuple[Settings, LocalEngines]]:
    settings = board_settings(tmp_path)
    assert settings.paths.models_dir is not None
    local = build_engines(
        settings.engines, settings.paths.models_dir, metrics=Metrics(), clock=LoopClock()
    )
    try:
        yield settings, local
    finally:
        await local.close_api()
        await asyncio.gather(*(worker.aclose(5.0) for worker in local.workers))


@pytest_asyncio.fixture
async def advertised(served: Served) -> AsyncIterator[Served]:  # noqa: F811
    """The server, said on loopback as a box would say it."""
    advertisement = InferenceAdvertisement(
        box=BOX,
        version=__version__,
        port=served.server.port,
        models={"stt": "whisper-tiny.en", "llm": "qwen", "tts": "piper"},
        interfaces=LOOPBACK,
    )
    async with advertisement:
        await advertisement.registered()
        yield served


async def play_turn(chains: Engines) -> list[TurnCompleted]:
    """One caller turn through a call on the board's chains, in real time; its turn records
    (the energy detector hears the caller: the board's Silero model is not installed)."""
    engines = dataclasses.replace(chains, vad=EnergyVoiceActivity())
    clock = LoopClock()
    events: list[object] = []

    async def answer(line, sink):  # type: ignore[no-untyped-def]
        return await CallSession(
            line,
            engines,
            SessionConfig(persona=PERSONA),
            tools=ToolRegistry([]),
            phrases=PhraseCache(engines.tts),
            clock=clock,
            sink=sink,
        ).run()

    await run_wav_call(
        answer,
        [Speak(say("hello", "weather")), HangUp()],
        clock=clock,
        max_call_s=30,
        on_event=events.append,
    )
    return [e for e in events if isinstance(e, TurnCompleted)]


async def test_a_board_finds_the_lan_server_and_it_answers_the_turn_the_local_engines_cannot(
    advertised: Served, board: tuple[Settings, LocalEngines], caplog: pytest.LogCaptureFixture
) -> None:
    settings, local = board
    advertised.llm.replies = ["OK.", REPLY]  # the timing chat, then the caller's turn
    browsing = browse_lan(settings, wait_s=2.0)
    assert browsing is not None
    with caplog.at_level(logging.INFO, logger="appliance.app.inference"):
        choice = await join_lan_servers(settings, local, browsing, clock=LoopClock())
    assert choice is not None
    assert choice.server.base_url == advertised.url
    assert choice.name == LAN
    # The board's own model cannot answer (not installed): the LAN model goes first.
    assert choice.local_ms is None and choice.lan_ms is not None and choice.llm_first
    eng = settings.engines
    chains = local.chains
    assert chains.stt.engines == (eng.stt_model, LAN, "api:whisper-1")  # type: ignore[attr-defined]
    assert chains.llm.engines == (LAN, eng.llm_model, "api:gpt-4o-mini")  # type: ignore[attr-defined]
    assert chains.tts.engines == (eng.tts_voice, LAN, "api:tts-1")  # type: ignore[attr-defined]
    assert chains.llm.active == LAN  # type: ignore[attr-defined]
    assert "is each stage's first fallback" in caplog.text
    assert "the LAN language model answers first" in caplog.text

    (turn,) = await play_turn(local.chains)
    assert turn.transcript == "hello weather"  # heard by the server's recognizer
    assert turn.reply == REPLY
    assert turn.engines == {"stt": LAN, "llm": LAN, "tts": LAN}
    assert advertised.llm.seen[-1][-1].content == "hello weather"


async def test_the_local_model_stays_first_unless_the_lan_one_is_clearly_faster(
    served: Served,  # noqa: F811
    board: tuple[Settings, LocalEngines],
) -> None:
    settings, local = board
    clock = LoopClock()
    local.llm = ScriptedLanguageModel(clock, first_token_s=0.6, name="llama")  # type: ignore[assignment]
    server = LanServer(base_url=served.url, box=BOX, latency_ms=1.0)

    async def found() -> list[LanServer]:
        return [server]

    served.llm.first_token_s = 0.5  # faster, but not by 200 ms
    near = await join_lan_servers(settings, local, found(), clock=clock)
    assert near is not None and near.local_ms is not None and near.lan_ms is not None
    assert 600 <= near.local_ms < 1000 and 500 <= near.lan_ms < 900
    assert not near.llm_first
    assert local.chains.llm.engines[:2] == (settings.engines.llm_model, LAN)  # type: ignore[attr-defined]

    served.llm.first_token_s = 0.0
    quick = await join_lan_servers(settings, local, found(), clock=clock)
    assert quick is not None and quick.lan_ms is not None and quick.lan_ms < 300
    assert quick.llm_first
    assert local.chains.llm.engines[0] == LAN  # type: ignore[attr-defined]


async def test_a_browse_that_does_not_end_delays_start_up_by_the_bound_only(
    board: tuple[Settings, LocalEngines], caplog: pytest.LogCaptureFixture
) -> None:
    settings, local = board
    never: asyncio.Future[list[LanServer]] = asyncio.get_running_loop().create_future()
    started = asyncio.get_running_loop().time()
    async with asyncio.timeout(5):  # a board that waited for ever fails here, not by hanging
        choice = await join_lan_servers(settings, local, never, clock=LoopClock(), wait_s=0.3)
    took = asyncio.get_running_loop().time() - started
    assert choice is None
    assert 0.3 <= took < 1.0
    assert LAN not in local.chains.stt.engines  # type: ignore[attr-defined]
    assert "calls use this box's engines only" in caplog.text


async def test_a_failure_to_browse_is_logged_and_finds_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = board_settings(tmp_path)
    # The data folder is a file: the box cannot learn its own id, so it cannot browse.
    settings.paths.data_dir.write_text("not a folder")
    browsing = browse_lan(settings, wait_s=0.5)
    assert browsing is not None
    assert await browsing == []
    assert "could not browse for inference servers" in caplog.text


async def test_the_local_first_token_is_timed_from_the_request() -> None:
    model = ScriptedLanguageModel(LoopClock(), first_token_s=0.2, replies=["OK."])
    took = await local_first_token_ms(model, timeout_s=2.0)
    assert took is not None and 200 <= took < 600
    stalled = ScriptedLanguageModel(LoopClock(), first_token_s=3600.0)
    assert await local_first_token_ms(stalled, timeout_s=0.2) is None


def test_lan_inference_off_browses_nothing(tmp_path: Path) -> None:
    settings = dataclasses.replace(board_settings(tmp_path), inference=InferenceSettings())
    assert browse_lan(settings) is None
