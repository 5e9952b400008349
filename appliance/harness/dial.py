"""`appliance dial`: a test call into a running box, the check after an install.

A SIP call from this process (its own pjsua2 endpoint: the box under test has the other, in the
`serve` process) to a box on this machine or the LAN. The caller waits for the greeting, says a
recording or a sentence spoken by espeak-ng, waits for the answer, and hangs up; what the agent
said is transcribed here with the local whisper model and printed, with how long the answer
took. The call is placed by the harness's SIP caller (`sipcaller.place_call`), so it keeps the
same timeline and the same pjsua2 threading (one owner thread, see DESIGN.md section 3).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.audio.frame import FRAME_MS, SAMPLE_RATE
from appliance.observability import listening
from appliance.settings import Settings
from appliance.telephony.script import HangUp, LineEvent, Speak, Step

__all__ = ["DEFAULT_SAY", "AgentWords", "dial_command", "dial_uri", "spoken_parts"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DEFAULT_SAY = "Hello, are you open today?"
_MERGE_MS = 1200
"""Agent speech separated by less quiet than this is one utterance (pauses between sentences)."""
_MAX_PART_MS = 28_000
"""Whisper hears at most 30 s at once: longer speech is transcribed in pieces."""
_MAX_WAIT_S = 20.0
"""The caller speaks after this long even if the greeting has not ended."""


class DialError(Exception):
    """The test call cannot be placed as asked; the message names the fix."""


@dataclass(frozen=True, slots=True)
class AgentWords:
    """One stretch of the agent's speech, as the caller heard it."""

    start_ms: int
    end_ms: int
    text: str


def dial_uri(target: str | None, settings: Settings) -> str:
    """The SIP URI for `target` (a host, host:port or sip: URI; None: this box's own line)."""
    port = settings.sip.sip_port
    if target is None:
        if not settings.sip.sip_enabled or port == 0:
            raise DialError(
                "this box's SIP line is off or on a random port (SIP_ENABLED, SIP_PORT): "
                "name the box to dial, as HOST:PORT"
            )
        return f"sip:dial@127.0.0.1:{port}"
    if target.startswith(("sip:", "sips:")):
        return target
    host, _, given = target.rpartition(":") if _has_port(target) else (target, "", "")
    if given and not given.isdigit():
        raise DialError(f"{target!r}: the port must be a number (HOST:PORT)")
    return f"sip:dial@{host}:{given or port or 5060}"


def _has_port(target: str) -> bool:
    try:
        ipaddress.IPv6Address(target.strip("[]"))
    except ValueError:
        return ":" in target
    return False


def _bind_for(uri: str) -> str:
    """Loopback for a call to this machine; every interface for one across the LAN."""
    host = uri.split("@", 1)[-1].split(":", 1)[0].split(";", 1)[0]
    try:
        return "127.0.0.1" if ipaddress.ip_address(host).is_loopback else "0.0.0.0"  # noqa: S104
    except ValueError:
        return "127.0.0.1" if host == "localhost" else "0.0.0.0"  # noqa: S104


def _check_listening(uri: str) -> None:
    """For a call to this machine: fail at once, naming the fix, when nothing listens there
    (rather than waiting out the answer timeout)."""
    if _bind_for(uri) != "127.0.0.1":
        return
    hostport = uri.split("@", 1)[-1].split(";", 1)[0]
    host, _, port = hostport.rpartition(":")
    if port.isdigit() and listening.bind_error(host, int(port), "udp") is None:
        raise DialError(
            f"nothing listens for SIP on {host}:{port}: start the box with `appliance serve` "
            "(SIP_ENABLED=true), or dial the port it uses (SIP_PORT)"
        )


def caller_audio(wav: Path | None, say: str | None) -> tuple[bytes, str]:
    """What the caller says, as 16 kHz PCM, and how to name it."""
    if wav is not None:
        from appliance.audio.wav import WavFormatError  # noqa: PLC0415
        from appliance.telephony.wavfile import load_wav  # noqa: PLC0415

        try:
            audio = load_wav(wav)
        except (OSError, WavFormatError) as exc:
            raise DialError(str(exc)) from exc
        if not audio.pcm:
            raise DialError(f"{wav} holds no audio; give a recording of what to say")
        return audio.pcm, wav.name
    from appliance.harness.voices import VoiceUnavailable, caller_voice  # noqa: PLC0415

    text = say or DEFAULT_SAY
    try:
        return caller_voice(text), repr(text)
    except VoiceUnavailable as exc:
        raise DialError(f"{exc} (or give --wav)") from exc


def spoken_parts(timeline: list[LineEvent], total_ms: int) -> list[tuple[int, int]]:
    """When the agent spoke (start, end ms), pauses shorter than `_MERGE_MS` joined, long
    stretches cut into pieces whisper can hear whole."""
    parts: list[tuple[int, int]] = []
    start: int | None = None
    for event in timeline:
        if event.what == "agent-start" and start is None:
            start = event.at_ms
        elif event.what == "agent-stop" and start is not None:
            parts.append((start, event.at_ms))
            start = None
    if start is not None:
        parts.append((start, total_ms))
    merged: list[tuple[int, int]] = []
    for begin, end in parts:
        if merged and begin - merged[-1][1] < _MERGE_MS:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((begin, end))
    return [
        (at, min(at + _MAX_PART_MS, end))
        for begin, end in merged
        for at in range(begin, end, _MAX_PART_MS)
    ]


