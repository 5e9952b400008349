"""The SIP line's small parts: message readers, the media buffers, reading pj frames."""

from __future__ import annotations

import asyncio
import threading

import pjsua2 as pj
import pytest

from appliance.audio.frame import FRAME_BYTES, silence
from appliance.clock import LoopClock
from appliance.conversation.ports import CallInfo, Handoff, Transferable, TransferError
from appliance.telephony.sip.config import SipConfig
from appliance.telephony.sip.line import SipLine
from appliance.telephony.sip.media import CallMedia, Outbound
from appliance.telephony.sip.message import header, printable, split_address, uri_user
from appliance.telephony.sip.vector import vector_reader

_INVITE = (
    "INVITE sip:tel3sis@192.0.2.1 SIP/2.0\r\n"
    "v: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bK1\r\n"
    'f: "Alice" <sip:+15550100@example.net;user=phone>;tag=1\r\n'
    'Authorization: Digest username="pbx",\r\n'
    ' realm="tel3sis"\r\n'
    "i: abc@192.0.2.9\r\n\r\n"
    "v=0\r\nAuthorization: in the body\r\n"
)


def test_headers_are_found_by_full_or_compact_name_and_unfolded() -> None:
    assert header(_INVITE, "Call-ID") == "abc@192.0.2.9"
    assert header(_INVITE, "from") == '"Alice" <sip:+15550100@example.net;user=phone>;tag=1'
    assert header(_INVITE, "Authorization") == 'Digest username="pbx", realm="tel3sis"'
    assert header(_INVITE, "Contact") is None
    assert header("garbage", "Call-ID") is None


@pytest.mark.parametrize(
    ("value", "user"),
    [
        ('"Alice" <sip:+15550100@example.net;user=phone>;tag=1', "+15550100"),
        ("sip:bob@example.net", "bob"),
        ("<tel:+441234>", "+441234"),
        ("sip:example.net", "example.net"),
        ("\x00\x01odd" + "x" * 100, "??odd" + "x" * 59),
    ],
)
def test_the_user_part_of_a_uri(value: str, user: str) -> None:
    assert uri_user(value) == user


def test_addresses_and_printable_text() -> None:
    assert split_address("192.0.2.1:5060") == ("192.0.2.1", 5060)
    assert split_address("[2001:db8::1]:5062") == ("2001:db8::1", 5062)
    assert split_address("192.0.2.1") == ("192.0.2.1", 0)
    assert printable("a b\r\n\x7f", 5) == "a b??"


def test_outbound_positions_count_frames_heard_and_cleared() -> None:
    out = Outbound(capacity=3)
    assert [out.push(b"a"), out.push(b"b"), out.push(b"c"), out.push(b"d")] == [0, 1, 2, None]
    assert out.pull() == b"a"
    assert out.heard == 1
    assert out.clear() == 1  # b and c were never heard
    assert out.push(b"e") == 1  # the next frame heard is number 1
    assert out.pull() == b"e"
    assert out.pull() is None
    assert out.heard == 2


async def test_call_media_wakes_the_loop_from_the_clock_thread() -> None:
    media = CallMedia(asyncio.get_running_loop(), inbound_frames=2, outbound_frames=1)
    frame = bytes(FRAME_BYTES)
    media.outbound.push(frame)

    def clock_thread() -> None:
        for _ in range(3):
            media.received(b"\x01\x02")  # short: padded to a whole frame
        assert media.requested() == frame
        assert media.requested() is None

    waiting = asyncio.create_task(media.wait_for(lambda: len(media.outbound) == 0))
    await asyncio.sleep(0)
    thread = threading.Thread(target=clock_thread)
    thread.start()
    await asyncio.wait_for(waiting, 2.0)
    thread.join()
    assert media.inbound.dropped == 1  # three arrived, two fit: the oldest went
    assert media.inbound.pop() == b"\x01\x02" + bytes(FRAME_BYTES - 2)
    media.end()
    await asyncio.wait_for(media.wait_for(lambda: False), 1.0)  # an ended call waits for nothing


def test_the_fast_frame_reader_agrees_with_the_slow_one() -> None:
    read = vector_reader(pj.ByteVector)
    assert read.__name__ == "_fast"  # libstdc++'s layout, as on every Linux build
    for data in (b"", bytes(range(256)) * 3, bytes(FRAME_BYTES)):
        assert read(pj.ByteVector(data)) == data
    frame = pj.MediaFrame()
    frame.buf = pj.ByteVector(b"\x05" * FRAME_BYTES)
    assert read(frame.buf) == b"\x05" * FRAME_BYTES


def test_a_broken_fast_path_falls_back_to_the_slow_one() -> None:
    class Lying(list[int]):
        this = 0

    read = vector_reader(Lying)
    assert read.__name__ == "_slow"
    assert read(Lying(b"ab")) == b"ab"


def test_silent_holds_leave_pjsua_calls_for_callers() -> None:
    assert SipConfig(max_calls=1, pjsua_max_calls=4).silent_hold_slots == 2
    assert SipConfig(max_calls=3, pjsua_max_calls=4).silent_hold_slots == 0
    assert SipConfig(max_calls=4, pjsua_max_calls=32, max_silent_holds=8).silent_hold_slots == 8


async def test_a_line_with_nowhere_to_transfer_to_says_so() -> None:
    class _Endpoint:  # the endpoint is never reached: the line refuses first
        async def hang_up(self, key: int) -> None:
            raise AssertionError("not called")

        async def transfer(self, key: int, target: str) -> bool:
            raise AssertionError("not called")

    line = SipLine(
        CallInfo(call_id="c", line="sip", caller="x"),
        key=1,
        media=CallMedia(asyncio.get_running_loop()),
        control=_Endpoint(),
        clock=LoopClock(),
    )
    assert isinstance(line, Transferable)
    with pytest.raises(TransferError, match="ESCALATION_PHONE_NUMBER"):
        await line.transfer(Handoff(target="", who="the office", summary=""))


async def test_playing_on_a_call_that_is_over_lets_the_loop_see_the_end() -> None:
    class _Endpoint:
        async def hang_up(self, key: int) -> None:
            raise AssertionError("not called")

        async def transfer(self, key: int, target: str) -> bool:
            raise AssertionError("not called")

    media = CallMedia(asyncio.get_running_loop())
    line = SipLine(
        CallInfo(call_id="c", line="sip", caller="x"),
        key=1,
        media=media,
        control=_Endpoint(),
        clock=LoopClock(),
    )
    media.end()
    played = 0
    seen: list[int] = []

    async def watcher() -> None:  # any other work of the loop: the listen loop seeing the end
        seen.append(played)

    async def speaker() -> None:  # plays until it is stopped, as a session's reply may
        nonlocal played
        for _ in range(1000):
            await line.play(silence())
            played += 1

    watching = asyncio.create_task(watcher())
    await speaker()
    await watching
    assert seen and seen[0] < 1000, seen  # the loop ran other work while the speaker played
