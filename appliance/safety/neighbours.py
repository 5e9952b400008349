"""How close a caller's words come to the phone set's unsafe and benign utterances.

The linear screen learns one direction in the embedding space, mostly from public sets written
as chat prompts; callers say the same things otherwise ("I'll be waiting with a crowbar"). The
phone set (`data/phone_train.tsv`) is what callers say: a text whose nearest phone utterances
are unsafe rather than benign is likely unsafe too. The screen averages the two scores
(`Combined`); measured out of fold on the phone set, the pair flags 72% of unsafe utterances at
5% false alarms where the linear screen alone flags 58%.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from appliance.safety.linear import LinearScreen

__all__ = ["Combined", "Neighbours", "neighbour_scores"]


def neighbour_scores(
    bank: NDArray[np.float64],
    unsafe: NDArray[np.bool_],
    queries: NDArray[np.float64],
    *,
    k: int,
    scale: float,
) -> NDArray[np.float64]:
    """For each query row: sigmoid(scale * (mean of its `k` highest cosine similarities to the
    unsafe rows of `bank` - the same for the benign rows)). Rows are unit vectors."""
    similar = queries @ bank.T
    k_unsafe = min(k, int(unsafe.sum()))
    k_benign = min(k, int((~unsafe).sum()))
    near_unsafe = np.sort(similar[:, unsafe], axis=1)[:, -k_unsafe:].mean(axis=1)
    near_benign = np.sort(similar[:, ~unsafe], axis=1)[:, -k_benign:].mean(axis=1)
    z = np.clip(scale * (near_unsafe - near_benign), -60.0, 60.0)
    return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=np.float64)


@dataclass(frozen=True, slots=True)
class Neighbours:
    bank: NDArray[np.float64]
    """The phone set's vectors, one row each."""
    unsafe: NDArray[np.bool_]
    k: int
    scale: float
    categories: tuple[str, ...] = ()
    """Each row's category (`weapons`, `self_harm`, ...), for `nearest_unsafe`."""

    def __post_init__(self) -> None:
        if not self.unsafe.any() or self.unsafe.all():
            raise ValueError("the neighbour bank needs unsafe and benign utterances both")
        if self.categories and len(self.categories) != len(self.unsafe):
            raise ValueError("one category a row, or none")

    def nearest_unsafe(self, vector: Sequence[float]) -> str:
        """The category of the unsafe utterance most like `vector` (`model` without categories):
        a caller flagged for speaking of self-harm hears where to find help, not a refusal."""
        if not self.categories:
            return "model"
        similar = self.bank @ np.asarray(vector, dtype=np.float64)
        similar[~self.unsafe] = -np.inf
        return self.categories[int(np.argmax(similar))]

    def score(self, vector: Sequence[float]) -> float:
        query = np.asarray(vector, dtype=np.float64).reshape(1, -1)
        return float(neighbour_scores(self.bank, self.unsafe, query, k=self.k, scale=self.scale)[0])


@dataclass(frozen=True, slots=True)
class Combined:
    """The linear screen's score and the neighbours', averaged; flagged at `threshold`."""

    linear: LinearScreen
    neighbours: Neighbours
    threshold: float

    def score(self, vector: Sequence[float]) -> float:
        return (self.linear.score(vector) + self.neighbours.score(vector)) / 2
