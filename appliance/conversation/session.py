"""One call: a listen loop and the replies it starts, in one TaskGroup.

The listen loop runs the caller's audio through the VAD and the `Endpointer`. When the caller
pauses, a reply starts speculatively: STT, then the model and TTS run ahead into bounded buffers,
but nothing is played until the pause is confirmed as the end of the turn. If the caller goes on
speaking, the speculative reply is dropped. Caller speech over a confirmed reply is a barge-in:
the reply is cancelled, the line cleared, and the history keeps only what the caller heard. If
they cut in before hearing anything, what they said is carried into their next turn.

The call ends when the line's audio ends (the caller hung up) or the agent hangs up.

A session may be given a call's own `context` (what the agent knows about this caller, kept
after the opening words: see `History`) and a `recall` step, asked with each turn's words for
what earlier calls hold near them; what it finds joins that turn's prompt (not the history).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from appliance.audio.frame import frames_of
from appliance.clock import Clock
from appliance.conversation.events import (
    AgentHungUp,
    AgentStartedSpeaking,
    AgentStoppedSpeaking,
    CallEnded,
    CallerStartedSpeaking,
    CallerStoppedSpeaking,
    CallStarted,
    Event,
    EventSink,
    MemoryRecalled,
    PhraseSpoken,
    ReplyFinished,
    ReplyInterrupted,
    ReplyStarted,
    ToolCalled,
    ToolFinished,
    TranscriptFinal,
    TurnCompleted,
    TurnDiscarded,
)
from appliance.conversation.heard import Spoken, split_heard
from appliance.conversation.history import History
from appliance.conversation.persona import Persona
from appliance.conversation.phrases import PhraseCache
from appliance.conversation.ports import (
    CallLine,
    LanguageModel,
    Message,
    Recall,
    Recollection,
    SpeechToText,
    TextToSpeech,
    ToolCall,
    VoiceActivity,
)
from appliance.conversation.reply import (
    Priority,
    SpeechChunk,
    Stamps,
    Thought,
    prefetched,
    think,
    voice,
)
from appliance.conversation.sentences import sentences
from appliance.conversation.tools import ToolContext, ToolRegistry
from appliance.conversation.turns import (
    Ended,
    Endpointer,
    Onset,
    Paused,
    Resumed,
    SilencePolicy,
    TurnConfig,
)
from appliance.observability.metrics import Metrics

__all__ = ["CallSession", "Conversation", "Engines", "SessionConfig"]

_log = logging.getLogger(__name__)
_WORD = re.compile(r"\w")


@dataclass(frozen=True, slots=True)
class Engines:
    stt: SpeechToText
    llm: LanguageModel
    tts: TextToSpeech
    vad: VoiceActivity


@dataclass(frozen=True, slots=True)
class SessionConfig:
    persona: Persona
    turn: TurnConfig = field(default_factory=TurnConfig)
    max_history_turns: int = 12
    no_input_timeout_s: float = 8.0
    """Silence after the agent's last words before it asks whether anyone is there."""
    max_call_s: float = 1800.0
    speculate: bool = True
    """Start STT and the reply at the first pause instead of waiting for the endpoint."""
    recall_budget_s: float = 0.5
    """A recall slower than this is skipped for the turn: the caller is waiting."""


class Conversation(Protocol):
    """What holds a call until it ends: a CallSession, or one wrapped with its records."""

    async def run(self) -> str:
        """Hold the call; returns why it ended."""
        ...


