"""How the silence policy treats mid-sentence pauses and finished sentences, as tiny.en hears them.

    .venv/bin/python -m bench.end_of_turn [--json FILE]

The endpoint waits `ENDPOINT_MS` of silence, shorter (x0.7) after a transcript that sounds
finished, longer (x1.8) after one that sounds unfinished (`SilencePolicy`). A caller who pauses
mid-sentence is cut off when the policy gives the pause a short wait. This builds two sets:

- **pauses**: every front-desk scenario sentence spoken by espeak-ng only up to each word
  boundary ("I would like to book a", ...), and the real recordings cut at each silence of
  120 ms or more inside them;
- **finals**: the same sentences and recordings whole.

Each is transcribed by whisper tiny.en as a call would, and the policy's wait is read. It
prints, for the policy before this change (kept here as it was) and now: the share of pauses
given the long wait (held: not cut at the endpoint's base silence), the share given the short
one (cut soonest), and the share of finals made to wait long (a slower answer).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from pathlib import Path

import yaml

from appliance.audio.frame import frames_of, rms_dbfs
from appliance.conversation.turns import SilencePolicy
from appliance.engines.offload import Offloader
from appliance.engines.stt.whisper import WhisperSpeechToText
from appliance.harness.voices import caller_voice
from appliance.settings import Settings
from appliance.telephony.wavfile import load_wav

ROOT = Path(__file__).resolve().parents[1]
BASE_MS = 500

_BEFORE_INCOMPLETE = re.compile(
    r"(?:\b(?:and|but|or|so|because|um+|uh+|er|like|the|a|an|to|of|with|my|is|if|then)|[,;:-])$"
)


def before(text: str | None) -> int:
    """The policy as it was before the unfinished-word list grew (for the comparison)."""
    said = (text or "").strip().lower()
    if not said:
        return BASE_MS
    if _BEFORE_INCOMPLETE.search(said.rstrip(".")) and not said.endswith(("?", "!")):
        return round(BASE_MS * 1.8)
    if said.endswith((".", "!", "?")):
        return round(BASE_MS * 0.7)
    return BASE_MS


def _sentences() -> list[tuple[str, str]]:
    paths = sorted((ROOT / "tests" / "scenarios" / "front-desk").glob("*.yaml"))
    turns = [turn for path in paths for turn in yaml.safe_load(path.read_text())["caller"]]
    return [(turn["text"], turn.get("voice", "en-us")) for turn in turns if "text" in turn]


def _cut_at_pauses(pcm: bytes, min_gap_frames: int = 6) -> list[bytes]:
    """The recording up to each quiet stretch inside its speech."""
    frames = list(frames_of(pcm))
    voiced = [rms_dbfs(f) > -38 for f in frames]
    if True not in voiced:
        return []
    first, last = voiced.index(True), len(voiced) - voiced[::-1].index(True)
    cuts, run = [], 0
    for i in range(first, last):
        run = 0 if voiced[i] else run + 1
        if run == min_gap_frames:
            cuts.append(b"".join(frames[: i + 1]))
    return cuts


async def _heard(stt: WhisperSpeechToText, audio: list[bytes]) -> list[str]:
    return [(await stt.transcribe(pcm)).text for pcm in audio]


async def main_async() -> dict[str, object]:
    models = Settings.load(None).paths.models
    stt = WhisperSpeechToText(models / "whisper-tiny.en", offloader=Offloader("eot-bench"))
    pauses: list[bytes] = []
    finals: list[bytes] = []
    for text, voice in _sentences():
        words = text.split()
        finals.append(caller_voice(text, voice=voice))
        pauses += [caller_voice(" ".join(words[:k]), voice=voice) for k in range(2, len(words))]
    recordings = sorted((ROOT / "tests" / "fixtures" / "audio").rglob("*.wav"))
    for path in recordings:
        pcm = load_wav(path).pcm
        finals.append(pcm)
        pauses += _cut_at_pauses(pcm)
    heard_pauses = [t for t in await _heard(stt, pauses) if t.strip()]
    heard_finals = [t for t in await _heard(stt, finals) if t.strip()]
    now = SilencePolicy(BASE_MS).endpoint_ms
    report: dict[str, object] = {"pauses": len(heard_pauses), "finals": len(heard_finals)}
    for name, policy in (("before", before), ("now", now)):
        waits = [policy(t) for t in heard_pauses]
        final_waits = [policy(t) for t in heard_finals]
        long, short = round(BASE_MS * 1.8), round(BASE_MS * 0.7)
        report[name] = {
            "pauses_held_long": round(sum(w == long for w in waits) / len(waits), 3),
            "pauses_cut_soonest": round(sum(w == short for w in waits) / len(waits), 3),
            "finals_made_to_wait": round(sum(w == long for w in final_waits) / len(final_waits), 3),
        }
        print(f"{name}: {report[name]}", flush=True)
    print(f"({len(heard_pauses)} mid-sentence pauses, {len(heard_finals)} finished sentences)")
    changed = [t for t in heard_finals if before(t) != now(t)]
    report["finals_changed"] = changed
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    report = asyncio.run(main_async())
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
