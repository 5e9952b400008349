"""The safety screens on a call: the caller's words before the model sees them, and each of the
agent's sentences before it is heard.

The caller's words are screened once their turn is transcribed; a flagged turn never reaches the
model (so nothing it says can make a tool run) and is answered with the refusal. Repeated
flagged turns end the call politely.

The agent's sentences are screened while they are synthesized: `SentenceGate.watch` starts a
check for each sentence as it passes on to the voice, and `SentenceGate.held` waits for that
check only when the sentence's first audio is ready for the line. A clean sentence's check is
over long before piper's audio is, so it adds no latency; a flagged sentence is replaced by the
refusal and the rest of the reply is dropped.

The same gate holds a sentence that states a fact the call never gave the model (see
`grounding.py`): it is replaced, like a flagged one, by the refusal for `ungrounded`.

A screen that fails (its embedder crashed) lets the text through, logged and counted: the screen
is a second line behind the persona's rules, and a call that cannot be answered at all helps
nobody.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Final

from appliance.conversation.events import SafetyChecked
from appliance.conversation.ports import Screen, Speaker, Verdict
from appliance.conversation.streams import closing
from appliance.conversation.timings import Span
from appliance.conversation.voice import SpeechChunk

__all__ = ["Guard", "SentenceGate"]

_log = logging.getLogger(__name__)

_UNCHECKED: Final = Verdict(flagged=False, score=0.0, threshold=1.0, engine="none")
"""What a failed screen counts as (see the module's docstring)."""


_NEVER_ABUSE: Final = frozenset({"self_harm"})


class Guard:
    """One call's screens, and how many of the caller's turns were flagged."""

    def __init__(
        self,
        screen: Screen,
        report: Callable[[SafetyChecked], None],
        *,
        refusal: str,
        refusals: Mapping[str, str] | None = None,
        abuse_limit: int = 3,
        on_error: Callable[[], None] = lambda: None,
    ) -> None:
        """`report` is told of every decision; `refusal` replaces what may not be said, or
        `refusals[category]` for a category of its own; `abuse_limit` flagged turns end the
        call."""
        self._screen = screen
        self._report = report
        self._refusal = refusal
        self._refusals = dict(refusals or {})
        self._abuse_limit = abuse_limit
        self._on_error = on_error
        self.flagged_turns = 0

    @property
    def abusive(self) -> bool:
        """The caller has had `abuse_limit` turns flagged: the call should end."""
        return self.flagged_turns >= self._abuse_limit

    def refusal(self, verdict: Verdict) -> str:
        """What to say instead of what `verdict` flagged."""
        return self._refusals.get(verdict.category, self._refusal)

    async def check(self, text: str, speaker: Speaker) -> Verdict:
        try:
            return await self._screen.check(text, speaker=speaker)
        except Exception:
            _log.exception("the safety screen failed; %s text let through", speaker)
            self._on_error()
            return _UNCHECKED

    def caller_decided(self, turn: int, said: str, verdict: Verdict) -> None:
        """The caller's turn was screened (`check(said, "caller")`) and is going ahead: a
        flagged one counts towards `abusive`, unless the caller spoke of harming themselves
        (a caller in crisis is never hung up on)."""
        action = "allowed"
        if verdict.flagged:
            if verdict.category not in _NEVER_ABUSE:
                self.flagged_turns += 1
            action = "ended" if self.abusive else "refused"
        self._report(_checked(turn, "caller", said, action, verdict))

    def sentences(
        self,
        turn: Callable[[], int],
        audio: Callable[[str], Awaitable[bytes]],
        now: Callable[[], float],
        unsupported: Callable[[str], list[str]] | None = None,
    ) -> SentenceGate:
        """The gate for one reply's sentences. `turn` gives the reply's turn number once it is
        known (a reply is prepared before it is numbered); `audio` a refusal's audio; `now`
        the clock that times the first sentence's hold; `unsupported` the facts in a sentence
        that the call has not given the model (`Grounding.unsupported`)."""
        return SentenceGate(self, turn, audio, now, unsupported)

    def agent_checked(self, turn: int, text: str, verdict: Verdict) -> None:
        self._report(
            _checked(turn, "agent", text, "replaced" if verdict.flagged else "allowed", verdict)
        )


class SentenceGate:
    """Screens one reply's sentences between the model and the line (see the module)."""

    def __init__(
        self,
        guard: Guard,
        turn: Callable[[], int],
        audio: Callable[[str], Awaitable[bytes]],
        now: Callable[[], float],
        unsupported: Callable[[str], list[str]] | None = None,
    ) -> None:
        self._guard = guard
        self._unsupported = unsupported
        self._turn = turn
        self._audio = audio
        self._now = now
        self._checks: list[asyncio.Task[Verdict]] = []
        self.replaced = False
        """A sentence was flagged: the refusal was said instead, and nothing after it."""
        self.first_hold = Span()
        """How long the first sentence's audio, ready, waited for its check: what the agent's
        screen added to the turn (the check runs while the sentence is synthesized)."""

    async def watch(self, sentences: AsyncIterator[str]) -> AsyncIterator[str]:
        """`sentences`, unchanged; each one's check starts as it passes."""
        async with closing(sentences) as texts:
            async for text in texts:
                self._checks.append(asyncio.ensure_future(self._guard.check(text, "agent")))
                yield text

    async def held(self, speech: AsyncIterator[SpeechChunk]) -> AsyncIterator[SpeechChunk]:
        """`speech`, each sentence let through once its check has passed; a flagged sentence
        becomes the refusal, and the reply ends there."""
        cleared = -1
        try:
            async with closing(speech) as chunks:
                async for chunk in chunks:
                    if chunk.sentence > cleared:
                        ready = self._now()
                        verdict = self._grounded(chunk.text, await self._checks[chunk.sentence])
                        if chunk.sentence == 0:
                            self.first_hold = Span(ready, self._now())
                        self._guard.agent_checked(self._turn(), chunk.text, verdict)
                        if verdict.flagged:
                            self.replaced = True
                            refusal = self._guard.refusal(verdict)
                            yield SpeechChunk(chunk.sentence, refusal, await self._audio(refusal))
                            return
                        cleared = chunk.sentence
                    yield chunk
        finally:
            for check in self._checks:
                check.cancel()

    def _grounded(self, text: str, verdict: Verdict) -> Verdict:
        """`verdict`, or a flag of its own when `text` states a fact nothing gave the model."""
        if verdict.flagged or self._unsupported is None:
            return verdict
        missing = self._unsupported(text)
        if not missing:
            return verdict
        _log.info("an unsupported fact in the agent's sentence (%s): replaced", ", ".join(missing))
        return Verdict(
            flagged=True, score=1.0, threshold=1.0, category="ungrounded", engine="grounding"
        )


def _checked(turn: int, layer: str, text: str, action: str, verdict: Verdict) -> SafetyChecked:
    return SafetyChecked(
        turn=turn,
        layer=layer,
        text=text,
        action=action,
        score=verdict.score,
        threshold=verdict.threshold,
        category=verdict.category,
        engine=verdict.engine,
    )
