"""The language model behind an OpenAI-compatible API: streamed chat completions with tools.

Text streams as the server sends it. A tool call streams in pieces (its id and name first, then
its arguments a few characters at a time, keyed by an index); the port wants it whole, so the
pieces are joined and each call is given once the stream ends, after any text before it, as
`LlamaLanguageModel` gives its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from appliance.conversation.ports import (
    EngineError,
    LlmOutput,
    Message,
    TextDelta,
    ToolCall,
    ToolSpec,
)
from appliance.engines.api.client import ApiEndpoint, engine_error, make_client

__all__ = ["ApiLanguageModel"]


class ApiLanguageModel:
    """The LanguageModel port over `/v1/chat/completions`."""

    def __init__(
        self,
        endpoint: ApiEndpoint,
        *,
        model: str,
        max_tokens: int = 160,
        temperature: float = 0.3,
        name: str | None = None,
    ) -> None:
        self.name = name or f"api:{model}"
        self._endpoint = endpoint
        self._model = model
        self._max_tokens = max_tokens
        self._temperature = temperature
        # Made now, not at the first fallback: building it (its TLS context) takes ~0.3 s.
        self._client: Any = make_client(endpoint)

    async def close(self) -> None:
        """Close the client's connections (at shutdown)."""
        await self._client.close()

    def stream(
        self, messages: Sequence[Message], tools: Sequence[ToolSpec] = ()
    ) -> AsyncIterator[LlmOutput]:
        return self._stream(list(messages), list(tools))

    async def _stream(
        self, messages: list[Message], tools: list[ToolSpec]
    ) -> AsyncIterator[LlmOutput]:
        request: dict[str, Any] = {
            "model": self._model,
            "messages": [_as_api_message(m) for m in messages],
            "max_tokens": self._max_tokens,
            "temperature": self._temperature,
            "stream": True,
        }
        if tools:
            request["tools"] = [_as_api_tool(t) for t in tools]
        try:
            async with self._client.chat.completions.with_streaming_response.create(
                **request
            ) as response:
                _expect_events(response.headers.get("content-type", ""), self._endpoint)
                async for output in _outputs(await response.parse()):
                    yield output
        except EngineError:
            raise
        except Exception as exc:  # the SDK's errors, and its transport's mid-stream
            raise engine_error("the language model", self._endpoint, exc) from exc


def _expect_events(content_type: str, endpoint: ApiEndpoint) -> None:
    """A streamed answer is server-sent events; anything else (a proxy's HTML page) would parse
    as an empty reply."""
    if not content_type.startswith("text/event-stream"):
        raise EngineError(
            f"the language model at {endpoint.describe()} answered {content_type or 'no type'}, "
            "not a stream of events; check that its base URL is the API's (ending in /v1)"
        )


@dataclass(slots=True)
class _PartialCall:
    id: str = ""
    name: str = ""
    arguments: str = ""


async def _outputs(chunks: AsyncIterator[Any]) -> AsyncIterator[LlmOutput]:
    """Text deltas as they come; tool calls whole, at the end; an error if the stream stopped
    before the server said it was finished (a dropped connection can look like an end)."""
    calls: dict[int, _PartialCall] = {}
    finished = False
    async for chunk in chunks:
        for choice in chunk.choices[:1]:
            delta = choice.delta
            if delta.content:
                yield TextDelta(delta.content)
            for piece in delta.tool_calls or ():
                call = calls.setdefault(piece.index, _PartialCall())
                call.id = piece.id or call.id
                if piece.function is not None:
                    call.name += piece.function.name or ""
                    call.arguments += piece.function.arguments or ""
            finished = finished or choice.finish_reason is not None
    if not finished:
        raise EngineError("the language model's stream ended before it finished its answer")
    for _, call in sorted(calls.items()):
        yield ToolCall(id=call.id, name=call.name, arguments=call.arguments or "{}")


def _as_api_message(message: Message) -> dict[str, Any]:
    entry: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.role == "tool":
        entry["tool_call_id"] = message.tool_call_id or ""
    if message.tool_calls:
        entry["content"] = message.content or None
        entry["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in message.tool_calls
        ]
    return entry


def _as_api_tool(tool: ToolSpec) -> dict[str, Any]:
    parameters = dict(tool.parameters) or {"type": "object", "properties": {}}
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": parameters,
        },
    }
