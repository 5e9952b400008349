"""OpenAI's wire format, as far as the inference server speaks it.

Requests are read by hand rather than by pydantic models so that every refusal is OpenAI's own
error object (`{"error": {"message", "type", "param", "code"}}`) naming the field and the fix;
FastAPI's validation would answer 422 in a shape OpenAI clients do not read. What the local
engines cannot honour (images, `n` > 1, a forced tool) is refused, never silently dropped;
what merely tunes sampling (`temperature`, `max_tokens`, `voice`) is ignored, because the box
serves with its own settings (README, "The box as a LAN inference server").
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from appliance.conversation.ports import Message, Role, TextDelta, ToolCall, ToolSpec

__all__ = [
    "ChatRequest",
    "WireError",
    "bad",
    "chat_chunk",
    "chat_completion",
    "completion_id",
    "delta_of",
    "error_body",
    "parse_chat",
    "sse",
]

_ROLES: Final[Mapping[str, Role]] = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
    "tool": "tool",
}
"""OpenAI's roles, as the ports name them (`developer` is the newer name for `system`)."""


class WireError(Exception):
    """A request the server refuses; becomes OpenAI's error object with `status`."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        kind: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.kind = kind


def error_body(error: WireError) -> dict[str, Any]:
    """The JSON body OpenAI's SDK reads an error from."""
    return {
        "error": {
            "message": error.message,
            "type": error.kind,
            "param": error.param,
            "code": error.code,
        }
    }


def bad(message: str, param: str | None = None) -> WireError:
    """A 400: the request is readable but not something the box can answer."""
    return WireError(400, message, param=param)


# --- chat requests ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChatRequest:
    messages: list[Message]
    tools: list[ToolSpec]
    """Empty with no tools offered, or with `tool_choice: "none"`."""
    stream: bool


def parse_chat(body: object) -> ChatRequest:
    """A `/v1/chat/completions` body read into the LanguageModel port's terms."""
    if not isinstance(body, dict):
        raise bad("the body must be a JSON object")
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise bad("`messages` must be a non-empty array", "messages")
    n = body.get("n", 1)
    if n not in (1, None):
        raise bad("this server gives one choice per request: leave `n` unset or 1", "n")
    stream = body.get("stream", False)
    if not isinstance(stream, bool | None):
        raise bad("`stream` must be true or false", "stream")
    messages = [_message(item, f"messages[{i}]") for i, item in enumerate(raw)]
    tools = _tools(body.get("tools"))
    choice = body.get("tool_choice")
    if choice == "none":
        tools = []
    elif choice not in (None, "auto"):
        raise bad(
            "the local model decides for itself whether to call a tool: set `tool_choice` "
            'to "auto" or "none"',
            "tool_choice",
        )
    return ChatRequest(messages=messages, tools=tools, stream=bool(stream))


def _message(item: object, where: str) -> Message:
    if not isinstance(item, dict):
        raise bad(f"`{where}` must be an object", where)
    role = _ROLES.get(str(item.get("role")))
    if role is None:
        raise bad(
            f"`{where}.role` must be one of {', '.join(_ROLES)} (got {item.get('role')!r})",
            f"{where}.role",
        )
    calls = _tool_calls(item.get("tool_calls"), where) if role == "assistant" else ()
    call_id = item.get("tool_call_id")
    if role == "tool" and not isinstance(call_id, str):
        raise bad(f"`{where}.tool_call_id` must name the call this result answers", where)
    return Message(
        role=role,
        content=_text(item.get("content"), f"{where}.content", optional=bool(calls)),
        tool_calls=calls,
        tool_call_id=call_id if role == "tool" else None,
    )


def _text(content: object, where: str, *, optional: bool) -> str:
    """A message's text: a string, or an array of text parts (joined)."""
    if isinstance(content, str):
        return content
    if content is None and optional:
        return ""
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise bad(f"`{where}`: the local model reads text parts only (got {kind})", where)
            texts.append(str(part.get("text", "")))
        return "".join(texts)
    raise bad(f"`{where}` must be a string or an array of text parts", where)


def _tool_calls(raw: object, where: str) -> tuple[ToolCall, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise bad(f"`{where}.tool_calls` must be an array", f"{where}.tool_calls")
    calls = []
    for i, call in enumerate(raw):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise bad(
                f"`{where}.tool_calls[{i}]` must have a `function` with a `name`",
                f"{where}.tool_calls",
            )
        arguments = function.get("arguments", "{}")
        calls.append(
            ToolCall(
                id=str(call.get("id") or f"call_{i}"),
                name=function["name"],
                arguments=arguments if isinstance(arguments, str) else json.dumps(arguments),
            )
        )
    return tuple(calls)


def _tools(raw: object) -> list[ToolSpec]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise bad("`tools` must be an array", "tools")
    specs = []
    for i, tool in enumerate(raw):
        function = tool.get("function") if isinstance(tool, dict) else None
        if (
            not isinstance(tool, dict)
            or tool.get("type", "function") != "function"
            or not isinstance(function, dict)
            or not isinstance(function.get("name"), str)
        ):
            raise bad(f"`tools[{i}]` must be a function tool with a `name`", "tools")
        parameters = function.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise bad(f"`tools[{i}].function.parameters` must be a JSON Schema object", "tools")
        specs.append(
            ToolSpec(
                name=function["name"],
                description=str(function.get("description") or ""),
                parameters=parameters,
            )
        )
    return specs


# --- chat answers ----------------------------------------------------------------------------


def completion_id() -> str:
    return f"chatcmpl-{secrets.token_hex(12)}"


def _wire_call(call: ToolCall, index: int | None = None) -> dict[str, Any]:
    wire: dict[str, Any] = {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    }
    return wire if index is None else {"index": index, **wire}


def chat_completion(
    ident: str, model: str, outputs: Sequence[TextDelta | ToolCall]
) -> dict[str, Any]:
    """A whole (non-streamed) answer."""
    text = "".join(o.text for o in outputs if isinstance(o, TextDelta))
    calls = [_wire_call(o) for o in outputs if isinstance(o, ToolCall)]
    message: dict[str, Any] = {"role": "assistant", "content": text or (None if calls else "")}
    if calls:
        message["tool_calls"] = calls
    return {
        "id": ident,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if calls else "stop",
                "logprobs": None,
            }
        ],
    }


def chat_chunk(
    ident: str,
    model: str,
    *,
    delta: Mapping[str, Any],
    finish: str | None = None,
) -> dict[str, Any]:
    """One streamed piece of an answer."""
    return {
        "id": ident,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": dict(delta), "finish_reason": finish, "logprobs": None}],
    }


def delta_of(output: TextDelta | ToolCall, calls_so_far: int) -> dict[str, Any]:
    """The chunk delta carrying one output of the model (a tool call whole, in one delta)."""
    if isinstance(output, TextDelta):
        return {"content": output.text}
    return {"tool_calls": [_wire_call(output, calls_so_far)]}


def sse(data: Mapping[str, Any] | str) -> bytes:
    """One server-sent event, as OpenAI streams them (`data: ...` and a blank line)."""
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {text}\n\n".encode()
