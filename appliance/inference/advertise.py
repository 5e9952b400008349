"""The inference server said on the LAN: `_tel3sis-infer._tcp` (mDNS/DNS-SD, zeroconf).

Beside the box's own advertisement (`web/advertise.py`: the status page and SIP line), on the
same host name `tel3sis-<id>.local`, with TXT records a browsing board reads before it connects:
`path` (the API's root, `/v1`), `box` (the id, so a box that both serves and browses can skip
itself), `version`, and `stt`, `llm`, `tts` (the models it answers with). The key is never in
them. Registration probes in the background (a second or two) and a failure is logged, not
fatal; on exit the service is withdrawn with a goodbye, so browsers forget it at once.

The type is `_tel3sis-infer._tcp`, not the `_tel3sis-inference._tcp` issue 16 names: RFC 6335
allows a service name of at most 15 bytes, and that one has 17. python-zeroconf refused to
register it ("Service name (tel3sis-inference) must be <= 15 bytes", checked here) unless told
`strict=False`, and Apple's mDNSResponder (`dns-sd -B` on an operator's Mac) refuses such names
outright. `interfaces` limits everything to those addresses (tests: `["127.0.0.1"]`, never a
real network); None means every interface.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Final

from zeroconf import InterfaceChoice, IPVersion
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from appliance.web.advertise import lan_addresses

__all__ = ["API_PATH", "SERVICE_TYPE", "InferenceAdvertisement"]

_log = logging.getLogger(__name__)

SERVICE_TYPE: Final = "_tel3sis-infer._tcp.local."
API_PATH: Final = "/v1"


class InferenceAdvertisement:
    def __init__(
        self,
        *,
        box: str,
        version: str,
        port: int,
        models: Mapping[str, str],
        interfaces: Sequence[str] | None = None,
        addresses: Sequence[str] = (),
    ) -> None:
        """`models`: the model name per engine (`stt`, `llm`, `tts`); `addresses` are what the
        name resolves to (default: the interfaces', or the LAN's)."""
        self.host = f"tel3sis-{box}.local."
        self.name = f"TEL3SIS {box}.{SERVICE_TYPE}"
        self._port = port
        self._txt = {"path": API_PATH, "box": box, "version": version, **models}
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

    async def __aenter__(self) -> InferenceAdvertisement:
        addresses = self._addresses or await asyncio.to_thread(lan_addresses)
        if not addresses:
            _log.warning("zeroconf: no LAN address here; the inference server is not advertised")
            return self
        self._zeroconf = AsyncZeroconf(
            interfaces=self._interfaces or InterfaceChoice.All, ip_version=self._ip_version()
        )
        info = AsyncServiceInfo(
            SERVICE_TYPE,
            self.name,
            port=self._port,
            properties=self._txt,
            server=self.host,
            parsed_addresses=addresses,
        )
        self._task = asyncio.create_task(
            self._register(self._zeroconf, info), name="zeroconf-inference"
        )
        return self

    async def _register(self, zeroconf: AsyncZeroconf, info: AsyncServiceInfo) -> None:
        try:
            await (await zeroconf.async_register_service(info, allow_name_change=True))
        except Exception as exc:
            _log.warning("zeroconf: could not advertise the inference server: %s", exc)
            return
        self.name = info.name
        _log.info("zeroconf: advertising %s as %s port %d", info.type, info.server, info.port)

    async def registered(self) -> None:
        """Wait until the service is advertised (or has failed to be)."""
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
