"""After a call: a summary, the caller's memory, the transcript sent; old records removed.

Jobs per ended call (see `plan`), each after `summary` so it can use it:
- `summary`: what the caller wanted (one sentence by the language model, checked against their
  words, see `notes`), then what happened, told from the call's record (`happened`): turns
  answered or not, tools run, messages sent, transfers, how it ended.
- `memory`: the language model lists facts worth keeping about the caller; those the caller's
  own words bear out, in turns heard with at least `min_confidence`, and the summary are
  embedded and stored for recall. Only for callers with a number who have not asked to be
  forgotten since the call began.
- `email` / `sms`: the summary and transcript go to NOTIFY_EMAIL (SendGrid) / NOTIFY_SMS (Twilio;
  as much of the transcript as one message holds, 1600 characters).
  Recorded as skipped, with a warning at start-up, when they are not configured; and, so that a
  stranger's calls cannot run up a bill, for calls the caller said too little on and beyond the
  limits per caller, per hour and (texts) per day (`NotifyLimits`).
- `caller_text`: only for a call on which the caller said yes to having its transcript or a
  summary texted to them (`text_the_caller`, recorded in `actions`): sent to the call's own
  number, on a line that vouched for it, within NOTIFY_SMS_PER_DAY.
And `retention`, once a day: recordings and transcripts older than RETENTION_DAYS are removed.

Handlers compute; their database writes are returned in `Done` and committed with the job.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import apsw

from appliance.conversation.ports import Embedder, LanguageModel, Mailer, Message, TextDelta, Texter
from appliance.conversation.profile import is_phone_number
from appliance.memory import actions, callers, calls, jobs, messages, notes, vectors
from appliance.memory.db import Database
from appliance.memory.happened import what_happened
from appliance.memory.jobs import Done, Handler, Job, Skipped

__all__ = [
    "DEFAULT_MIN_CONFIDENCE",
    "NotifyLimits",
    "NotifySettings",
    "PostCall",
    "sure_words",
    "texts_asked",
    "transcript_text",
]

_log = logging.getLogger(__name__)

DEFAULT_MIN_CONFIDENCE = 0.5
"""Below this speech-to-text confidence, a caller's turn is no ground for a fact or a name.

