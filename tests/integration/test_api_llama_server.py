"""The API language model against llama-cpp-python's own OpenAI-compatible server on loopback,
with the fault proxy between them, and behind a local model that hangs: the chain falls back
within its budget and the turn gets a reply from the server."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from appliance.clock import LoopClock
from appliance.conversation.ports import EngineError, Message, TextDelta, ToolCall, ToolSpec
from appliance.engines.api.client import ApiEndpoint
from appliance.engines.api.llm import ApiLanguageModel
from appliance.engines.fallback import FallbackLanguageModel, Option
from tests.conftest import PIPELINE_LLM
from tests.support.fakes import ScriptedLanguageModel
from tests.support.fault_proxy import FaultProxy, proxying
from tests.support.llama_server import llama_server

pytestmark = pytest.mark.asyncio(loop_scope="module")

BUDGET_S = 0.5
ASKED = [Message("system", "Answer in one short sentence."), Message("user", "Say hello.")]
WEATHER = ToolSpec(
    name="get_weather",
    description="The current weather in a city.",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


@pytest.fixture(scope="module")
def server(models_dir: Path) -> Iterator[str]:
    with llama_server(models_dir / PIPELINE_LLM / "model.gguf") as url:
        yield url


@pytest.fixture
def proxy(server: str) -> Iterator[tuple[FaultProxy, ApiEndpoint]]:
    with proxying(server) as (faults, url):
        yield faults, ApiEndpoint(url, None, timeout_s=60)


Connect = Callable[..., ApiLanguageModel]


@pytest_asyncio.fixture(loop_scope="module")
async def connect() -> AsyncIterator[Connect]:
    """Makes API models (each closed at the test's end, with its connections)."""
    made: list[ApiLanguageModel] = []

    def model(endpoint: ApiEndpoint, name: str = "server") -> ApiLanguageModel:
        made.append(ApiLanguageModel(endpoint, model=PIPELINE_LLM, temperature=0.0, name=name))
        return made[-1]

    yield model
    for each in made:
        await each.close()


def _said(outputs: list[object]) -> str:
    return "".join(o.text for o in outputs if isinstance(o, TextDelta)).strip()


async def test_text_streams_from_the_server(connect: Connect, server: str) -> None:
    outputs = [o async for o in connect(ApiEndpoint(server, None, timeout_s=60)).stream(ASKED)]
    assert len(outputs) > 2 and all(isinstance(o, TextDelta) for o in outputs)
    assert _said(outputs)  # type: ignore[arg-type]


async def test_the_server_takes_the_tools_and_answers(connect: Connect, server: str) -> None:
    # The 0.5B behind llama-cpp-python's template may call the tool or answer in words; either
    # way the request with tools is one the server takes, and what comes back is the port's.
    asked = [ASKED[0], Message("user", "What's the weather in Paris right now?")]
    model = connect(ApiEndpoint(server, None, timeout_s=60))
    outputs = [o async for o in model.stream(asked, [WEATHER])]
    assert outputs
    for output in outputs:
        assert isinstance(output, TextDelta | ToolCall)
        if isinstance(output, ToolCall):
            json.loads(output.arguments)


async def test_a_hanging_local_model_yields_to_the_server_and_the_turn_gets_a_reply(
    connect: Connect,
    server: str,
) -> None:
    hanging = ScriptedLanguageModel(LoopClock(), first_token_s=3600, name="local")
    chain = FallbackLanguageModel(
        [Option(hanging, BUDGET_S), Option(connect(ApiEndpoint(server, None, timeout_s=60)))]
    )
    started = time.perf_counter()
    stream = chain.stream(ASKED)
    first = await anext(stream)
    waited = time.perf_counter() - started
    outputs = [first, *[o async for o in stream]]
    assert _said(outputs)
    assert chain.active == "server" and len(hanging.seen) == 1
    assert waited >= BUDGET_S  # the local model had its budget...
    # ...and then the server's first token took what it takes (a warm 0.5B: well under 5 s).
    assert waited < BUDGET_S + 5.0


async def test_a_server_slow_to_its_first_byte_yields_to_the_next(
    connect: Connect, server: str, proxy: tuple[FaultProxy, ApiEndpoint]
) -> None:
    # A LAN box first and the cloud after it: the first is late, its budget acts.
    faults, slow = proxy
    faults.fault = "slow"
    chain = FallbackLanguageModel(
        [Option(connect(slow, "lan"), BUDGET_S),
         Option(connect(ApiEndpoint(server, None, timeout_s=60), "cloud"))]
    )  # fmt: skip
    outputs = [o async for o in chain.stream(ASKED)]
    assert _said(outputs) and chain.active == "cloud"


@pytest.mark.parametrize(("fault", "says"), [("error", "HTTP 500"), ("html", "text/html")])
async def test_a_broken_answer_yields_to_the_next(
    connect: Connect, server: str, proxy: tuple[FaultProxy, ApiEndpoint], fault: str, says: str
) -> None:
    faults, broken = proxy
    faults.fault = fault  # type: ignore[assignment]
    with pytest.raises(EngineError, match=says):
        _ = [o async for o in connect(broken).stream(ASKED)]
    chain = FallbackLanguageModel(
        [Option(connect(broken, "lan"), BUDGET_S),
         Option(connect(ApiEndpoint(server, None, timeout_s=60), "cloud"))]
    )  # fmt: skip
    assert _said([o async for o in chain.stream(ASKED)])
    assert chain.active == "cloud"


async def test_a_reset_mid_stream_is_not_switched_to_another_engine(
    connect: Connect, server: str, proxy: tuple[FaultProxy, ApiEndpoint]
) -> None:
    faults, resetting = proxy
    faults.fault, faults.reset_after_events = "reset", 2
    backup = connect(ApiEndpoint(server, None, timeout_s=60), "cloud")
    chain = FallbackLanguageModel([Option(connect(resetting, "lan"), BUDGET_S), Option(backup)])
    got: list[object] = []
    with pytest.raises(EngineError, match="language model"):
        async for output in chain.stream(ASKED):
            got.append(output)  # noqa: PERF401 - kept item by item: the stream raises
    assert got  # the caller heard the start of it: the rest is not another engine's
    assert chain.active == "lan"
