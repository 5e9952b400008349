"""The SIP line's choice between an attended and a blind transfer, against a scripted endpoint.

The endpoint here is a fake that answers the line's commands as a trunk and a person's phone
would (the consult call's outcome, the REFER's outcome), and pulls the consult call's audio as
pjsua2's media clock would. The real thing, over SIP, is tests/integration/test_sip_attended.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from appliance.audio.frame import FRAME_BYTES
from appliance.clock import LoopClock
from appliance.conversation.ports import CallInfo, Handoff, TransferError
from appliance.telephony.sip.line import SipLine
from appliance.telephony.sip.media import CallMedia

_SPEECH_FRAMES = 5
_CALLER, _CONSULT = 1, 2


class _Voice:
    name = "fake"

    async def _say(self, text: str) -> AsyncIterator[bytes]:
        del text
        yield b"\x01\x00" * (FRAME_BYTES // 2) * _SPEECH_FRAMES

    def synthesize(self, text: str) -> AsyncIterator[bytes]:
        return self._say(text)


@dataclass
class _Endpoint:
    """The person's phone answers `consult_code`; the caller's side answers the REFER with
    Replaces with `replaces_ok` and a blind REFER with `blind_ok`."""

    consult_code: int | None = 200
    """None: the person's phone rings on."""
    replaces_ok: bool = True
    blind_ok: bool = True
    done: list[str] = field(default_factory=list)
    heard: list[bytes] = field(default_factory=list)
    clock: asyncio.Task[None] | None = None
    """Pulls the consult call's audio until it is hung up."""

    async def hang_up(self, key: int) -> None:
        self.done.append(f"hang up {key}")

    async def transfer(self, key: int, target: str) -> bool:
        self.done.append(f"REFER {target}")
        return self.blind_ok

    async def transfer_replacing(self, key: int, consult_key: int) -> bool:
        self.done.append(f"REFER {key} Replaces {consult_key}")
        return self.replaces_ok

    async def consult(self, uri: str, media: CallMedia) -> tuple[int, asyncio.Future[int]]:
        self.done.append(f"INVITE {uri}")
        placed = asyncio.get_running_loop().create_future()
        if self.consult_code is not None:
            placed.set_result(self.consult_code)
        if self.consult_code == 200:
            self.clock = asyncio.get_running_loop().create_task(self._media_clock(media))
        return _CONSULT, placed

    async def _media_clock(self, media: CallMedia) -> None:
        while f"hang up {_CONSULT}" not in self.done:
            frame = media.requested()
            if frame is not None:
                self.heard.append(frame)
            await asyncio.sleep(0.001)


def _line(endpoint: _Endpoint, *, attended: bool = True) -> SipLine:
    return SipLine(
        CallInfo(call_id="c", line="sip", caller="x"),
        key=_CALLER,
        media=CallMedia(asyncio.get_running_loop()),
        control=endpoint,
        clock=LoopClock(),
        transfer_to="sip:desk@192.0.2.5",
        transfer_timeout_s=2.0,
        voice=_Voice(),
        attended=attended,
    )


_HANDOFF = Handoff(target="", who="the desk", summary="A call for the desk.")


async def test_the_person_hears_the_summary_before_the_refer_with_replaces() -> None:
    endpoint = _Endpoint()
    await _line(endpoint).transfer(_HANDOFF)
    assert endpoint.clock is not None
    await endpoint.clock
    assert endpoint.done == [
        "INVITE sip:desk@192.0.2.5",
        f"REFER {_CALLER} Replaces {_CONSULT}",
        f"hang up {_CONSULT}",
        f"hang up {_CALLER}",
    ]
    voiced = [f for f in endpoint.heard if any(f)]
    assert len(voiced) == _SPEECH_FRAMES


@pytest.mark.parametrize("code", [408, 480, 486, 603])
async def test_a_person_who_does_not_answer_leaves_the_caller_with_the_agent(code: int) -> None:
    endpoint = _Endpoint(consult_code=code)
    with pytest.raises(TransferError, match=f"not answered.*{code}"):
        await _line(endpoint).transfer(_HANDOFF)
    assert endpoint.done == ["INVITE sip:desk@192.0.2.5", f"hang up {_CONSULT}"]


@pytest.mark.parametrize(
    ("endpoint", "attempted"),
    [
        (_Endpoint(consult_code=404), ["INVITE sip:desk@192.0.2.5", f"hang up {_CONSULT}"]),
        (
            _Endpoint(replaces_ok=False),
            [
                "INVITE sip:desk@192.0.2.5",
                f"REFER {_CALLER} Replaces {_CONSULT}",
                f"hang up {_CONSULT}",
            ],
        ),
    ],
    ids=["consult call fails", "replaces refused"],
)
async def test_when_attended_cannot_work_a_blind_refer_follows(
    endpoint: _Endpoint, attempted: list[str]
) -> None:
    await _line(endpoint).transfer(_HANDOFF)
    assert endpoint.done == [*attempted, "REFER sip:desk@192.0.2.5", f"hang up {_CALLER}"]


async def test_a_caller_side_without_replaces_gets_a_blind_refer_only() -> None:
    endpoint = _Endpoint()
    await _line(endpoint, attended=False).transfer(_HANDOFF)
    assert endpoint.done == ["REFER sip:desk@192.0.2.5", f"hang up {_CALLER}"]


async def test_a_caller_who_hangs_up_while_the_person_rings_ends_the_consult_call() -> None:
    endpoint = _Endpoint(consult_code=None)
    line = _line(endpoint)
    asyncio.get_running_loop().call_later(0.05, line.on_ended, "200 caller hung up")
    with pytest.raises(TransferError, match="caller hung up"):
        await line.transfer(_HANDOFF)
    assert endpoint.done == ["INVITE sip:desk@192.0.2.5", f"hang up {_CONSULT}"]
