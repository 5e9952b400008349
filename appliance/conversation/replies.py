"""A reply's life: its states, the transitions between them, and how it ended.

```
PREPARING --> CONFIRMED --> PLAYING --> FINISHED
    |             |            |------> INTERRUPTED
    |             |            '------> DISCARDED
    |             |-------------------> FINISHED | INTERRUPTED | DISCARDED
    '---------------------------------> DISCARDED
```

A caller turn's reply starts PREPARING, speculatively, at the caller's first pause; the end of
the turn CONFIRMS it (a fixed phrase starts confirmed). Its first audio on the line makes it
PLAYING. It ends FINISHED (said to the end, or failed), INTERRUPTED (the caller cut in, or hung
up, after hearing part of it) or DISCARDED (dropped before the caller heard any of it).

A turn is numbered once, when it is confirmed: one more than the last turn that was not
discarded, so a discarded turn's number goes to the turn that replaces it.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass, field
from typing import Final, Literal

from appliance.conversation.heard import Spoken, split_heard
from appliance.conversation.ports import Handoff, Recollection
from appliance.conversation.think import Thought
from appliance.conversation.timings import Span
from appliance.conversation.voice import SpeechChunk

__all__ = ["Outcome", "Reply", "ReplyState", "Result"]


class ReplyState(enum.Enum):
    PREPARING = "preparing"
    """A turn's reply made ahead of the end of the turn; the caller may yet go on."""
    CONFIRMED = "confirmed"
    """The turn has ended (or it is a fixed phrase): it plays as soon as it has audio."""
    PLAYING = "playing"
    """Its first audio went to the line."""
    FINISHED = "finished"
    INTERRUPTED = "interrupted"
    DISCARDED = "discarded"


_NEXT: Final[dict[ReplyState, frozenset[ReplyState]]] = {
    ReplyState.PREPARING: frozenset({ReplyState.CONFIRMED, ReplyState.DISCARDED}),
    ReplyState.CONFIRMED: frozenset(
        {
            ReplyState.PLAYING,
            ReplyState.FINISHED,
            ReplyState.INTERRUPTED,
            ReplyState.DISCARDED,
        }
    ),
    ReplyState.PLAYING: frozenset(
        {ReplyState.FINISHED, ReplyState.INTERRUPTED, ReplyState.DISCARDED}
    ),
    ReplyState.FINISHED: frozenset(),
    ReplyState.INTERRUPTED: frozenset(),
    ReplyState.DISCARDED: frozenset(),
}


