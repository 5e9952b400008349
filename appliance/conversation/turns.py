"""Turn-taking: when the caller starts, pauses, resumes and finishes speaking.

`Endpointer` is a pure state machine over per-frame speech probabilities (from the VAD) with
hysteresis. It reports a short pause early (`Paused`, after `pause_ms`), so the session can start
transcribing and thinking while it waits to be sure; `Ended` comes after the silence the
`SilencePolicy` asks for, which depends on what the caller said so far: a finished sentence ends
the turn sooner, a trailing "and" or "um" waits longer, and so does a turn whose voice an
end-of-turn model (Smart Turn) scores as unfinished. Time is in frames, so the machine behaves
identically in a test and on a call.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass

from appliance.audio.frame import FRAME_MS

__all__ = ["Ended", "Endpointer", "Onset", "Paused", "Resumed", "SilencePolicy", "TurnConfig"]


@dataclass(frozen=True, slots=True)
class TurnConfig:
    start_threshold: float = 0.5
    """A frame at or above this probability counts as speech."""
    stop_threshold: float = 0.35
    """Once speaking, a frame must fall below this to count as silence."""
    min_speech_ms: int = 120
    """Speech this long starts every caller turn, not only a barge-in (a turn that starts while
    the agent speaks); shorter is a click or a cough."""
    pause_ms: int = 160
    """Silence after which a transcription starts speculatively."""
    endpoint_ms: int = 500
    """Silence that ends a turn when the transcript gives no hint."""
    preroll_ms: int = 500
    """Audio kept from before the onset, so the first syllable is not clipped. Silero's onset
    runs up to 400 ms behind a soft first word ("four" in tests/fixtures/audio/cards/002.wav,
    depending on how the 20 ms frames fall on its 32 ms windows); STT costs nothing extra."""
    tail_ms: int = 160
    """Silence kept after the last voiced frame in the audio handed to STT (at most `pause_ms`,
    so a pause and the end of the same turn carry the same audio)."""
    max_turn_ms: int = 30_000
    """A turn this long ends regardless (someone left a radio on)."""


@dataclass(frozen=True, slots=True)
class Onset:
    at: float
    """When the first voiced frame of the onset arrived."""


@dataclass(frozen=True, slots=True)
class Paused:
    audio: bytes
    """The turn so far, with `tail_ms` of silence after the speech."""
    speech_end: float
    speech_ms: float


@dataclass(frozen=True, slots=True)
class Resumed:
    at: float


@dataclass(frozen=True, slots=True)
class Ended:
    audio: bytes
    speech_end: float
    speech_ms: float


TurnEvent = Onset | Paused | Resumed | Ended

_UNFINISHED_WORDS = (
    "and but or so because um+ uh+ er like the a an to of with my is if then "
    # tiny.en ends a fragment with "." or "?" ("book a table for."): a sentence does not end on
    # a preposition, a possessive or a helping verb, whatever the punctuation says
    # ("Yes, I can." and "than he was." end sentences: verbs are left out)
    "for on at in from about into than as by your our their his her its some any"
)
_TRAILING_INCOMPLETE = re.compile(rf"\b(?:{'|'.join(_UNFINISHED_WORDS.split())})$")
_TRAILING_PAUSE = re.compile(r"[,;:-]$")
_TRAILING_COMPLETE = re.compile(r"[.!?]$")


VETO_BELOW = 0.05
"""An end-of-turn model's score under which the turn is held as unfinished, whatever the words.
Smart Turn v3.2 on `bench/end_of_turn.py`'s 189 mid-sentence pauses and 50 finished sentences:
below 0.1 it held 33 more pauses and made 7 finals wait (6 spoken by espeak-ng, whose flat
voice it was not trained on, and one recorded, at 0.099); below 0.05, 22 more pauses and 4
finals (all espeak-ng); below 0.02, 15 and 2. (shared/MODELS.md: below 0.1 on the recordings,
it stopped 14 of 58 early cuts and held none of 9 finals.)"""


class SilencePolicy:
    """How much silence ends a turn, given the transcript so far (None when not yet known) and
    an end-of-turn model's score of the voice (None without one, or before it answers)."""

    def __init__(
        self,
        base_ms: int,
        *,
        complete_factor: float = 0.7,
        incomplete_factor: float = 1.8,
        veto_below: float = VETO_BELOW,
    ):
        self.base_ms = base_ms
        self._complete = complete_factor
        self._incomplete = incomplete_factor
        self._veto = veto_below

    def endpoint_ms(self, transcript: str | None, complete: float | None = None) -> int:
        if complete is not None and complete < self._veto:
            return round(self.base_ms * self._incomplete)  # it sounds unfinished
        text = (transcript or "").strip().lower()
        if not text:
            return self.base_ms
        if _TRAILING_PAUSE.search(text) or _TRAILING_INCOMPLETE.search(text.rstrip(".?!")):
            return round(self.base_ms * self._incomplete)
        if _TRAILING_COMPLETE.search(text):
            return round(self.base_ms * self._complete)
        return self.base_ms


