"""The speakerphone line's loop side, without a sound card: the doorbell that answers when
someone speaks, and the line's buffers (a sound card's thread stands in as plain calls)."""

from __future__ import annotations

import asyncio

from appliance.audio.frame import FRAME_BYTES, silence
from appliance.telephony.local.line import LocalLine
from appliance.telephony.local.phone import Doorbell, local_call_info
from appliance.telephony.sip.media import CallMedia
from tests.support.fakes import say


def _frames(pcm: bytes) -> list[bytes]:
    return [pcm[i : i + FRAME_BYTES] for i in range(0, len(pcm) - FRAME_BYTES + 1, FRAME_BYTES)]


async def test_the_doorbell_rings_after_300_ms_of_sound_and_keeps_the_words() -> None:
    bell = Doorbell(asyncio.get_running_loop(), level_dbfs=-40.0, hold_ms=300)
    for frame in _frames(silence(100)):
        bell.received(frame)
    words = _frames(say("hello", word_ms=600))
    for frame in words[:14]:
        bell.received(frame)
    await asyncio.sleep(0)
    assert not bell.rang.is_set()  # a cough or a door is shorter
    bell.received(words[14])
    await asyncio.wait_for(bell.rang.wait(), 1)
    assert bell.heard()[-15:] == words[:15]
    assert len(bell.heard()) == 50  # one second, the oldest dropped
    assert bell.requested() is None


async def test_the_line_hands_over_the_first_words_then_the_cards_frames() -> None:
    media = CallMedia(asyncio.get_running_loop())
    first = _frames(say("hello"))[:3]
    line = LocalLine(local_call_info(), media, heard_before=first)
    assert line.info.line == "local"
    media.received(silence())
    heard = []
    async for frame in line.listen():
        heard.append(frame)
        if len(heard) == 4:
            line.end()
    assert heard == [*first, silence()]


async def test_a_barge_in_clears_what_the_card_has_not_played() -> None:
    media = CallMedia(asyncio.get_running_loop(), outbound_frames=8)
    line = LocalLine(local_call_info(), media)
    for _ in range(5):
        await line.play(silence())
    assert media.requested() is not None  # the card plays one
    assert await line.clear() == 1
    assert media.requested() is None
    await line.hang_up()
    assert [f async for f in line.listen()] == []


async def test_speech_in_the_words_that_woke_the_line_is_never_held_for_echo() -> None:
    """They were heard before the agent said anything. Held for the echo's reach, the wake
    phrase's question was taken for the greeting's echo and forgotten: the person was never
    answered."""
    media = CallMedia(asyncio.get_running_loop())
    first = _frames(say("hello"))[:10]
    line = LocalLine(local_call_info(), media, heard_before=first, echo_frames=lambda: 12)
    frames = line.listen()
    for _ in range(10):
        await anext(frames)
    assert line.hold() == 0  # an onset in the last of those words: the person's
    assert not media.held  # the agent plays on (and is cut as the person goes on)
    media.received(silence())
    media.received(silence())
    await anext(frames)  # heard while the agent may be playing
    assert line.hold() == 1 + 12 + 3  # one still waiting, the echo's reach, the margin
    line.end()