async def _transcribe(
    settings: Settings, audio: bytes, parts: list[tuple[int, int]]
) -> list[AgentWords]:
    from appliance.engines.offload import Offloader  # noqa: PLC0415
    from appliance.engines.stt.whisper import WhisperSpeechToText  # noqa: PLC0415

    model = settings.paths.models / settings.engines.stt_model
    if not (model / "model.bin").is_file():
        raise DialError(
            f"no speech model at {model} to hear the agent with: "
            f"appliance models install {settings.engines.stt_model}"
        )
    worker = Offloader("dial-listener", timeout=settings.engines.engine_timeout_s)
    # The agent's own voice is speech: keep its doubtful words, as a caller's line would not.
    listener = WhisperSpeechToText(
        model, offloader=worker, name=settings.engines.stt_model, drop_non_speech=False
    )
    bytes_per_ms = SAMPLE_RATE * 2 // 1000
    try:
        heard = []
        for start, end in parts:
            said = await listener.transcribe(audio[start * bytes_per_ms : end * bytes_per_ms])
            heard.append(AgentWords(start, end, said.text.strip()))
        return heard
    finally:
        await worker.aclose()


async def _dial(
    settings: Settings, uri: str, steps: list[Step], *, codec: str, max_s: float
) -> dict[str, Any]:
    try:
        from appliance.harness.sipcaller import place_call  # noqa: PLC0415
    except ImportError as exc:
        raise DialError(f"dialling needs pjsua2 ({exc}): install pjsua2-python") from exc
    _check_listening(uri)
    result = await place_call(
        uri,
        steps,
        codecs=(codec,),
        max_call_s=max_s,
        max_wait_s=_MAX_WAIT_S,
        bind_address=_bind_for(uri),
        local_user="appliance-dial",
    )
    recording = result.pop("recording", None)
    if not result["answered"]:
        why = result["ended_by"].removesuffix(" ()")
        raise DialError(
            f"{uri} did not answer ({why}): is `appliance serve` running there with "
            "SIP_ENABLED, and does SIP_ALLOWED_SOURCES let this machine in?"
        )
    assert recording is not None
    audio = b"".join(recording.agent_audio)
    total_ms = len(recording.agent_audio) * FRAME_MS
    parts = spoken_parts(recording.timeline, total_ms)
    result["agent"] = await _transcribe(settings, audio, parts)
    result["audio"] = audio
    return result


def _answer_ms(timeline: list[dict[str, Any]]) -> int | None:
    """From the end of what the caller said to the agent's first sound after it."""
    ended = next((e["at_ms"] for e in timeline if e["what"] == "caller-end"), None)
    if ended is None:
        return None
    started = [e["at_ms"] for e in timeline if e["what"] == "agent-start" and e["at_ms"] > ended]
    return min(started) - int(ended) if started else None


def _caller_window(timeline: list[dict[str, Any]]) -> tuple[int, int] | None:
    start = next((e["at_ms"] for e in timeline if e["what"] == "caller-start"), None)
    end = next((e["at_ms"] for e in timeline if e["what"] == "caller-end"), None)
    return (int(start), int(end)) if start is not None and end is not None else None


def _print(uri: str, codec: str, label: str, result: dict[str, Any]) -> None:
    timeline = result["timeline"]
    words: list[AgentWords] = result["agent"]
    seconds = (timeline[-1]["at_ms"] / 1000) if timeline else 0.0
    print(f"dialled {uri} ({codec}): answered; {seconds:.1f} s; ended by {result['ended_by']}")
    window = _caller_window(timeline)
    caller_printed = window is None
    for part in words:
        if not caller_printed and window is not None and part.start_ms >= window[0]:
            print(f"  {window[0] / 1000:5.1f} s  caller: {label}")
            caller_printed = True
        print(f"  {part.start_ms / 1000:5.1f} s  agent:  {part.text or '(nothing intelligible)'}")
    if not caller_printed and window is not None:
        print(f"  {window[0] / 1000:5.1f} s  caller: {label}")
    answer = _answer_ms(timeline)
    if answer is None:
        print("the agent did not answer the caller")
    else:
        print(f"the agent answered {answer / 1000:.1f} s after the caller stopped")


def dial_command(settings: Settings, args: argparse.Namespace) -> int:
    """`appliance dial [TARGET] [--wav F | --say TEXT]`: exit 0 when the agent answered what
    was said, 1 when it did not, 2 when the call could not be placed as asked."""
    try:
        uri = dial_uri(args.target, settings)
        pcm, label = caller_audio(args.wav, args.say)
        steps: list[Step] = [Speak(pcm, label=label), HangUp()]
        result = asyncio.run(_dial(settings, uri, steps, codec=args.codec, max_s=args.max_s))
    except DialError as exc:
        print(f"appliance dial: {exc}", file=sys.stderr)
        return EXIT_USAGE
    audio = result.pop("audio")
    if args.out is not None:
        try:
            _write_heard(args.out, audio)
        except OSError as exc:
            print(f"appliance dial: cannot write {args.out}: {exc.strerror}", file=sys.stderr)
    answered = _answer_ms(result["timeline"]) is not None
    if args.json:
        words = [
            {"start_ms": w.start_ms, "end_ms": w.end_ms, "text": w.text} for w in result["agent"]
        ]
        print(
            json.dumps(
                {
                    "uri": uri,
                    "codec": args.codec,
                    "caller": label,
                    "ended_by": result["ended_by"],
                    "agent": words,
                    "answer_ms": _answer_ms(result["timeline"]),
                    "timeline": result["timeline"],
                },
                indent=2,
            )
        )
    else:
        _print(uri, args.codec, label, result)
    return EXIT_OK if answered else EXIT_FAILED


def _write_heard(path: Path, audio: bytes) -> None:
    from appliance.audio.wav import wav_header  # noqa: PLC0415

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(wav_header(channels=1, rate=SAMPLE_RATE, data_bytes=len(audio)) + audio)
