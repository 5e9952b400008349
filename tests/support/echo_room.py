"""A speakerphone's room on paper: the agent's voice comes back into the microphone, delayed
and quieter, with one reflection, while callers speak over it (double talk).

The agent is the LibriVox reader (long, continuous speech); the callers are the other
recordings, each with its reference text, placed while the agent is talking.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from appliance.audio.frame import SAMPLE_RATE, frames_of
from appliance.audio.wav import decode_wav

AUDIO = Path(__file__).resolve().parents[1] / "fixtures" / "audio"
Samples = npt.NDArray[np.float64]


def load(path: Path) -> Samples:
    return np.frombuffer(decode_wav(path.read_bytes()).pcm, dtype="<i2").astype(np.float64)


def agent_voice() -> Samples:
    """About 25 s of continuous speech: what the loudspeaker plays."""
    return np.concatenate([load(p) for p in sorted((AUDIO / "librivox").glob("*.wav"))])


def callers() -> list[tuple[Samples, str]]:
    """Caller utterances with their reference text."""
    cards = (AUDIO / "cards" / "cards.transcription").read_text().splitlines()
    said = [line.split("<s>")[1].split("</s>")[0].strip() for line in cards if "<s>" in line]
    found = [(load(AUDIO / "cards" / f"{i:03d}.wav"), said[i - 1]) for i in (1, 2, 3, 5)]
    return [*found, (load(AUDIO / "goforward.wav"), "go forward ten meters")]


@dataclass
class Room:
    far: bytes
    """What the agent played (PCM16, 16 kHz)."""
    mic: bytes
    """What the microphone heard: the echo plus the callers."""
    callers: bytes
    """The callers alone, as a microphone in a room without echo would hear them."""
    echo_only: slice
    """Samples where only the echo is heard (after the canceller had 5 s to learn)."""
    spoken: list[tuple[slice, str]]
    """Where each caller spoke, and what they said."""


def room(*, delay_ms: float = 40.0, gain_db: float = -9.0, first_caller_s: float = 12.0) -> Room:
    far = agent_voice()
    delay = int(SAMPLE_RATE * delay_ms / 1000)
    echo = np.zeros_like(far)
    echo[delay:] = far[:-delay] * 10 ** (gain_db / 20)
    bounce = delay + int(SAMPLE_RATE * 0.012)
    echo[bounce:] += far[:-bounce] * 10 ** ((gain_db - 8) / 20)
    alone = np.zeros_like(far)
    spoken = []
    at = int(SAMPLE_RATE * first_caller_s)
    for voice, text in callers():
        if at + len(voice) > len(far):
            break
        alone[at : at + len(voice)] += voice
        spoken.append((slice(at, at + len(voice)), text))
        at += len(voice) + SAMPLE_RATE // 2
    pcm = lambda x: np.clip(x, -32768, 32767).astype("<i2").tobytes()  # noqa: E731
    return Room(
        far=pcm(far),
        mic=pcm(echo + alone),
        callers=pcm(alone),
        echo_only=slice(SAMPLE_RATE * 5, int(SAMPLE_RATE * first_caller_s)),
        spoken=spoken,
    )


def erle_db(mic: bytes, out: bytes, where: slice) -> float:
    """Echo return loss enhancement: how much quieter the echo is after cancellation."""
    m = np.frombuffer(mic, dtype="<i2").astype(np.float64)[where]
    o = np.frombuffer(out, dtype="<i2").astype(np.float64)[where]
    return float(10 * np.log10(np.sum(m**2) / max(np.sum(o**2), 1.0)))


def cancelled(mic: bytes, far: bytes, canceller: object) -> bytes:
    """The microphone through `canceller` frame by frame, far end aligned as played."""
    process = canceller.process  # type: ignore[attr-defined]
    out = b"".join(process(m, f) for m, f in zip(frames_of(mic), frames_of(far), strict=False))
    return out[: len(mic)]
