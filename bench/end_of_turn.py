"""How the silence policy treats mid-sentence pauses and finished sentences, as tiny.en hears them.

    .venv/bin/python -m bench.end_of_turn [--json FILE]

The endpoint waits `ENDPOINT_MS` of silence, shorter (x0.7) after a transcript that sounds
finished, longer (x1.8) after one that sounds unfinished (`SilencePolicy`). A caller who pauses
mid-sentence is cut off when the policy gives the pause a short wait. This builds two sets:

- **pauses**: every front-desk scenario sentence spoken by espeak-ng only up to each word
  boundary ("I would like to book a", ...), and the real recordings cut at each silence of
  120 ms or more inside them;
- **finals**: the same sentences and recordings whole.

Each is transcribed by whisper tiny.en as a call would, and scored by the end-of-turn model
(Smart Turn, `TURN_MODEL`) on its audio with the pause's silence after it, and the policy's wait
is read. It prints, for the policy before the unfinished-word list grew (kept here as it was),
now on the words alone, and now with the model's veto: the share of pauses given the long wait
(held: not cut at the endpoint's base silence), the share given the short one (cut soonest),
and the share of finals made to wait long (a slower answer). A pause given anything but the
long wait is a false cut when the caller pauses longer than that wait.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

from appliance.app.engines import weights_file
from appliance.audio.frame import FRAME_MS, frames_of, rms_dbfs, silence
from appliance.conversation.turns import VETO_BELOW, SilencePolicy
from appliance.engines.models.manifest import Manifest
from appliance.engines.models.store import ModelStore
from appliance.engines.offload import Offloader
from appliance.engines.stt.whisper import WhisperSpeechToText
from appliance.engines.turn.smart_turn import SmartTurn
from appliance.harness.voices import caller_voice
from appliance.settings import Settings
from appliance.telephony.wavfile import load_wav

ROOT = Path(__file__).resolve().parents[1]
BASE_MS = 500
TAIL = silence() * (160 // FRAME_MS)
"""The silence after the speech in what a pause hands on (`TurnConfig.tail_ms`)."""

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


_Heard = tuple[str, float, str]
"""A transcript, its end-of-turn score, and where the audio came from (`espeak`, `recorded`)."""


async def _heard(
    stt: WhisperSpeechToText, turn: SmartTurn, audio: list[tuple[bytes, str]]
) -> list[_Heard]:
    """Each transcribed and scored, those with words."""
    heard = [
        ((await stt.transcribe(pcm)).text, await turn.complete(pcm), source)
        for pcm, source in audio
    ]
    return [item for item in heard if item[0].strip()]


def _shares(
    policy: Callable[[str, float], int], pauses: list[_Heard], finals: list[_Heard]
) -> dict[str, float]:
    waits = [policy(text, score) for text, score, _ in pauses]
    final_waits = [policy(text, score) for text, score, _ in finals]
    long, short = round(BASE_MS * 1.8), round(BASE_MS * 0.7)
    return {
        "pauses_held_long": round(sum(w == long for w in waits) / len(waits), 3),
        "pauses_cut_soonest": round(sum(w == short for w in waits) / len(waits), 3),
        "finals_made_to_wait": round(sum(w == long for w in final_waits) / len(final_waits), 3),
    }


async def main_async() -> dict[str, object]:
    settings = Settings.load(None)
    models = settings.paths.models
    stt = WhisperSpeechToText(models / "whisper-tiny.en", offloader=Offloader("eot-bench"))
    turn_model = settings.engines.turn_model
    store = ModelStore(models, Manifest.load())
    turn = SmartTurn(weights_file(store, turn_model, ".onnx"), offloader=Offloader("eot-turn"))
    pauses: list[tuple[bytes, str]] = []
    finals: list[tuple[bytes, str]] = []
    for text, voice in _sentences():
        words = text.split()
        finals.append((caller_voice(text, voice=voice) + TAIL, "espeak"))
        pauses += [
            (caller_voice(" ".join(words[:k]), voice=voice) + TAIL, "espeak")
            for k in range(2, len(words))
        ]
    recordings = sorted((ROOT / "tests" / "fixtures" / "audio").rglob("*.wav"))
    for path in recordings:
        pcm = load_wav(path).pcm
        finals.append((pcm, "recorded"))
        pauses += [(cut, "recorded") for cut in _cut_at_pauses(pcm)]
    heard_pauses = await _heard(stt, turn, pauses)
    heard_finals = await _heard(stt, turn, finals)
    policy_now = SilencePolicy(BASE_MS)

    def now(text: str | None, _: float) -> int:
        return policy_now.endpoint_ms(text)

    def vetoed(text: str | None, score: float) -> int:
        return policy_now.endpoint_ms(text, complete=score)

    def veto_below(threshold: float) -> Callable[[str, float], int]:
        policy = SilencePolicy(BASE_MS, veto_below=threshold)
        return lambda text, score: policy.endpoint_ms(text, complete=score)

    report: dict[str, object] = {"pauses": len(heard_pauses), "finals": len(heard_finals)}
    policies: dict[str, Callable[[str, float], int]] = {
        "before": lambda text, _: before(text),
        "now": now,
        f"now + {turn_model} veto (p < {VETO_BELOW})": vetoed,
        **{
            f"now + {turn_model} veto (p < {threshold})": veto_below(threshold)
            for threshold in (0.05, 0.02)
        },
    }
    for source in ("all", "espeak", "recorded"):
        these_pauses = [h for h in heard_pauses if source in ("all", h[2])]
        these_finals = [h for h in heard_finals if source in ("all", h[2])]
        print(f"{source}: {len(these_pauses)} mid-sentence pauses, {len(these_finals)} finished")
        for name, policy in policies.items():
            shares = _shares(policy, these_pauses, these_finals)
            report[f"{source}: {name}"] = shares
            print(f"  {name}: {shares}", flush=True)
    report["finals_changed"] = [t for t, s, _ in heard_finals if before(t) != now(t, s)]
    report["finals_vetoed"] = [
        (t, round(s, 3), src) for t, s, src in heard_finals if vetoed(t, s) != now(t, s)
    ]
    print(f"finished sentences the veto held: {report['finals_vetoed']}")
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