Measured with whisper tiny.en (the confidence is exp of the mean token log-probability):
espeak-ng callers in three voices heard right scored 0.55-0.72; the turns with a mangled name
("Siobhan Nakamura" as "Listen, shivol, a kamura", "Corwin Ashby-Mbeki" as "Corwin Ashlee M.
Bucky") 0.40-0.48. Some wrong turns still score higher ("Carol" as "Carl", 0.63), and real
recordings score lower (the "go forward ten meters" fixture, heard right, 0.42): a missed fact
costs less than a wrong one kept and repeated to the caller. `MEMORY_MIN_CONFIDENCE` sets it."""
_HOUR_S = 3600.0
_DAY_S = 86400.0
_SMS_CHARS = 1600
"""Twilio's limit for one message (it is sent as up to ten segments)."""
_TEXT_TOOL = "text_the_caller"
_AFTER_CALL = ("the transcript", "a summary")
"""`text_the_caller`'s choices that this job sends (`appliance.tools.text_caller.AFTER_CALL`;
memory cannot import tools, and a test holds the two the same)."""


@dataclass(frozen=True, slots=True)
class NotifyLimits:
    """Which calls are worth an email or a text, and how many may go (see the settings of the
    same names): every answered call must not cost money, least of all a stranger's."""

    min_caller_turns: int = 1
    per_caller_per_hour: int = 2
    per_hour: int = 20
    sms_per_day: int = 50

    def refusal(
        self, conn: apsw.Connection, kind: str, *, caller: str, caller_turns: int, now: float
    ) -> str | None:
        """Why `kind` ("email" or "sms") is not sent about this call, or None to send it."""
        if caller_turns < self.min_caller_turns:
            return (
                f"the caller spoke {caller_turns} turn(s), fewer than NOTIFY_MIN_CALLER_TURNS "
                f"({self.min_caller_turns})"
            )
        limits = [
            (self.per_caller_per_hour, _HOUR_S, caller, "NOTIFY_PER_CALLER_PER_HOUR"),
            (self.per_hour, _HOUR_S, None, "NOTIFY_PER_HOUR"),
        ]
        if kind == "sms":
            limits.append((self.sms_per_day, _DAY_S, None, "NOTIFY_SMS_PER_DAY"))
        for limit, window_s, who, name in limits:
            if limit and jobs.queued_since(conn, kind, since=now - window_s, caller=who) >= limit:
                _log.warning("%s not sent about a call from %s: %s reached", kind, caller, name)
                return f"{name} ({limit}) reached: not sent"
        return None


@dataclass(frozen=True, slots=True)
class NotifySettings:
    email_to: str | None
    sms_to: str | None
    email_missing: str | None
    """Why email cannot be sent (None when it can)."""
    sms_missing: str | None
    limits: NotifyLimits = NotifyLimits()


def transcript_text(turns: Sequence[calls.TurnRecord], *, stamps: bool = False) -> str:
    """The call as lines of `Caller: ...` and `Agent: ...`."""
    lines = []
    for turn in turns:
        who = "Caller" if turn.speaker == "caller" else "Agent"
        text = turn.text + (" [cut off]" if turn.interrupted else "")
        if stamps and turn.started is not None:
            minutes, seconds = divmod(int(turn.started), 60)
            lines.append(f"[{minutes:02d}:{seconds:02d}] {who}: {text}")
        else:
            lines.append(f"{who}: {text}")
    return "\n".join(lines)


def sure_words(turns: Sequence[calls.TurnRecord], min_confidence: float) -> list[str]:
    """The caller's turns that speech-to-text was sure enough of (an unknown confidence is not)."""
    return [
        t.text
        for t in turns
        if t.speaker == "caller" and t.confidence is not None and t.confidence >= min_confidence
    ]


class PostCall:
    """The post-call job handlers, over the database and the ports they use."""

    def __init__(
        self,
        db: Database,
        *,
        llm: LanguageModel,
        embedder: Embedder,
        mailer: Mailer | None,
        texter: Texter | None,
        notify: NotifySettings,
        recordings: Path,
        retention_days: int,
        remember: bool,
        agent_name: str,
        business_name: str,
        min_confidence: float = DEFAULT_MIN_CONFIDENCE,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._db = db
        self._llm = llm
        self._embedder = embedder
        self._mailer = mailer
        self._texter = texter
        self.notify = notify
        self._recordings = recordings
        self._retention_days = retention_days
        self._remember = remember
        self._names = {"agent": agent_name, "business": business_name}
        self._min_confidence = min_confidence
        self._wall = wall

    @property
    def handlers(self) -> dict[str, Handler]:
        return {
            "summary": self.summary,
            "memory": self.memory,
            "email": self.email,
            "sms": self.sms,
            "message": self.message,
            "caller_text": self.caller_text,
            "retention": self.retention,
        }

    idle_kinds = ("summary", "memory")
    """The jobs that use the language model."""

    def plan(
        self, conn: apsw.Connection, call: calls.CallRecord, caller_turns: int, now: float
    ) -> list[tuple[str, str | None]]:
        """The jobs an ended call gets: (kind, why it is skipped or None)."""
        caller = call.caller
        silent = "the caller said nothing" if caller_turns == 0 else None
        memory = silent
        if memory is None and not self._remember:
            memory = "REMEMBER_CALLERS is off"
        elif memory is None and not callers.is_known_number(caller):
            memory = f"the caller's number ({caller or 'none'}) is unknown"
        elif memory is None and not call.vouched:
            memory = f"the line did not vouch for the caller's number ({caller})"

        def refusal(kind: str, missing: str | None) -> str | None:
            return missing or self.notify.limits.refusal(
                conn, kind, caller=caller, caller_turns=caller_turns, now=now
            )

        planned = [
            ("summary", silent),
            ("memory", memory),
            ("email", refusal("email", self.notify.email_missing)),
            ("sms", refusal("sms", self.notify.sms_missing)),
        ]
        if texts_asked(actions.actions_of(conn, call.id)):
            planned.append(("caller_text", self._caller_text_refusal(conn, call, now)))
        return planned

    def _caller_text_refusal(
        self, conn: apsw.Connection, call: calls.CallRecord, now: float
    ) -> str | None:
        """Why the transcript or summary the caller asked for is not texted to them, or None."""
        if self._texter is None:
            return "text messages cannot be sent: the TWILIO_* account settings are not set"
        if not is_phone_number(call.caller):
            return f"the caller's number ({call.caller or 'none'}) is not one to text"
        if not call.vouched:
            return f"the line did not vouch for the caller's number ({call.caller})"
        limit = self.notify.limits.sms_per_day
        since = now - _DAY_S
        texted = sum(jobs.queued_since(conn, kind, since=since) for kind in ("sms", "caller_text"))
        if limit and texted >= limit:
            _log.warning("no text to the caller %s: NOTIFY_SMS_PER_DAY reached", call.caller)
            return f"NOTIFY_SMS_PER_DAY ({limit}) reached: not sent"
        return None

    async def _call(self, job: Job) -> tuple[calls.CallRecord, list[calls.TurnRecord]]:
        assert job.call_id is not None
        call = await self._db.run(calls.find_call, job.call_id)
        if call is None:
            raise Skipped(f"call {job.call_id} is gone")
        return call, await self._db.run(calls.turns_of, call.id)

    async def _ask(self, messages: list[Message]) -> str:
        parts = [out.text async for out in self._llm.stream(messages) if isinstance(out, TextDelta)]
        return "".join(parts).strip()

    async def summary(self, job: Job) -> Done:
        call, turns = await self._call(job)
        said = [t.text for t in turns if t.speaker == "caller"]
        if not said:
            raise Skipped("the caller said nothing")
        sure = sure_words(turns, self._min_confidence)
        if sure:
            asked = notes.request_messages(transcript_text(turns), **self._names)
            answer = await self._ask(asked)
            request, usable = notes.caller_request(answer, " ".join(sure), **self._names)
        else:
            heard = " ".join(" ".join(said).split())[:300]
            request, usable = f'The caller was not heard clearly (heard as "{heard}").', False
        done = await self._db.run(actions.actions_of, call.id)
        told = what_happened(turns, done, call.outcome).sentences()
        text = " ".join([request, *told])
        at = self._wall()
        return Done(
            note=f"{len(text)} characters"
            + ("" if usable else " (the caller's words, not the model's)"),
            write=lambda conn: callers.set_summary(conn, call.id, text, at),
        )

    async def memory(self, job: Job) -> Done:
        call, turns = await self._call(job)
        if await self._db.run(_forgotten_since, call):
            raise Skipped("the caller asked to be forgotten")
        sure = sure_words(turns, self._min_confidence)
        facts: list[str] = []
        if sure:
            asked = notes.facts_messages(transcript_text(turns), agent=self._names["agent"])
            facts = notes.grounded_facts(await self._ask(asked), " ".join(sure))
        name = notes.caller_name(sure)
        # The name is kept as the name, not again as a fact.
        facts = [f for f in facts if name is None or f.casefold() != name.casefold()]
        summary = await self._db.run(callers.summary_of, call.id)
        texts = ([summary] if summary is not None else []) + facts
        embedded = await self._embedder.embed(texts) if texts else []
        at = self._wall()

        def write(conn: apsw.Connection) -> None:
            if _forgotten_since(conn, call):
                return  # asked during this job: nothing of the call is kept
            new = set(callers.add_facts(conn, call.caller, call.id, facts, at))
            if name is not None:
                callers.set_name(conn, call.caller, name)
            for i, (text, vector) in enumerate(zip(texts, embedded, strict=True)):
                is_summary = i == 0 and summary is not None
                if is_summary or text in new:
                    vectors.add_vector(
                        conn,
                        call.caller,
                        kind="summary" if is_summary else "fact",
                        call_id=call.id,
                        text=text,
                        vector=vector,
                    )

        unsure = len(_said_turns(turns)) - len(sure)
        return Done(
            note=f"{len(facts)} facts, {len(texts)} vectors"
            + (
                f"; {unsure} caller turns below {self._min_confidence:.2f} confidence"
                if unsure
                else ""
            ),
            write=write,
        )

    async def email(self, job: Job) -> Done:
        if self._mailer is None or self.notify.email_to is None:
            raise Skipped(self.notify.email_missing or "email is not configured")
        call, turns = await self._call(job)
        summary = await self._db.run(callers.summary_of, call.id)
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(call.started))
        minutes, seconds = divmod(int(call.duration_s or 0), 60)
        body = "\n\n".join(
            part
            for part in (
                f"Call from {call.caller or 'an unknown caller'} on {when}, "
                f"{minutes}:{seconds:02d} long ({call.outcome or 'in progress'}).",
                f"Summary: {summary}" if summary is not None else "",
                transcript_text(turns, stamps=True) or "(nothing was said)",
                f"Recording: {self._recordings / call.recording}" if call.recording else "",
            )
            if part
        )
        subject = f"Call from {call.caller or 'unknown'} at {when}"
        sent = await self._mailer.send_email(self.notify.email_to, subject, body)
        return Done(note=f"emailed to {self.notify.email_to} ({sent or 'accepted'})")

    async def sms(self, job: Job) -> Done:
        if self._texter is None or self.notify.sms_to is None:
            raise Skipped(self.notify.sms_missing or "text messages are not configured")
        call, turns = await self._call(job)
        summary = await self._db.run(callers.summary_of, call.id)
        minutes, seconds = divmod(int(call.duration_s or 0), 60)
        head = f"Call from {call.caller or 'unknown'} ({minutes}:{seconds:02d})"
        parts = [f"{head}: {summary}" if summary else head, transcript_text(turns)]
        body = "\n".join(part for part in parts if part)
        if len(body) > _SMS_CHARS:
            body = body[: _SMS_CHARS - 1] + "…"  # the email has the whole transcript
        sent = await self._texter.send_sms(self.notify.sms_to, body)
        return Done(note=f"texted to {self.notify.sms_to} ({sent})")

    async def message(self, job: Job) -> Done:
        """Pass on the messages left on the call: a text to the person where they were to be
        reached by number, an email to NOTIFY_EMAIL. A failed send retries the job."""
        call, _ = await self._call(job)
        taken = await self._db.run(messages.messages_of, call.id)
        if not taken:
            raise Skipped("no message was left")
        caller = call.caller or "an unknown caller"
        sent: list[str] = []
        for left in taken:
            body = f'Message for {left.for_who} from {caller}: "{left.text}"'
            if self._texter is not None and is_phone_number(left.target):
                await self._texter.send_sms(left.target, body[:_SMS_CHARS])
                sent.append(f"texted to {left.target}")
            if self._mailer is not None and self.notify.email_to is not None:
                subject = f"Message for {left.for_who} from {caller}"
                await self._mailer.send_email(self.notify.email_to, subject, body)
                sent.append(f"emailed to {self.notify.email_to}")
        if not sent:
            raise Skipped(
                "no way to pass the message on: the person has no number to text, or Twilio "
                "is not set up, and NOTIFY_EMAIL is not set; it stays on the call's record"
            )
        return Done(note="; ".join(sent))

    async def caller_text(self, job: Job) -> Done:
        """Text the caller this call's transcript or summary, as they asked on the call: to the
        call's own number, whatever any model wrote."""
        if self._texter is None:
            raise Skipped("text messages cannot be sent: the TWILIO_* settings are not set")
        call, turns = await self._call(job)
        asked = texts_asked(await self._db.run(actions.actions_of, call.id))
        if not asked or not is_phone_number(call.caller) or not call.vouched:
            raise Skipped("nothing the caller asked for can be texted to their number")
        summary = None
        if "a summary" in asked:
            summary = await self._db.run(callers.summary_of, call.id)
        body = self._caller_body(call, turns, summary, transcript="the transcript" in asked)
        sent = await self._texter.send_sms(call.caller, body)
        what = " and ".join(sorted(asked))
        return Done(note=f"{what} texted to the caller, {call.caller} ({sent})")

    def _caller_body(
        self,
        call: calls.CallRecord,
        turns: Sequence[calls.TurnRecord],
        summary: str | None,
        *,
        transcript: bool,
    ) -> str:
        """The text: the summary, when asked and written (the transcript when it was not), then
        the transcript when asked, cut to one message."""
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(call.started))
        parts = [f"{self._names['business']}: your call on {when}."]
        if summary is not None:
            parts.append(f"Summary: {summary}")
        if transcript or summary is None:
            parts.append(transcript_text(turns))
        body = "\n".join(parts)
        if len(body) > _SMS_CHARS:
            body = body[: _SMS_CHARS - 1] + "…"
        return body

    async def retention(self, job: Job) -> Done:
        del job
        if self._retention_days == 0:
            raise Skipped("RETENTION_DAYS is 0: records are kept")
        before = self._wall() - self._retention_days * 86400
        expired = await self._db.run(calls.expired_calls, before)
        files = [self._recordings / path for _, path in expired if path]
        await asyncio.to_thread(_remove, files)
        ids = [call_id for call_id, _ in expired]

        def write(conn: apsw.Connection) -> None:
            calls.forget_records(conn, ids)

        return Done(
            note=f"{len(ids)} calls older than {self._retention_days} days: "
            f"{len(files)} recordings and their transcripts removed",
            write=write,
        )


