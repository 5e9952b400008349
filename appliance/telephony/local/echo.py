"""Acoustic echo cancellation for the speakerphone: Debian's libspeexdsp through ctypes.

On a speakerphone the microphone hears the agent's own voice from the loudspeaker. Left in,
the agent transcribes itself and barges in on itself. Speex's echo canceller (an adaptive
filter, MDF) learns the path from loudspeaker to microphone from the audio we played (the far
end) and subtracts it; its preprocessor then suppresses the residual echo the filter missed.
Chosen by measurement (shared/MODELS.md, Wave 2): 42-48 dB of echo return loss enhancement
with the caller's words intact, where WebRTC's AEC3 gave 32-38 dB and dropped first words in
double talk. libspeexdsp1 is a Debian package on every board (no wheel, no vendored source).
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from typing import Final

from appliance.audio.frame import FRAME_BYTES, FRAME_SAMPLES, SAMPLE_RATE

__all__ = ["EchoCanceller", "EchoUnavailable", "load_speexdsp"]

_ECHO_SET_SAMPLING_RATE: Final = 24
_PREPROCESS_SET_DENOISE: Final = 0
_PREPROCESS_SET_ECHO_SUPPRESS: Final = 20
_PREPROCESS_SET_ECHO_SUPPRESS_ACTIVE: Final = 22
_PREPROCESS_SET_ECHO_STATE: Final = 24
_Frame = ctypes.c_int16 * FRAME_SAMPLES


class EchoUnavailable(RuntimeError):
    """libspeexdsp cannot be loaded; the message says which package to install."""


def load_speexdsp() -> ctypes.CDLL:
    """The shared library, with the signatures we call declared."""
    name = ctypes.util.find_library("speexdsp") or "libspeexdsp.so.1"
    try:
        lib = ctypes.CDLL(name)
    except OSError as exc:
        raise EchoUnavailable(
            f"echo cancellation needs libspeexdsp ({exc}): `apt-get install libspeexdsp1`, "
            "or set LOCAL_ECHO_CANCEL=false"
        ) from exc
    state = ctypes.c_void_p
    lib.speex_echo_state_init.restype = state
    lib.speex_echo_state_init.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.speex_echo_state_destroy.argtypes = [state]
    lib.speex_echo_state_reset.argtypes = [state]
    lib.speex_echo_ctl.argtypes = [state, ctypes.c_int, ctypes.c_void_p]
    lib.speex_echo_cancellation.argtypes = [state, _Frame, _Frame, _Frame]
    lib.speex_preprocess_state_init.restype = state
    lib.speex_preprocess_state_init.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.speex_preprocess_state_destroy.argtypes = [state]
    lib.speex_preprocess_ctl.argtypes = [state, ctypes.c_int, ctypes.c_void_p]
    lib.speex_preprocess_run.argtypes = [state, _Frame]
    return lib


class EchoCanceller:
    """One conversation's canceller: feed each microphone frame with the frame played meanwhile.

    Not thread-safe: one thread (the sound card's) calls `process`. `tail_ms` must cover the
    loudspeaker-to-microphone delay (the sound card's output and input latency) plus the room's
    reverberation; a longer tail adapts more slowly. `denoise` stays on: speex applies its
    residual-echo suppression in the same spectral gain as its noise suppression, and without
    it the suppression does nothing (measured: 29 dB ERLE without, 47 dB with, the caller
    1.5 dB quieter; tests/unit/test_echo.py).
    """

    def __init__(
        self,
        *,
        tail_ms: int = 300,
        suppress_db: int = -40,
        suppress_active_db: int = -15,
        denoise: bool = True,
        lib: ctypes.CDLL | None = None,
    ) -> None:
        self._lib = lib or load_speexdsp()
        taps = SAMPLE_RATE * tail_ms // 1000
        self._echo = self._lib.speex_echo_state_init(FRAME_SAMPLES, taps)
        self._pre = self._lib.speex_preprocess_state_init(FRAME_SAMPLES, SAMPLE_RATE)
        if not self._echo or not self._pre:
            self.close()
            raise EchoUnavailable("libspeexdsp could not allocate its state (out of memory?)")
        self._set(self._lib.speex_echo_ctl, self._echo, _ECHO_SET_SAMPLING_RATE, SAMPLE_RATE)
        self._lib.speex_preprocess_ctl(
            self._pre, _PREPROCESS_SET_ECHO_STATE, ctypes.c_void_p(self._echo)
        )
        ctl = self._lib.speex_preprocess_ctl
        self._set(ctl, self._pre, _PREPROCESS_SET_DENOISE, int(denoise))
        self._set(ctl, self._pre, _PREPROCESS_SET_ECHO_SUPPRESS, suppress_db)
        self._set(ctl, self._pre, _PREPROCESS_SET_ECHO_SUPPRESS_ACTIVE, suppress_active_db)
        self._near = _Frame()
        self._far = _Frame()
        self._out = _Frame()

    @staticmethod
    def _set(ctl: Callable[..., int], state: int, request: int, value: int) -> None:
        ctl(state, request, ctypes.byref(ctypes.c_int(value)))

    def process(self, near: bytes, far: bytes) -> bytes:
        """The microphone frame `near` with the echo of `far` (what the loudspeaker played in
        the same 20 ms) removed; both are one 16 kHz PCM16 frame."""
        if len(near) != FRAME_BYTES or len(far) != FRAME_BYTES:
            raise ValueError(f"the echo canceller takes {FRAME_BYTES}-byte frames")
        ctypes.memmove(self._near, near, FRAME_BYTES)
        ctypes.memmove(self._far, far, FRAME_BYTES)
        self._lib.speex_echo_cancellation(self._echo, self._near, self._far, self._out)
        self._lib.speex_preprocess_run(self._pre, self._out)
        return bytes(self._out)

    def reset(self) -> None:
        """Forget the learnt echo path (a new conversation, or the device changed)."""
        self._lib.speex_echo_state_reset(self._echo)

    def close(self) -> None:
        """Free the C state (once; later calls do nothing)."""
        if self._pre:
            self._lib.speex_preprocess_state_destroy(self._pre)
            self._pre = None
        if self._echo:
            self._lib.speex_echo_state_destroy(self._echo)
            self._echo = None
