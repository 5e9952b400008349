"""Everything memory does around a call: its row, recording, transcript, caller memory, jobs.

`Records.open(line)` keeps the records of every call on every line (`CallDesk.answer` opens it):
- On entry, the caller's memory (by number: their name, facts and latest summaries) becomes
  the session's context, and is kept on the call's row (what the agent knew); the recording
  starts; the live slots get the caller's number and name.
- During the call the line is a `RecordingLine`, the events go through a `TranscriptSink`, and
  each turn may `recall` the caller's nearest past summaries and facts (sqlite-vec).
- On exit the transcript and recording are flushed, and the call is ended (with the reason its
  `CallEnded` event gave) together with its post-call jobs, in one transaction.

`start` also recovers what a dead process left behind (see `owners`): its open calls are ended as
interrupted, their recordings' headers made to match the audio on disk and their jobs enqueued;
the jobs it was running are put back to run again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import apsw

from appliance.clock import Clock
from appliance.conversation.events import CallEnded, Event, EventSink
from appliance.conversation.ports import CallInfo, CallLine, Embedder, Message, Recall
from appliance.memory import callers, calls, jobs, messages, owners, vectors
from appliance.memory.db import Database
from appliance.memory.kept import KeptMemory
from appliance.memory.postcall import PostCall
from appliance.memory.recall import CallerRecall, context_message
from appliance.memory.recording import Recorder, RecordingLine, WavFile, repair_wav
from appliance.memory.session import SessionState
from appliance.memory.transcript import TranscriptSink
from appliance.observability.metrics import Metrics

__all__ = ["RecordedCall", "Records", "recording_name"]

_log = logging.getLogger(__name__)
_UNSAFE = re.compile(r"[^A-Za-z0-9._~-]")


def recording_name(call_id: str) -> str:
    """The file name of a call's recording, one of its own: the call id (unique among the calls
    in the database) made safe for a file name, which alone could make two ids one name
    (`a@b` and `a_b`), and a digest of the id itself, which keeps them apart."""
    digest = hashlib.sha256(call_id.encode()).hexdigest()[:16]
    return f"{_UNSAFE.sub('_', call_id).lstrip('.')[:48]}-{digest}.wav"


_INTERRUPTED = "interrupted: the appliance stopped during the call"
_DAY_S = 86400.0


@dataclass(frozen=True, slots=True)
class _Opened:
    call_id: str
    memory: callers.CallerMemory | None
    vectors: int


def _open(
    conn: apsw.Connection,
    info: CallInfo,
    *,
    started: float,
    owner: str,
    remember: bool,
) -> _Opened:
    known = remember and info.vouched and callers.is_known_number(info.caller)
    memory = callers.memory_of(conn, info.caller) if known else None
    count = vectors.count_vectors(conn, info.caller) if known else 0
    with conn:
        call_id = calls.open_call(
            conn,
            info,
            started=started,
            owner=owner,
            memory=context_message(memory) if memory is not None else "",
        )
        if known:
            callers.note_call(conn, info.caller, started)
    return _Opened(call_id=call_id, memory=memory, vectors=count)


class Records:
    """The call records of this process: database, recordings, caller memory and post-call jobs."""

    def __init__(
        self,
        db: Database,
        *,
        post_call: PostCall,
        embedder: Embedder,
        state: SessionState,
        clock: Clock,
        recordings: Path,
        record: bool = True,
        remember: bool = True,
        metrics: Metrics | None = None,
        open_recording: Callable[[Path], WavFile] = WavFile,
        recording_queue_s: float = 5.0,
        recording_min_free_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.db = db
        self.post_call = post_call
        self.state = state
        self.recordings = recordings
        self._embedder = embedder
        self._clock = clock
        self._record = record
        self._remember = remember
        self._metrics = metrics
        self._open_recording = open_recording
        self._recording_queue_s = recording_queue_s
        self._recording_min_free = recording_min_free_bytes
        self._owners_dir = db.path.parent / "owners"
        self._owner: owners.Owner | None = None
        self.runner: jobs.JobRunner | None = None
        self.kept = KeptMemory(db, wall=clock.wall, remember=remember)
        """Callers' memory for the memory tools (`appliance.tools.memory`)."""

    @property
    def owner(self) -> str:
        assert self._owner is not None, "Records.start() first"
        return self._owner.id

    async def start(self) -> int:
        """Open the database and recover what a dead process left; returns calls recovered."""
        await self.db.open()
        self._owner = await asyncio.to_thread(owners.Owner, self._owners_dir)
        return await self._recover()

    def _alive(self, owner: str) -> bool:
        return owner == self.owner or owners.is_alive(self._owners_dir, owner)

    async def calls_in_progress(self) -> list[calls.CallRecord]:
        """Calls not ended whose process is alive: this one's, and those of any other process
        on the same records (an `appliance call` beside `appliance serve`), oldest first."""
        open_now = await self.db.run(calls.open_calls)
        return [c for c in open_now if await asyncio.to_thread(self._alive, c.owner)]

    async def _recover(self) -> int:
        open_calls = await self.db.run(calls.open_calls)
        orphans = [c for c in open_calls if not await asyncio.to_thread(self._alive, c.owner)]
        for call in orphans:
            seconds = 0.0
            if call.recording is not None:
                path = self.recordings / call.recording
                with contextlib.suppress(OSError):
                    seconds = await asyncio.to_thread(repair_wav, path)
            await self.db.run(self._end_orphan, call, seconds)
            _log.warning("call %s was cut off by a restart; its records are kept", call.id)
        put_back = await self.db.run(jobs.recover_jobs, self._alive)
        if put_back:
            _log.warning("%d post-call jobs were cut off by a restart; they run again", put_back)
        return len(orphans)

    def _end_orphan(self, conn: apsw.Connection, call: calls.CallRecord, seconds: float) -> None:
        row = conn.execute(
            "SELECT MAX(ended), SUM(speaker = 'caller') FROM turns WHERE call_id = ?", (call.id,)
        ).fetchone()
        last_words, caller_turns = (row[0] or 0.0, int(row[1] or 0)) if row else (0.0, 0)
        ended = call.started + max(seconds, float(last_words))
        with conn:
            calls.end_call(conn, call.id, ended=ended, outcome=_INTERRUPTED)
            if call.recording_state == "recording":
                conn.execute(
                    "UPDATE calls SET recording_state = 'stopped', recording_note = ? WHERE id = ?",
                    ("the appliance stopped during the call", call.id),
                )
            self._enqueue(conn, call, caller_turns, ended)

    def _enqueue(
        self, conn: apsw.Connection, call: calls.CallRecord, caller_turns: int, now: float
    ) -> None:
        call_id = call.id
        for kind, skipped in self.post_call.plan(conn, call, caller_turns, now):
            after = None if kind == "summary" else "summary"
            jobs.enqueue(conn, kind, call_id=call_id, now=now, after=after, skipped=skipped)
        if messages.messages_of(conn, call_id):  # passed on at once, not after the summary
            jobs.enqueue(conn, "message", call_id=call_id, now=now)

    def use_runner(
        self,
        *,
        busy: Callable[[], bool],
        after_idle_work: Callable[[], Awaitable[None]] | None = None,
    ) -> jobs.JobRunner:
        """The job runner of this process (made once)."""
        if self.runner is None:
            self.runner = jobs.JobRunner(
                self.db,
                self.post_call.handlers,
                owner=self.owner,
                clock=self._clock,
                metrics=self._metrics,
                busy=busy,
                idle_kinds=self.post_call.idle_kinds,
                after_idle_work=after_idle_work,
            )
        return self.runner

    async def work(self) -> None:
        """Run post-call jobs, and the retention job once a day, until cancelled."""
        assert self.runner is not None, "use_runner() first"
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self.runner.run(), name="jobs")
            tasks.create_task(self._daily_retention(), name="retention")

    async def _daily_retention(self) -> None:
        while True:
            await self.schedule_retention()
            await self._clock.sleep(_DAY_S)

    async def schedule_retention(self) -> None:
        """Queue the retention job now, unless one is waiting already."""
        await self.db.run(_schedule_retention, self._clock.wall())
        if self.runner is not None:
            self.runner.wake()

    @contextlib.asynccontextmanager
    async def open(self, line: CallLine) -> AsyncIterator[RecordedCall]:
        """The records of the call on `line` while the block runs (see the module docstring)."""
        info = line.info
        started = self._clock.wall()
        opened: _Opened | None = None
        try:
            opened = await self.db.run(
                _open, info, started=started, owner=self.owner, remember=self._remember
            )
        except Exception:
            # A broken database must not stop the box answering: the call goes on unrecorded.
            _log.exception("could not open the call's records; it goes on without them")
            if self._metrics is not None:
                self._metrics.errors.labels("records").inc()
        if opened is None:
            yield RecordedCall(line=line, write=_ignore)
            return
        call_id = opened.call_id
        recorder, line = await self._start_recording(call_id, started, line)
        await self._fill_slots(call_id, info, started, opened.memory)
        transcript = TranscriptSink(
            self.db, call_id, state=self.state, forward=None, metrics=self._metrics
        )
        memory = context_message(opened.memory) if opened.memory is not None else ""
        call = RecordedCall(
            line=line,
            write=transcript,
            context=[Message(role="system", content=memory)] if memory else [],
            recall=CallerRecall(self.db, self._embedder, info.caller) if opened.vectors else None,
        )
        try:
            async with self._hold(call, transcript, recorder):
                yield call
        finally:
            try:
                await self._finish(call_id, call.reason, recorder, transcript.caller_turns)
            except Exception:
                # A full or failing disk: the call itself went fine. Its row stays open and the
                # next start ends it and queues its jobs (see `_recover`).
                _log.exception("could not close the call's records; the next start will")

    async def _start_recording(
        self, call_id: str, started: float, line: CallLine
    ) -> tuple[Recorder | None, CallLine]:
        made = self._recorder(call_id, started)
        if made is None:
            return None, line
        recorder, relative = made
        await self.db.run(calls.set_recording, call_id, "recording", path=relative)
        return recorder, RecordingLine(line, recorder)

    async def _fill_slots(
        self, call_id: str, info: CallInfo, started: float, memory: callers.CallerMemory | None
    ) -> None:
        slots = {"caller": info.caller, "line": info.line, "started": f"{started:.3f}"}
        if memory is not None and memory.name:
            slots["caller_name"] = memory.name
        await self.state.update(call_id, slots)

    def _recorder(self, call_id: str, started: float) -> tuple[Recorder, str] | None:
        if not self._record:
            return None
        day = time.strftime("%Y/%m/%d", time.gmtime(started))
        relative = f"{day}/{recording_name(call_id)}"

        async def stopped(reason: str) -> None:
            await self.db.run(calls.set_recording, call_id, "stopped", note=reason)

        recorder = Recorder(
            self.recordings / relative,
            clock=self._clock,
            metrics=self._metrics,
            on_stop=stopped,
            queue_s=self._recording_queue_s,
            min_free_bytes=self._recording_min_free,
            open_file=self._open_recording,
        )
        return recorder, relative

    async def _finish(
        self, call_id: str, reason: str, recorder: Recorder | None, caller_turns: int
    ) -> None:
        now = self._clock.wall()

        def end(conn: apsw.Connection) -> None:
            with conn:
                calls.end_call(conn, call_id, ended=now, outcome=reason)
                if recorder is not None and recorder.state == "complete":
                    calls.set_recording(conn, call_id, "complete")
                ended = calls.find_call(conn, call_id)
                if ended is not None:
                    self._enqueue(conn, ended, caller_turns, now)

        try:
            await self.db.run(end)
        finally:
            await self.state.clear(call_id)
        if self.runner is not None:
            self.runner.wake()

    @contextlib.asynccontextmanager
    async def _hold(
        self, call: RecordedCall, transcript: TranscriptSink, recorder: Recorder | None
    ) -> AsyncIterator[None]:
        """The transcript and recording writers, running while the block runs. The block's
        failure goes up only once they have written what they have."""
        failure: Exception | None = None
        async with asyncio.TaskGroup() as writers:
            writers.create_task(transcript.run(), name="transcript")
            if recorder is not None:
                writers.create_task(recorder.run(), name="recording")
            try:
                yield
            except Exception as exc:
                failure = exc
            finally:
                transcript.close()
                if recorder is not None:
                    recorder.close()
        if failure is not None:
            raise failure

    async def aclose(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109 - bounds the join
        """Stop the database thread (up to `timeout` seconds, the loop free), give up the owner."""
        if not await self.db.aclose(timeout):
            _log.warning("the database thread did not stop within %.0f s", timeout)
        owner, self._owner = self._owner, None
        if owner is not None:
            await asyncio.to_thread(owner.release)

    def close(self, timeout: float = 5.0) -> None:
        """`aclose` for code that is not async: this blocks up to `timeout` seconds."""
        if not self.db.close(timeout):
            _log.warning("the database thread did not stop within %.0f s", timeout)
        owner, self._owner = self._owner, None
        if owner is not None:
            owner.release()


def _schedule_retention(conn: apsw.Connection, now: float) -> None:
    with conn:
        waiting = conn.execute(
            "SELECT 1 FROM jobs WHERE kind = 'retention' AND state IN ('pending', 'running')"
        ).fetchone()
        if waiting is None:
            jobs.enqueue(conn, "retention", call_id=None, now=now)


def _ignore(event: object) -> None:
    del event


@dataclass(slots=True)
class RecordedCall:
    """What a recorded call's session is given; `sink` learns how the call ended."""

    line: CallLine
    """The recording line (the call's own line when it is not recorded)."""
    write: EventSink
    """The transcript's writer."""
    context: list[Message] = field(default_factory=list)
    """What the agent knows of this caller from earlier calls."""
    recall: Recall | None = None
    reason: str = "failed"
    """Why the call ended, from its `CallEnded` event; "failed" until one comes."""

    def sink(self, event: Event) -> None:
        if isinstance(event, CallEnded):
            self.reason = event.reason
        self.write(event)