def texts_asked(done: Sequence[actions.ActionRecord]) -> set[str]:
    """What the caller asked to have texted after the call: the finished runs of
    `text_the_caller` on the call's record with an after-call choice. It runs on the caller's
    yes to its read-back; a run without one (the number withheld or not vouched for) only said
    why not, and `caller_text` checks the number again."""
    asked: set[str] = set()
    for action in done:
        if action.kind != "tool" or action.name != _TEXT_TOOL or not action.ok:
            continue
        try:
            what = json.loads(action.arguments or "{}").get("what")
        except (ValueError, AttributeError):
            continue
        if what in _AFTER_CALL:
            asked.add(what)
    return asked


def _said_turns(turns: Sequence[calls.TurnRecord]) -> list[calls.TurnRecord]:
    return [t for t in turns if t.speaker == "caller"]


def _forgotten_since(conn: apsw.Connection, call: calls.CallRecord) -> bool:
    """Whether the caller asked to be forgotten after `call` began."""
    at = callers.forgotten_at(conn, call.caller)
    return at is not None and at >= call.started


def _remove(files: Sequence[Path]) -> None:
    for path in files:
        path.unlink(missing_ok=True)
        folder = path.parent
        # Empty day, month and year folders go too.
        for _ in range(3):
            try:
                folder.rmdir()
            except OSError:
                break
            folder = folder.parent
