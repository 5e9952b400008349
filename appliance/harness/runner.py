"""Run scenarios through the whole system and check what happened against what was expected."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from appliance.audio.frame import SAMPLE_RATE
from appliance.audio.g711 import ulaw_decode, ulaw_encode
from appliance.audio.resample import resample
from appliance.clock import Clock
from appliance.conversation.events import PhraseSpoken, ToolFinished, ToolReadBack, TurnCompleted
from appliance.conversation.ports import CallInfo
from appliance.harness.call import Answer, CallReport, run_wav_call
from appliance.harness.grounding import ungrounded
from appliance.harness.scenario import CallerTurn, Scenario, TurnExpectation
from appliance.harness.voices import caller_voice
from appliance.harness.wer import wer
from appliance.telephony.wavfile import HangUp, LineEvent, Speak, Step, load_wav

__all__ = ["PlaceCall", "ScenarioResult", "check", "phone_line", "run_scenarios"]

PlaceCall = Callable[[Sequence[Step], CallInfo], Awaitable[CallReport]]
"""Places one scripted call through some way in (a `--via`) and reports it."""


@dataclass(slots=True)
class ScenarioResult:
    name: str
    report: CallReport | None
    failures: list[str] = field(default_factory=list)
    wers: list[float] = field(default_factory=list)
    utterances: int = 0
    """The caller's turns in the scenario."""

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def utterances_passed(self) -> int:
        """Caller turns with no failure of their own; a failure of the whole call fails all."""
        if any(not f.startswith("turn ") for f in self.failures):
            return 0
        failed = {f.split(":", 1)[0] for f in self.failures}
        return sum(f"turn {n}" not in failed for n in range(1, self.utterances + 1))

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "passed": self.passed,
            "failures": self.failures,
            "wer": self.wers,
            "utterances": self.utterances,
            "utterances_passed": self.utterances_passed,
            "call": self.report.to_json() if self.report else None,
        }


def _audio(turn: CallerTurn, scenario: Scenario) -> bytes:
    if turn.say is not None:
        pcm = load_wav(scenario.source.parent / turn.say).pcm
    else:
        assert turn.text is not None
        pcm = caller_voice(turn.text, voice=turn.voice)
    return phone_line(pcm) if turn.phone == "mulaw" else pcm


def phone_line(pcm: bytes) -> bytes:
    """`pcm` (16 kHz) as it arrives over a G.711 mu-law phone line: 8 kHz, companded."""
    narrow = ulaw_decode(ulaw_encode(resample(pcm, SAMPLE_RATE, 8_000)))
    return resample(narrow, 8_000, SAMPLE_RATE)


def steps_for(scenario: Scenario) -> list[Step]:
    steps: list[Step] = []
    for i, turn in enumerate(scenario.caller):
        label = str(turn.say or f"text {i + 1}")
        if turn.barge_in_ms is not None:
            steps.append(
                Speak(_audio(turn, scenario), label, "agent-start", offset_ms=turn.barge_in_ms)
            )
        else:
            steps.append(Speak(_audio(turn, scenario), label, "agent", gap_ms=turn.gap_ms))
    if scenario.hang_up == "after-reply":
        steps.append(HangUp())
    return steps


def _stop_after_voice(timeline: Sequence[LineEvent], step: int) -> float | None:
    """How long the agent went on speaking after the caller's voice cut in (milliseconds)."""
    voice = next((e for e in timeline if e.what == "caller-voice" and e.step == step), None)
    if voice is None:
        return None
    agent = [e for e in timeline if e.what in ("agent-start", "agent-stop")]
    before = [e for e in agent if e.at_ms <= voice.at_ms]
    if not before or before[-1].what == "agent-stop":
        # The caller cut into a pause between the reply's sentences: the agent was quiet, and
        # must stay quiet while they speak (the rest of the reply must not start over them).
        end = next((e for e in timeline if e.what == "caller-end" and e.step == step), None)
        over = next((e for e in agent if e.what == "agent-start" and e.at_ms > voice.at_ms), None)
        if over is None or (end is not None and over.at_ms >= end.at_ms):
            return 0.0
    stop = next((e for e in agent if e.what == "agent-stop" and e.at_ms >= voice.at_ms), None)
    return None if stop is None else stop.at_ms - voice.at_ms


