"""`LAN_INFERENCE=auto`'s choices without a network: when the LAN language model goes ahead of
the local one, and where a LAN server's engines go in each stage's chain."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from appliance.app.engines import build_engines, join_lan, lan_engines
from appliance.app.inference import lan_llm_first
from appliance.clock import LoopClock
from appliance.engines.api.client import ApiEndpoint
from appliance.engines.fallback import FallbackLanguageModel, Option
from appliance.observability.metrics import Metrics
from appliance.settings import EngineSettings
from tests.support.fakes import ScriptedLanguageModel

LAN = "lan:tel3sis-c0ffee"


@pytest.mark.parametrize(
    ("local_ms", "lan_ms", "first"),
    [
        (1000.0, 500.0, True),  # half the time
        (1000.0, 700.0, True),  # exactly 30 % and 300 ms sooner
        (1000.0, 750.0, False),  # 25 % sooner: within a shared server's noise
        (300.0, 120.0, False),  # 60 % sooner, but 180 ms: no caller would notice
        (3000.0, 2000.0, True),  # a second sooner on a slow board
        (3000.0, 2200.0, False),  # 800 ms sooner but under 30 %
        (None, 900.0, True),  # the local model gave no token in time
        (400.0, None, False),  # the LAN model gave none
        (None, None, False),
    ],
)
def test_the_lan_model_goes_first_only_when_it_is_clearly_faster(
    local_ms: float | None, lan_ms: float | None, first: bool
) -> None:
    assert lan_llm_first(local_ms, lan_ms) is first


@pytest.mark.parametrize("llm_first", [False, True])
async def test_the_lan_server_comes_after_the_local_engine_and_before_the_cloud(
    tmp_path: Path, llm_first: bool
) -> None:
    eng = EngineSettings(openai_api_key=SecretStr("sk-x"), openai_base_url="http://127.0.0.1:9/v1")
    local = build_engines(eng, tmp_path, metrics=Metrics(), clock=LoopClock())  # loads nothing
    endpoint = ApiEndpoint("http://127.0.0.1:9/v1", "k" * 16, timeout_s=1)
    lan = lan_engines(endpoint, LAN, {"llm": "qwen"}, eng)
    try:
        join_lan(local, lan, eng, clock=LoopClock(), llm_first=llm_first)
        chains = local.chains
        assert chains.stt.engines == (eng.stt_model, LAN, "api:whisper-1")  # type: ignore[attr-defined]
        assert chains.tts.engines == (eng.tts_voice, LAN, "api:tts-1")  # type: ignore[attr-defined]
        llm = (LAN, eng.llm_model) if llm_first else (eng.llm_model, LAN)
        assert chains.llm.engines == (*llm, "api:gpt-4o-mini")  # type: ignore[attr-defined]
        # The status page shows the preferred engine answering until another does.
        assert chains.llm.active == llm[0]  # type: ignore[attr-defined]
        assert chains.stt.active == eng.stt_model  # type: ignore[attr-defined]
        assert local.lan == lan  # closed with the API engines
        assert local.job_llm.engines == (eng.llm_model,)  # summaries stay on the box
    finally:
        await local.close_api()
        for worker in local.workers:
            worker.close()


async def test_an_engine_put_first_after_another_answered_does_not_claim_to_answer() -> None:
    clock = LoopClock()
    chain = FallbackLanguageModel([Option(ScriptedLanguageModel(clock, first_token_s=0))])
    chain.active = "api:gpt-4o-mini"  # a fallback answered last
    chain.insert(0, Option(ScriptedLanguageModel(clock, name="lan", first_token_s=0)))
    assert chain.engines == ("lan", "scripted-llm")
    assert chain.name == "lan+scripted-llm"
    assert chain.active == "api:gpt-4o-mini"