class Result(enum.Enum):
    """How a reply ended."""

    ANSWERED = "answered"
    """The caller heard it to the end."""
    FAILED = "failed"
    """An engine failed; the caller heard an apology, part of the reply, or nothing."""
    INTERRUPTED = "interrupted"
    """Cut off after the caller heard part of it."""
    DISCARDED = "discarded"
    """Dropped before the caller heard any of it."""

    @property
    def state(self) -> ReplyState:
        match self:
            case Result.ANSWERED | Result.FAILED:
                return ReplyState.FINISHED
            case Result.INTERRUPTED:
                return ReplyState.INTERRUPTED
            case Result.DISCARDED:
                return ReplyState.DISCARDED


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a reply ended, and what follows from it."""

    result: Result
    hang_up: str | None = None
    """Why the agent ends the call now that this reply is over; None to go on."""
    heard: str = ""
    """INTERRUPTED: what the caller heard of it."""
    unsaid: str = ""
    """INTERRUPTED: what the caller did not hear."""
    why: str = ""
    """DISCARDED: why, as `TurnDiscarded` tells it; empty to tell nobody."""
    transfer: Handoff | None = None
    """Who the caller is handed to now that this reply has been heard; None to go on."""


@dataclass(eq=False, slots=True)
class Reply:
    """One reply: a caller turn's answer, or a fixed phrase; and what each stage reported."""

    kind: Literal["turn", "phrase"]
    state: ReplyState
    audio: bytes = b""
    """A turn: the caller's speech."""
    pressed: str = ""
    """A turn made of a key press: the caller's words as the model reads them ("(pressed 1)")."""
    speech_end: float | None = None
    """A turn: when the caller's last voiced frame arrived (clock seconds)."""
    over_greeting: bool = False
    """A turn: the caller began it while the greeting was playing."""
    turn: int = 0
    """A turn's number, from its confirmation on; 0 for a phrase or an unconfirmed turn."""
    task: asyncio.Task[None] | None = None
    transcript: str | None = None
    """What the caller said (with what was carried over), once transcribed."""
    cut_ms: int = 0
    """Speech left out of the transcription: the oldest, past what STT hears at once."""
    thought: Thought = field(default_factory=Thought)
    written: list[str] = field(default_factory=list)
    """Every sentence the model completed, heard or not."""
    spoken: dict[int, Spoken] = field(default_factory=dict)
    """Sentences that reached the line, by index, with their frame positions."""
    recalled: tuple[Recollection, ...] = ()
    confirmed_at: float | None = None
    stt: Span = field(default_factory=Span)
    stt_engine: str = ""
    """The engine that transcribed the caller's turn."""
    recall: Span = field(default_factory=Span)
    screen: Span = field(default_factory=Span)
    """The safety screen of the caller's words (beside recall, before the model)."""
    screen_hold: Span = field(default_factory=Span)
    """The first sentence's audio waiting for its check (`SentenceGate.first_hold`)."""
    first_speech: SpeechChunk | None = None
    """The voice's first chunk that reached the line."""
    first_audio_at: float | None = None
    _confirmed: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        if self.state is ReplyState.CONFIRMED:
            self._confirmed.set()

    def move(self, to: ReplyState) -> None:
        """Go to state `to`; anything else than the transitions above is a bug."""
        assert to in _NEXT[self.state], f"a reply cannot go from {self.state.name} to {to.name}"
        self.state = to
        if to is ReplyState.CONFIRMED:
            self._confirmed.set()

    async def confirmed(self) -> None:
        """Returns once the reply may be heard (and act: run tools)."""
        await self._confirmed.wait()

    @property
    def active(self) -> bool:
        """Not over yet: being prepared, waiting to play, or playing."""
        return bool(_NEXT[self.state])

    def spans(self) -> dict[str, Span]:
        """Each stage's span, for `TurnCompleted.timings_ms` (see `timings`)."""
        thought, speech = self.thought, self.first_speech
        voice_asked = speech.asked_at if speech is not None else None
        return {
            "endpoint": Span(self.speech_end, self.confirmed_at),
            "stt": self.stt,
            "recall": self.recall,
            "screen": self.screen,
            "llm_first_token": Span(thought.started_at, thought.first_output_at),
            "first_sentence": Span(thought.started_at, voice_asked),
            "tts_first_audio": Span(voice_asked, speech.at if speech is not None else None),
            "screen_hold": self.screen_hold,
            "turn": Span(self.speech_end, self.first_audio_at),
        }

    def engines(self) -> dict[str, str]:
        """Which engine answered each stage, for `TurnCompleted.engines`: the transcript's,
        the model's (each engine asked, in order, when a tool round changed it) and the voice
        of the first sentence (the one the caller waited for)."""
        found = {
            "stt": self.stt_engine,
            "llm": "+".join(dict.fromkeys(self.thought.engines)),
            "tts": self.first_speech.engine if self.first_speech is not None else "",
        }
        return {stage: engine for stage, engine in found.items() if engine}

    def heard_until(self, position: int) -> tuple[str, str]:
        """(what the caller heard, what they did not) once the line has played up to `position`."""
        heard, unsaid = split_heard(list(self.spoken.values()), position)
        never_started = self.written[len(self.spoken) :]
        return heard, " ".join([unsaid, *never_started]).strip()
