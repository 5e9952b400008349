"""Watching an `appliance serve` process from a test."""

from __future__ import annotations

import asyncio

__all__ = ["wait_for_line"]


async def wait_for_line(stream: asyncio.StreamReader, text: str, seen: list[str]) -> None:
    """Read `stream` (serve's log) until a line holds `text`; every line read is added to
    `seen`. Fails, with what was seen, if the process ends first."""
    while True:
        line = (await stream.readline()).decode(errors="replace")
        if not line:
            raise AssertionError(f"serve ended before logging {text!r}:\n{''.join(seen)}")
        seen.append(line)
        if text in line:
            return
