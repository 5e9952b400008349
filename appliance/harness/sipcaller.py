"""The harness's SIP caller: a second pjsua2 endpoint, in its own process, that places one call.

`python -m appliance.harness.sipcaller SPEC.json OUT_DIR` dials the URI in the spec, plays the
caller's script (the same `CallerScript` the WAV line uses) as RTP in real time, records what
it hears, and writes OUT_DIR/result.json, agent.pcm and caller.pcm (16 kHz PCM16, one 20 ms
frame per tick). It runs in its own process because pjsua2 allows one endpoint per process and
the appliance under test has the other.

Over a real line the agent is "speaking" while what the caller hears is louder than
`VOICED_DBFS`, with a 200 ms hangover (see script.py). `send_lag` records, per tick, how many of
the caller's frames were queued for the media clock, so a frame's send time is known to a tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.audio.frame import rms_dbfs
from appliance.clock import LoopClock
from appliance.conversation.ports import CallInfo
from appliance.telephony.script import VOICED_DBFS, CallerScript, HangUp, Speak, Step
from appliance.telephony.sip.calltable import Invite
from appliance.telephony.sip.config import SipConfig
from appliance.telephony.sip.endpoint import SipEndpoint
from appliance.telephony.sip.line import SipLine
from appliance.telephony.sip.media import CallMedia
from appliance.telephony.sip.status import RegistrationStatus

__all__ = ["HANGOVER_TICKS", "load_steps", "main", "place_call"]

_log = logging.getLogger("appliance.harness.sipcaller")
HANGOVER_TICKS = 10
"""200 ms of quiet before the agent counts as stopped."""
_ANSWER_WAIT_S = 15.0


def load_steps(spec: dict[str, Any], base: Path) -> list[Step]:
    """The caller's steps from a spec (recordings are raw PCM files next to it)."""
    steps: list[Step] = []
    for item in spec["steps"]:
        if item["kind"] == "hangup":
            steps.append(HangUp(gap_ms=int(item["gap_ms"])))
        else:
            steps.append(
                Speak(
                    (base / item["pcm"]).read_bytes(),
                    label=str(item.get("label", "")),
                    after=item["after"],
                    gap_ms=int(item["gap_ms"]),
                    offset_ms=int(item["offset_ms"]),
                )
            )
    return steps


@dataclass(slots=True)
class _Events:
    """The endpoint's events, for the one call this process places."""

    endpoint: SipEndpoint | None = None
    line: SipLine | None = None
    early: list[tuple[str, int, str]] = field(default_factory=list)

    def invited(self, invite: Invite) -> None:
        if self.endpoint is not None:  # this caller takes no calls
            task = asyncio.get_running_loop().create_task(self.endpoint.reject(invite.key, 486))
            task.add_done_callback(lambda t: t.cancelled() or t.exception())

    def answered(self, key: int) -> None:
        self._route("answered", key, "")

    def ended(self, key: int, reason: str) -> None:
        self._route("ended", key, reason)

    def dtmf(self, key: int, digit: str, method: str) -> None:
        del key, digit, method

    def registered(self, status: RegistrationStatus) -> None:
        del status

    def _route(self, what: str, key: int, reason: str) -> None:
        line = self.line
        if line is None or line.key != key:
            self.early.append((what, key, reason))
        elif what == "answered":
            line.on_answered()
        else:
            line.on_ended(reason)

    def attach(self, line: SipLine) -> None:
        self.line = line
        for what, key, reason in self.early:
            self._route(what, key, reason)
        self.early.clear()


async def place_call(
    uri: str,
    steps: list[Step],
    *,
    codecs: tuple[str, ...],
    max_call_s: float,
    max_wait_s: float,
    bind_address: str = "127.0.0.1",
    local_user: str = "harness-caller",
) -> dict[str, Any]:
    """Dial `uri`, follow the script, and return the result (audio in `script.recording`).
    The caller's endpoint binds `bind_address` (every interface, to dial across the LAN)."""
    loop = asyncio.get_running_loop()
    events = _Events()
    config = SipConfig(
        bind_address=bind_address,
        port=0,
        rtp_port=0,
        codecs=codecs,
        transports=("udp",),
        rtp_timeout_s=0,
        local_user=local_user,
        log_level=1,
    )
    endpoint = SipEndpoint(config, events, loop, name="sip-caller")
    events.endpoint = endpoint
    await endpoint.start()
    script = CallerScript(steps, max_wait_s=max_wait_s, hangover_ticks=HANGOVER_TICKS)
    result: dict[str, Any] = {"answered": False, "ended_by": "", "send_lag": []}
    try:
        media = CallMedia(loop, outbound_frames=4)
        key = await endpoint.dial(uri, media)
        info = CallInfo(call_id=f"caller-{key}", line="sip", caller="harness", callee=uri)
        line = SipLine(info, key=key, media=media, control=endpoint, clock=LoopClock())
        events.attach(line)
        await _answered_or_ended(line)
        if not line.answered.is_set():
            result["ended_by"] = f"not answered ({line.end_reason})"
            return result
        result["answered"] = True
        result["ended_by"] = await _converse(line, script, result["send_lag"], max_call_s)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5.0):
                await line.ended.wait()
    finally:
        await endpoint.stop()
    result["timeline"] = [
        {"at_ms": e.at_ms, "what": e.what, "step": e.step} for e in script.recording.timeline
    ]
    result["recording"] = script.recording
    return result


async def _answered_or_ended(line: SipLine) -> None:
    waits = [asyncio.ensure_future(line.answered.wait()), asyncio.ensure_future(line.ended.wait())]
    try:
        await asyncio.wait(waits, timeout=_ANSWER_WAIT_S, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


async def _converse(line: SipLine, script: CallerScript, lag: list[int], max_call_s: float) -> str:
    try:
        async with asyncio.timeout(max_call_s):
            async for heard in line.listen():
                frame = script.tick(heard, agent_speaking=rms_dbfs(heard) > VOICED_DBFS)
                if frame is None:
                    await line.disconnect()
                    return "caller"
                await line.play(frame)
                lag.append(len(line.media.outbound))
    except TimeoutError:
        await line.disconnect()
        return "time limit"
    return "agent"


def main(argv: list[str]) -> int:
    """`sipcaller SPEC.json OUT_DIR`; exit 0 when the call was placed and answered."""
    logging.basicConfig(level=logging.WARNING, format="sipcaller: %(levelname)s %(message)s")
    spec_path, out = Path(argv[0]), Path(argv[1])
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    steps = load_steps(spec, spec_path.parent)
    result = asyncio.run(
        place_call(
            spec["uri"],
            steps,
            codecs=tuple(spec.get("codecs", ["PCMU"])),
            max_call_s=float(spec.get("max_call_s", 300)),
            max_wait_s=float(spec.get("max_wait_s", 20)),
        )
    )
    recording = result.pop("recording", None)
    out.mkdir(parents=True, exist_ok=True)
    if recording is not None:
        (out / "agent.pcm").write_bytes(b"".join(recording.agent_audio))
        (out / "caller.pcm").write_bytes(b"".join(recording.caller_audio))
    (out / "result.json").write_text(json.dumps(result), encoding="utf-8")
    return 0 if result["answered"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
