"""`LocalPhone`: the speakerphone answering like a phone, for `serve` (LOCAL_LINE=true).

While nobody talks, the sound card feeds a `Doorbell`: it rings once the room stays louder than
`level_dbfs` for `hold_ms` (someone speaking to the box), and keeps the last second it heard, so
the first words are the conversation's first words and not lost to the ring. The phone then
asks admission like every line, answers through the router (so the conversation is recorded,
transcribed and listed like any call), and goes back to waiting when it ends. `answer="always"`
starts a conversation at once and another after each one ends (a kiosk); `answer="wake"` only
when someone says the wake phrase (`wake.WakeListener`); `answer="button"` when a push button on
a GPIO line is pressed, and a second press hangs up (`button.GpioButton`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import uuid
from collections import deque
from typing import TYPE_CHECKING, Literal

from appliance.audio.frame import FRAME_MS, rms_dbfs
from appliance.conversation.events import EventSink
from appliance.conversation.ports import CallInfo
from appliance.observability.metrics import Metrics
from appliance.telephony.calls import CallRouter, Verdict
from appliance.telephony.local.device import SoundCard
from appliance.telephony.local.line import LocalLine
from appliance.telephony.sip.media import CallMedia

if TYPE_CHECKING:
    from appliance.telephony.local.button import GpioButton
    from appliance.telephony.local.wake import WakeListener

__all__ = ["AnswerMode", "Doorbell", "LocalPhone", "converse", "local_call_info"]

_log = logging.getLogger(__name__)
AnswerMode = Literal["sound", "always", "wake", "button"]


def local_call_info(caller: str = "speakerphone") -> CallInfo:
    """A conversation at the box: no number, so nothing is vouched for."""
    return CallInfo(call_id=f"local-{uuid.uuid4().hex[:10]}", line="local", caller=caller)


class Doorbell:
    """A sound card port that rings when the room stays loud; plays nothing."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        level_dbfs: float = -40.0,
        hold_ms: int = 300,
        keep_ms: int = 1000,
    ) -> None:
        self._loop = loop
        self._level = level_dbfs
        self._hold = max(1, hold_ms // FRAME_MS)
        self._loud = 0
        self._lock = threading.Lock()
        self._recent: deque[bytes] = deque(maxlen=max(1, keep_ms // FRAME_MS))
        self.rang = asyncio.Event()

    def received(self, pcm: bytes) -> None:
        """A frame from the audio thread."""
        with self._lock:
            self._recent.append(pcm)
        self._loud = self._loud + 1 if rms_dbfs(pcm) > self._level else 0
        if self._loud == self._hold:
            with contextlib.suppress(RuntimeError):  # the loop has closed
                self._loop.call_soon_threadsafe(self.rang.set)

    def requested(self) -> bytes | None:
        return None

    def heard(self) -> list[bytes]:
        """The last `keep_ms` the bell heard, oldest first."""
        with self._lock:
            return list(self._recent)


class LocalPhone:
    """Answers the speakerphone through `router` until stopped (an async context)."""

    def __init__(
        self,
        card: SoundCard,
        router: CallRouter,
        *,
        answer: AnswerMode = "sound",
        level_dbfs: float = -40.0,
        metrics: Metrics | None = None,
        wake: WakeListener | None = None,
        button: GpioButton | None = None,
    ) -> None:
        if answer == "wake" and wake is None:
            raise ValueError("answer='wake' needs a WakeListener")
        if answer == "button" and button is None:
            raise ValueError("answer='button' needs a GpioButton")
        self._card = card
        self._router = router
        self._answer = answer
        self._level = level_dbfs
        self._metrics = metrics
        self.wake = wake
        self.button = button
        self._task: asyncio.Task[None] | None = None
        self.line: LocalLine | None = None
        """The conversation in progress, if any."""
        self.conversations = 0

    async def __aenter__(self) -> LocalPhone:
        if self.button is not None:
            self.button.open()
        try:
            await asyncio.to_thread(self._card.open)
        except BaseException:
            if self.button is not None:
                self.button.close()
            raise
        self._task = asyncio.create_task(self._serve(), name="speakerphone")
        return self

    async def __aexit__(self, *_: object) -> None:
        if self.line is not None:
            self.line.end()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await asyncio.to_thread(self._card.close)
        if self.button is not None:
            self.button.close()

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            heard = await self._knock(loop)
            verdict = self._router.admission.check(None)
            if verdict is not Verdict.ADMIT:
                _log.warning("the speakerphone cannot answer: %s", verdict.value)
                self._card.connect(None)
                await asyncio.sleep(1.0)
                continue
            media = CallMedia(loop, inbound_frames=50 + len(heard))  # room for the first words
            await self.converse(LocalLine(
                local_call_info(), media, metrics=self._metrics, heard_before=heard
            ))  # fmt: skip

    async def _knock(self, loop: asyncio.AbstractEventLoop) -> list[bytes]:
        """Waits for the cue to answer; returns what was heard before it (the first words)."""
        match self._answer:
            case "always":
                return []
            case "sound":
                bell = Doorbell(loop, level_dbfs=self._level)
                self._card.connect(bell)
                await bell.rang.wait()
                return bell.heard()
            case "wake":
                assert self.wake is not None
                return await self.wake.wait(self._card)
            case "button":
                assert self.button is not None
                await self.button.pressed()
                _log.info("the speakerphone's button answers")
                return []

    async def converse(self, line: LocalLine) -> str:
        """One conversation on `line` through the card; returns why it ended (a press of the
        button, if there is one, ends it too)."""
        self.line = line
        hang_up = None
        if self.button is not None:
            hang_up = asyncio.create_task(self._hang_up_on_press(line), name="button")
        try:
            return await converse(self._card, self._router, line)
        finally:
            if hang_up is not None:
                hang_up.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await hang_up
            self.line = None
            self.conversations += 1

    async def _hang_up_on_press(self, line: LocalLine) -> None:
        assert self.button is not None
        await self.button.pressed()
        _log.info("the speakerphone's button hangs up")
        line.end()


async def converse(
    card: SoundCard, router: CallRouter, line: LocalLine, observe: EventSink | None = None
) -> str:
    """One conversation on `line` through the open `card`, answered by `router` like every
    call (recorded, transcribed, listed); returns why it ended."""
    line.echo_frames = lambda: card.echo_frames
    card.connect(line.media)
    try:
        return await router.answer(line, observe)
    finally:
        card.connect(None)
        line.end()
