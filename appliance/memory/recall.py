"""What the agent is told about a caller at the start of a call, and reminded of during it.

At the start: their name, how often they called, their facts and latest call summaries, as one
system message (see `History` for where it goes in the prompt). During the call, `CallerRecall`
is the Recall port for one caller: each turn's words, embedded as a query, against that caller's
stored summaries and facts in sqlite-vec (`nearest` takes words already embedded, so `WithFaq`
embeds them once for the FAQ and the caller both).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from appliance.conversation.ports import Embedder, Recollection
from appliance.memory import callers, vectors
from appliance.memory.db import Database

__all__ = ["CallerRecall", "context_message"]


def context_message(memory: callers.CallerMemory) -> str:
    """What the agent is told about a caller it has spoken to before ("" for a stranger)."""
    if memory.empty:
        return ""
    lines = [
        "What you know about this caller from earlier calls (use it to help them; do not "
        "read it out):"
    ]
    if memory.name:
        lines.append(f"Their name: {memory.name}.")
    if memory.calls:
        lines.append(
            f"They have called {memory.calls} time{'s' if memory.calls > 1 else ''} before."
        )
    lines.extend(f"- {fact}" for fact in memory.facts)
    for started, summary in memory.summaries:
        day = time.strftime("%Y-%m-%d", time.localtime(started))
        lines.append(f"Call on {day}: {summary[:400]}")
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class CallerRecall:
    """The Recall port for one caller: their nearest stored summaries and facts."""

    db: Database
    embedder: Embedder
    number: str
    k: int = 3
    max_distance: float = 0.35
    """Cosine; e5-small puts unrelated English text at about 0.2-0.3, so this only cuts noise."""

    async def recall(self, said: str) -> Sequence[Recollection]:
        [vector] = await self.embedder.embed([said], query=True)
        return await self.nearest(vector)

    async def nearest(self, vector: Sequence[float]) -> Sequence[Recollection]:
        """The caller's items nearest `vector`, a query embedded by `embedder`."""
        return await self.db.run(
            vectors.nearest, self.number, vector, k=self.k, max_distance=self.max_distance
        )
