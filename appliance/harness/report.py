"""Human-readable reports of calls and scenario runs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from appliance.harness.call import CallReport
    from appliance.harness.runner import ScenarioResult

__all__ = ["format_timings", "print_call", "print_results"]

_STAGES = (
    ("endpoint", "endpoint"),
    ("stt", "STT"),
    ("llm_first_token", "LLM first token"),
    ("first_sentence", "first sentence"),
    ("tts_first_audio", "TTS first audio"),
    ("turn", "turn"),
)


def format_timings(timings: Mapping[str, float]) -> str:
    return " | ".join(f"{label} {timings[key]:.0f} ms" for key, label in _STAGES if key in timings)


def print_call(report: CallReport, *, reply_wav: Path | None) -> None:
    turns, unanswered = report.turns, report.unanswered
    if not turns and not unanswered:
        print("The caller said nothing the agent could hear.")
    for turn in turns:
        cut = " (interrupted)" if turn.interrupted else ""
        print(f"turn {turn.turn}")
        print(f"  heard: {turn.transcript}")
        print(f"  reply: {turn.reply}{cut}")
        print(f"  ms:    {format_timings(turn.timings_ms)}")
    for heard in unanswered:
        print("heard, not answered (the call ended before the agent's reply):")
        print(f"  heard: {heard}")
    print(f"call ended: {report.ended}")
    if reply_wav is not None:
        print(f"agent audio: {reply_wav}")


def print_results(results: Sequence[ScenarioResult]) -> None:
    rows = [("scenario", "result", "turns", "p50 turn ms", "problems")]
    for r in results:
        latencies = (
            sorted(t.timings_ms["turn"] for t in r.report.turns if "turn" in t.timings_ms)
            if r.report
            else []
        )
        p50 = f"{latencies[len(latencies) // 2]:.0f}" if latencies else "-"
        rows.append(
            (
                r.name,
                "PASS" if r.passed else "FAIL",
                str(len(r.report.turns) if r.report else 0),
                p50,
                "; ".join(r.failures) or "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])) + "  " + row[4])
    passed = sum(r.passed for r in results)
    print(f"{passed} passed, {len(results) - passed} failed")
    said = sum(r.utterances for r in results)
    if said:
        good = sum(r.utterances_passed for r in results)
        print(f"{good} of {said} caller turns passed ({good / said:.0%})")
