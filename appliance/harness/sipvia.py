"""Harness calls over real SIP on loopback: the appliance's SIP line here, the caller in a child.

`SipVia` holds a `SipListener` open on a free loopback port. For each call it writes the
caller's script to a scratch folder, runs `python -m appliance.harness.sipcaller` (a second
pjsua2 endpoint: one per process), which dials `sip:harness-N@127.0.0.1:PORT`, plays the script
as RTP and records what it hears, and then reads that recording back. The appliance's events
for the call (turns, timings) come from the listener's sink, found by the dialled user part.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import appliance
from appliance.audio.frame import FRAME_BYTES
from appliance.conversation.events import CallEnded, Event, EventSink
from appliance.conversation.ports import CallInfo
from appliance.harness.call import CallReport
from appliance.telephony.script import HangUp, LineEvent, Recording, Step
from appliance.telephony.sip.listener import SinkFactory, SipListener

__all__ = ["SipVia"]

_SESSION_END_WAIT_S = 15.0


class SipVia:
    """Places each harness call as a SIP call over loopback (an async context manager)."""

    def __init__(
        self,
        listener: Callable[[SinkFactory], SipListener],
        *,
        codecs: Sequence[str] = ("PCMU",),
        max_call_s: float = 300.0,
        work_dir: Path | None = None,
    ) -> None:
        self._make_listener = listener
        self._codecs = list(codecs)
        self._max_call_s = max_call_s
        self._work = work_dir
        self._listener: SipListener | None = None
        self._events: dict[str, list[Event]] = {}
        self._count = 0
        self._root = Path(appliance.__file__).resolve().parents[1]
        self.results: list[dict[str, Any]] = []
        """What each call's caller measured (`send_lag`, ...), in the order the calls ended."""
        self.by_call: dict[str, dict[str, Any]] = {}
        """The same, by the placed call's id (for calls placed at once)."""

    async def __aenter__(self) -> SipVia:
        self._listener = self._make_listener(self._sink_for)
        await self._listener.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._listener is not None:
            await self._listener.close()

    def _sink_for(self, info: CallInfo) -> EventSink:
        return self._events.setdefault(info.callee, []).append

    async def place(self, steps: Sequence[Step], *, info: CallInfo) -> CallReport:
        assert self._listener is not None, "use SipVia as an async context manager"
        self._count += 1
        user = f"harness-{self._count}"
        uri = f"sip:{user}@127.0.0.1:{self._listener.port}"
        folder = await asyncio.to_thread(self._scratch)
        try:
            spec = await asyncio.to_thread(self._write_spec, uri, steps, folder)
            result = await self._run_caller(spec, folder / "out")
            recording = await asyncio.to_thread(_recording, folder / "out", result)
        finally:
            await asyncio.to_thread(shutil.rmtree, folder, True)
        events = self._events.setdefault(user, [])
        ended = await _session_end(events)
        self.results.append(result)
        self.by_call[info.call_id] = result
        return CallReport(line=recording, ended=ended, events=events)

    def _scratch(self) -> Path:
        return Path(tempfile.mkdtemp(prefix="sipvia-", dir=self._work)).resolve()

    def _write_spec(self, uri: str, steps: Sequence[Step], folder: Path) -> Path:
        """The caller's script as files in `folder` (worker thread); returns the spec's path."""
        spec = folder / "spec.json"
        spec.write_text(json.dumps(self._spec(uri, steps, folder)), encoding="utf-8")
        return spec

    def _spec(self, uri: str, steps: Sequence[Step], folder: Path) -> dict[str, Any]:
        items: list[dict[str, Any]] = []
        for i, step in enumerate(steps):
            if isinstance(step, HangUp):
                items.append({"kind": "hangup", "gap_ms": step.gap_ms})
                continue
            (folder / f"step-{i}.pcm").write_bytes(step.pcm)
            items.append(
                {
                    "kind": "speak",
                    "pcm": f"step-{i}.pcm",
                    "label": step.label,
                    "after": step.after,
                    "gap_ms": step.gap_ms,
                    "offset_ms": step.offset_ms,
                }
            )
        return {"uri": uri, "codecs": self._codecs, "max_call_s": self._max_call_s, "steps": items}

    async def _run_caller(self, spec: Path, out: Path) -> dict[str, Any]:
        # Run from the folder holding this `appliance` package, so that `-m` finds this very
        # package (a checkout or an installed one) first.
        caller = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "appliance.harness.sipcaller", str(spec), str(out),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=self._root,
        )  # fmt: skip
        try:
            async with asyncio.timeout(self._max_call_s + 60):
                output, _ = await caller.communicate()
        except TimeoutError:
            caller.kill()
            await caller.wait()
            raise RuntimeError("the SIP caller did not finish") from None
        result = await asyncio.to_thread(_read_result, out / "result.json")
        if result is None:
            tail = output.decode(errors="replace")[-2000:]
            raise RuntimeError(f"the SIP caller failed (exit {caller.returncode}): {tail}")
        if not result.get("answered"):
            raise RuntimeError(f"the appliance did not answer: {result.get('ended_by')}")
        return result


def _read_result(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    result: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return result


def _frames(path: Path) -> list[bytes]:
    data = path.read_bytes() if path.exists() else b""
    return [data[i : i + FRAME_BYTES] for i in range(0, len(data), FRAME_BYTES)]


def _recording(out: Path, result: dict[str, Any]) -> Recording:
    return Recording(
        agent_audio=_frames(out / "agent.pcm"),
        caller_audio=_frames(out / "caller.pcm"),
        timeline=[LineEvent(e["at_ms"], e["what"], e["step"]) for e in result["timeline"]],
    )


async def _session_end(events: list[Event]) -> str:
    """Why the appliance's session ended, once it has (it ends a moment after the caller)."""
    try:
        async with asyncio.timeout(_SESSION_END_WAIT_S):
            while True:
                ended = next((e for e in events if isinstance(e, CallEnded)), None)
                if ended is not None:
                    return ended.reason
                await asyncio.sleep(0.05)
    except TimeoutError:
        return "the session did not end"
