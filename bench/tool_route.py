"""The two-stage tool route on a front-desk prompt set, per language model.

    flock /tmp/heavy.lock .venv/bin/python -m bench.tool_route \\
        [--models qwen2.5-coder-0.5b-instruct qwen2.5-coder-1.5b-instruct] [--max-tokens 60]

For each model: the example business's system prompt and the real tools (`tests/support/desk.py`),
warmed up once, then each caller request as the first turn of a call. Per request: the action the
route chose (`speak` or a tool), whether it is right, whether a tool's arguments are, the time to
the first output (text or the tool call), and for a spoken reply its decode speed. A tool call is
answered with the case's canned result and the model asked again: it should then speak. Prints a
table per model and a summary line; nothing is asserted (the tests do that on a smaller set).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from appliance.conversation.ports import Message, TextDelta, ToolCall, ToolSpec
from appliance.engines.llm.llama import LlamaLanguageModel
from appliance.engines.offload import Offloader
from appliance.settings import Settings
from tests.support.desk import CASES, Case, arguments_fit, front_desk

MODELS = ("qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct")
SEED = 42


@dataclass(frozen=True, slots=True)
class _Row:
    case: Case
    action: str
    arguments: str
    first_ms: float
    tokens: int
    decode_s: float
    evaluated: int
    """Prompt tokens evaluated for the first answer (the rest came from the cache)."""
    then: str
    """The action after the tool's result (empty when the first action was to speak)."""
    said: str

    @property
    def right(self) -> bool:
        return self.action == self.case.action

    @property
    def filled(self) -> bool:
        return self.right and (self.action == "speak" or arguments_fit(self.case, self.arguments))


async def _answer(
    llm: LlamaLanguageModel, messages: list[Message], tools: list[ToolSpec]
) -> tuple[str, str, float, int, float, str]:
    """(action, arguments, ms to first output, tokens, seconds decoding after the first, text)"""
    started = time.perf_counter()
    first = last = 0.0
    tokens = 0
    text = ""
    async for output in llm.stream(messages, tools):
        last = time.perf_counter()
        if not tokens:
            first = last
        tokens += 1
        if isinstance(output, ToolCall):
            return output.name, output.arguments, (first - started) * 1000, 0, 0.0, ""
        assert isinstance(output, TextDelta)
        text += output.text
    action = "speak" if tokens else "nothing"
    return action, "", (first - started) * 1000, tokens, last - first, text.strip()


async def _case(
    llm: LlamaLanguageModel, system: Message, tools: list[ToolSpec], case: Case
) -> _Row:
    messages = [system, Message("user", case.said)]
    action, arguments, first_ms, tokens, decode_s, said = await _answer(llm, messages, tools)
    evaluated = llm.last_prompt.evaluated
    then = ""
    if action != "speak":
        call = ToolCall(id="call_1", name=action, arguments=arguments or "{}")
        messages += [
            Message("assistant", "", tool_calls=(call,)),
            Message("tool", case.result or "Done.", tool_call_id=call.id),
        ]
        then, _, _, _, _, said = await _answer(llm, messages, tools)
    return _Row(case, action, arguments, first_ms, tokens, decode_s, evaluated, then, said)


async def _model(name: str, models_dir: Path, max_tokens: int) -> list[_Row]:
    worker = Offloader(f"bench-{name}")
    llm = LlamaLanguageModel(
        models_dir / name / "model.gguf",
        offloader=worker,
        name=name,
        max_tokens=max_tokens,
        temperature=0.0,
        seed=SEED,
    )
    system, tools = front_desk()
    try:
        started = time.perf_counter()
        stats = await llm.warm_up([system], tools)
        print(
            f"\n{name}: loaded and warmed up in {time.perf_counter() - started:.1f} s "
            f"({stats.tokens} prompt tokens)"
        )
        return [await _case(llm, system, tools, case) for case in CASES]
    finally:
        await worker.aclose()


def _print(name: str, rows: list[_Row]) -> None:
    print(f"{'caller said':42} {'want':17} {'chose':17} ok  args first_ms tok/s eval then")
    for row in rows:
        rate = f"{(row.tokens - 1) / row.decode_s:5.1f}" if row.decode_s > 0 else "    -"
        print(
            f"{row.case.said[:42]:42} {row.case.action:17} {row.action:17} "
            f"{'y' if row.right else 'N':3} {'y' if row.filled else 'N':4} "
            f"{row.first_ms:8.0f} {rate} {row.evaluated:4} {row.then or '-'}"
        )
    for row in rows:
        print(f"  {row.case.said[:40]!r:44} -> {row.action} {row.arguments} | {row.said[:80]!r}")
    spoke = [r for r in rows if r.case.action == "speak"]
    tooled = [r for r in rows if r.case.action != "speak"]
    rates = [(r.tokens - 1) / r.decode_s for r in rows if r.decode_s > 0]
    print(
        f"SUMMARY {name}: right action {sum(r.right for r in rows)}/{len(rows)} "
        f"(plain questions spoken {sum(r.right for r in spoke)}/{len(spoke)}, "
        f"tools chosen {sum(r.right for r in tooled)}/{len(tooled)}), "
        f"arguments right {sum(r.filled for r in tooled)}/{len(tooled)}, "
        f"spoke after the result {sum(r.then == 'speak' for r in tooled)}/{len(tooled)}, "
        f"first output median {statistics.median(r.first_ms for r in rows):.0f} ms "
        f"(speak {statistics.median(r.first_ms for r in spoke):.0f}, "
        f"tool {statistics.median(r.first_ms for r in tooled):.0f}), "
        f"decode median {statistics.median(rates) if rates else 0:.1f} tok/s"
    )


async def _main(models: list[str], max_tokens: int) -> None:
    models_dir = Settings.load(None).paths.models
    for name in models:
        _print(name, await _model(name, models_dir, max_tokens))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--max-tokens", type=int, default=60)
    args = parser.parse_args()
    asyncio.run(_main(args.models, args.max_tokens))


if __name__ == "__main__":
    main()
