"""Answering the speakerphone on a wake phrase ("hey Tess"), for LOCAL_ANSWER=wake.

While idle nothing runs on the loop: the sound card feeds a `Doorbell` on its own thread. When
the room stays loud (someone speaks), the card's frames, with the second before the ring, go
through the box's voice activity detector and the call's own `Endpointer` until the person
pauses; that one utterance (at most `_LONGEST_MS`) is transcribed by the box's local
speech-to-text, and only a transcript that contains the wake phrase answers. Anything else is
ignored and counted (at debug level in the log, with what was heard).

CPU stays bounded while idle: silence never reaches the detector (the doorbell's level gate),
sound that is not speech never reaches the recognizer (the detector's), one transcription runs
at a time, and at most `_PER_MINUTE` run in any minute (a radio left on is transcribed a few
times a minute, not continuously). Whatever is heard while a transcription runs is kept, so a
question asked right after the phrase is not lost. The room's speech stays on the box: only the
local engine hears it, never an API fallback.

The phrase is matched forgivingly, because a small recognizer mishears a name: both are
lower-cased, stripped of accents and punctuation, and compared without spaces (so "Hey, Tess!"
and "hey tess" are the phrase, and so is "heytess"); a run of the transcript's words one shorter
to one longer than the phrase matches when difflib's similarity ratio to the phrase is at least
`SIMILARITY` (0.8: "hey test" and "hey jess" match "hey tess"; "a test" and "they guess" do not).
"""

from __future__ import annotations

import asyncio
import difflib
import logging
import re
import unicodedata
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Protocol

from appliance.audio.frame import FRAME_MS, frames_of
from appliance.clock import Clock, LoopClock
from appliance.conversation.ports import SpeechToText, VoiceActivity
from appliance.conversation.turns import Ended, Endpointer, Onset, TurnConfig
from appliance.telephony.local.device import Port
from appliance.telephony.local.line import LocalLine
from appliance.telephony.local.phone import Doorbell, local_call_info
from appliance.telephony.sip.media import CallMedia

__all__ = [
    "SIMILARITY",
    "Microphone",
    "WakeListener",
    "WakeMatch",
    "WakePhrase",
    "default_wake_phrase",
]

_log = logging.getLogger(__name__)

SIMILARITY = 0.8
"""The least difflib ratio between the phrase and the words heard that counts as the phrase."""
_LONGEST_MS = 8_000
"""An utterance is cut here: the phrase comes first, and a longer one costs seconds of CPU."""
_LOUD_MS = 120
"""Sound over the level this long wakes the detector: shorter than `sound`'s 300 ms, because a
short phrase ("hey Tess") may have no 300 ms without a dip; a cough costs only a second of VAD."""
_ONSET_WITHIN_MS = 2_000
"""After the ring, speech must begin this soon; otherwise it was a noise, not a person."""
_PER_MINUTE = 12
"""Transcriptions at most in any 60 s while idle."""
_MEANWHILE_MS = 10_000
"""What is kept of the room while an utterance is being transcribed."""


class Microphone(Protocol):
    """What sends the room's 16 kHz frames to a port: an open `SoundCard`."""

    def connect(self, port: Port | None) -> None: ...


def default_wake_phrase(agent_name: str) -> str:
    """The phrase when LOCAL_WAKE_PHRASE is empty: "hey" and the agent's name."""
    return f"hey {agent_name}"


