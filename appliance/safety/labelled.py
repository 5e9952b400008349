"""Labelled caller utterances for the safety screens: the TSV sets, their loader and the
measures used to keep a training set apart from the red-team set.

A set is UTF-8, tab-separated, with the header `category<TAB>label<TAB>text`; each category
belongs to one label (`UNSAFE_CATEGORIES` are `unsafe`, `BENIGN_CATEGORIES` are `benign`).
"""

from __future__ import annotations

import re
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = [
    "BENIGN_CATEGORIES",
    "CATEGORIES",
    "DATA_DIR",
    "HEADER",
    "LABELS",
    "UNSAFE_CATEGORIES",
    "Row",
    "jaccard",
    "jaccard_sets",
    "load_rows",
    "normalise",
    "word_set",
    "words",
]

DATA_DIR: Final = Path(__file__).resolve().parent / "data"
"""Where the package's labelled sets live (`redteam.tsv`, `phone_train.tsv`)."""

HEADER: Final = ("category", "label", "text")
"""The first line of every set, split at its tabs."""

UNSAFE_CATEGORIES: Final = frozenset(
    {"violence", "weapons", "self_harm", "fraud", "other_data", "injection", "harassment", "drugs"}
)
BENIGN_CATEGORIES: Final = frozenset({"benign", "benign_alarming", "benign_offtopic"})
"""`benign`: front-desk requests; `benign_alarming`: front-desk requests in strong words ("my
tooth is killing me"); `benign_offtopic`: harmless speech that is not for the business at all
(a book read aloud, card games, bare numbers, directions, small talk, half-heard fragments)."""
CATEGORIES: Final = UNSAFE_CATEGORIES | BENIGN_CATEGORIES
LABELS: Final = frozenset({"unsafe", "benign"})

_WORD = re.compile(r"[a-z0-9]+")
_HEADER_LINE = "\t".join(HEADER)


@dataclass(frozen=True, slots=True)
class Row:
    """One labelled utterance."""

    category: str
    label: str
    text: str


def words(text: str) -> list[str]:
    """The lowercase `[a-z0-9]` words of `text`, in order (an apostrophe splits a word)."""
    return _WORD.findall(text.lower())


def normalise(text: str) -> str:
    """`text` as compared for duplicates: its lowercase `[a-z0-9]` words joined by one space."""
    return " ".join(words(text))


def word_set(text: str) -> frozenset[str]:
    """The distinct words of `text`, as `words` splits them."""
    return frozenset(words(text))


def jaccard_sets(left: AbstractSet[str], right: AbstractSet[str]) -> float:
    """|left & right| / |left | right|; 0.0 when both are empty. For comparing many pairs, make
    each text's `word_set` once and compare the sets."""
    union = len(left | right)
    return len(left & right) / union if union else 0.0


def jaccard(a: str, b: str) -> float:
    """The Jaccard similarity of the word sets of `a` and `b` (0.0 when both have no words)."""
    return jaccard_sets(word_set(a), word_set(b))


def _label_for(category: str) -> str:
    return "unsafe" if category in UNSAFE_CATEGORIES else "benign"


def _parse(line: str, where: str) -> Row:
    fields = line.split("\t")
    if len(fields) != len(HEADER):
        raise ValueError(f"{where}: expected {len(HEADER)} tab-separated fields, got {len(fields)}")
    category, label, text = fields
    if category not in CATEGORIES:
        raise ValueError(f"{where}: unknown category {category!r}")
    if label not in LABELS:
        raise ValueError(f"{where}: unknown label {label!r}")
    if label != _label_for(category):
        raise ValueError(f"{where}: category {category!r} is {_label_for(category)}, not {label}")
    if not text or text != text.strip():
        raise ValueError(f"{where}: the text is empty or has surrounding spaces")
    return Row(category, label, text)


def load_rows(path: Path) -> list[Row]:
    """The rows of the labelled set at `path`, in file order.

    Raises `ValueError` naming the file and line of the first bad line: a wrong header, a wrong
    number of fields, an unknown category or label, a label its category does not have, or an
    empty or unstripped text.
    """
    lines = path.read_text(encoding="utf-8").split("\n")
    if lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    if not lines or tuple(lines[0].split("\t")) != HEADER:
        raise ValueError(f"{path}:1: the header must be {_HEADER_LINE!r}")
    return [_parse(line, f"{path}:{number}") for number, line in enumerate(lines[1:], start=2)]
