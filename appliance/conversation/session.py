"""One call: a listen loop and the replies it starts, in one TaskGroup.

The whole path of a call, in the order it happens here:

- `run` starts the listen loop and the greeting, and waits for the call's end: the line's audio
  ends (the caller hung up) or a reply ends with `Outcome.hang_up` (the agent hangs up).
- `_listen` runs the caller's audio through the VAD and the `Endpointer` (turns.py) and the
  no-input and time-limit timers (timers.py); `_on_turn_event` acts on what the caller did.
- At the caller's first pause, `_answer` starts speculatively (a `Reply`, replies.py, in state
  PREPARING): STT, recall, then think.py -> sentences.py -> voice.py run ahead into bounded
  buffers (streams.py), but nothing is played until the end of the turn CONFIRMS it. If the
  caller goes on speaking, it is DISCARDED.
- `_play` sends its audio to the line (PLAYING). Caller speech over it is a barge-in
  (`_interrupt`): the reply is cancelled, the line cleared, and the history keeps only what the
  caller heard (heard.py). If they cut in before hearing anything, what they said is carried
  into their next turn. On a line whose microphone hears the agent (`Echoing`: a speakerphone)
  the agent is held first, and the speech is a barge-in only if it goes on once the echo of
  what was played has died away (`_weigh_doubt`); otherwise it was the echo, and the agent
  carries on.
- Every reply ends in `_conclude`, which tells the observers (events.py) how it went.
- A reply heard to its end may hand the caller to a person (handoff.py): the hand-off tool set
  `ToolContext.transfer_to`, or the caller pressed 0. If nobody takes the call, the caller's
  next turn is taken down as a message (`MessageTaken`) and the call goes on.
- Keys the caller presses (a `Keypad` line) cut in like speech; each but 0 becomes a turn of
  its own, "(pressed 1)", so the model can take a key as an answer ("press 1 to confirm").

A session may be given a call's own `context` (what the agent knows about this caller, kept
after the opening words: see `History`) and a `recall` step, asked with each turn's words for
what earlier calls hold near them; what it finds joins that turn's prompt (not the history).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Coroutine, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol, assert_never

from appliance.audio.frame import SAMPLE_RATE, frames_of, rms_dbfs
from appliance.clock import Clock
from appliance.conversation.events import (
    HELLO_OVER_GREETING,
    AgentHungUp,
    AgentStartedSpeaking,
    CallEnded,
    CallerStartedSpeaking,
    CallerStoppedSpeaking,
    CallStarted,
    DtmfReceived,
    EchoDismissed,
    EventSink,
    MessageTaken,
    ToolCalled,
    ToolFinished,
    ToolReadBack,
    Transfer,
    TransferFailed,
)
from appliance.conversation.grounding import Grounding
from appliance.conversation.guard import Guard, SentenceGate
from appliance.conversation.handoff import (
    cannot_transfer,
    hand_off,
    message_taken,
    not_answering,
    put_through,
)
from appliance.conversation.heard import Spoken
from appliance.conversation.history import History
from appliance.conversation.observers import Observers, spoken_text
from appliance.conversation.persona import Persona
from appliance.conversation.phrases import PhraseCache
from appliance.conversation.ports import (
    CallLine,
    Echoing,
    EndOfTurn,
    Handoff,
    Keypad,
    LanguageModel,
    LineLoss,
    Message,
    Recall,
    Screen,
    SpeechToText,
    TextToSpeech,
    ToolCall,
    Transcript,
    Verdict,
    VoiceActivity,
)
from appliance.conversation.replies import Outcome, Reply, ReplyState, Result
from appliance.conversation.sentences import sentences
from appliance.conversation.streams import prefetched, tapped
from appliance.conversation.think import Mind, Prompt, think
from appliance.conversation.timers import CallTimers, Due
from appliance.conversation.timings import Span
from appliance.conversation.tools import TRANSFER_TOOL, ToolContext, ToolRegistry
from appliance.conversation.turns import (
    Ended,
    Endpointer,
    Onset,
    Paused,
    Resumed,
    SilencePolicy,
    TurnConfig,
    TurnEvent,
)
from appliance.conversation.voice import Priority, SpeechChunk, stored_phrase, voice
from appliance.observability.metrics import Metrics

__all__ = ["CallSession", "Conversation", "Engines", "SessionConfig", "only_a_hello"]

_log = logging.getLogger(__name__)
_WORD = re.compile(r"\w")
_BYTES_PER_MS = SAMPLE_RATE * 2 // 1000
_VOICE_FLOOR_DBFS = -50.0
"""Quieter than this, a frame is not a person speaking to a speakerphone (10 dB under the
level that answers it, `LOCAL_ANSWER_LEVEL_DBFS`), whatever the voice activity detector says."""
_DOUBT_FRAMES = 25
"""How long past the echo's reach speech over a held agent may stay in doubt (500 ms)."""
_MAX_HEARD_MS = 29_000
"""The most of one turn's speech handed to STT at once: whisper hears a 30 s window and
silently drops the rest. Speech carried over from cut-in turns can add up past it (a caller
who talks for minutes); the oldest is then left out, and the turn's words say how much."""
_HELLO = frozenset(
    """hello hallo hullo hi hey hiya yes yeah yep ok okay oh um uh er good morning afternoon
    evening there anybody anyone someone""".split()  # noqa: SIM905 - a word list, one string
)


