"""The ways a harness call reaches the appliance (`appliance harness --via`), and the run itself.

- `wav` (default): a WAV line in this process, answered as every call is (`Box.answer`).
- `sip`: the appliance's SIP line on a loopback port, called by a second pjsua2 endpoint.
- `twilio`: the appliance's web app on a loopback port, called by a client that plays Twilio
  (signed webhooks, then a Media Streams websocket).
Every way goes through the same answer path: the call is admitted, recorded, listed on the
status page and in the history.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from pydantic import SecretStr

from appliance.clock import Clock
from appliance.conversation.events import EventSink
from appliance.conversation.ports import CallLine
from appliance.harness.runner import PlaceCall, ScenarioResult, run_scenarios
from appliance.harness.scenario import Scenario
from appliance.harness.twilio import CallObservers, TwilioCaller
from appliance.settings import TwilioSettings

if TYPE_CHECKING:
    from appliance.telephony.sip.listener import SinkFactory, SipListener

__all__ = ["Box", "Via", "run_harness"]

Via = Literal["wav", "sip", "twilio"]


class Served(Protocol):
    @property
    def url(self) -> str:
        """Where a client on this machine reaches the server."""
        ...


class Box(Protocol):
    """What the harness needs of a started appliance (`appliance.app.Appliance`)."""

    @property
    def clock(self) -> Clock: ...

    @property
    def system_prompt(self) -> str:
        """What the agent is told (the business profile): where a reply's facts may come from."""
        ...

    async def answer(self, line: CallLine, observe: EventSink | None = None) -> str: ...

    def loopback_sip(self, sinks: SinkFactory) -> SipListener:
        """A SIP line on a free loopback port, not yet started."""
        ...

    def web_server(
        self, host: str, port: int, *, twilio: TwilioSettings, observe: CallObservers
    ) -> AbstractAsyncContextManager[Served]: ...


async def run_harness(
    box: Box,
    scenarios: Sequence[Scenario],
    *,
    via: Via = "wav",
    codec: str = "PCMU",
    out_dir: Path | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> list[ScenarioResult]:
    """Play every scenario as a call through `via`, one after another, and check each."""
    async with contextlib.AsyncExitStack() as stack:
        place_call: PlaceCall | None = None
        if via == "sip":
            place_call = await _via_sip(box, stack, codec)
        elif via == "twilio":
            place_call = await _via_twilio(box, stack)
        return await run_scenarios(
            scenarios,
            box.answer,
            clock=box.clock,
            out_dir=out_dir,
            progress=progress,
            place_call=place_call,
            known=box.system_prompt,
        )


async def _via_sip(box: Box, stack: contextlib.AsyncExitStack, codec: str) -> PlaceCall:
    """The SIP line on a loopback port, and a second pjsua2 endpoint that calls it."""
    from appliance.harness.sipvia import SipVia  # noqa: PLC0415 - needs pjsua2

    via = await stack.enter_async_context(SipVia(box.loopback_sip, codecs=[codec]))
    return lambda steps, info: via.place(steps, info=info)


async def _via_twilio(box: Box, stack: contextlib.AsyncExitStack) -> PlaceCall:
    """The web app on a loopback port, and a client that plays Twilio."""
    # A made-up account and public address: the caller signs for it, as Twilio would, and
    # delivers to 127.0.0.1, as a proxy would.
    account_sid, token, public = "AC" + "0" * 32, secrets.token_hex(16), "https://tel3sis.invalid"
    observers = CallObservers()
    account = TwilioSettings(account_sid=account_sid, auth_token=SecretStr(token), base_url=public)
    web = await stack.enter_async_context(
        box.web_server("127.0.0.1", 0, twilio=account, observe=observers)
    )
    caller = TwilioCaller(
        server_url=web.url,
        public_url=public,
        auth_token=token,
        clock=box.clock,
        observers=observers,
        account_sid=account_sid,
    )
    return caller.call