def _words(text: str) -> list[str]:
    """Lower-case words without accents or punctuation ("Hey, Tess!" -> ["hey", "tess"])."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9' ]+", " ", plain.lower()).replace("'", "").split()


@dataclass(frozen=True, slots=True)
class WakeMatch:
    heard: str
    """The words taken for the phrase, as normalised."""
    similarity: float
    rest: str
    """The words after the phrase (a question asked with it), normalised; empty when none."""


class WakePhrase:
    """A wake phrase and the forgiving rule that finds it in a transcript (see the module)."""

    def __init__(self, phrase: str, *, similarity: float = SIMILARITY) -> None:
        self._words = _words(phrase)
        if not self._words:
            raise ValueError(f"the wake phrase {phrase!r} has no words (LOCAL_WAKE_PHRASE)")
        self.phrase = " ".join(self._words)
        self._joined = "".join(self._words)
        self._similarity = similarity

    def find(self, transcript: str) -> WakeMatch | None:
        """The best match of the phrase in `transcript`, or None below the similarity."""
        words = _words(transcript)
        size = len(self._words)
        best: WakeMatch | None = None
        for start in range(len(words)):
            for length in range(max(1, size - 1), size + 2):
                if start + length > len(words):
                    break
                said = words[start : start + length]
                ratio = difflib.SequenceMatcher(None, "".join(said), self._joined).ratio()
                if ratio >= self._similarity and (best is None or ratio > best.similarity):
                    rest = " ".join(words[start + length :])
                    best = WakeMatch(heard=" ".join(said), similarity=ratio, rest=rest)
        return best


class _Budget:
    """At most `per_minute` transcriptions in any 60 s of `clock`."""

    def __init__(self, clock: Clock, per_minute: int) -> None:
        self._clock = clock
        self._starts: deque[float] = deque(maxlen=per_minute)

    def take(self) -> bool:
        now = self._clock.now()
        if len(self._starts) == self._starts.maxlen and now - self._starts[0] < 60.0:
            return False
        self._starts.append(now)
        return True


class WakeListener:
    """Listens on an open sound card until someone says the phrase (`wait`)."""

    def __init__(
        self,
        phrase: WakePhrase,
        stt: SpeechToText,
        vad: VoiceActivity,
        *,
        turn: TurnConfig | None = None,
        level_dbfs: float = -40.0,
        per_minute: int = _PER_MINUTE,
        clock: Clock | None = None,
    ) -> None:
        self.phrase = phrase
        self._stt = stt
        self._vad = vad
        self._turn = replace(turn or TurnConfig(), max_turn_ms=_LONGEST_MS)
        self._level = level_dbfs
        self._per_minute = per_minute
        self._budget = _Budget(clock or LoopClock(), per_minute)
        self.transcribed = 0
        """Utterances transcribed while idle."""
        self.ignored = 0
        """... of which were not the wake phrase."""
        self.skipped = 0
        """Utterances not transcribed: over the per-minute budget."""

    async def wait(self, card: Microphone) -> list[bytes]:
        """Returns once the phrase is heard: the frames to hand to the conversation (the
        utterance when words followed the phrase, then what was heard while it was
        transcribed). The card is left connected to nothing."""
        loop = asyncio.get_running_loop()
        while True:
            utterance = await self._utterance(card, loop)
            if utterance is None:
                continue
            if not self._budget.take():
                self.skipped += 1
                _log.debug("speech at the box not transcribed: over %d a minute", self._per_minute)
                continue
            meanwhile = Doorbell(loop, level_dbfs=0.0, keep_ms=_MEANWHILE_MS)
            card.connect(meanwhile)
            found = await self._transcribe(utterance)
            card.connect(None)
            if found is not None:
                _log.info("wake phrase heard (%r, %.2f)", found.heard, found.similarity)
                said = list(frames_of(utterance)) if found.rest else []
                return said + meanwhile.heard()

    async def _utterance(self, card: Microphone, loop: asyncio.AbstractEventLoop) -> bytes | None:
        """The next utterance after the room gets loud; None when it was not speech."""
        bell = Doorbell(loop, level_dbfs=self._level, hold_ms=_LOUD_MS)
        card.connect(bell)
        await bell.rang.wait()
        # The second before the ring first (the phrase's first syllable), then the card's frames.
        line = LocalLine(
            local_call_info("wake phrase"), CallMedia(loop, inbound_frames=100),
            heard_before=bell.heard(),
        )  # fmt: skip
        card.connect(line.media)
        try:
            return await self._first_utterance(line.listen())
        finally:
            card.connect(None)
            line.end()

    async def _first_utterance(self, frames: AsyncIterator[bytes]) -> bytes | None:
        detector = self._vad.detector()
        endpointer = Endpointer(self._turn)
        count = 0
        async for frame in frames:
            count += 1
            probability = await detector.probability(frame)
            for event in endpointer.push(frame, probability, count * FRAME_MS / 1000):
                if isinstance(event, Ended):
                    return event.audio
                if isinstance(event, Onset):
                    _log.debug("speech at the box: listening for the wake phrase")
            if not endpointer.speaking and count * FRAME_MS > _ONSET_WITHIN_MS:
                return None
        return None

    async def _transcribe(self, utterance: bytes) -> WakeMatch | None:
        try:
            transcript = await self._stt.transcribe(utterance)
        except Exception as exc:  # a failed transcription must not stop the phone
            _log.warning("the wake phrase could not be listened for: %s", exc)
            return None
        self.transcribed += 1
        found = self.phrase.find(transcript.text)
        if found is None:
            self.ignored += 1
            _log.debug(
                "not the wake phrase %r: %r (%d ignored)",
                self.phrase.phrase, transcript.text, self.ignored,
            )  # fmt: skip
        return found