def only_a_hello(said: str) -> bool:
    """ "Hello?", "Hi there.", "Yes, hello": a caller checking the line, not asking anything."""
    words = re.findall(r"[a-z']+", said.lower())
    return bool(words) and all(word in _HELLO for word in words)


def _watched(gate: SentenceGate | None, sentences: AsyncIterator[str]) -> AsyncIterator[str]:
    return sentences if gate is None else gate.watch(sentences)


def _unsupported(asked: list[Message], answered: list[Message], sentence: str) -> list[str]:
    """The facts in the agent's `sentence` that neither the prompt (`asked`: the persona, the
    business profile, the conversation, recalled notes) nor this turn's tool results
    (`answered`, read as the sentence is checked) stated."""
    known = Grounding(m.content for m in asked)
    for message in answered:
        known.add(message.content)
    return known.unsupported(sentence)


@dataclass(frozen=True, slots=True)
class Engines:
    stt: SpeechToText
    llm: LanguageModel
    tts: TextToSpeech
    vad: VoiceActivity
    turn: EndOfTurn | None = None
    """Hears from the voice whether a pause ends the turn; None leaves it to the words."""


_RECALLED = (
    ("business", "From the business's answers to common questions:"),
    ("caller", "From earlier calls with this caller:"),
)


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
    abuse_turns: int = 3
    """The caller's turns the safety screen may refuse before the call is ended politely."""
    greeting_hold_ms: int = 700
    """A caller talking over the greeting cuts it only once they have said this much: a
    "hello?" as the call connects is answered by the greeting itself, not by cutting it."""


@dataclass(slots=True)
class _Doubt:
    """Speech over the agent on an `Echoing` line, with the agent held until it is known
    whether it was a person or the agent's own echo."""

    onset: float
    held_at: float
    frames_left: int
    """Caller frames still to come that may carry the echo of what was played before the hold."""
    cuts: bool
    """A caller's speech would cut the reply (not the greeting, which a hello does not cut)."""


