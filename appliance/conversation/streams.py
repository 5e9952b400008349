"""Plumbing between stages: run one ahead of its consumer, close one early, watch one go by."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Final, Generic, TypeVar

from appliance.conversation.ports import Answered

__all__ = ["closing", "engine_of", "prefetched", "tapped"]

T = TypeVar("T")

_END: Final = object()


@contextlib.asynccontextmanager
async def closing(stream: AsyncIterator[T]) -> AsyncIterator[AsyncIterator[T]]:
    """Close `stream` on the way out, even when its consumer stops early (a break, a barge-in)."""
    try:
        yield stream
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()


def engine_of(stream: object, port: str) -> str:
    """The engine that gave `stream`: the chain's answer when it says, else the port's name."""
    engine = stream.engine if isinstance(stream, Answered) else None
    return engine or port


async def tapped(items: AsyncIterator[T], note: Callable[[T], object]) -> AsyncIterator[T]:
    """`items`, unchanged, each shown to `note` as it passes."""
    async for item in items:
        note(item)
        yield item


class _Failed(Generic[T]):
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


@contextlib.asynccontextmanager
async def prefetched(source: AsyncIterator[T], size: int) -> AsyncIterator[AsyncIterator[T]]:
    """Run `source` in a task, at most `size` items ahead of whoever iterates the result."""
    queue: asyncio.Queue[object] = asyncio.Queue(maxsize=size)

    async def pump() -> None:
        try:
            async for item in source:
                await queue.put(item)
        except Exception as exc:
            await queue.put(_Failed(exc))
        else:
            await queue.put(_END)

    async def drain() -> AsyncIterator[T]:
        while (item := await queue.get()) is not _END:
            if isinstance(item, _Failed):
                raise item.error
            yield item  # type: ignore[misc]  # everything else in the queue came from source

    task = asyncio.create_task(pump(), name="prefetch")
    try:
        yield drain()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            await aclose()
