"""Slow HTTP clients, the attack of issue 13: connections that send a request head a byte at a
time and never finish it, reconnecting whenever the server drops them.

They run in a process of their own (`slow_attack`), so their descriptors are not the server's,
and spread over several loopback addresses (Linux routes all of 127/8 to `lo`), so a cap per
source does not stop them alone; the legitimate clients come from 127.0.0.1.

    python -m tests.support.slow_clients PORT COUNT SECONDS TALLY_FILE
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[2]

SOURCES = tuple(f"127.0.0.{n}" for n in range(2, 12))
"""Where the slow clients connect from: ten addresses, none of them the legitimate client's."""
_HEAD = b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
_GAP_S = 0.5
"""Between two bytes, and before reconnecting."""


@dataclass
class Tally:
    connected: int = 0
    """Connections made, reconnections included."""
    dropped: int = 0
    """Connections the server answered or closed."""
    open: int = 0
    """Connections open now, from the clients' side."""


async def _one(port: int, source: str, tally: Tally, until: float) -> None:
    loop = asyncio.get_running_loop()
    while loop.time() < until:
        try:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, local_addr=(source, 0)
            )
        except OSError:
            await asyncio.sleep(_GAP_S)
            continue
        tally.connected += 1
        tally.open += 1
        try:
            await _trickle(reader, writer, until)
        finally:
            tally.open -= 1
            if loop.time() < until:
                tally.dropped += 1
            writer.close()
        await asyncio.sleep(_GAP_S)


async def _trickle(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, until: float
) -> None:
    """Send the head a byte every `_GAP_S`, then `X`s for ever, until the server answers or
    closes, or `until`."""
    loop = asyncio.get_running_loop()
    sent = 0
    while loop.time() < until:
        writer.write(_HEAD[sent : sent + 1] or b"X")
        sent += 1
        try:
            await writer.drain()
            async with asyncio.timeout(_GAP_S):
                await reader.read(1)  # any answer (408, 503) or a close ends the wait
            return
        except TimeoutError:
            continue
        except OSError:
            return


async def attack(port: int, count: int, seconds: float, report: Callable[[Tally], None]) -> None:
    """`count` slow clients for `seconds`; `report` hears the tally every half second."""
    tally = Tally()
    until = asyncio.get_running_loop().time() + seconds
    clients = [
        asyncio.create_task(_one(port, SOURCES[n % len(SOURCES)], tally, until))
        for n in range(count)
    ]
    while not all(c.done() for c in clients):
        report(tally)
        await asyncio.sleep(0.5)
    await asyncio.gather(*clients)
    report(tally)


@contextlib.contextmanager
def slow_attack(
    port: int, count: int = 300, seconds: float = 30.0
) -> Iterator[Callable[[], Tally]]:
    """The attack on `port` from a process of its own; yields a function that reads its latest
    tally. It ends after `seconds` or when the block does."""
    with tempfile.TemporaryDirectory() as scratch:
        tally_file = Path(scratch) / "tally"
        command = [sys.executable, "-m", "tests.support.slow_clients", str(port), str(count)]
        attacker = subprocess.Popen([*command, str(seconds), str(tally_file)], cwd=_ROOT)

        latest = Tally()

        def read() -> Tally:
            nonlocal latest
            with contextlib.suppress(OSError):  # not written yet, or no descriptor to read it
                connected, dropped, opened = (int(n) for n in tally_file.read_text().split())
                latest = Tally(connected, dropped, opened)
            return latest

        try:
            yield read
        finally:
            attacker.kill()
            attacker.wait(10)


def _writer(path: Path) -> Callable[[Tally], None]:
    def write(tally: Tally) -> None:
        scratch = path.with_suffix(".new")
        scratch.write_text(f"{tally.connected} {tally.dropped} {tally.open}")
        scratch.replace(path)

    return write


if __name__ == "__main__":
    port, count, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    # The server's test may have lowered its own limit; these descriptors are not its.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(attack(port, count, seconds, _writer(Path(sys.argv[4]))))
