"""`LAN_INFERENCE=auto`: find the LAN's inference servers, and how fast each answers.

A board browses for `_tel3sis-infer._tcp` (zeroconf) for a few seconds, resolves each
server's address, port and TXT records, and probes it: `GET /v1/models` with the key, a few
times on one connection, keeping the fastest (the first pays for the TCP handshake). A server
that refuses the key or does not answer is left out: a board cannot use it. What is left comes
fastest first, each with its `base_url` for an OpenAI client.

`first_token_ms` measures what decides whether a LAN model should come before the board's own:
the time to the first streamed token of a short chat (which occupies the server's model for a
moment, so it is asked for, not done by `discover`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Final

import httpx
from zeroconf import InterfaceChoice, IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from appliance.inference.advertise import API_PATH, SERVICE_TYPE

__all__ = ["LanServer", "discover", "first_token_ms", "probe_ms"]

_log = logging.getLogger(__name__)

_RESOLVE_MS: Final = 3000
_ENGINES: Final = ("stt", "llm", "tts")


@dataclass(frozen=True, slots=True)
class LanServer:
    """An inference server found on the LAN."""

    base_url: str
    """`http://address:port/v1`, an OpenAI client's `base_url`."""
    box: str
    """The serving box's id (its name is `tel3sis-<box>.local`)."""
    models: Mapping[str, str] = field(default_factory=dict)
    """The model name per engine (`stt`, `llm`, `tts`), as it advertises them."""
    latency_ms: float | None = None
    """The fastest probe's round trip; None until probed."""


async def discover(
    api_key: str,
    *,
    wait_s: float = 3.0,
    enough: int | None = None,
    skip_box: str | None = None,
    interfaces: Sequence[str] | None = None,
    probe_timeout_s: float = 2.0,
) -> list[LanServer]:
    """The reachable servers that accept `api_key`, fastest first.

    Browses for `wait_s` seconds, or until `enough` servers are seen; `skip_box` is this box's
    own id (a box that serves and browses does not use itself); `interfaces` limits the browse
    to those addresses (None: every interface)."""
    found = await _browse(wait_s=wait_s, enough=enough, skip_box=skip_box, interfaces=interfaces)
    probed = await asyncio.gather(*(_probed(server, api_key, probe_timeout_s) for server in found))
    usable = [server for server in probed if server.latency_ms is not None]
    return sorted(usable, key=lambda server: server.latency_ms or 0.0)


async def _probed(server: LanServer, api_key: str, timeout_s: float) -> LanServer:
    return replace(server, latency_ms=await probe_ms(server.base_url, api_key, timeout_s=timeout_s))


async def probe_ms(
    base_url: str, api_key: str, *, timeout_s: float = 2.0, attempts: int = 3
) -> float | None:
    """Milliseconds of the fastest of `attempts` `GET /models` round trips on one connection;
    None when the server does not answer 200 (a wrong key, not a server, not there)."""
    best: float | None = None
    headers = {"Authorization": f"Bearer {api_key}"}
    try:
        async with httpx.AsyncClient(timeout=timeout_s, headers=headers) as client:
            for _ in range(attempts):
                started = time.perf_counter()
                response = await client.get(f"{base_url}/models")
                took = (time.perf_counter() - started) * 1000
                if response.status_code != 200:
                    _log.info("inference server %s answered %d", base_url, response.status_code)
                    return None
                best = took if best is None else min(best, took)
    except httpx.HTTPError as exc:
        _log.info("inference server %s did not answer: %s", base_url, exc)
        return None
    return best


async def first_token_ms(
    base_url: str, api_key: str, *, prompt: str = "Say OK.", timeout_s: float = 30.0
) -> float | None:
    """Milliseconds from sending a short streamed chat to its first token; None on failure."""
    body = {"model": "any", "stream": True, "messages": [{"role": "user", "content": prompt}]}
    headers = {"Authorization": f"Bearer {api_key}"}
    try:
        async with httpx.AsyncClient(timeout=timeout_s, headers=headers) as client:
            started = time.perf_counter()
            async with client.stream("POST", f"{base_url}/chat/completions", json=body) as answer:
                if answer.status_code != 200:
                    return None
                async for line in answer.aiter_lines():
                    if '"content":"' in line and '"content":""' not in line:
                        return (time.perf_counter() - started) * 1000
    except httpx.HTTPError as exc:
        _log.info("inference server %s did not answer a chat: %s", base_url, exc)
    return None


async def _browse(
    *,
    wait_s: float,
    enough: int | None,
    skip_box: str | None,
    interfaces: Sequence[str] | None,
) -> list[LanServer]:
    names: list[str] = []
    seen_enough = asyncio.Event()

    def on_change(
        zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if state_change is ServiceStateChange.Added and name not in names:
            names.append(name)
            if enough is not None and len(names) >= enough:
                seen_enough.set()

    zeroconf = AsyncZeroconf(
        interfaces=list(interfaces) if interfaces is not None else InterfaceChoice.All,
        ip_version=IPVersion.V4Only,
    )
    browser = AsyncServiceBrowser(zeroconf.zeroconf, [SERVICE_TYPE], handlers=[on_change])
    try:
        try:
            async with asyncio.timeout(wait_s):
                await seen_enough.wait()
        except TimeoutError:
            pass  # browsed for the whole window
        resolved = await asyncio.gather(*(_resolve(zeroconf, name) for name in names))
    finally:
        await browser.async_cancel()
        await zeroconf.async_close()
    return [s for s in resolved if s is not None and (skip_box is None or s.box != skip_box)]


async def _resolve(zeroconf: AsyncZeroconf, name: str) -> LanServer | None:
    info = AsyncServiceInfo(SERVICE_TYPE, name)
    if not await info.async_request(zeroconf.zeroconf, _RESOLVE_MS):
        _log.info("zeroconf: %s did not resolve", name)
        return None
    addresses = info.parsed_addresses(IPVersion.V4Only)
    if not addresses or info.port is None:
        return None
    txt = {
        key.decode(): value.decode() for key, value in info.properties.items() if value is not None
    }
    path = txt.get("path", API_PATH)
    return LanServer(
        base_url=f"http://{addresses[0]}:{info.port}{path}",
        box=txt.get("box", ""),
        models={engine: txt[engine] for engine in _ENGINES if engine in txt},
    )
