"""How many slow clients the web app holds off while its login page still answers.

    .venv/bin/python -m bench.web_slow_clients [--slow 300,1000] [--seconds 10] [--nofile 1024]

The appliance is built as `appliance serve` builds it (models not loaded: no call is placed) and
served on loopback with its default connection limits, in a process allowed `--nofile`
descriptors (1024: what systemd gives a service). The slow clients of tests/support/
slow_clients.py connect from ten loopback addresses, in a process of their own, and send a
request head a byte every half second, reconnecting whenever the box drops them. Meanwhile a
browser, on a thread of its own, fetches /login over a new connection each time. For each attack
size: the login's median and worst time and its failures, the web connections the box held, the
most descriptors it had open, and how many slow connections it closed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import resource
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from appliance.app import Appliance
from appliance.observability.logs import configure_logging
from appliance.settings import PathSettings, Settings
from appliance.web.connections import open_descriptors
from appliance.web.server import WebServer
from tests.support.slow_clients import slow_attack


@dataclasses.dataclass
class _Result:
    login_ms: list[float] = dataclasses.field(default_factory=list)
    failures: int = 0
    held: list[int] = dataclasses.field(default_factory=list)
    most_fds: int = 0
    slow_connections: int = 0
    closed_by_box: int = 0


@contextlib.contextmanager
def _descriptor_limit(nofile: int) -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(nofile, hard), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _browse(url: str, seconds: float, result: _Result) -> None:
    """The browser's side: /login again and again, each over a new connection."""
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        started = time.perf_counter()
        try:
            with httpx.Client(base_url=url, timeout=10.0) as http:
                ok = http.get("/login").status_code == 200
        except httpx.HTTPError:
            ok = False
        result.login_ms.append((time.perf_counter() - started) * 1000)
        result.failures += not ok
        time.sleep(0.05)


async def _watch(server: WebServer, result: _Result) -> None:
    while True:
        result.held.append(server.connections)
        result.most_fds = max(result.most_fds, open_descriptors())
        await asyncio.sleep(0.1)


async def _attack(settings: Settings, slow: int, seconds: float, nofile: int) -> _Result:
    app = Appliance.build(settings)
    await app.records.start()
    result = _Result()
    try:
        async with app.web_server("127.0.0.1", 0) as server:
            with _descriptor_limit(nofile), slow_attack(server.port, slow, seconds + 30) as tally:
                async with asyncio.timeout(30):
                    while tally().connected < slow:  # noqa: ASYNC110 - another process's count
                        await asyncio.sleep(0.1)
                watch = asyncio.create_task(_watch(server, result))
                await asyncio.to_thread(_browse, server.url, seconds, result)
                watch.cancel()
                attack = tally()
                result.slow_connections, result.closed_by_box = attack.connected, attack.dropped
    finally:
        await app.aclose()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slow", default="300,1000", help="attack sizes, comma-separated")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--nofile", type=int, default=1024)
    args = parser.parse_args()
    configure_logging("WARNING")  # as the box logs: a flood of refusals is summarized
    print(f"slow clients against the web app, {args.seconds:.0f} s each, {args.nofile} descriptors")
    print(
        f"{'slow':>6} {'held':>6} {'max fds':>8} {'login median':>13} {'worst':>9} "
        f"{'failed':>7} {'slow conns':>11} {'closed':>7}"
    )
    for slow in (int(n) for n in args.slow.split(",")):
        with tempfile.TemporaryDirectory() as scratch:
            base = Settings.load(None)
            paths = PathSettings(data_dir=Path(scratch), models_dir=base.paths.models)
            settings = dataclasses.replace(base, paths=paths)
            found = asyncio.run(_attack(settings, slow, args.seconds, args.nofile))
        print(
            f"{slow:>6} {statistics.median(found.held):>6.0f} {found.most_fds:>8} "
            f"{statistics.median(found.login_ms):>10.1f} ms {max(found.login_ms):>6.0f} ms "
            f"{found.failures:>4}/{len(found.login_ms):<3} {found.slow_connections:>10} "
            f"{found.closed_by_box:>7}"
        )


if __name__ == "__main__":
    main()