def _check_turn(
    index: int,
    expected: TurnExpectation,
    turn: TurnCompleted | None,
    report: CallReport,
    result: ScenarioResult,
    *,
    known: str,
) -> None:
    where = f"turn {index + 1}"
    if expected.agent_stops_within_ms is not None:
        took = _stop_after_voice(report.timeline, index)
        if took is None:
            result.failures.append(f"{where}: the agent never stopped for the barge-in")
        elif took > expected.agent_stops_within_ms:
            result.failures.append(
                f"{where}: the agent stopped {took:.0f} ms after the caller cut in "
                f"(limit {expected.agent_stops_within_ms:.0f})"
            )
    if turn is None:
        if expected.heard or expected.reply_contains or expected.max_turn_ms or expected.tools:
            result.failures.append(f"{where}: no such turn (the agent heard {len(report.turns)})")
        return
    if expected.heard is not None:
        error = wer(expected.heard, turn.transcript)
        result.wers.append(round(error, 3))
        if error > expected.max_wer:
            result.failures.append(
                f"{where}: heard {turn.transcript!r}, WER {error:.0%} > {expected.max_wer:.0%}"
            )
    reply = turn.reply.lower()
    result.failures.extend(
        f"{where}: reply lacks {w!r}"
        for w in expected.reply_contains
        if not any(alternative.strip().lower() in reply for alternative in w.split("|"))
    )
    result.failures.extend(
        f"{where}: reply contains {w!r}" for w in expected.reply_not_contains if w.lower() in reply
    )
    _check_tools(where, expected, turn, report, result)
    if expected.grounded:
        sources = [known, *_said_before(turn, report)]
        for number in ungrounded(turn.reply, sources):
            result.failures.append(
                f"{where}: reply says {number!r}, which no tool, the profile or the caller gave"
            )
    latency = turn.timings_ms.get("turn")
    if expected.max_turn_ms is not None and (latency is None or latency > expected.max_turn_ms):
        shown = "no reply audio" if latency is None else f"{latency:.0f} ms"
        result.failures.append(f"{where}: turn latency {shown} > {expected.max_turn_ms:.0f} ms")


def _check_tools(
    where: str,
    expected: TurnExpectation,
    turn: TurnCompleted,
    report: CallReport,
    result: ScenarioResult,
) -> None:
    if expected.tools is None:
        return
    ran = [e for e in report.events if isinstance(e, ToolFinished) and e.turn == turn.turn]
    names = [e.name for e in ran]
    if not expected.tools and names:
        result.failures.append(f"{where}: no tool should run, but {', '.join(names)} did")
    for tool in expected.tools:
        if tool not in names:
            result.failures.append(f"{where}: {tool} did not run (ran: {names or 'none'})")
        elif not any(e.ok for e in ran if e.name == tool):
            result.failures.append(f"{where}: {tool} failed")


def _said_before(turn: TurnCompleted, report: CallReport) -> list[str]:
    """What the caller said and the tools answered, up to and including `turn`."""
    said: list[str] = []
    for event in report.events:
        match event:
            case ToolFinished(turn=n, result=text) if n <= turn.turn:
                said.append(text)
            case ToolReadBack(turn=n, text=text) if n <= turn.turn:
                said.append(text)  # the code's words, from the tool's own plan
            case TurnCompleted(turn=n, transcript=text) if n <= turn.turn:
                said.append(text)
            case PhraseSpoken(heard=text):
                said.append(text)
            case _:
                pass
    return said


def check(scenario: Scenario, report: CallReport, *, known: str = "") -> ScenarioResult:
    """Compare one call's report with the scenario's expectations; `known` is what the agent
    was told (its system prompt: the business profile), where a reply's facts may come from."""
    result = ScenarioResult(name=scenario.name, report=report, utterances=len(scenario.caller))
    turns = report.turns
    for i, caller_turn in enumerate(scenario.caller):
        turn = turns[i] if i < len(turns) else None
        _check_turn(i, caller_turn.expect, turn, report, result, known=known)
    expected = scenario.expect
    if expected.ended is not None and report.ended != expected.ended:
        result.failures.append(f"call ended with {report.ended!r}, expected {expected.ended!r}")
    if expected.turns is not None and len(turns) != expected.turns:
        result.failures.append(f"{len(turns)} turns, expected {expected.turns}")
    if expected.max_turn_ms is not None:
        for turn in turns:
            latency = turn.timings_ms.get("turn")
            if latency is not None and latency > expected.max_turn_ms:
                result.failures.append(
                    f"turn {turn.turn}: latency {latency:.0f} ms > {expected.max_turn_ms:.0f} ms"
                )
    return result


def _save_agent_audio(report: CallReport, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    report.line.write_agent_wav(path)


async def run_scenarios(
    scenarios: Sequence[Scenario],
    answer: Answer,
    *,
    clock: Clock,
    out_dir: Path | None = None,
    progress: Callable[[str], None] = lambda _: None,
    place_call: PlaceCall | None = None,
    known: str = "",
) -> list[ScenarioResult]:
    """Play each scenario as a call, in real time, one after another.

    `place_call` is the way in (`--via`); by default, a WAV line answered by `answer`."""
    results: list[ScenarioResult] = []
    for n, scenario in enumerate(scenarios, 1):
        progress(f"[{n}/{len(scenarios)}] {scenario.name}")
        try:
            steps = steps_for(scenario)
        except (OSError, ValueError, RuntimeError) as exc:
            failure = f"cannot build the caller: {exc}"
            results.append(
                ScenarioResult(scenario.name, None, [failure], utterances=len(scenario.caller))
            )
            continue
        info = CallInfo(
            call_id=f"harness-{n}",
            line="wav",
            caller=scenario.caller_id or scenario.name,
            vouched=scenario.caller_id is not None,
        )
        try:
            if place_call is not None:
                report = await place_call(steps, info)
            else:
                report = await run_wav_call(answer, steps, clock=clock, info=info)
        except RuntimeError as exc:  # the way in failed (a SIP caller that was not answered)
            failure = f"the call failed: {exc}"
            results.append(
                ScenarioResult(scenario.name, None, [failure], utterances=len(scenario.caller))
            )
            continue
        if out_dir is not None:
            await asyncio.to_thread(_save_agent_audio, report, out_dir / f"{scenario.name}.wav")
        results.append(check(scenario, report, known=known))
    return results
