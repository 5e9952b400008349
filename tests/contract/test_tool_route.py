"""The two-stage tool route with Qwen2.5-Coder-1.5B on the front desk: the right action for what a
caller says, a spoken answer after a tool's result, and a prompt prefix that stays cached.

The 1.5B is the model the route was measured with (`bench/tool_route.py`); the 0.5B's route runs
in tests/contract/test_language_model.py. A spoken answer is read only up to its first piece:
the action is decided before the first token, and reading on would cost seconds a case.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from appliance.conversation.ports import Message, TextDelta, ToolCall
from appliance.engines.llm.llama import LlamaLanguageModel
from appliance.engines.models import Manifest, ModelStore
from appliance.engines.offload import Offloader
from tests.conftest import LLM_SEED
from tests.support.desk import CASES, Case, arguments_fit, front_desk

pytestmark = pytest.mark.asyncio(loop_scope="session")

MODEL = "qwen2.5-coder-1.5b-instruct"
SYSTEM, TOOLS = front_desk()
CHECKED = [
    case
    for case in CASES
    if case.said
    in {
        "Hello, who am I speaking to?",
        "Do you take insurance?",
        "How much is a filling?",
        "What time is it right now?",
        "Are you open on Saturday?",
        "What's the weather going to be tomorrow?",
        "Okay thanks, that's all, goodbye!",
    }
]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def qwen_1_5b(models_dir: Path) -> AsyncIterator[LlamaLanguageModel]:
    store = ModelStore(models_dir, Manifest.load())
    problems = store.verify(MODEL)
    if problems:
        pytest.fail(
            f"{problems[0]}; run `.venv/bin/appliance models install {MODEL}` "
            "(./install.sh --dev installs it)",
            pytrace=False,
        )
    worker = Offloader("route-llm")
    engine = LlamaLanguageModel(
        store.path(MODEL) / "model.gguf",
        offloader=worker,
        max_tokens=40,
        temperature=0.0,
        seed=LLM_SEED,
    )
    await engine.warm_up([SYSTEM], TOOLS)
    yield engine
    await worker.aclose()


async def _first(llm: LlamaLanguageModel, messages: list[Message]) -> TextDelta | ToolCall:
    stream = llm.stream(messages, TOOLS)
    try:
        return await anext(aiter(stream))
    finally:
        await stream.aclose()  # type: ignore[attr-defined]


@pytest.mark.parametrize("case", CHECKED, ids=[case.action for case in CHECKED])
async def test_the_route_takes_the_action_the_request_needs(
    qwen_1_5b: LlamaLanguageModel, case: Case
) -> None:
    first = await _first(qwen_1_5b, [SYSTEM, Message("user", case.said)])

    assert qwen_1_5b.last_action == case.action
    if case.action == "speak":
        assert isinstance(first, TextDelta)
    else:
        assert isinstance(first, ToolCall)
        assert first.name == case.action
        assert arguments_fit(case, first.arguments), first.arguments


async def test_after_a_tool_result_the_model_tells_the_caller(
    qwen_1_5b: LlamaLanguageModel,
) -> None:
    (case,) = [case for case in CASES if case.said.startswith("What's the weather")]
    call = ToolCall("call_1", "get_weather", '{"day": "tomorrow"}')
    messages = [
        SYSTEM,
        Message("user", case.said),
        Message("assistant", "", tool_calls=(call,)),
        Message("tool", case.result, tool_call_id=call.id),
    ]

    outputs = [output async for output in qwen_1_5b.stream(messages, TOOLS)]

    assert qwen_1_5b.last_action == "speak"
    said = "".join(o.text for o in outputs if isinstance(o, TextDelta))
    assert all(isinstance(o, TextDelta) for o in outputs)
    assert "rain" in said.lower() and "<" not in said, said


async def test_the_system_prompt_and_tools_stay_cached_from_turn_to_turn(
    qwen_1_5b: LlamaLanguageModel,
) -> None:
    history = [SYSTEM, Message("user", "Do you take insurance?")]
    said = "".join(
        [o.text async for o in qwen_1_5b.stream(history, TOOLS) if isinstance(o, TextDelta)]
    )
    history += [Message("assistant", said), Message("user", "And is there parking?")]

    await _first(qwen_1_5b, history)  # whichever action it takes, the prompt only grew

    stats = qwen_1_5b.last_prompt
    assert stats.tokens > 900  # the persona, the business's facts and five tools
    # What is evaluated is the new turn (its question, the template around it, the route's
    # opening: about 20 tokens) and at most the last reply again (its text can tokenize
    # otherwise than it was generated); measured 42 with the persona and tools cached.
    assert stats.evaluated < 60, stats