class _CallOver(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(eq=False, slots=True)
class _Reply:
    """One reply in flight: a caller turn's answer, or a fixed phrase."""

    kind: Literal["turn", "phrase"]
    stamps: Stamps
    confirmed: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    turn: int = 0
    audio: bytes = b""
    user_text: str | None = None
    thought: Thought = field(default_factory=Thought)
    written: list[str] = field(default_factory=list)
    """Every sentence the model completed, heard or not."""
    spoken: dict[int, Spoken] = field(default_factory=dict)
    """Sentences that reached the line, by index, with their frame positions."""
    hang_up_after: str | None = None
    """Set to a reason when the call should end once this reply has been heard."""
    recalled: tuple[Recollection, ...] = ()
    finished: bool = False
    """Its end was told (TurnCompleted or PhraseSpoken)."""

    @property
    def done(self) -> bool:
        return self.task is None or self.task.done()

    @property
    def playing(self) -> bool:
        return self.stamps.first_audio is not None


class CallSession:
    def __init__(
        self,
        line: CallLine,
        engines: Engines,
        config: SessionConfig,
        *,
        tools: ToolRegistry,
        phrases: PhraseCache,
        clock: Clock,
        sink: EventSink | None = None,
        metrics: Metrics | None = None,
        context: Sequence[Message] = (),
        recall: Recall | None = None,
    ) -> None:
        self._line = line
        self._engines = engines
        self._config = config
        self._tools = tools
        self._phrases = phrases
        self._clock = clock
        self._sink = sink
        self._metrics = metrics
        self._recall = recall
        self._known = " ".join(m.content for m in context)
        persona = config.persona
        self._history = History(
            [Message(role="system", content=persona.system_prompt)],
            max_turns=config.max_history_turns,
            context=context,
        )
        self._endpointer = Endpointer(config.turn, SilencePolicy(config.turn.endpoint_ms))
        self._tool_context = ToolContext(call=line.info)
        self._reply: _Reply | None = None
        self._carry = ""
        self._carry_audio = b""
        self._turns = 0
        self._reprompts = 0
        self._last_activity = 0.0
        self._tg: asyncio.TaskGroup | None = None

    @property
    def history(self) -> list[Message]:
        """The conversation as the model will next see it (system prompt included)."""
        return self._history.messages()

    async def run(self) -> str:
        """Hold the call until it ends; returns why it ended."""
        started = self._clock.now()
        self._last_activity = started
        self._emit(CallStarted(info=self._line.info, at=started))
        reason = "caller hung up"
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                tg.create_task(self._listen(started), name="listen")
                self._say(self._config.persona.greeting)
        except* _CallOver as over:
            reason = next(e.reason for e in over.exceptions if isinstance(e, _CallOver))
        await self._cut_off_by_hang_up()
        self._emit(CallEnded(reason=reason, at=self._clock.now()))
        return reason

    async def _cut_off_by_hang_up(self) -> None:
        """The call ended during a reply: it was cut off, and the caller heard only part of it."""
        reply = self._reply
        if reply is None or reply.finished or not reply.playing:
            return
        try:
            heard_until = await self._line.clear()
        except Exception:
            heard_until = 0  # the line is gone: count nothing as heard
        heard, unsaid = _heard_of(reply, heard_until)
        if reply.kind == "turn" and reply.turn > 0:
            self._emit(ReplyInterrupted(turn=reply.turn, heard=heard, unsaid=unsaid))
        await self._finish(reply, interrupted=True, heard=heard)

    # --- listening ------------------------------------------------------------------------------

    async def _listen(self, started: float) -> None:
        detector = self._engines.vad.detector()
        ending = False
        async for frame in self._line.listen():
            now = self._clock.now()
            probability = await detector.probability(frame)
            for event in self._endpointer.push(frame, probability, now):
                await self._on_turn_event(event)
            if ending:
                continue
            if now - started >= self._config.max_call_s:
                ending = True
                await self._stop_reply()
                self._say(self._config.persona.goodbye_time_limit, hang_up="time limit")
            elif self._idle_for(now) >= self._config.no_input_timeout_s:
                self._reprompts += 1
                if self._reprompts == 1:
                    self._say(self._config.persona.reprompt)
                else:
                    ending = True
                    self._say(self._config.persona.goodbye_no_input, hang_up="no input")
        raise _CallOver("caller hung up")

    def _idle_for(self, now: float) -> float:
        if self._endpointer.speaking or (self._reply is not None and not self._reply.done):
            self._last_activity = now
            return 0.0
        return now - self._last_activity

    async def _on_turn_event(self, event: Onset | Paused | Resumed | Ended) -> None:
        match event:
            case Onset(at=at):
                active = self._reply is not None and not self._reply.done
                self._emit(CallerStartedSpeaking(at=at, during_reply=active))
                self._reprompts = 0
                if active:
                    await self._interrupt()
            case Paused(audio=audio, speech_end=speech_end, speech_ms=speech_ms):
                self._emit(CallerStoppedSpeaking(at=speech_end, speech_ms=speech_ms))
                if self._config.speculate:
                    self._start_turn(audio, speech_end)
            case Resumed():
                reply = self._reply
                if reply is not None and reply.kind == "turn" and not reply.confirmed.is_set():
                    await self._cancel(reply)
                    self._emit(TurnDiscarded(turn=self._turns + 1, reason="caller went on"))
            case Ended(audio=audio, speech_end=speech_end):
                reply = self._reply
                speculative = (
                    reply is not None and reply.kind == "turn" and not reply.confirmed.is_set()
                )
                if not speculative:
                    reply = self._start_turn(audio, speech_end)
                assert reply is not None
                self._turns += 1
                reply.turn = self._turns
                reply.stamps.endpoint = self._clock.now()
                reply.confirmed.set()
            case _:
                raise AssertionError(event)

    # --- replies --------------------------------------------------------------------------------

    def _start_turn(self, audio: bytes, speech_end: float) -> _Reply:
        reply = _Reply(kind="turn", stamps=Stamps(speech_end=speech_end), audio=audio)
        self._launch(reply, self._respond(reply, audio))
        return reply

    def _say(self, text: str, *, hang_up: str | None = None) -> None:
        reply = _Reply(kind="phrase", stamps=Stamps(), hang_up_after=hang_up)
        reply.confirmed.set()
        self._launch(reply, self._speak_phrase(reply, text))

    def _launch(self, reply: _Reply, work: object) -> None:
        assert self._tg is not None
        self._reply = reply
        reply.task = self._tg.create_task(work, name=f"reply-{reply.kind}")  # type: ignore[arg-type]

    async def _speak_phrase(self, reply: _Reply, text: str) -> None:
        try:
            pcm = await self._phrases.get(text)
        except Exception:
            _log.exception("could not synthesize %r", text)
            self._count_error("tts")
        else:
            await self._play(reply, _one_chunk(text, pcm))
            await self._line.drain()
            self._history.add(Message(role="assistant", content=text))
        await self._finish(reply)

    async def _respond(self, reply: _Reply, audio: bytes) -> None:
        stamps = reply.stamps
        stamps.stt_start = self._clock.now()
        try:
            transcript = await self._engines.stt.transcribe(self._carry_audio + audio)
        except Exception:
            _log.exception("speech to text failed")
            self._count_error("stt")
            await reply.confirmed.wait()
            await self._play_phrase_in(reply, self._config.persona.trouble)
            return
        stamps.stt_end = self._clock.now()
        said = " ".join(part for part in (self._carry, transcript.text.strip()) if part)
        reply.user_text = said
        if self._reply is reply:
            self._endpointer.hint(said)
        if not _WORD.search(said):
            await reply.confirmed.wait()
            self._emit(TurnDiscarded(turn=reply.turn, reason="no words heard"))
            self._turns -= 1
            reply.turn = 0
            await self._finish(reply)
            return
        user = Message(role="user", content=said)
        notes = await self._recall_for(reply, said)
        persona = self._config.persona
        priority = Priority()
        thinking = think(
            self._engines.llm,
            self._tools,
            self._tool_context,
            self._history.messages(*notes, user),
            apology=persona.apology,
            clock=self._clock,
            stamps=reply.stamps,
            thought=reply.thought,
            before_tool=reply.confirmed.wait,
            priority=priority,
            on_tool=lambda call, ok, result: self._on_tool(reply, call, ok, result),
        )
        try:
            async with (
                prefetched(thinking, 256) as text,
                prefetched(
                    voice(
                        self._engines.tts,
                        _noting(sentences(text), reply.written),
                        clock=self._clock,
                        stamps=stamps,
                        priority=priority,
                    ),
                    2,
                ) as speech,
            ):
                # Everything above runs ahead speculatively; nothing is heard before the endpoint.
                await reply.confirmed.wait()
                self._carry, self._carry_audio = "", b""
                self._emit(
                    TranscriptFinal(
                        turn=reply.turn,
                        text=said,
                        confidence=transcript.confidence,
                        engine=transcript.engine,
                    )
                )
                if reply.recalled:
                    self._emit(MemoryRecalled(turn=reply.turn, found=reply.recalled))
                self._emit(ReplyStarted(turn=reply.turn, at=self._clock.now()))
                await self._play(reply, speech)
        except Exception:
            _log.exception("the reply failed")
            self._count_error("reply")
            if not reply.playing:
                self._carry, self._carry_audio = "", b""
                await self._play_phrase_in(reply, persona.trouble)
                return
        await self._line.drain()
        self._remember(reply, user, " ".join(s.text for s in reply.spoken.values()))
        if self._tool_context.hang_up_after_reply:
            reply.hang_up_after = "agent ended the call"
        await self._finish(reply)

    async def _recall_for(self, reply: _Reply, said: str) -> list[Message]:
        """What earlier calls hold near `said` that this call's context does not already say."""
        if self._recall is None:
            return []
        stamps = reply.stamps
        stamps.recall_start = self._clock.now()
        try:
            async with asyncio.timeout(self._config.recall_budget_s):
                reply.recalled = tuple(await self._recall.recall(said))
        except (Exception, TimeoutError) as exc:
            # Memory is a help, not a dependency: the turn goes on without it.
            _log.warning("recall failed for this turn: %r", exc)
            self._count_error("recall")
        stamps.recall_end = self._clock.now()
        new = [r.text for r in reply.recalled if r.text not in self._known]
        if not new:
            return []
        lines = "\n".join(f"- {text}" for text in new)
        return [Message(role="system", content=f"From earlier calls with this caller:\n{lines}")]

    async def _play_phrase_in(self, reply: _Reply, text: str) -> None:
        """Say a fixed phrase as this turn's reply (after a failure)."""
        with contextlib.suppress(Exception):
            await self._play(reply, _one_chunk(text, await self._phrases.get(text)))
            await self._line.drain()
        await self._finish(reply)

    async def _play(self, reply: _Reply, speech: AsyncIterator[SpeechChunk]) -> None:
        async for chunk in speech:
            for frame in frames_of(chunk.pcm):
                position = await self._line.play(frame)
                if reply.stamps.first_audio is None:
                    reply.stamps.first_audio = self._clock.now()
                    self._emit(AgentStartedSpeaking(turn=reply.turn, at=reply.stamps.first_audio))
                known = reply.spoken.get(chunk.sentence)
                start = known.start if known is not None else position
                reply.spoken[chunk.sentence] = Spoken(chunk.text, start, position + 1)

    def _remember(self, reply: _Reply, user: Message, said: str) -> None:
        self._history.add(user)
        for message in reply.thought.messages:
            self._history.add(message)
        if said:
            self._history.add(Message(role="assistant", content=said))

    async def _finish(self, reply: _Reply, *, interrupted: bool = False, heard: str = "") -> None:
        reply.finished = True
        now = self._clock.now()
        self._last_activity = now
        if reply.playing:
            self._emit(AgentStoppedSpeaking(turn=reply.turn, at=now))
        if reply.kind == "phrase" and reply.spoken:
            text = " ".join(s.text for s in reply.spoken.values())
            said = heard if interrupted else text
            self._emit(PhraseSpoken(text=text, heard=said, interrupted=interrupted))
        if reply.kind == "turn" and reply.user_text is not None and reply.turn > 0:
            said = heard if interrupted else " ".join(s.text for s in reply.spoken.values())
            if not interrupted:
                self._emit(ReplyFinished(turn=reply.turn, text=said))
            timings = reply.stamps.timings_ms()
            self._emit(
                TurnCompleted(
                    turn=reply.turn,
                    transcript=reply.user_text,
                    reply=said,
                    interrupted=interrupted,
                    timings_ms=timings,
                    starts_ms=reply.stamps.starts_ms(),
                )
            )
            self._observe(timings)
        if reply.hang_up_after is not None and not interrupted:
            await self._line.hang_up()
            self._emit(AgentHungUp(reason=reply.hang_up_after))
            raise _CallOver(reply.hang_up_after)

    # --- interruption ---------------------------------------------------------------------------

    async def _cancel(self, reply: _Reply) -> None:
        if reply.task is not None and not reply.task.done():
            reply.task.cancel()
            await asyncio.wait([reply.task])
        if self._reply is reply:
            self._reply = None

    async def _stop_reply(self) -> None:
        if self._reply is not None and not self._reply.done:
            await self._interrupt()

    async def _interrupt(self) -> None:
        """Barge-in: stop the reply, clear the line, keep only what the caller heard."""
        reply = self._reply
        assert reply is not None
        await self._cancel(reply)
        heard, unsaid = _heard_of(reply, await self._line.clear())
        if self._metrics is not None:
            self._metrics.barge_ins.inc()
        if reply.kind == "phrase":
            if heard:
                self._history.add(Message(role="assistant", content=heard))
            await self._finish(reply, interrupted=True, heard=heard)
            return
        if reply.turn == 0:
            return
        if not heard:
            # Nothing reached the caller: what they said joins their next turn (as text when it
            # was transcribed already, as audio when it was not).
            if reply.user_text is None:
                self._carry_audio += reply.audio
            else:
                self._carry = reply.user_text
            self._emit(TurnDiscarded(turn=reply.turn, reason="caller went on before the reply"))
            self._turns -= 1
            return
        self._emit(ReplyInterrupted(turn=reply.turn, heard=heard, unsaid=unsaid))
        said = reply.user_text or ""
        self._remember(reply, Message(role="user", content=said), heard + " ...")
        await self._finish(reply, interrupted=True, heard=heard)

    # --- bookkeeping ----------------------------------------------------------------------------

    def _on_tool(self, reply: _Reply, call: ToolCall, ok: bool | None, result: str) -> None:
        if ok is None:
            self._emit(ToolCalled(turn=reply.turn, name=call.name, arguments=call.arguments))
        else:
            self._emit(ToolFinished(turn=reply.turn, name=call.name, ok=ok, result=result))

    def _emit(self, event: Event) -> None:
        if self._sink is not None:
            try:
                self._sink(event)
            except Exception:
                _log.exception("an event observer failed on %s", type(event).__name__)

    def _observe(self, timings: dict[str, float]) -> None:
        if self._metrics is None:
            return
        for stage, ms in timings.items():
            if stage == "turn":
                self._metrics.turn_latency.observe(ms / 1000.0)
            else:
                self._metrics.stage_seconds.labels(stage).observe(ms / 1000.0)

    def _count_error(self, kind: str) -> None:
        if self._metrics is not None:
            self._metrics.errors.labels(kind).inc()


def _heard_of(reply: _Reply, heard_until: int) -> tuple[str, str]:
    """(what the caller heard of `reply`, what they did not) once the line has heard up to here."""
    heard, unsaid = split_heard(list(reply.spoken.values()), heard_until)
    never_started = reply.written[len(reply.spoken) :]
    return heard, " ".join([unsaid, *never_started]).strip()


async def _noting(items: AsyncIterator[str], seen: list[str]) -> AsyncIterator[str]:
    async for item in items:
        seen.append(item)
        yield item


async def _one_chunk(text: str, pcm: bytes) -> AsyncIterator[SpeechChunk]:
    yield SpeechChunk(sentence=0, text=text, pcm=pcm)
