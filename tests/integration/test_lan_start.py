"""`LAN_INFERENCE=auto` in a real start-up: the board loads and warms its own models while it
browses, then joins the LAN server it found (test_lan_chain's, advertised on loopback) to its
chains, having timed both language models, within the bound start-up allows."""

from __future__ import annotations

import dataclasses
import logging

import pytest
from pydantic import SecretStr

from appliance.app import Appliance
from appliance.app.inference import FIRST_TOKEN_WAIT_S, LAN_WAIT_S
from appliance.settings import InferenceSettings, Settings
from tests.integration.test_inference_server import KEY, Served, served  # noqa: F401
from tests.integration.test_lan_chain import LAN, advertised  # noqa: F401

pytestmark = [pytest.mark.models, pytest.mark.slow]


async def test_start_joins_the_lan_server_found_while_the_models_loaded(
    advertised: Served,  # noqa: F811
    app_settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    advertised.llm.first_token_s = 1.0  # a busy server: the board's own model should stay first
    settings = dataclasses.replace(
        app_settings,
        inference=InferenceSettings(inference_api_key=SecretStr(KEY), lan_inference="auto"),
    )
    app = Appliance.build(settings)
    try:
        with caplog.at_level(logging.INFO, logger="appliance.app.inference"):
            took = await app.start()
    finally:
        await app.aclose()
    eng = settings.engines
    assert took["lan inference"] < LAN_WAIT_S + FIRST_TOKEN_WAIT_S
    assert app.engines.stt.engines == (eng.stt_model, LAN)  # type: ignore[attr-defined]
    assert app.engines.tts.engines == (eng.tts_voice, LAN)  # type: ignore[attr-defined]
    assert app.engines.llm.engines == (eng.llm_model, LAN)  # type: ignore[attr-defined]
    (timed,) = [r.getMessage() for r in caplog.records if "first token" in r.getMessage()]
    assert "the local language model stays first" in timed
    assert f"for the local {eng.llm_model}" in timed and "none in time" not in timed
