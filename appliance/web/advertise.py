"""Zeroconf (mDNS/DNS-SD): the box says on its LAN where its status page and SIP line are.

`Advertisement` is an async context manager: on entry it starts registering `_http._tcp` (the
status page) and, when the box has a SIP line, `_sip._udp`, both on the host name
`tel3sis-<id>.local`, each with TXT records for the version and the model set; on exit it
withdraws them (a goodbye packet, so browsers forget the box at once). Registering takes a
second or two of probing, done in the background: it never delays answering calls, and a
failure is logged, not fatal. `interfaces` limits everything to those addresses (the tests use
`["127.0.0.1"]` and so never multicast on a real network); None means every interface.

`<id>` is six hex digits kept in the data directory, so the name stays the same across restarts
and two boxes on one LAN have different names.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import secrets
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

import ifaddr
from zeroconf import InterfaceChoice, IPVersion
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

__all__ = ["Advertisement", "Service", "ZeroconfServices", "box_id", "lan_addresses"]

_log = logging.getLogger(__name__)


def box_id(data_dir: Path) -> str:
    """This box's short id, made once and kept in `data_dir/box-id` (touches the disk)."""
    path = data_dir / "box-id"
    try:
        found = path.read_text(encoding="ascii").strip()
        if len(found) == 6 and all(c in "0123456789abcdef" for c in found):
            return found
    except (OSError, UnicodeDecodeError):
        pass
    made = secrets.token_hex(3)
    data_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(made + "\n", encoding="ascii")
    return made


def lan_addresses() -> list[str]:
    """This machine's IPv4 addresses a neighbour can reach (not loopback): what the names
    resolve to when every interface is advertised on (over IPv4, as mDNS clients expect)."""
    found: list[str] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if not isinstance(ip.ip, str):
                continue  # IPv6: (address, flowinfo, scope id)
            if not ipaddress.ip_address(ip.ip).is_loopback and ip.ip not in found:
                found.append(ip.ip)
    return found


Service = tuple[str, int, dict[str, str]]
"""A service to advertise: its type (`_http._tcp.local.`), port and TXT records."""


class ZeroconfServices:
    """Services of one host name on the LAN, registered in the background on entry and
    withdrawn on exit (see the module's docstring)."""

    def __init__(
        self,
        *,
        box: str,
        services: Sequence[Service],
        interfaces: Sequence[str] | None = None,
        addresses: Sequence[str] = (),
    ) -> None:
        """`addresses` are what the names resolve to (default: the interfaces', or the LAN's)."""
        self.host = f"tel3sis-{box}.local."
        self.instance = f"TEL3SIS {box}"
        self._services = list(services)
        self._interfaces = list(interfaces) if interfaces is not None else None
        self._addresses = list(addresses) or self._interfaces or []
        self._zeroconf: AsyncZeroconf | None = None
        self._task: asyncio.Task[None] | None = None

    def _ip_version(self) -> IPVersion:
        if self._interfaces is None:
            return IPVersion.V4Only
        versions = {ipaddress.ip_address(a).version for a in self._interfaces}
        return {frozenset({4}): IPVersion.V4Only, frozenset({6}): IPVersion.V6Only}.get(
            frozenset(versions), IPVersion.All
        )

    def _infos(self, addresses: Sequence[str]) -> list[AsyncServiceInfo]:
        return [
            AsyncServiceInfo(
                kind,
                f"{self.instance}.{kind}",
                port=port,
                properties=txt,
                server=self.host,
                parsed_addresses=list(addresses),
            )
            for kind, port, txt in self._services
        ]

    async def __aenter__(self) -> Self:
        addresses = self._addresses or await asyncio.to_thread(lan_addresses)
        if not addresses:
            kinds = ", ".join(kind for kind, _, _ in self._services)
            _log.warning("zeroconf: this machine has no LAN address; %s not advertised", kinds)
            return self
        self._zeroconf = AsyncZeroconf(
            interfaces=self._interfaces or InterfaceChoice.All, ip_version=self._ip_version()
        )
        self._task = asyncio.create_task(
            self._register(self._zeroconf, self._infos(addresses)), name="zeroconf"
        )
        return self

    async def _register(self, zeroconf: AsyncZeroconf, infos: Sequence[AsyncServiceInfo]) -> None:
        for info in infos:
            try:
                await (await zeroconf.async_register_service(info, allow_name_change=True))
            except Exception as exc:
                _log.warning("zeroconf: could not advertise %s: %s", info.type, exc)
                continue
            _log.info("zeroconf: advertising %s as %s port %d", info.type, info.server, info.port)

    async def registered(self) -> None:
        """Wait until every service is advertised (or has failed to be)."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._zeroconf is not None:
            try:
                await self._zeroconf.async_unregister_all_services()
            finally:
                await self._zeroconf.async_close()
            self._zeroconf = None


class Advertisement(ZeroconfServices):
    """The status page (`_http._tcp`) and, when the box has one, its SIP line (`_sip._udp`)."""

    def __init__(
        self,
        *,
        box: str,
        version: str,
        models: Sequence[str],
        web_port: int,
        sip_port: int | None = None,
        interfaces: Sequence[str] | None = None,
        addresses: Sequence[str] = (),
    ) -> None:
        txt = {"version": version, "models": ",".join(models)}
        services: list[Service] = [("_http._tcp.local.", web_port, {**txt, "path": "/"})]
        if sip_port is not None:
            services.append(("_sip._udp.local.", sip_port, txt))
        super().__init__(box=box, services=services, interfaces=interfaces, addresses=addresses)
