"""G.711 mu-law and A-law (ITU-T G.711), as lookup tables over numpy arrays.

`audioop` did this until Python 3.13 removed it. Decoding is a 256-entry table; encoding is a
65,536-entry table indexed by the 16-bit sample, built once per process on first use.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import numpy.typing as npt

__all__ = ["alaw_decode", "alaw_encode", "ulaw_decode", "ulaw_encode"]

_BIAS = 0x84
_CLIP_14 = 8159
_ULAW_SEGMENT_ENDS = (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF)


def _ulaw_byte_to_linear(byte: int) -> int:
    u = ~byte & 0xFF
    sign = u & 0x80
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = ((mantissa << 3) + _BIAS) << exponent
    return -(magnitude - _BIAS) if sign else magnitude - _BIAS


def _alaw_byte_to_linear(byte: int) -> int:
    a = byte ^ 0x55
    sign = a & 0x80
    exponent = (a >> 4) & 0x07
    mantissa = a & 0x0F
    magnitude = (
        (mantissa << 4) + 8 if exponent == 0 else ((mantissa << 4) + 0x108) << (exponent - 1)
    )
    return magnitude if sign else -magnitude


def _linear_to_ulaw(sample: int) -> int:
    # 14-bit companding as in the ITU reference (and CPython's audioop): shift first, then fold.
    value = sample >> 2
    mask = 0x7F if value < 0 else 0xFF
    value = min(-value if value < 0 else value, _CLIP_14) + (_BIAS >> 2)
    segment = next((i for i, end in enumerate(_ULAW_SEGMENT_ENDS) if value <= end), 8)
    if segment >= 8:
        return 0x7F ^ mask
    return ((segment << 4) | ((value >> (segment + 1)) & 0x0F)) ^ mask


def _linear_to_alaw(sample: int) -> int:
    sign = 0x80 if sample >= 0 else 0
    magnitude = min(sample if sample >= 0 else -sample - 1, 32767) >> 3
    if magnitude < 0x20:
        code = magnitude >> 1
    else:
        exponent = magnitude.bit_length() - 5
        code = (exponent << 4) | ((magnitude >> exponent) & 0x0F)
    return (sign | code) ^ 0x55


@cache
def _decode_table(law: str) -> npt.NDArray[np.int16]:
    convert = _ulaw_byte_to_linear if law == "ulaw" else _alaw_byte_to_linear
    return np.array([convert(b) for b in range(256)], dtype=np.int16)


@cache
def _encode_table(law: str) -> npt.NDArray[np.uint8]:
    convert = _linear_to_ulaw if law == "ulaw" else _linear_to_alaw
    return np.array([convert(s) for s in range(-32768, 32768)], dtype=np.uint8)


def _encode(pcm: bytes, law: str) -> bytes:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.int32) + 32768
    return _encode_table(law)[samples].tobytes()


def _decode(data: bytes, law: str) -> bytes:
    codes = np.frombuffer(data, dtype=np.uint8)
    return _decode_table(law)[codes].astype("<i2").tobytes()


def ulaw_encode(pcm: bytes) -> bytes:
    """PCM16 -> mu-law, one byte per sample."""
    return _encode(pcm, "ulaw")


def ulaw_decode(data: bytes) -> bytes:
    """Mu-law -> PCM16."""
    return _decode(data, "ulaw")


def alaw_encode(pcm: bytes) -> bytes:
    """PCM16 -> A-law, one byte per sample."""
    return _encode(pcm, "alaw")


def alaw_decode(data: bytes) -> bytes:
    """A-law -> PCM16."""
    return _decode(data, "alaw")
