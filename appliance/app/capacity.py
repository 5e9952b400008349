"""How many calls at once this box can carry, from its engines' measured speed, not its cores.

Every engine has one worker (`engines/offload.py`) and the model answers one reply at a time, so
turns of different calls that come at the same moment are served one after another: the last of
N such turns waits for the N - 1 replies before it, then gets its own first sentence. `calls_for`
admits as many calls as fit that into the turn target (the status page's, `TURN_TARGET_MS`).
Measured with `bench/concurrent_calls.py` (README, "Calls at once") on two cores, three calls at
once gave a p95 of 20-22 s with the 1.5B and 3.1-3.7 s with the 0.5B, and two calls 3.3 s with
the 0.5B; the core count would have said one call here and three on a Pi 5's four cores.

`measure_turn` times one turn's engine work once the engines are warm: the transcription of a
caller's first words (the voice saying them, so that it is speech), the model's answer to them
(with the tools offered, as in a call) to its first sentence and to its end, and the voice's
first audio of that sentence.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from appliance.conversation.ports import (
    LanguageModel,
    Message,
    SpeechToText,
    TextDelta,
    TextToSpeech,
    ToolSpec,
)
from appliance.conversation.streams import closing

__all__ = ["TurnCost", "calls_for", "measure_turn"]

_FIRST_SENTENCE = re.compile(r"[.!?,;:](\s|$)")
_FIRST_WORDS = 12
"""The first chunk a call speaks is cut here at the latest (`conversation/sentences.py`)."""
_ASKED = "Hello, what can you help me with today?"


@dataclass(frozen=True, slots=True)
class TurnCost:
    """One turn's engine time, in seconds, stage by stage."""

    stt_s: float
    first_s: float
    """The model, to the first sentence (or clause) of the reply: what the caller waits for."""
    reply_s: float
    """The model, to the end of the reply: what a turn that came at the same moment waits for."""
    tts_s: float
    """The voice, to the first audio of the first sentence."""

    @property
    def first_audio_s(self) -> float:
        """A turn alone: from the end of the caller's words to the reply's first audio."""
        return self.stt_s + self.first_s + self.tts_s

    @property
    def behind_s(self) -> float:
        """What a turn adds to the wait of one that came at the same moment behind it."""
        return self.stt_s + self.reply_s


def calls_for(cost: TurnCost, *, target_s: float, ceiling: int) -> int:
    """As many calls as can take a turn at the same moment with the last still answered
    within `target_s`: at least one, at most `ceiling` (what the lines can hold)."""
    room = target_s - cost.first_audio_s
    fit = 1 + int(room // cost.behind_s) if room > 0 and cost.behind_s > 0 else 1
    return max(1, min(ceiling, fit))


async def measure_turn(
    stt: SpeechToText,
    llm: LanguageModel,
    tts: TextToSpeech,
    *,
    opening: Sequence[Message],
    tools: Sequence[ToolSpec],
) -> TurnCost:
    """Time one turn's work on warm engines (see the module docstring)."""
    async with closing(tts.synthesize(_ASKED)) as spoken_words:
        caller = b"".join([pcm async for pcm in spoken_words])
    started = time.perf_counter()
    await stt.transcribe(caller)
    heard = time.perf_counter()
    said = ""
    first: float | None = None
    async with closing(llm.stream([*opening, Message("user", _ASKED)], tools)) as out:
        async for output in out:
            if not isinstance(output, TextDelta):
                break  # a tool call: the call would wait on the tool, not the model
            said += output.text
            if first is None and (_FIRST_SENTENCE.search(said) or len(said.split()) > _FIRST_WORDS):
                first = time.perf_counter()
    thought = time.perf_counter()
    first = first or thought
    async with closing(tts.synthesize(_first_sentence(said) or "Hello.")) as audio_out:
        async for _ in audio_out:
            break
    spoken = time.perf_counter()
    return TurnCost(
        stt_s=heard - started,
        first_s=first - heard,
        reply_s=thought - heard,
        tts_s=spoken - thought,
    )


def _first_sentence(text: str) -> str:
    cut = _FIRST_SENTENCE.search(text)
    words = (text[: cut.end()] if cut else text).split()
    return " ".join(words[:_FIRST_WORDS])
