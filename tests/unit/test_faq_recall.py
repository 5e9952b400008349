"""A turn's words are embedded once, for the FAQ and the caller's memory both."""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from appliance.conversation.ports import CallInfo, Recollection
from appliance.conversation.profile import FaqEntry
from appliance.memory import calls, vectors
from appliance.memory.db import Database
from appliance.memory.faq import FaqIndex, WithFaq
from appliance.memory.recall import CallerRecall

NUMBER = "+15550100"
FAQ = [
    FaqEntry(question="Is there parking?", answer="Behind the building."),
    FaqEntry(question="Do you take cards?", answer="All major cards."),
]


@dataclass
class WordEmbedder:
    """A bag of words as a unit vector (the words that two texts share bring them near), and
    the texts of every call it was asked."""

    name: str = "words"
    dimensions: int = vectors.DIMENSIONS
    asked: list[list[str]] = field(default_factory=list)

    async def embed(self, texts: Sequence[str], *, query: bool = False) -> list[list[float]]:
        self.asked.append(list(texts))
        return [self._vector(text) for text in texts]

    def _vector(self, text: str) -> list[float]:
        vector = [0.0] * self.dimensions
        for word in "".join(c if c.isalnum() else " " for c in text.lower()).split():
            vector[zlib.crc32(word.encode()) % self.dimensions] += 1.0
        norm = math.hypot(*vector) or 1.0
        return [x / norm for x in vector]


class _Remembers:
    """Another Recall: one fact, whatever is said, and the words it was asked with."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def recall(self, said: str) -> list[Recollection]:
        self.asked.append(said)
        return [Recollection(text="Prefers mornings.", call_id="c1", distance=0.1)]


async def _faq(embedder: WordEmbedder) -> FaqIndex:
    index = FaqIndex(FAQ, embedder, k=1, max_distance=1.0)
    await index.build()
    embedder.asked.clear()  # the entries, once at start
    return index


async def _caller_db(tmp_path: Path, embedder: WordEmbedder) -> Database:
    """A database that holds one fact about the caller."""
    db = Database(tmp_path / "tel3sis.db")
    await db.open()
    info = CallInfo(call_id="c1", line="wav", caller=NUMBER)
    call_id = await db.run(calls.open_call, info, started=1.0, owner="test", memory="")
    text = "Asked if there is parking."
    [vector] = await embedder.embed([text])
    await db.run(vectors.add_vector, NUMBER, kind="fact", call_id=call_id, text=text, vector=vector)
    embedder.asked.clear()
    return db


async def test_the_faq_and_the_callers_memory_share_one_embedding(tmp_path: Path) -> None:
    embedder = WordEmbedder()
    db = await _caller_db(tmp_path, embedder)
    try:
        recall = WithFaq(await _faq(embedder), CallerRecall(db, embedder, NUMBER))
        found = await recall.recall("is there parking")
    finally:
        await db.aclose()
    assert embedder.asked == [["is there parking"]]
    assert [(r.source, r.text) for r in found] == [
        ("business", "Q: Is there parking? A: Behind the building."),
        ("caller", "Asked if there is parking."),
    ]


async def test_a_caller_recall_on_another_embedder_embeds_the_words_itself(
    tmp_path: Path,
) -> None:
    faq_embedder, caller_embedder = WordEmbedder(), WordEmbedder()
    db = await _caller_db(tmp_path, caller_embedder)
    try:
        recall = WithFaq(await _faq(faq_embedder), CallerRecall(db, caller_embedder, NUMBER))
        found = await recall.recall("is there parking")
    finally:
        await db.aclose()
    assert faq_embedder.asked == caller_embedder.asked == [["is there parking"]]
    assert [r.source for r in found] == ["business", "caller"]


async def test_another_recall_is_asked_with_the_words() -> None:
    embedder, remembers = WordEmbedder(), _Remembers()
    found = await WithFaq(await _faq(embedder), remembers).recall("do you take cards")
    assert embedder.asked == [["do you take cards"]]
    assert remembers.asked == ["do you take cards"]
    assert [r.text for r in found] == [
        "Q: Do you take cards? A: All major cards.",
        "Prefers mornings.",
    ]


async def test_without_caller_memory_only_the_faq_is_searched() -> None:
    embedder = WordEmbedder()
    found = await WithFaq(await _faq(embedder), None).recall("is there parking")
    assert embedder.asked == [["is there parking"]]
    assert [r.source for r in found] == ["business"]
