"""Zeroconf on loopback only: a browse finds the box's services, their ports and TXT records.

Every advertiser and browser here is bound to 127.0.0.1 (`interfaces=["127.0.0.1"]`, and the
session's ZEROCONF_INTERFACES): nothing is multicast on a real network.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from zeroconf import IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from appliance import __version__
from appliance.app import Appliance
from appliance.settings import Settings, WebSettings
from appliance.web.advertise import Advertisement, box_id, lan_addresses
from tests.support.ports import free_port

LOOPBACK = ["127.0.0.1"]


class Browser:
    """Services seen on loopback, by name, as they come and go."""

    def __init__(self, zeroconf: AsyncZeroconf) -> None:
        self.zeroconf = zeroconf
        self.seen: asyncio.Queue[tuple[str, ServiceStateChange]] = asyncio.Queue()

    def on_change(
        self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        self.seen.put_nowait((name, state_change))

    async def wait_for(self, name: str, change: ServiceStateChange) -> None:
        async with asyncio.timeout(20):
            while await self.seen.get() != (name, change):
                pass

    async def resolve(self, kind: str, name: str) -> AsyncServiceInfo:
        info = AsyncServiceInfo(kind, name)
        assert await info.async_request(self.zeroconf.zeroconf, 5000), name
        return info


@pytest_asyncio.fixture
async def browser() -> AsyncIterator[Browser]:
    zeroconf = AsyncZeroconf(interfaces=LOOPBACK, ip_version=IPVersion.V4Only)
    found = Browser(zeroconf)
    browsing = AsyncServiceBrowser(
        zeroconf.zeroconf, ["_http._tcp.local.", "_sip._udp.local."], handlers=[found.on_change]
    )
    try:
        yield found
    finally:
        await browsing.async_cancel()
        await zeroconf.async_close()


async def test_a_browse_finds_the_page_and_the_sip_line_with_their_ports(
    browser: Browser,
) -> None:
    models = ["whisper-tiny.en", "qwen2.5-coder-0.5b-instruct", "piper-en_US-joe-medium"]
    box = Advertisement(
        box="c0ffee",
        version=__version__,
        models=models,
        web_port=18080,
        sip_port=15060,
        interfaces=LOOPBACK,
    )
    http, sip = "TEL3SIS c0ffee._http._tcp.local.", "TEL3SIS c0ffee._sip._udp.local."
    async with box:
        await browser.wait_for(http, ServiceStateChange.Added)
        page = await browser.resolve("_http._tcp.local.", http)
        assert page.port == 18080
        assert page.server == "tel3sis-c0ffee.local."
        assert page.parsed_addresses() == ["127.0.0.1"]
        assert page.properties == {
            b"version": __version__.encode(),
            b"models": ",".join(models).encode(),
            b"path": b"/",
        }
        line = await browser.resolve("_sip._udp.local.", sip)
        assert line.port == 15060 and line.server == "tel3sis-c0ffee.local."
        assert line.properties[b"models"] == ",".join(models).encode()
    # Leaving says goodbye: browsers forget the box at once.
    await browser.wait_for(http, ServiceStateChange.Removed)


async def test_serve_advertises_its_status_page(app_settings: Settings, browser: Browser) -> None:
    port = free_port()
    settings = dataclasses.replace(
        app_settings, web=WebSettings(bind_address="127.0.0.1", port=port)
    )
    assert settings.zeroconf.zeroconf_enabled and settings.zeroconf.addresses == LOOPBACK
    app = Appliance.build(settings)  # nothing is loaded: no call is placed
    await app.records.start()  # serve runs the post-call jobs beside the lines
    app.records.use_runner(busy=lambda: False)
    name = f"TEL3SIS {box_id(settings.paths.data_dir)}._http._tcp.local."
    stop = asyncio.Event()
    serving = asyncio.create_task(app.serve(stop))
    try:
        await browser.wait_for(name, ServiceStateChange.Added)
        page = await browser.resolve("_http._tcp.local.", name)
        assert page.port == port
        assert page.properties[b"version"] == __version__.encode()
        assert b"whisper-tiny.en" in page.properties[b"models"]
    finally:
        stop.set()
        await serving
        await app.aclose()
    await browser.wait_for(name, ServiceStateChange.Removed)


def test_the_box_keeps_its_id(tmp_path: pytest.TempPathFactory) -> None:
    first = box_id(tmp_path)  # type: ignore[arg-type]
    assert len(first) == 6 and int(first, 16) >= 0
    assert box_id(tmp_path) == first  # type: ignore[arg-type]


def test_every_interface_means_the_lan_addresses_not_loopback() -> None:
    found = lan_addresses()
    assert "127.0.0.1" not in found
    assert all(ipaddress.ip_address(a).version == 4 for a in found)
