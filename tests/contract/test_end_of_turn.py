"""Smart Turn, the end-of-turn model, on the installed file: same scores as its reference
front end, and the turns it must tell apart."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.audio.frame import silence
from appliance.conversation.ports import EngineError
from appliance.conversation.turns import VETO_BELOW
from appliance.engines.offload import Offloader
from appliance.engines.turn.smart_turn import SmartTurn
from appliance.harness.voices import caller_voice
from appliance.telephony.wavfile import load_wav
from tests.conftest import ROOT

pytestmark = [pytest.mark.models, pytest.mark.asyncio(loop_scope="session")]

CARDS = ROOT / "tests" / "fixtures" / "audio" / "cards"
PAUSE = silence() * 8
"""The 160 ms of silence a pause hands on after the speech."""


@pytest.fixture(scope="module")
def smart_turn(models_dir: Path) -> SmartTurn:
    return SmartTurn(
        models_dir / "smart-turn-v3.2" / "smart-turn-v3.2-cpu.onnx", offloader=Offloader("turn")
    )


async def test_a_finished_caller_sounds_finished(smart_turn: SmartTurn) -> None:
    # 001.wav, a caller saying a card and stopping: 0.988 by the reference front end
    # (pipecat's, computed here once), whose scores this matched to four places.
    score = await smart_turn.complete(load_wav(CARDS / "001.wav").pcm + PAUSE)
    assert score > 0.9, score


async def test_a_caller_who_trails_off_is_held(smart_turn: SmartTurn) -> None:
    score = await smart_turn.complete(caller_voice("I want to, um", voice="en-us") + PAUSE)
    assert score < VETO_BELOW, score


async def test_nothing_and_a_long_turn_are_scored_without_error(smart_turn: SmartTurn) -> None:
    assert 0.0 <= await smart_turn.complete(b"") <= 1.0
    long = load_wav(CARDS / "001.wav").pcm * 8  # beyond the model's 8 s: its last 8 s
    assert await smart_turn.complete(long) == pytest.approx(
        await smart_turn.complete(long[-8 * 32000 :]), abs=1e-6
    )


async def test_a_missing_model_file_says_how_to_install_it(tmp_path: Path) -> None:
    missing = SmartTurn(tmp_path / "smart-turn.onnx", offloader=Offloader("turn-missing"))
    with pytest.raises(EngineError, match="appliance models install"):
        await missing.load()
