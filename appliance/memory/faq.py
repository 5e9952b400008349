"""The business's FAQ, searched per turn in sqlite-vec when it is too long for the prompt.

A profile with more than `FAQ_IN_PROMPT_MAX` entries keeps them out of the system prompt (which
must stay short, and the same bytes on every turn); each turn, the entries nearest to what the
caller said are given to the model beside the turn instead. The index is an in-memory vec0
table built once at start: the FAQ is the operator's file, not the caller's data.
"""

from __future__ import annotations

import array
from collections.abc import Sequence
from dataclasses import dataclass, field

import apsw
import sqlite_vec

from appliance.conversation.ports import Embedder, Recall, Recollection
from appliance.conversation.profile import FaqEntry
from appliance.memory.recall import CallerRecall

__all__ = ["FaqIndex", "WithFaq"]


def _blob(vector: Sequence[float]) -> bytes:
    return array.array("f", vector).tobytes()


@dataclass(slots=True)
class FaqIndex:
    """The FAQ entries, embedded; `nearest` finds those nearest to the caller's words."""

    entries: Sequence[FaqEntry]
    embedder: Embedder
    k: int = 2
    max_distance: float = 0.22
    """Cosine. Measured with e5-small (4-bit) on an 11-entry dental FAQ: the right entry at
    0.10-0.19, other entries of the same business at 0.17-0.21, off-topic words at 0.30 and
    more. So this cuts what is off the business's topic; near neighbours still come along."""
    _conn: apsw.Connection | None = field(default=None, init=False)

    async def build(self) -> None:
        """Embed every entry (a few ms each) into a fresh in-memory table."""
        texts = [self.text(entry) for entry in self.entries]
        vectors = await self.embedder.embed(texts) if texts else []
        conn = apsw.Connection(":memory:")
        conn.enable_load_extension(True)
        conn.load_extension(sqlite_vec.loadable_path())
        conn.enable_load_extension(False)
        conn.execute(
            f"CREATE VIRTUAL TABLE faq USING vec0("
            f"embedding float[{self.embedder.dimensions}] distance_metric=cosine, +text TEXT)"
        )
        with conn:
            for text, vector in zip(texts, vectors, strict=True):
                conn.execute(
                    "INSERT INTO faq (embedding, text) VALUES (?, ?)", (_blob(vector), text)
                )
        self._conn = conn

    @staticmethod
    def text(entry: FaqEntry) -> str:
        return f"Q: {entry.question} A: {entry.answer}"

    def nearest(self, vector: Sequence[float]) -> Sequence[Recollection]:
        """The entries nearest `vector`, the caller's words embedded as a query by `embedder`."""
        if self._conn is None:
            raise RuntimeError("the FAQ index is not built yet (await build() at start)")
        # A vec0 search over a few hundred rows takes microseconds: no thread needed.
        rows = self._conn.execute(
            "SELECT text, distance FROM faq WHERE embedding MATCH ? AND k = ? ORDER BY distance",
            (_blob(vector), self.k),
        )
        return [
            Recollection(text=text, call_id="", distance=float(distance), source="business")
            for text, distance in rows
            if distance <= self.max_distance
        ]


@dataclass(frozen=True, slots=True)
class WithFaq:
    """One call's recall: the FAQ entries near the caller's words, then the caller's memory.

    The words are embedded once per turn: a `CallerRecall` on the FAQ's own embedder is
    searched with the FAQ's vector (an embedding is most of a recall's time); another `Recall`
    is asked with the words.
    """

    faq: FaqIndex
    caller: Recall | None

    async def recall(self, said: str) -> Sequence[Recollection]:
        [vector] = await self.faq.embedder.embed([said], query=True)
        found = list(self.faq.nearest(vector))
        if isinstance(self.caller, CallerRecall) and self.caller.embedder is self.faq.embedder:
            found += await self.caller.nearest(vector)
        elif self.caller is not None:
            found += await self.caller.recall(said)
        return found
