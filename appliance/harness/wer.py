"""Word error rate between what was said and what was heard, after normalizing both.

Normalization makes "10 of clubs." and "ten of clubs" the same words: lower case, no
punctuation, hyphenated words split, numbers up to 999 spelled out, common titles expanded.
"""

from __future__ import annotations

import re

__all__ = ["normalize", "wer"]

_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_TITLES = {"mr": "mister", "mrs": "missus", "dr": "doctor", "st": "saint"}
_TOKEN = re.compile(r"[a-z0-9']+")


def _number(n: int) -> str:
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + ("" if ones == 0 else " " + _ONES[ones])
    hundreds, rest = divmod(n, 100)
    return _ONES[hundreds] + " hundred" + ("" if rest == 0 else " " + _number(rest))


def normalize(text: str) -> list[str]:
    """Comparable words of `text`."""
    words: list[str] = []
    for raw in _TOKEN.findall(text.lower().replace("-", " ")):
        token = raw.strip("'")
        if token.isdigit() and len(token) <= 3:
            words.extend(_number(int(token)).split())
        elif token:
            words.append(_TITLES.get(token, token))
    return words


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate of `hypothesis` against `reference` (0 is perfect; can exceed 1)."""
    ref, hyp = normalize(reference), normalize(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        current = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h))
        previous = current
    return previous[-1] / len(ref)
