"""The box's local engines served to its LAN through OpenAI's API (`INFERENCE_SERVER=true`).

A Jetson or a bigger box on the LAN answers its neighbours' speech to text, language model
and voice, so a Pi whose own model is slow has a near fallback that is not the cloud. The
routes are OpenAI's (`/v1/audio/transcriptions`, `/v1/chat/completions`, `/v1/audio/speech`,
`/v1/models`), so the neighbours use the `openai` SDK with `base_url` pointing here.

It runs on its own port (INFERENCE_PORT) beside the status page, with the same server stack
(`WebServer`: capped connections, a request deadline), because its door is different: an API key
(`Authorization: Bearer`), checked before a byte of the body is read, where the status page has an
operator's login. Bodies are capped (INFERENCE_MAX_UPLOAD_MB) as they arrive, not after.

Tools: the chat route passes `tools` to the local model's own tool route (`engines/llm/route.py`:
a grammar picks `speak` or one tool, then the tool's arguments under its JSON Schema), and a
call comes back as OpenAI's `tool_calls`, whole, in one chunk: the route makes at most one call
per answer. The engines serialise on their worker threads, so a LAN request waits behind the
box's own calls (and they behind it): a box that serves its LAN should not also answer a
busy phone line.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, TypeVar

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from appliance.audio.wav import WavFormatError, decode_wav
from appliance.conversation.ports import (
    EngineError,
    LanguageModel,
    LlmOutput,
    SpeechToText,
    TextToSpeech,
    ToolCall,
)
from appliance.inference.advertise import InferenceAdvertisement
from appliance.inference.speech import parse_speech, speech_stream
from appliance.inference.wire import (
    WireError,
    bad,
    chat_chunk,
    chat_completion,
    completion_id,
    delta_of,
    error_body,
    parse_chat,
    sse,
)
from appliance.web.connections import ConnectionLimits
from appliance.web.server import WebServer

__all__ = ["InferencePorts", "InferenceServer", "inference_app", "missing_key"]

_log = logging.getLogger(__name__)

_MIN_KEY_CHARS: Final = 16
_REQUEST_S: Final = 120.0
"""Seconds a client has to send a whole request: a 25 MB upload over a slow Wi-Fi link."""
_TRANSCRIPT_FORMATS: Final = ("json", "text")

_T = TypeVar("_T")
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]


def missing_key(api_key: str | None) -> str | None:
    """Why `api_key` cannot protect the server (None when it can): the error to start with."""
    if not api_key:
        return (
            "INFERENCE_SERVER=true needs INFERENCE_API_KEY, the key LAN clients send as "
            "`Authorization: Bearer <key>`: set it to a long random string, e.g. "
            "`python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`, or set "
            "INFERENCE_SERVER=false"
        )
    if len(api_key) < _MIN_KEY_CHARS:
        return (
            f"INFERENCE_API_KEY has {len(api_key)} characters; use at least {_MIN_KEY_CHARS} "
            "(e.g. `python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
        )
    return None


@dataclass(frozen=True, slots=True)
class InferencePorts:
    """What the server answers with: the box's local engines (never its fallback chains, so a
    request cannot bounce on to another box or the cloud)."""

    stt: SpeechToText
    llm: LanguageModel
    tts: TextToSpeech


def inference_app(ports: InferencePorts, *, api_key: str, max_upload_bytes: int) -> FastAPI:
    """The OpenAI-compatible app over `ports`, behind `api_key`."""
    app = FastAPI(title="TEL3SIS inference", docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(_router(ports))
    app.add_exception_handler(WireError, _wire_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(EngineError, _engine_error)
    app.add_exception_handler(TimeoutError, _engine_error)  # EngineTimeout: the worker's
    app.add_exception_handler(ClientDisconnect, _gone)
    app.add_middleware(_Door, api_key=api_key, max_bytes=max_upload_bytes)
    return app


def _router(ports: InferencePorts) -> APIRouter:
    router = APIRouter(prefix="/v1")

    @router.get("/models")
    async def models() -> dict[str, Any]:
        names = dict.fromkeys([ports.stt.name, ports.llm.name, ports.tts.name])
        return {
            "object": "list",
            "data": [
                {"id": name, "object": "model", "created": 0, "owned_by": "tel3sis"}
                for name in names
            ],
        }

    @router.post("/audio/transcriptions")
    async def transcriptions(request: Request) -> Response:
        return await _transcribe(ports.stt, request)

    @router.post("/chat/completions")
    async def chat(request: Request) -> Response:
        return await _chat(ports.llm, request)

    @router.post("/audio/speech")
    async def speech(request: Request) -> Response:
        wanted = parse_speech(await _json(request))
        chunks = aiter(ports.tts.synthesize(wanted.text))
        first = await _first(chunks, "the voice")
        return StreamingResponse(speech_stream(wanted, first, chunks), media_type=wanted.media_type)

    return router


async def _transcribe(stt: SpeechToText, request: Request) -> Response:
    if not _content_type(request).startswith("multipart/form-data"):
        raise WireError(
            415, "send the audio as multipart/form-data with a `file` part", code="unsupported"
        )
    async with request.form(max_files=1, max_fields=16) as form:
        upload = form.get("file")
        response_format = form.get("response_format") or "json"
        if not isinstance(upload, UploadFile):
            raise bad("`file` must be the audio file", "file")
        if response_format not in _TRANSCRIPT_FORMATS:
            raise bad(
                f"`response_format` {response_format!r} is not served here: ask for json or text",
                "response_format",
            )
        data = await upload.read()
        name = upload.filename or "file"
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise WireError(
            415,
            f"{name} is not a WAV file: only WAV audio is transcribed here; convert it first, "
            f"e.g. `ffmpeg -i {name} -ar 16000 -ac 1 out.wav`",
            param="file",
            code="unsupported_audio",
        )
    try:
        audio = decode_wav(data, name=name)
    except WavFormatError as exc:
        raise bad(str(exc), "file") from exc
    transcript = await stt.transcribe(audio.pcm)
    if response_format == "text":
        return PlainTextResponse(transcript.text)
    return JSONResponse({"text": transcript.text})


async def _chat(llm: LanguageModel, request: Request) -> Response:
    wanted = parse_chat(await _json(request))
    outputs = aiter(llm.stream(wanted.messages, wanted.tools))
    ident = completion_id()
    if not wanted.stream:
        try:
            answer = [output async for output in outputs]
        finally:
            await _close(outputs)
        return JSONResponse(chat_completion(ident, llm.name, answer))
    first = await _first_or_none(outputs)
    return StreamingResponse(
        _chat_events(ident, llm.name, first, outputs),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache"},
    )


async def _chat_events(
    ident: str, model: str, first: LlmOutput | None, rest: AsyncIterator[LlmOutput]
) -> AsyncIterator[bytes]:
    """The answer as OpenAI streams it; a failure after the first byte is an `error` event
    (the SDK raises it), since the status line has gone."""
    yield sse(chat_chunk(ident, model, delta={"role": "assistant", "content": ""}))
    calls = 0
    try:
        if first is not None:
            yield sse(chat_chunk(ident, model, delta=delta_of(first, calls)))
            calls += isinstance(first, ToolCall)
            async for output in rest:
                yield sse(chat_chunk(ident, model, delta=delta_of(output, calls)))
                calls += isinstance(output, ToolCall)
    except (EngineError, TimeoutError) as exc:
        _log.warning("inference: the language model failed mid-answer: %s", exc)
        yield sse(error_body(WireError(500, str(exc), kind="server_error", code="engine_error")))
        return
    finally:
        await _close(rest)
    finish = "tool_calls" if calls else "stop"
    yield sse(chat_chunk(ident, model, delta={}, finish=finish))
    yield sse("[DONE]")


async def _first(items: AsyncIterator[_T], what: str) -> _T:
    """The first item, awaited before any byte is sent: a failing engine gets an error status."""
    try:
        return await anext(items)
    except StopAsyncIteration:
        raise EngineError(f"{what} produced nothing") from None


async def _first_or_none(items: AsyncIterator[_T]) -> _T | None:
    """`_first`, for a stream that may be empty (a model with nothing to say)."""
    try:
        return await anext(items)
    except StopAsyncIteration:
        return None


async def _close(items: AsyncIterator[Any]) -> None:
    aclose = getattr(items, "aclose", None)
    if aclose is not None:
        await aclose()


async def _json(request: Request) -> object:
    if not _content_type(request).startswith("application/json"):
        raise WireError(415, "send the request as application/json", code="unsupported")
    try:
        return json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise bad(f"the body is not valid JSON: {exc}") from exc


def _content_type(request: Request) -> str:
    return request.headers.get("content-type", "").lower()


# --- errors as OpenAI writes them --------------------------------------------------------------


def _error_response(error: WireError) -> JSONResponse:
    return JSONResponse(error_body(error), status_code=error.status)


async def _wire_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, WireError)
    return _error_response(exc)


async def _http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    kind = "invalid_request_error" if exc.status_code < 500 else "server_error"
    return _error_response(WireError(exc.status_code, str(exc.detail), kind=kind))


async def _engine_error(_: Request, exc: Exception) -> Response:
    _log.warning("inference: an engine failed: %s", exc)
    return _error_response(WireError(503, str(exc), kind="server_error", code="engine_error"))


async def _gone(_: Request, __: Exception) -> Response:
    """A client that left mid-upload is no fault of ours: no traceback, nobody to answer."""
    return Response(status_code=400)


class _TooLarge(Exception):
    pass


class _Door:
    """The key first, then the size: an unauthorised client is answered 401 before its body
    is read, and a body past the cap is refused by its Content-Length, or cut off at the cap
    while it arrives (a chunked upload has none)."""

    def __init__(self, app: Asgi, *, api_key: str, max_bytes: int) -> None:
        self._app = app
        self._key = f"Bearer {api_key}".encode()
        self._max = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if not hmac.compare_digest(headers.get(b"authorization", b""), self._key):
            await _refuse(send, _unauthorised(b"authorization" in headers))
            return
        declared = headers.get(b"content-length", b"0")
        if declared.isdigit() and int(declared) > self._max:
            await _refuse(send, self._too_large())
            return
        answered = False
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self._max:
                raise _TooLarge
            return message

        async def watched(message: Message) -> None:
            nonlocal answered
            answered = answered or message["type"] == "http.response.start"
            await send(message)

        try:
            await self._app(scope, counted, watched)
        except _TooLarge:
            if answered:
                raise
            await _refuse(send, self._too_large())

    def _too_large(self) -> WireError:
        return WireError(
            413,
            f"the body is larger than {self._max // (1024 * 1024)} MB "
            "(INFERENCE_MAX_UPLOAD_MB on the server)",
            code="request_too_large",
        )


def _unauthorised(sent: bool) -> WireError:
    message = (
        "the API key is wrong: send the server's INFERENCE_API_KEY"
        if sent
        else "no API key: send `Authorization: Bearer <INFERENCE_API_KEY>`"
    )
    return WireError(401, message, code="invalid_api_key")


async def _refuse(send: Send, error: WireError) -> None:
    body = json.dumps(error_body(error)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": error.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


# --- serving ----------------------------------------------------------------------------------


class InferenceServer:
    """The app on `host:port`, advertised on the LAN while it listens (when `advertise` is
    given). An async context manager: listening when entered, withdrawn and stopped on exit."""

    def __init__(
        self,
        ports: InferencePorts,
        *,
        api_key: str | None,
        host: str,
        port: int,
        max_upload_bytes: int,
        advertise: Callable[[int], InferenceAdvertisement] | None = None,
    ) -> None:
        """Raises ValueError (saying what to set) when `api_key` cannot protect the server."""
        if (why := missing_key(api_key)) is not None:
            raise ValueError(why)
        assert api_key is not None
        app = inference_app(ports, api_key=api_key, max_upload_bytes=max_upload_bytes)
        self._web = WebServer(
            app, host=host, port=port, limits=ConnectionLimits(request_s=_REQUEST_S)
        )
        self._advertise = advertise
        self._stack = contextlib.AsyncExitStack()
        self.advertisement: InferenceAdvertisement | None = None

    @property
    def port(self) -> int:
        return self._web.port

    @property
    def base_url(self) -> str:
        """`http://host:port/v1`, what an OpenAI client on this machine takes as `base_url`."""
        return f"{self._web.url}/v1"

    async def __aenter__(self) -> InferenceServer:
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(self._web)
            if self._advertise is not None:
                self.advertisement = await stack.enter_async_context(self._advertise(self.port))
            _log.info("inference server on %s", self.base_url)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.aclose()
