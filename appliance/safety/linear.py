"""A linear screen over text embeddings: score = sigmoid(weights . embedding + bias).

The trained screen is `data/screen.json`, written by `appliance.safety.train`; an utterance is
flagged when its score is at or over the threshold.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = ["DIMENSIONS", "SCREEN", "LinearScreen", "NeighbourSettings"]

DIMENSIONS: Final = 384
"""The embedder's vector length (multilingual-e5-small)."""
SCREEN: Final = Path(__file__).resolve().parent / "data" / "screen.json"
"""The trained caller screen shipped with the package."""


@dataclass(frozen=True, slots=True)
class NeighbourSettings:
    """How the screen file says to score a text against the phone set (`neighbours.py`)."""

    k: int
    scale: float
    threshold: float
    """Where the averaged score (linear and neighbours) is flagged."""


@dataclass(frozen=True, slots=True)
class LinearScreen:
    """Logistic-regression weights over one embedder's vectors, and where to flag."""

    weights: tuple[float, ...]
    bias: float
    threshold: float
    """Scores at or over this are flagged; between 0 and 1."""
    embedder: str
    """The model name the vectors must come from, e.g. `multilingual-e5-small-q4`."""
    neighbours: NeighbourSettings | None = None
    """Set when the file was trained with the phone set's neighbours beside the weights."""

    @classmethod
    def load(cls, path: Path = SCREEN) -> LinearScreen:
        """Read a screen file; ValueError naming the file and the fault when it is unusable."""
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(
                f"{path}: cannot read the safety screen ({exc}); "
                "run `python -m appliance.safety.train` to make it"
            ) from exc
        if not isinstance(document, dict):
            raise ValueError(f"{path}: the safety screen must be a JSON object")
        try:
            return cls._parse(document)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None

    @classmethod
    def _parse(cls, document: Mapping[str, object]) -> LinearScreen:
        for key in ("embedder", "dimensions", "weights", "bias", "threshold"):
            if key not in document:
                raise ValueError(f"missing key {key!r}")
        embedder = document["embedder"]
        dimensions = document["dimensions"]
        weights = document["weights"]
        if not isinstance(embedder, str) or not embedder:
            raise ValueError("'embedder' must be a model name")
        if dimensions != DIMENSIONS:
            raise ValueError(f"'dimensions' is {dimensions!r}, not {DIMENSIONS}")
        if not isinstance(weights, list) or len(weights) != DIMENSIONS:
            size = len(weights) if isinstance(weights, list) else "no"
            raise ValueError(f"'weights' has {size} numbers, not {DIMENSIONS}")
        values = tuple(_number(w, "weights") for w in weights)
        threshold = _number(document["threshold"], "threshold")
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"'threshold' {threshold} is not between 0 and 1")
        bias = _number(document["bias"], "bias")
        return cls(
            weights=values,
            bias=bias,
            threshold=threshold,
            embedder=embedder,
            neighbours=_neighbours(document.get("neighbours")),
        )

    def score(self, vector: Sequence[float]) -> float:
        """The chance the screen gives that the embedded text is unsafe, 0 to 1."""
        if len(vector) != len(self.weights):
            raise ValueError(f"a {len(vector)}-d vector for a {len(self.weights)}-d screen")
        z = math.fsum(w * x for w, x in zip(self.weights, vector, strict=True)) + self.bias
        if z >= 0:
            return 1.0 / (1.0 + math.exp(-z))
        e = math.exp(z)
        return e / (1.0 + e)

    def flags(self, vector: Sequence[float]) -> bool:
        """Whether the embedded text scores at or over the threshold."""
        return self.score(vector) >= self.threshold


def _number(value: object, key: str) -> float:
    # bool is an int in Python; `true` where a weight belongs is a broken file, not 1.0.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{key!r} holds {value!r}, not a finite number")
    return float(value)


def _neighbours(value: object) -> NeighbourSettings | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError("'neighbours' must be an object with k, scale and threshold")
    k = _number(value.get("k"), "neighbours.k")
    if k < 1 or k != int(k):
        raise ValueError(f"'neighbours.k' {k} is not a whole number from 1")
    threshold = _number(value.get("threshold"), "neighbours.threshold")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"'neighbours.threshold' {threshold} is not between 0 and 1")
    return NeighbourSettings(
        k=int(k), scale=_number(value.get("scale"), "neighbours.scale"), threshold=threshold
    )