class Conversation(Protocol):
    """What holds a call until it ends (a CallSession; a test's stand-in)."""

    async def run(self) -> str:
        """Hold the call; returns why it ended."""
        ...


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
        screen: Screen | None = None,
    ) -> None:
        self._line = line
        self._engines = engines
        self._config = config
        self._phrases = phrases
        self._clock = clock
        self._observers = Observers(sink, metrics)
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
        self._mind = Mind(engines.llm, tools, self._tool_context, persona.apology, clock)
        self._guard = (
            Guard(
                screen,
                self._observers.safety,
                refusal=persona.refusal,
                refusals=persona.refusals,
                abuse_limit=config.abuse_turns,
                on_error=partial(self._observers.error, "safety"),
            )
            if screen is not None
            else None
        )
        self._reply: Reply | None = None
        self._greeting: Reply | None = None
        self._over_greeting = False
        """The caller's current turn began while the greeting was playing."""
        self._last_turn = 0
        """The number of the last turn that was not discarded."""
        self._carry = ""
        self._carry_audio = b""
        self._tg: asyncio.TaskGroup | None = None
        self._timers: CallTimers | None = None
        self._over: asyncio.Future[str] | None = None
        self._handing_off = False
        """A transfer is under way: the caller's speech and the timers wait for its outcome."""
        self._caller_gone = False
        """The line's audio has ended."""
        self._message_for: Handoff | None = None
        """Nobody took the caller: their next turn is a message for this person."""
        self._doubt: _Doubt | None = None
        """Speech over the agent that may be its echo (an `Echoing` line only)."""

    @property
    def history(self) -> list[Message]:
        """The conversation as the model will next see it (system prompt included)."""
        return self._history.messages()

    async def run(self) -> str:
        """Hold the call until it ends; returns why it ended."""
        config = self._config
        self._over = asyncio.get_running_loop().create_future()
        self._timers = CallTimers(
            self._clock, no_input_s=config.no_input_timeout_s, max_call_s=config.max_call_s
        )
        self._observers.emit(CallStarted(info=self._line.info, at=self._clock.now()))
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            listening = tg.create_task(self._listen(), name="listen")
            keys = (
                tg.create_task(self._keys(self._line), name="keys")
                if isinstance(self._line, Keypad)
                else None
            )
            self._open()
            reason = await self._over
            listening.cancel()
            if keys is not None:
                keys.cancel()
            if self._reply is not None and self._reply.active and self._reply.task is not None:
                self._reply.task.cancel()  # an ended reply may still be hanging up: let it
            greeting = self._greeting
            if greeting is not None and greeting.active and greeting.task is not None:
                # Talked over, the greeting plays on beside the caller's turn: once the call is
                # over it must stop too, or the task group waits on a drain that never ends.
                greeting.task.cancel()
        await self._cut_off_by_hang_up()
        self._observers.emit(CallEnded(reason=reason, at=self._clock.now()))
        return reason

    def _open(self) -> None:
        """The greeting; or, for a caller back from a hand-off nobody answered, an offer to take
        a message."""
        back = self._line.info.back_from
        if back is None:
            self._greeting = self._say(self._config.persona.greeting)
            return
        self._observers.emit(TransferFailed(target=back.target, reason="nobody answered"))
        self._message_for = back
        self._say(not_answering(back.who))

    def _end(self, reason: str) -> None:
        """The call ends, for the first reason given."""
        assert self._over is not None
        if not self._over.done():
            self._over.set_result(reason)

    async def _cut_off_by_hang_up(self) -> None:
        """The call ended during a reply: it was cut off, and the caller heard only part of it."""
        reply = self._reply
        if reply is None or not reply.active:
            return
        if reply.state is not ReplyState.PLAYING:
            reply.move(ReplyState.DISCARDED)  # nothing was heard, and nobody is left to tell
            return
        try:
            heard_until = await self._line.clear()
        except Exception:
            heard_until = 0  # the line is gone: count nothing as heard
        heard, unsaid = reply.heard_until(heard_until)
        self._conclude(reply, Outcome(Result.INTERRUPTED, heard=heard, unsaid=unsaid))

    # --- listening ------------------------------------------------------------------------------

    async def _listen(self) -> None:
        assert self._timers is not None
        detector = self._engines.vad.detector()
        async for frame in self._line.listen():
            now = self._clock.now()
            probability = await detector.probability(frame)
            events = self._endpointer.push(frame, probability, now)
            if self._doubt is not None:
                events = await self._weigh_doubt(self._doubt, frame, probability, events, now)
            for event in events:
                await self._on_turn_event(event)
            if (
                self._over_greeting
                and self._greeting_playing()
                and self._endpointer.voiced_ms >= self._config.greeting_hold_ms
            ):
                await self._interrupt(self._greeting)  # more than a hello: let them speak
            busy = (
                self._endpointer.speaking
                or self._handing_off
                or (self._reply is not None and self._reply.active)
            )
            await self._on_timer(self._timers.due(busy=busy))
        self._caller_gone = True
        if not self._handing_off:
            self._end(self._why_gone())  # during a hand-off the line ends as it succeeds

    def _why_gone(self) -> str:
        """Why the caller's audio ended: they hung up, unless the line lost the call."""
        lost = self._line.lost_because if isinstance(self._line, LineLoss) else None
        return lost or "caller hung up"

    async def _on_timer(self, due: Due | None) -> None:
        persona = self._config.persona
        match due:
            case None:
                pass
            case Due.REPROMPT:
                self._say(persona.reprompt)
            case Due.NO_INPUT:
                self._say(persona.goodbye_no_input, hang_up="no input")
            case Due.TIME_LIMIT:
                if self._reply is not None and self._reply.active:
                    await self._interrupt()
                self._say(persona.goodbye_time_limit, hang_up="time limit")
            case _:
                assert_never(due)

    async def _on_turn_event(self, event: TurnEvent) -> None:
        assert self._timers is not None
        if self._handing_off:
            return  # the caller is being put through: nobody here answers them meanwhile
        reply = self._reply
        match event:
            case Onset(at=at):
                active = reply is not None and reply.active
                cuts = active and not (reply is self._greeting and self._config.greeting_hold_ms)
                playing = reply is not None and reply.state is ReplyState.PLAYING
                if playing and isinstance(self._line, Echoing) and (held := self._line.hold()):
                    now = self._clock.now()
                    self._doubt = _Doubt(onset=at, held_at=now, frames_left=held, cuts=cuts)
                    _log.debug(f"speech over the agent: held for {held} frames of its echo")
                    return
                self._caller_started(at, during_reply=active)
                if cuts:
                    await self._interrupt()
            case Paused(audio=audio, speech_end=speech_end, speech_ms=speech_ms):
                self._observers.emit(CallerStoppedSpeaking(at=speech_end, speech_ms=speech_ms))
                if self._config.speculate:
                    self._start_turn(audio, speech_end)
                if self._engines.turn is not None:
                    self._hear_the_end(self._engines.turn, self._carry_audio + audio)
            case Resumed():
                if reply is not None and reply.state is ReplyState.PREPARING:
                    await self._cancel(reply)
                    self._conclude(reply, Outcome(Result.DISCARDED, why="caller went on"))
            case Ended(audio=audio, speech_end=speech_end):
                if reply is None or reply.state is not ReplyState.PREPARING:
                    reply = self._start_turn(audio, speech_end)
                reply.turn = self._last_turn + 1
                reply.confirmed_at = self._clock.now()
                reply.move(ReplyState.CONFIRMED)
                self._over_greeting = False
            case _:
                assert_never(event)

    def _caller_started(self, at: float, *, during_reply: bool) -> None:
        assert self._timers is not None
        self._observers.emit(CallerStartedSpeaking(at=at, during_reply=during_reply))
        self._timers.caller_spoke()
        self._over_greeting = self._greeting_playing()

    async def _weigh_doubt(
        self, doubt: _Doubt, frame: bytes, probability: float, events: list[TurnEvent], now: float
    ) -> list[TurnEvent]:
        """One more caller frame while the agent is held for speech over it: the events that
        frame brought, to act on (none while it is still in doubt, or when it was the echo).

        Speech still voiced once the echo of what was played has had time to arrive is a
        person cutting in. Speech that stops before then (a pause: `Paused` or `Ended`)
        stopped with the agent's voice: the echo, which the canceller leaked. A voice
        activity detector trails the sound it hears (Silero's said 0.7 for frames 60 dB below
        full scale as the echo died away), so only a frame loud enough to be a person counts.
        Nothing that was a person by `_DOUBT_FRAMES` after the echo's reach was not one: a
        detector can hover between its thresholds on the residue, and the agent must not wait
        on it."""
        doubt.frames_left -= 1
        reply = self._reply
        voiced = probability >= self._config.turn.start_threshold
        if doubt.frames_left < 0 and voiced and rms_dbfs(frame) > _VOICE_FLOOR_DBFS:
            self._doubt = None
            self._observers.echo_held("caller")
            held_ms = (now - doubt.held_at) * 1000
            _log.debug(f"held {held_ms:.0f} ms: the caller ({rms_dbfs(frame):.0f} dBFS)")
            active = reply is not None and reply.active
            self._caller_started(doubt.onset, during_reply=active)
            if active and doubt.cuts:
                await self._interrupt()
            self._release()
            return events
        if any(isinstance(e, Paused | Ended) for e in events) or doubt.frames_left < -_DOUBT_FRAMES:
            self._doubt = None
            self._observers.echo_held("echo")
            self._endpointer.forget()
            self._release()
            held_ms = (now - doubt.held_at) * 1000
            _log.debug(f"held {held_ms:.0f} ms: its echo, the agent goes on")
            self._observers.emit(EchoDismissed(at=now, held_ms=held_ms))
            return []
        return events

    def _release(self) -> None:
        """The agent's audio plays again (after a hold for speech over it)."""
        if isinstance(self._line, Echoing):
            self._line.release()

    def _hear_the_end(self, model: EndOfTurn, audio: bytes) -> None:
        """Score this pause with the end-of-turn model, beside its transcription; the score
        moves the endpoint only while the pause lasts (the caller may go on first)."""
        assert self._tg is not None
        pause = self._endpointer.pauses

        async def score() -> None:
            try:
                probability = await model.complete(audio)
            except Exception:
                _log.exception("the end-of-turn model failed: the words alone decide")
                self._observers.error("turn")
                return
            self._endpointer.sounds_complete(probability, pause=pause)

        self._tg.create_task(score(), name="end-of-turn")

    # --- replies --------------------------------------------------------------------------------

    def _start_turn(self, audio: bytes, speech_end: float) -> Reply:
        reply = Reply(
            kind="turn",
            state=ReplyState.PREPARING,
            audio=audio,
            speech_end=speech_end,
            over_greeting=self._over_greeting,
        )
        self._launch(reply, self._answer(reply))
        return reply

    def _say(
        self, text: str, *, hang_up: str | None = None, transfer: Handoff | None = None
    ) -> Reply:
        reply = Reply(kind="phrase", state=ReplyState.CONFIRMED)
        self._launch(reply, self._speak_phrase(reply, text, hang_up, transfer))
        return reply

    def _greeting_playing(self) -> bool:
        return self._greeting is not None and self._greeting.active

    async def _after_greeting(self) -> None:
        """Returns once the greeting is over (a turn begun over it is answered after it)."""
        greeting = self._greeting
        if greeting is not None and greeting.task is not None and not greeting.task.done():
            await asyncio.wait([greeting.task])

    def _launch(self, reply: Reply, work: Coroutine[Any, Any, Outcome]) -> None:
        assert self._tg is not None
        self._reply = reply
        reply.task = self._tg.create_task(
            self._see_through(reply, work), name=f"reply-{reply.kind}"
        )
        # A reply cancelled before it starts (the call ended that instant) never runs `work`:
        # close it, or it warns that it was never awaited.
        reply.task.add_done_callback(lambda _: work.close())

    async def _see_through(self, reply: Reply, work: Coroutine[Any, Any, Outcome]) -> None:
        """Run a reply to its end, unless it is cancelled (barge-in, caller hung up)."""
        outcome = await work
        self._conclude(reply, outcome)
        if outcome.transfer is not None and outcome.hang_up is None:
            await self._hand_off(outcome.transfer)
        if outcome.hang_up is not None:
            self._end(outcome.hang_up)  # before the line goes: its end is not the caller's doing
            await self._line.hang_up()
            self._observers.emit(AgentHungUp(reason=outcome.hang_up))

    async def _speak_phrase(
        self, reply: Reply, text: str, hang_up: str | None, transfer: Handoff | None = None
    ) -> Outcome:
        try:
            pcm = await self._phrases.get(text)
        except Exception:
            _log.exception("could not synthesize %r", text)
            self._observers.error("tts")
            return Outcome(Result.FAILED, hang_up=hang_up, transfer=transfer)
        await self._play(reply, stored_phrase(text, pcm))
        await self._line.drain()
        self._history.add(Message(role="assistant", content=text))
        return Outcome(Result.ANSWERED, hang_up=hang_up, transfer=transfer)

    async def _answer(self, reply: Reply) -> Outcome:
        """A caller turn: STT -> recall -> think -> sentences -> voice -> the line."""
        try:
            transcript = await self._transcribe(reply)
        except Exception:
            _log.exception("speech to text failed")
            self._observers.error("stt")
            await reply.confirmed()
            return await self._apologise(reply)
        said = " ".join(part for part in (self._carry, transcript.text.strip()) if part)
        reply.transcript = said
        if self._reply is reply:
            self._endpointer.hint(said)
        if (dropped := await self._nothing_to_answer(reply, said)) is not None:
            return dropped
        if reply.cut_ms:
            said = reply.transcript = f"{_cut_note(reply.cut_ms)} {said}"
        if self._message_for is not None and not reply.pressed:  # a key is no message
            return await self._take_message(reply, transcript, self._message_for)
        user = Message(role="user", content=said)
        notes, verdict = await asyncio.gather(
            self._recall_for(reply, said), self._screen_caller(reply, said)
        )
        if verdict is not None and verdict.flagged:
            return await self._refuse(reply, transcript, verdict)
        priority = Priority()
        messages = self._history.messages(*notes, user)
        gate = (
            self._guard.sentences(
                lambda: reply.turn,
                self._phrases.get,
                self._clock.now,
                partial(_unsupported, messages, reply.thought.messages),
            )
            if self._guard is not None
            else None
        )

        async def may_act() -> None:
            await reply.confirmed()
            self._tool_context.caller_said[reply.turn] = said  # for a hand-off's summary

        prompt = Prompt(
            messages=messages,
            may_act=may_act,
            on_tool=partial(self._observers.tool, reply),
            on_blocked=lambda call, why: self._observers.tool_blocked(reply.turn, call, why),
            on_readback=lambda call, text: self._observers.emit(
                ToolReadBack(turn=reply.turn, name=call.name, text=text)
            ),
            priority=priority,
        )
        tts, clock = self._engines.tts, self._clock
        result = Result.ANSWERED
        try:
            async with (
                prefetched(think(self._mind, prompt, reply.thought), 256) as text,
                prefetched(
                    voice(
                        tts,
                        _watched(gate, tapped(sentences(text), reply.written.append)),
                        clock=clock,
                        priority=priority,
                    ),
                    2,
                ) as speech,
            ):
                # Everything above runs ahead speculatively; nothing is heard before the endpoint.
                await reply.confirmed()
                await self._after_greeting()
                self._tool_context.caller_said[reply.turn] = said
                self._carry, self._carry_audio = "", b""
                self._observers.turn_started(reply, transcript, self._clock.now())
                if self._guard is not None and verdict is not None:
                    self._guard.caller_decided(reply.turn, said, verdict)
                await self._play(reply, speech if gate is None else gate.held(speech))
                if gate is not None:
                    reply.screen_hold = gate.first_hold
        except Exception:
            _log.exception("the reply failed")
            self._observers.error("reply")
            if reply.state is not ReplyState.PLAYING:
                self._carry, self._carry_audio = "", b""
                return await self._apologise(reply)
            result = Result.FAILED
        await self._line.drain()
        self._remember(reply, user, spoken_text(reply))
        hang_up = "agent ended the call" if self._tool_context.hang_up_after_reply else None
        transfer, self._tool_context.transfer_to = self._tool_context.transfer_to, None
        return Outcome(result, hang_up=hang_up, transfer=transfer)

    async def _nothing_to_answer(self, reply: Reply, said: str) -> Outcome | None:
        """No words were heard, or only a hello that the greeting answered: the turn is
        dropped (the outcome says why); None when there is something to answer."""
        if not _WORD.search(said):
            await reply.confirmed()
            return Outcome(Result.DISCARDED, why="no words heard")
        if reply.over_greeting and only_a_hello(said):
            await reply.confirmed()
            await self._after_greeting()
            if self._greeting is not None and self._greeting.state is ReplyState.FINISHED:
                # "Hello?" as the call connects: the greeting they just heard answered it.
                return Outcome(Result.DISCARDED, why=HELLO_OVER_GREETING)
        return None

    async def _transcribe(self, reply: Reply) -> Transcript:
        if reply.pressed:
            return Transcript(text=reply.pressed, confidence=1.0, engine="keypad")
        started = self._clock.now()
        audio = self._carry_audio + reply.audio
        cut = max(0, len(audio) - _MAX_HEARD_MS * _BYTES_PER_MS)
        cut -= cut % 2  # whole samples
        reply.cut_ms = cut // _BYTES_PER_MS
        if cut:
            _log.warning(
                "a %d s turn: its first %d s are not transcribed",
                len(audio) // (_BYTES_PER_MS * 1000),
                reply.cut_ms // 1000,
            )
        transcript = await self._engines.stt.transcribe(audio[cut:])
        reply.stt = Span(started, self._clock.now())
        reply.stt_engine = transcript.engine
        return transcript

    async def _recall_for(self, reply: Reply, said: str) -> list[Message]:
        """What earlier calls hold near `said` that this call's context does not already say."""
        if self._recall is None:
            return []
        started = self._clock.now()
        try:
            async with asyncio.timeout(self._config.recall_budget_s):
                reply.recalled = tuple(await self._recall.recall(said))
        except (Exception, TimeoutError) as exc:
            # Memory is a help, not a dependency: the turn goes on without it.
            _log.warning("recall failed for this turn: %r", exc)
            self._observers.error("recall")
        reply.recall = Span(started, self._clock.now())
        messages = []
        for source, heading in _RECALLED:
            new = [
                r.text for r in reply.recalled if r.source == source and r.text not in self._known
            ]
            if new:
                lines = "\n".join(f"- {text}" for text in new)
                messages.append(Message(role="system", content=f"{heading}\n{lines}"))
        return messages

    async def _screen_caller(self, reply: Reply, said: str) -> Verdict | None:
        if self._guard is None or reply.pressed:
            return None  # a key is not words to screen
        started = self._clock.now()
        try:
            return await self._guard.check(said, "caller")
        finally:
            reply.screen = Span(started, self._clock.now())

    async def _refuse(self, reply: Reply, transcript: Transcript, verdict: Verdict) -> Outcome:
        """The caller's words did not pass the screen: the model never sees them; the caller
        hears the refusal (or, after repeated abuse, the goodbye, and the call ends)."""
        guard = self._guard
        assert guard is not None
        await reply.confirmed()
        await self._after_greeting()
        self._carry, self._carry_audio = "", b""
        self._observers.turn_started(reply, transcript, self._clock.now())
        guard.caller_decided(reply.turn, reply.transcript or "", verdict)
        persona = self._config.persona
        text, hang_up = (
            (persona.goodbye_abuse, "caller was abusive")
            if guard.abusive
            else (guard.refusal(verdict), None)
        )
        await self._say_in_turn(reply, text)
        withheld = Message(role="user", content="(what the caller said was withheld: unsafe)")
        self._remember(reply, withheld, spoken_text(reply))
        return Outcome(Result.ANSWERED, hang_up=hang_up)

    async def _apologise(self, reply: Reply) -> Outcome:
        """Say the trouble phrase as this turn's reply (after a failure)."""
        await self._say_in_turn(reply, self._config.persona.trouble)
        return Outcome(Result.FAILED)

    async def _say_in_turn(self, reply: Reply, text: str) -> None:
        """A fixed phrase as this turn's reply, heard to its end (a voice that fails is logged
        and counted: the turn goes on without it)."""
        try:
            await self._play(reply, stored_phrase(text, await self._phrases.get(text)))
        except Exception:
            _log.exception("could not say %r", text)
            self._observers.error("tts")
        await self._line.drain()

    async def _play(self, reply: Reply, speech: AsyncIterator[SpeechChunk]) -> None:
        async for chunk in speech:
            if reply.first_speech is None and chunk.at is not None:
                reply.first_speech = chunk
            for frame in frames_of(chunk.pcm):
                position = await self._line.play(frame)
                if reply.state is ReplyState.CONFIRMED:
                    reply.move(ReplyState.PLAYING)
                    reply.first_audio_at = at = self._clock.now()
                    self._observers.emit(AgentStartedSpeaking(turn=reply.turn, at=at))
                known = reply.spoken.get(chunk.sentence)
                start = known.start if known is not None else position
                reply.spoken[chunk.sentence] = Spoken(chunk.text, start, position + 1)

    def _remember(self, reply: Reply, user: Message, said: str) -> None:
        self._history.add(user)
        for message in reply.thought.messages:
            self._history.add(message)
        if said:
            self._history.add(Message(role="assistant", content=said))

    # --- a person, and keys -------------------------------------------------------------------

    async def _hand_off(self, handoff: Handoff) -> None:
        """Put the caller through; if nobody takes them, say so and take a message."""
        refused = self._mind.tools.policy.transfer_refusal(handoff.target)
        if refused is not None:
            call = ToolCall(id="", name=TRANSFER_TOOL, arguments=handoff.target)
            self._observers.tool_blocked(self._last_turn, call, refused)
            self._say(cannot_transfer())
            return
        self._handing_off = True
        self._observers.emit(Transfer(target=handoff.target, summary=handoff.summary))
        problem = await hand_off(self._line, handoff)
        if problem is None:
            self._end("transferred")
            return
        self._handing_off = False
        self._observers.emit(TransferFailed(target=handoff.target, reason=problem))
        if self._caller_gone:
            self._end(self._why_gone())
            return
        self._message_for = handoff
        self._say(not_answering(handoff.who))

    async def _take_message(
        self, reply: Reply, transcript: Transcript, handoff: Handoff
    ) -> Outcome:
        """The caller's turn is their message for a person who could not take the call."""
        await reply.confirmed()
        self._message_for = None
        said = reply.transcript or ""
        self._carry, self._carry_audio = "", b""
        self._observers.turn_started(reply, transcript, self._clock.now())
        self._observers.emit(MessageTaken(to=handoff.who, target=handoff.target, text=said))
        await self._say_in_turn(reply, message_taken(handoff.who))
        self._remember(reply, Message(role="user", content=said), spoken_text(reply))
        return Outcome(Result.ANSWERED)

    async def _keys(self, keypad: Keypad) -> None:
        async for key in keypad.presses():
            at = self._clock.now()
            self._observers.emit(DtmfReceived(digit=key.digit, method=key.method, at=at))
            if self._handing_off:
                continue
            if self._reply is not None and self._reply.active:
                await self._interrupt()  # a key cuts in as speech does
            if key.digit == "0" and TRANSFER_TOOL in self._mind.tools:
                await self._ask_for_person()
            else:
                self._key_turn(f"(pressed {key.digit})")

    def _key_turn(self, pressed: str) -> None:
        """A turn of its own for a key: the model reads it as the caller's words."""
        now = self._clock.now()
        reply = Reply(kind="turn", state=ReplyState.CONFIRMED, pressed=pressed, speech_end=now)
        reply.turn = self._last_turn + 1
        reply.confirmed_at = now
        self._launch(reply, self._answer(reply))

    async def _ask_for_person(self) -> None:
        """The caller pressed 0: the hand-off tool runs as if the model had asked for it."""
        tools, context = self._mind.tools, self._tool_context
        call = ToolCall(id=f"key0-{self._last_turn}", name=TRANSFER_TOOL, arguments="{}")
        turn = self._last_turn
        self._observers.emit(ToolCalled(turn=turn, name=call.name, arguments=call.arguments))
        refused = tools.refusal(call, context)
        if refused is not None:
            self._observers.tool_blocked(turn, call, refused)
            self._say(cannot_transfer())
            return
        ok, result = await tools.run(call, tools.parse(call), context)
        self._observers.emit(ToolFinished(turn=turn, name=call.name, ok=ok, result=result))
        handoff, context.transfer_to = context.transfer_to, None
        if handoff is None:
            self._say(cannot_transfer())
        else:
            self._say(put_through(handoff.who), transfer=handoff)

    # --- interruption ---------------------------------------------------------------------------

    async def _cancel(self, reply: Reply) -> None:
        if reply.task is not None and not reply.task.done():
            reply.task.cancel()
            await asyncio.wait([reply.task])
        if self._reply is reply:
            self._reply = None

    async def _interrupt(self, reply: Reply | None = None) -> None:
        """Barge-in: stop the reply (the current one by default), clear the line, keep only
        what the caller heard."""
        reply = reply or self._reply
        assert reply is not None
        if reply is self._reply:
            self._tool_context.transfer_to = None  # "I'll put you through" cut off: not now
        await self._cancel(reply)
        # A turn waiting for the greeting to end has nothing on the line: the greeting has.
        waiting = reply is not self._greeting and self._greeting_playing()
        heard, unsaid = reply.heard_until(0 if waiting else await self._line.clear())
        if self._doubt is not None:  # the time limit, or a key, came while the agent was held
            self._doubt = None
            self._release()
        self._observers.barge_in()
        self._conclude(reply, self._cut_in(reply, heard, unsaid))

    def _cut_in(self, reply: Reply, heard: str, unsaid: str) -> Outcome:
        """How a reply the caller cut into ended, and what the history keeps of it."""
        if reply.kind == "phrase":
            if heard:
                self._history.add(Message(role="assistant", content=heard))
            return Outcome(Result.INTERRUPTED, heard=heard, unsaid=unsaid)
        if reply.state is ReplyState.PREPARING:
            return Outcome(Result.DISCARDED)
        if not heard:
            # Nothing reached the caller: what they said joins their next turn (as text when it
            # was transcribed already, as audio when it was not).
            if reply.transcript is None:
                self._carry_audio += reply.audio
            else:
                self._carry = reply.transcript
            return Outcome(Result.DISCARDED, why="caller went on before the reply")
        said = reply.transcript or ""
        self._remember(reply, Message(role="user", content=said), heard + " ...")
        return Outcome(Result.INTERRUPTED, heard=heard, unsaid=unsaid)

    # --- the end of a reply -------------------------------------------------------------------

    def _conclude(self, reply: Reply, outcome: Outcome) -> None:
        """The reply is over: move it to its end state and tell the observers how it went."""
        assert self._timers is not None
        was_playing = reply.state is ReplyState.PLAYING
        reply.move(outcome.result.state)
        self._timers.quiet_from_now()
        if reply.kind == "turn":
            if outcome.result is not Result.DISCARDED:
                self._last_turn = reply.turn
            elif reply.turn == 0:
                reply.turn = self._last_turn + 1  # the number it would have had
        self._observers.reply_ended(reply, outcome, was_playing=was_playing, at=self._clock.now())


def _cut_note(cut_ms: int) -> str:
    """What the caller's words say of the speech left out of their transcription."""
    minutes, seconds = divmod(round(cut_ms / 1000), 60)
    length = f"{minutes} min {seconds} s" if minutes else f"{seconds} s"
    return f"[speech cut: the first {length} of this turn were not transcribed]"
