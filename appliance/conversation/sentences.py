"""Streamed LLM text -> speakable sentences, each released the moment it is whole.

The first piece of a reply is released early, at its first clause boundary ("Sure," "I'm
sorry,"): the caller hears the agent start a whole sentence sooner, and the rest of the sentence
is synthesized while the first clause plays. A comma is a natural place to breathe, so the seam
is not heard. A first clause that runs on (the model reading back a long passage with no comma)
is cut after `first_max_words` words: the first audio never waits for a long sentence. Markdown,
list markers and emoji are dropped: a phone has no screen.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

__all__ = ["SentenceSplitter", "sentences", "speakable"]

_ABBREVIATIONS = frozenset(
    {
        "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "vs", "etc", "eg", "ie",
        "e.g", "i.e", "a.m", "p.m", "am", "pm", "no", "approx", "dept", "inc", "ltd", "co",
        "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
    }
)  # fmt: skip
_SENTENCE_END = re.compile(r"[.!?…]+[\"')\]]*(?=\s)")
_CLAUSE_END = re.compile("[,;:\u2014\u2013](?=\\s)")
_MARKUP = re.compile(r"[*_`#>|~]+|\[(?P<label>[^\]]*)\]\([^)]*\)")
_LIST_MARKER = re.compile(r"^\s*(?:[-•*+]|\d{1,2}[.)])\s+", re.MULTILINE)
_EMOJI = re.compile(
    "[\U0001f000-\U0001faff\U00002600-\U000027bf\U0001f900-\U0001f9ff\ufe0f\u200d]+"
)
_SPACES = re.compile(r"\s+")


def speakable(text: str) -> str:
    """Text with the things a voice should not read out removed."""
    text = _LIST_MARKER.sub("", text)
    text = _MARKUP.sub(lambda m: m.group("label") or "", text)
    text = _EMOJI.sub("", text)
    return _SPACES.sub(" ", text).strip()


def _is_abbreviation(text: str, dot_at: int) -> bool:
    if text[dot_at] != ".":
        return False
    word = text[:dot_at].rsplit(None, 1)[-1] if text[:dot_at].strip() else ""
    word = word.lstrip("(\"'").lower()
    single_letter = len(word) == 1 and word.isalpha()  # initials: "J. Smith"
    return word in _ABBREVIATIONS or single_letter


class SentenceSplitter:
    """Accumulates text pieces; `push` returns the sentences completed so far."""

    def __init__(
        self, *, first_clause_words: int = 1, first_max_words: int = 12, max_chars: int = 220
    ) -> None:
        self._buffer = ""
        self._emitted = 0
        self._first_clause_words = first_clause_words
        self._first_max_words = first_max_words
        self._max_chars = max_chars

    def push(self, piece: str) -> list[str]:
        self._buffer += piece
        out: list[str] = []
        while (cut := self._next_cut()) is not None:
            sentence, self._buffer = self._buffer[:cut], self._buffer[cut:]
            self._emit(sentence, out)
        return out

    def flush(self) -> list[str]:
        """Whatever is left at the end of the reply."""
        out: list[str] = []
        self._emit(self._buffer, out)
        self._buffer = ""
        return out

    def _emit(self, sentence: str, out: list[str]) -> None:
        spoken = speakable(sentence)
        if any(ch.isalnum() for ch in spoken):
            out.append(spoken)
            self._emitted += 1

    def _next_cut(self) -> int | None:
        text = self._buffer
        # A paragraph or list break ends a sentence even without punctuation.
        newline = text.find("\n", 1)
        for match in _SENTENCE_END.finditer(text):
            if newline != -1 and newline < match.start():
                break
            if _is_abbreviation(text, match.end() - 1):
                continue
            return match.end()
        if newline != -1 and text[:newline].strip():
            return newline + 1
        if self._emitted == 0:
            for clause in _CLAUSE_END.finditer(text):
                if len(text[: clause.start()].split()) >= self._first_clause_words:
                    return clause.end()
        if len(text) > self._max_chars:
            space = text.rfind(" ", 0, self._max_chars)
            return space if space > 0 else self._max_chars
        if self._emitted == 0:
            return self._first_words_end(text)
        return None

    def _first_words_end(self, text: str) -> int | None:
        """Where the first `first_max_words` words end, once a word after them has begun (so
        the last of them is whole); None before that."""
        words = list(re.finditer(r"\S+", text))
        if len(words) <= self._first_max_words:
            return None
        return words[self._first_max_words - 1].end()


async def sentences(pieces: AsyncIterator[str], **options: int) -> AsyncIterator[str]:
    """The stage: streamed text in, whole speakable sentences out, in order."""
    splitter = SentenceSplitter(**options)
    async for piece in pieces:
        for sentence in splitter.push(piece):
            yield sentence
    for sentence in splitter.flush():
        yield sentence
