"""An attended transfer over SIP: call the person, tell them the summary, then REFER with Replaces.

The consult call goes out from our own account to the transfer target. Once the person answers,
the summary is spoken into that call (synthesized by the line's voice, paced by the call's own
media clock, as the agent's replies are), and then the caller's side is sent a REFER whose
Refer-To carries `Replaces` for the consult call: the caller's UA calls the person and the
person's UA swaps our consult leg for the caller (RFC 3891, RFC 5589 section 7). The caller
hears silence meanwhile.

The outcome says what the line does next: `CONNECTED` (the transferee's NOTIFY reported the
replacing call answered: hang up), `NOT_ANSWERED` (busy, unavailable, declined, rang out, hung
up during the summary, or no outcome of the REFER in time: the agent takes a message), or
`UNSUPPORTED` (the consult call could not be placed, or the caller's side refused the REFER
with Replaces or could not complete it: a blind REFER may still work).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from typing import Protocol

from appliance.audio.frame import FRAME_MS, frames_of, silence
from appliance.conversation.ports import EngineError, TextToSpeech
from appliance.conversation.streams import closing
from appliance.telephony.sip.media import CallMedia

__all__ = ["Consulting", "Outcome", "attended_transfer"]

_log = logging.getLogger(__name__)
_NOT_ANSWERED = frozenset({408, 480, 486, 487, 600, 603})
"""Final responses that mean the person did not take the call (rather than that it cannot be
placed): timeout, unavailable, busy, cancelled, busy everywhere, declined."""
_LEAD_IN_MS = 400
"""Silence before the summary: the person's phone is still bringing its audio up."""
_TAIL_MS = 300
"""Silence after it, so the last words leave the person's jitter buffer before the REFER."""


class Outcome(enum.Enum):
    CONNECTED = "connected"
    NOT_ANSWERED = "not answered"
    UNSUPPORTED = "unsupported"


class Consulting(Protocol):
    """What an attended transfer asks of the endpoint (`SipEndpoint` is one)."""

    async def consult(self, uri: str, media: CallMedia) -> tuple[int, asyncio.Future[int]]: ...

    async def transfer_replacing(self, key: int, consult_key: int) -> bool: ...

    async def hang_up(self, key: int) -> None: ...


async def attended_transfer(
    control: Consulting,
    key: int,
    uri: str,
    *,
    summary: str,
    voice: TextToSpeech,
    ring_s: float,
    outcome_s: float,
) -> tuple[Outcome, str]:
    """Hand call `key` to `uri` after telling the person `summary`; (outcome, why)."""
    try:
        speech = await _synthesize(voice, summary)
    except EngineError as exc:
        return Outcome.UNSUPPORTED, f"the summary could not be spoken ({exc})"
    media = CallMedia(asyncio.get_running_loop())
    try:
        consult_key, placed = await control.consult(uri, media)
    except (LookupError, RuntimeError) as exc:
        return Outcome.UNSUPPORTED, f"the consult call to {uri} could not be placed ({exc})"
    try:
        failed = await _answered(placed, ring_s)
        if failed is not None:
            return failed
        _log.info("consult call answered; telling the person the summary")
        if not await _speak(media, speech):
            return Outcome.NOT_ANSWERED, "the person hung up during the summary"
        return await _replace(control, key, consult_key, outcome_s)
    finally:
        # Once the person's UA has taken the caller it ends our consult leg itself; otherwise
        # (refused, timed out, cancelled) the consult call must not be left ringing or open.
        with contextlib.suppress(LookupError, RuntimeError):
            await control.hang_up(consult_key)


async def _answered(placed: asyncio.Future[int], ring_s: float) -> tuple[Outcome, str] | None:
    """None once the person answers; otherwise why not."""
    try:
        async with asyncio.timeout(ring_s):
            code = await placed
    except TimeoutError:
        return Outcome.NOT_ANSWERED, f"nobody answered within {ring_s:.0f} s"
    if code in _NOT_ANSWERED:
        return Outcome.NOT_ANSWERED, f"the person's phone answered {code}"
    if code != 200:
        return Outcome.UNSUPPORTED, f"the consult call failed ({code or 'no response'})"
    return None


async def _replace(
    control: Consulting, key: int, consult_key: int, outcome_s: float
) -> tuple[Outcome, str]:
    """REFER the caller's side to the consult call's person, with Replaces."""
    try:
        async with asyncio.timeout(outcome_s):
            done = await control.transfer_replacing(key, consult_key)
    except TimeoutError:
        return Outcome.NOT_ANSWERED, f"no outcome of the attended transfer within {outcome_s:.0f} s"
    except (LookupError, RuntimeError) as exc:
        return Outcome.UNSUPPORTED, f"the attended transfer failed ({exc})"
    if not done:
        return Outcome.UNSUPPORTED, "the REFER with Replaces was refused or did not connect"
    return Outcome.CONNECTED, "the person has the caller"


async def _synthesize(voice: TextToSpeech, text: str) -> bytes:
    async with closing(voice.synthesize(text)) as stream:
        return b"".join([pcm async for pcm in stream])


async def _speak(media: CallMedia, speech: bytes) -> bool:
    """Play `speech` into the consult call in real time; False when the call ended first."""
    lead_in = [silence()] * (_LEAD_IN_MS // FRAME_MS)
    tail = [silence()] * (_TAIL_MS // FRAME_MS)
    out = media.outbound
    for frame in [*lead_in, *frames_of(speech), *tail]:
        while out.push(frame) is None and not media.ended:
            await media.wait_for(lambda: len(out) < out.capacity)
        if media.ended:
            return False
    await media.wait_for(lambda: len(out) == 0)
    return not media.ended
