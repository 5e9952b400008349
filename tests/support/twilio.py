"""The appliance's Twilio endpoints on real uvicorn, with scripted engines behind them.

`twilio_box()` serves the real web app (the real Twilio router, media streams, tokens, admission)
on a loopback port; the sessions behind it run the scripted tone engines, so a call takes its
real length in real time, or milliseconds under the virtual-time loop. Tests play Twilio with the
harness's `TwilioCaller` or with a raw websocket client.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlencode

import httpx
from twilio.request_validator import RequestValidator

from appliance.clock import LoopClock
from appliance.conversation.phrases import PhraseCache
from appliance.conversation.session import CallSession, Engines, SessionConfig
from appliance.conversation.tools import Tool, ToolRegistry
from appliance.engines.vad.energy import EnergyVoiceActivity
from appliance.harness.twilio import CallObservers, TwilioCaller
from appliance.observability.metrics import Metrics
from appliance.telephony.calls import Admission, CallDesk
from appliance.telephony.twilio.line import LineConfig
from appliance.telephony.twilio.progress import CallProgress
from appliance.telephony.twilio.rest import TwilioCalls
from appliance.telephony.twilio.streams import MediaStreams, StreamOptions
from appliance.telephony.twilio.tokens import StreamTokens
from appliance.telephony.twilio.webhooks import SignatureCheck
from appliance.telephony.twilio.whispers import Handoffs, Whispers
from appliance.web.server import WebServer, create_app
from appliance.web.twilio import TwilioEndpoints, twilio_router
from tests.support.calls import PERSONA
from tests.support.fakes import ScriptedLanguageModel, ToneSpeechToText, ToneTextToSpeech

AUTH_TOKEN = "test-auth-token-0123456789abcdef"
ACCOUNT_SID = "AC" + "a" * 32
PUBLIC_URL = "https://tel3sis.example.com"


@dataclass
class Box:
    url: str
    clock: LoopClock
    tokens: StreamTokens
    admission: Admission
    streams: MediaStreams
    progress: CallProgress
    metrics: Metrics
    observers: CallObservers
    llm: ScriptedLanguageModel
    sessions: list[CallSession] = field(default_factory=list)

    def caller(self) -> TwilioCaller:
        return TwilioCaller(
            server_url=self.url,
            public_url=PUBLIC_URL,
            auth_token=AUTH_TOKEN,
            clock=self.clock,
            observers=self.observers,
            account_sid=ACCOUNT_SID,
        )

    async def until(self, condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
        """Wait until `condition()` holds (it reads state the server under test owns)."""
        async with asyncio.timeout(timeout_s):
            while not condition():  # noqa: ASYNC110 - nothing to wait on but the state itself
                await asyncio.sleep(0.02)

    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/twilio/media"


def sign(url: str, params: dict[str, str] | str) -> str:
    """The X-Twilio-Signature Twilio would send for `url` and `params` (a JSON body: "")."""
    return RequestValidator(AUTH_TOKEN).compute_signature(
        url, {} if isinstance(params, str) else params
    )


async def post_webhook(
    box: Box,
    path: str,
    params: dict[str, str],
    *,
    signed_url: str | None = None,
    signature: str | None = None,
    as_json: bool = False,
) -> httpx.Response:
    """Post a webhook as Twilio would, signed for the public URL unless told otherwise."""
    headers: dict[str, str] = {}
    async with httpx.AsyncClient(timeout=10.0) as http:
        if as_json:
            body = json.dumps(params)
            query = urlencode({"bodySHA256": hashlib.sha256(body.encode()).hexdigest()})
            url = f"{signed_url or PUBLIC_URL + path}?{query}"
            headers["X-Twilio-Signature"] = signature or sign(url, body)
            headers["Content-Type"] = "application/json"
            return await http.post(f"{box.url}{path}?{query}", content=body, headers=headers)
        url = signed_url or PUBLIC_URL + path
        if signature != "":
            headers["X-Twilio-Signature"] = signature or sign(url, params)
        return await http.post(f"{box.url}{path}", data=params, headers=headers)


def call_params(call_sid: str, **extra: str) -> dict[str, str]:
    return {
        "AccountSid": ACCOUNT_SID,
        "CallSid": call_sid,
        "CallStatus": "ringing",
        "Direction": "inbound",
        "From": "+15005550001",
        "To": "+15005550006",
        **extra,
    }


@contextlib.asynccontextmanager
async def twilio_box(
    *,
    replies: Sequence[str] = (),
    max_calls: int = 4,
    config: SessionConfig | None = None,
    token_ttl_s: float = 30.0,
    handshake_s: float = 5.0,
    rest: TwilioCalls | None = None,
    escalation_number: str | None = None,
    line: LineConfig | None = None,
    tools: Sequence[Tool] = (),
) -> AsyncIterator[Box]:
    """The Twilio endpoints of an appliance with scripted engines, on a loopback port."""
    clock = LoopClock()
    metrics = Metrics()
    stt, tts = ToneSpeechToText(clock), ToneTextToSpeech(clock)
    llm = ScriptedLanguageModel(clock, replies=list(replies))
    engines = Engines(stt=stt, llm=llm, tts=tts, vad=EnergyVoiceActivity())
    phrases = PhraseCache(tts)
    sessions: list[CallSession] = []

    def new_session(line, sink):  # type: ignore[no-untyped-def]
        session = CallSession(
            line,
            engines,
            config or SessionConfig(persona=PERSONA),
            tools=ToolRegistry(tools),
            phrases=phrases,
            clock=clock,
            sink=sink,
            metrics=metrics,
        )
        sessions.append(session)
        return session

    admission = Admission(clock=clock, max_calls=max_calls)
    router = CallDesk(admission, lambda line, sink, _, __: new_session(line, sink), metrics)
    tokens = StreamTokens(clock, ttl_s=token_ttl_s)
    observers = CallObservers()
    signatures = SignatureCheck(AUTH_TOKEN, PUBLIC_URL)
    whispers = Whispers(clock)
    streams = MediaStreams(
        router,
        tokens,
        clock=clock,
        metrics=metrics,
        options=StreamOptions(
            handshake_s=handshake_s,
            line=line or LineConfig(),
            escalation_number=escalation_number,
        ),
        dial=Handoffs(rest, whispers, signatures).dial if rest is not None else None,
        observe=observers,
    )
    progress = CallProgress(clock)
    endpoints = TwilioEndpoints(
        signatures=signatures,
        admission=admission,
        tokens=tokens,
        streams=streams,
        progress=progress,
        metrics=metrics,
        account_sid=ACCOUNT_SID,
        whispers=whispers,
    )
    server = WebServer(
        create_app(twilio_router(endpoints)),
        host="127.0.0.1",
        port=0,
        on_stop=streams.hang_up_all,
    )
    async with server:
        yield Box(
            url=server.url,
            clock=clock,
            tokens=tokens,
            admission=admission,
            streams=streams,
            progress=progress,
            metrics=metrics,
            observers=observers,
            llm=llm,
            sessions=sessions,
        )