class Endpointer:
    """Feed it one probability per 20 ms frame; it returns what happened at that frame."""

    def __init__(self, config: TurnConfig, policy: SilencePolicy | None = None) -> None:
        self._config = config
        self._policy = policy or SilencePolicy(config.endpoint_ms)
        self._preroll: deque[bytes] = deque(maxlen=max(1, config.preroll_ms // FRAME_MS))
        self._onset: list[tuple[bytes, float]] = []
        self._audio: list[bytes] = []
        self._speaking = False
        self._silent_frames = 0
        self._voiced_frames = 0
        self._voiced_since_onset = 0
        self._last_voiced_at = 0.0
        self._last_voiced_index = 0
        self._paused = False
        self._hint: str | None = None
        self._complete: float | None = None
        self.pauses = 0
        """Pauses reported so far (`Paused` events): says which pause a late score is for."""

    @property
    def speaking(self) -> bool:
        """Inside a caller turn (including its pauses)."""
        return self._speaking

    @property
    def voiced_ms(self) -> int:
        """Voiced speech in this turn so far, from its onset on (pauses and preroll left out)."""
        return self._voiced_since_onset * FRAME_MS if self._speaking else 0

    def hint(self, transcript: str | None) -> None:
        """What the caller has said so far in this turn; moves the endpoint (see SilencePolicy)."""
        self._hint = transcript

    def sounds_complete(self, probability: float, *, pause: int) -> None:
        """An end-of-turn model's score of the turn up to pause number `pause`; moves the
        endpoint while that pause lasts (a score of an earlier pause is too late: dropped)."""
        if self._paused and pause == self.pauses:
            self._complete = probability

    def forget(self) -> None:
        """Drop the turn in progress as if it had not begun (it was not the caller's voice
        but the agent's echo); what came before it goes too."""
        self._speaking = self._paused = False
        self._audio = []
        self._onset.clear()
        self._preroll.clear()
        self._silent_frames = self._voiced_frames = 0
        self._hint = self._complete = None

    def push(self, frame: bytes, probability: float, at: float) -> list[TurnEvent]:
        if self._speaking:
            return self._while_speaking(frame, probability, at)
        return self._while_quiet(frame, probability, at)

    def _while_quiet(self, frame: bytes, probability: float, at: float) -> list[TurnEvent]:
        if probability < self._config.start_threshold:
            self._preroll.extend(f for f, _ in self._onset)
            self._onset.clear()
            self._preroll.append(frame)
            return []
        self._onset.append((frame, at))
        if len(self._onset) * FRAME_MS < self._config.min_speech_ms:
            return []
        first_at = self._onset[0][1]
        self._voiced_since_onset = len(self._onset)
        self._audio = [*self._preroll, *(f for f, _ in self._onset)]
        self._preroll.clear()
        self._onset.clear()
        self._speaking = True
        self._silent_frames = 0
        self._voiced_frames = len(self._audio)
        self._paused = False
        self._hint = self._complete = None
        self._mark_voiced(at)
        return [Onset(at=first_at)]

    def _mark_voiced(self, at: float) -> None:
        self._last_voiced_at = at
        self._last_voiced_index = len(self._audio)

    def _while_speaking(self, frame: bytes, probability: float, at: float) -> list[TurnEvent]:
        self._audio.append(frame)
        events: list[TurnEvent] = []
        if probability >= self._config.stop_threshold:
            self._silent_frames = 0
            self._voiced_frames += 1
            self._voiced_since_onset += 1
            self._mark_voiced(at)
            if self._paused:
                self._paused = False
                self._hint = self._complete = None
                events.append(Resumed(at=at))
        else:
            self._silent_frames += 1
        silence_ms = self._silent_frames * FRAME_MS
        too_long = len(self._audio) * FRAME_MS >= self._config.max_turn_ms
        if silence_ms >= self._policy.endpoint_ms(self._hint, self._complete) or too_long:
            events.append(self._end())
        elif silence_ms >= self._config.pause_ms and not self._paused:
            self._paused = True
            self.pauses += 1
            events.append(
                Paused(
                    audio=self._speech(),
                    speech_end=self._last_voiced_at,
                    speech_ms=self._voiced_frames * FRAME_MS,
                )
            )
        return events

    def _speech(self) -> bytes:
        tail = min(self._config.tail_ms, self._config.pause_ms) // FRAME_MS
        return b"".join(self._audio[: self._last_voiced_index + tail])

    def _end(self) -> Ended:
        event = Ended(
            audio=self._speech(),
            speech_end=self._last_voiced_at,
            speech_ms=self._voiced_frames * FRAME_MS,
        )
        self._speaking = False
        self._audio = []
        self._paused = False
        self._hint = self._complete = None
        return event
