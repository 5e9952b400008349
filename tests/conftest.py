"""Shared fixtures: the installed models, settings in a scratch data dir, a started appliance.

Tests that need a model use the real one; when the models are not installed they fail and say
how to install them (they are never skipped). The real language model runs at temperature 0
with a fixed seed, so a test sees the same reply however loaded the machine is.

The lanes (pyproject's markers): a test that uses the installed models is marked `models`, and
every test under tests/integration `slow` (real servers, real calls, real time), here; tests
elsewhere that take real time, or run an external checker (`tools`), say so themselves.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from appliance.app import Appliance
from appliance.engines.llm.llama import LlamaLanguageModel
from appliance.engines.models import Manifest, ModelStore
from appliance.engines.offload import Offloader
from appliance.engines.stt.whisper import WhisperSpeechToText
from appliance.engines.tts.piper import PiperTextToSpeech
from appliance.engines.vad.silero import SileroVoiceActivity
from appliance.settings import EngineSettings, PathSettings, Settings

ROOT = Path(__file__).resolve().parents[1]
AUDIO = ROOT / "tests" / "fixtures" / "audio"
LLM_SEED = 42
"""The language model's sampling seed wherever a test runs it (at temperature 0)."""
PIPELINE_LLM = "qwen2.5-coder-0.5b-instruct"
"""The language model the tests' calls run on (`LLM_MODEL`, for this process and every child
it starts). Most tests check the call path, records and lines, not the model's choices: the
0.5B answers them in half the default 1.5B's time. The default's own choices are checked by
tests/contract/test_tool_route.py and tests/integration/test_front_desk.py."""
_INTEGRATION = ROOT / "tests" / "integration"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark what is known without reading the test: the models it loads, where it lives."""
    for item in items:
        if "models_dir" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.models)
        if item.path.is_relative_to(_INTEGRATION):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session", autouse=True)
def _zeroconf_on_loopback_only() -> Iterator[None]:
    """No test multicasts on a real network: whatever serves (in this process or a child it
    starts) advertises on loopback only."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ZEROCONF_INTERFACES", "127.0.0.1")
        yield


@pytest.fixture(autouse=True)
def _root_logger_restored() -> Iterator[None]:
    """A test that runs the CLI in this process (`main([...])`) points the root logger at the
    stderr pytest captured for it; left there, every later log line from a thread fails on
    the closed capture ("--- Logging error ---" in the next test's output). Pytest's own
    handlers come and go with each phase of a test, and are its to remove."""
    root = logging.getLogger()
    before, level = set(root.handlers), root.level
    yield
    for handler in root.handlers[:]:
        if handler not in before and type(handler).__module__ != "_pytest.logging":
            root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture(scope="session", autouse=True)
def _calls_on_the_pipeline_model() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LLM_MODEL", PIPELINE_LLM)
        yield


@pytest.fixture(scope="session")
def models_dir() -> Path:
    """MODELS_DIR (as the settings resolve it), with every default model and the tests'
    language model verified."""
    store = ModelStore(Settings.load(None).paths.models, Manifest.load())
    wanted = [model.name for model in store.manifest.defaults()] + [PIPELINE_LLM]
    problems = [p for name in dict.fromkeys(wanted) for p in store.verify(name)]
    if problems:
        pytest.fail(
            f"the default models are not installed in {store.models_dir}: {problems[0]}; "
            f"run `.venv/bin/appliance models install && .venv/bin/appliance models install "
            f"{PIPELINE_LLM}` (or ./install.sh --dev)",
            pytrace=False,
        )
    return store.models_dir


def settings_in(data_dir: Path, models_dir: Path, **sections: object) -> Settings:
    """Settings from the environment, with a scratch data dir, the installed models, and the
    language model at temperature 0 with a fixed seed."""
    base = Settings.load(None)
    paths = PathSettings(data_dir=data_dir, models_dir=models_dir)
    engines = sections.pop("engines", base.engines)
    assert isinstance(engines, EngineSettings)
    steady = engines.model_copy(update={"llm_temperature": 0.0, "llm_seed": LLM_SEED})
    return dataclasses.replace(base, paths=paths, engines=steady, **sections)  # type: ignore[arg-type]


@pytest.fixture
def app_settings(tmp_path: Path, models_dir: Path) -> Settings:
    return settings_in(tmp_path / "data", models_dir)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def appliance(
    models_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Appliance]:
    """One appliance with every local model loaded, shared by the session's real-model tests.

    Tests using it must run on the session's event loop:
    `pytestmark = pytest.mark.asyncio(loop_scope="session")`.
    """
    app = Appliance.build(settings_in(tmp_path_factory.mktemp("appliance"), models_dir))
    await app.start()
    yield app
    await app.aclose()


# --- single engines, loaded once per session from the installed models ------------------------


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def whisper(models_dir: Path) -> AsyncIterator[WhisperSpeechToText]:
    worker = Offloader("contract-stt")
    engine = WhisperSpeechToText(
        models_dir / "whisper-tiny.en", offloader=worker, name="whisper-tiny.en"
    )
    await engine.load()
    yield engine
    worker.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def agent_listener(models_dir: Path) -> AsyncIterator[WhisperSpeechToText]:
    """Whisper as a test hears the agent's own voice: what it hears is speech, so it keeps the
    words of a short reply that the model doubts ("five five"), where a caller's line drops them."""
    worker = Offloader("agent-listener")
    engine = WhisperSpeechToText(
        models_dir / "whisper-tiny.en",
        offloader=worker,
        name="whisper-tiny.en",
        drop_non_speech=False,
    )
    await engine.load()
    yield engine
    worker.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def llama(models_dir: Path) -> AsyncIterator[LlamaLanguageModel]:
    worker = Offloader("contract-llm")
    engine = LlamaLanguageModel(
        models_dir / PIPELINE_LLM / "model.gguf",
        offloader=worker,
        temperature=0.0,
        seed=LLM_SEED,
    )
    await engine.load()
    yield engine
    worker.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def piper(models_dir: Path) -> AsyncIterator[PiperTextToSpeech]:
    worker = Offloader("contract-tts")
    engine = PiperTextToSpeech(
        models_dir / "piper-en_US-joe-medium" / "en_US-joe-medium.onnx", offloader=worker
    )
    await engine.load()
    yield engine
    worker.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def silero(models_dir: Path) -> AsyncIterator[SileroVoiceActivity]:
    worker = Offloader("contract-vad")
    engine = SileroVoiceActivity(models_dir / "silero-vad" / "silero_vad_v6.onnx", offloader=worker)
    await engine.load()
    yield engine
    worker.close()
