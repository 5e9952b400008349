"""Caller speech synthesized from text, in a voice that is not the agent's (espeak-ng).

A scenario may give a caller turn as text. Using the agent's own piper voice for the caller would
test the STT on the one voice it will never hear from a caller, so the caller speaks with
espeak-ng's formant voice instead: robotic, unmistakably different, and in Debian.
"""

from __future__ import annotations

import shutil
import subprocess

from appliance.audio.wav import decode_wav

__all__ = ["VoiceUnavailable", "caller_voice"]


class VoiceUnavailable(RuntimeError):
    """The caller voice cannot be synthesized here; the message says how to fix it."""


def caller_voice(text: str, *, voice: str = "en-us", words_per_minute: int = 160) -> bytes:
    """`text` spoken by espeak-ng, as 16 kHz mono PCM16."""
    program = shutil.which("espeak-ng")
    if program is None:
        raise VoiceUnavailable("text caller turns need espeak-ng: sudo apt-get install espeak-ng")
    result = subprocess.run(
        [program, "-v", voice, "-s", str(words_per_minute), "--stdout", text],
        capture_output=True,
        check=False,
        timeout=60,
    )
    if result.returncode != 0 or not result.stdout:
        message = result.stderr.decode(errors="replace").strip()
        raise VoiceUnavailable(f"espeak-ng could not say {text!r}: {message}")
    return decode_wav(result.stdout, name="espeak-ng output").pcm
