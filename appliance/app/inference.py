"""The box as a LAN inference server (`INFERENCE_SERVER`), and the LAN's servers as it finds
them (`LAN_INFERENCE=auto`), from the settings and the local engines.

The server answers with the local engines themselves, not the calls' fallback chains: a request
must not bounce on to another box or the cloud. What `LAN_INFERENCE=auto` finds is logged at
start-up with its measured latency; putting it into the chains is the fallback chain's work.
"""

from __future__ import annotations

import asyncio
import logging

from appliance import __version__
from appliance.app.engines import LocalEngines
from appliance.inference.advertise import InferenceAdvertisement
from appliance.inference.discovery import LanServer, discover
from appliance.inference.server import InferencePorts, InferenceServer, missing_key
from appliance.settings import Settings
from appliance.web.advertise import box_id

__all__ = ["inference_key_problem", "inference_server", "lan_servers", "log_lan_servers"]

_log = logging.getLogger(__name__)

_MB = 1024 * 1024


def _api_key(settings: Settings) -> str | None:
    key = settings.inference.inference_api_key
    return key.get_secret_value() if key is not None else None


def inference_key_problem(settings: Settings) -> str | None:
    """Why the inference server cannot start (no key, a short one); None when it can, or when
    it is not wanted. Checked before the models load, so a bad key costs no minute of loading."""
    if not settings.inference.inference_server:
        return None
    return missing_key(_api_key(settings))


async def inference_server(
    settings: Settings, local: LocalEngines, *, host: str | None = None, port: int | None = None
) -> InferenceServer:
    """The inference server over the local engines, advertised when ZEROCONF_ENABLED; not yet
    started. `host` and `port` override WEB_BIND_ADDRESS and INFERENCE_PORT (0: any free port).
    Raises ValueError, saying what to set, without a usable INFERENCE_API_KEY."""
    inference, zeroconf = settings.inference, settings.zeroconf
    host = settings.web.bind_address if host is None else host
    box = await asyncio.to_thread(box_id, settings.paths.data_dir)
    specific = [] if host in ("0.0.0.0", "::", "") else [host]  # noqa: S104 - the wildcards
    models = {"stt": local.stt.name, "llm": local.llm.name, "tts": local.tts.name}

    def advertise(listening: int) -> InferenceAdvertisement:
        return InferenceAdvertisement(
            box=box,
            version=__version__,
            port=listening,
            models=models,
            interfaces=zeroconf.addresses,
            addresses=zeroconf.addresses or specific,
        )

    return InferenceServer(
        InferencePorts(stt=local.stt, llm=local.llm, tts=local.tts),
        api_key=_api_key(settings),
        host=host,
        port=inference.inference_port if port is None else port,
        max_upload_bytes=inference.inference_max_upload_mb * _MB,
        advertise=advertise if zeroconf.zeroconf_enabled else None,
    )


async def lan_servers(settings: Settings, *, wait_s: float = 3.0) -> list[LanServer]:
    """The LAN's inference servers that take INFERENCE_API_KEY, fastest first, this box left
    out; browsed on ZEROCONF_INTERFACES."""
    own = await asyncio.to_thread(box_id, settings.paths.data_dir)
    return await discover(
        _api_key(settings) or "",
        wait_s=wait_s,
        skip_box=own,
        interfaces=settings.zeroconf.addresses,
    )


async def log_lan_servers(settings: Settings) -> None:
    """`LAN_INFERENCE=auto` at start-up: say what was found (a failure is logged, not fatal)."""
    try:
        found = await lan_servers(settings)
    except Exception as exc:
        _log.warning("LAN_INFERENCE=auto: could not browse for inference servers: %s", exc)
        return
    if not found:
        _log.info("LAN_INFERENCE=auto: no inference server on the LAN accepts INFERENCE_API_KEY")
    for server in found:
        _log.info(
            "LAN_INFERENCE=auto: %s (box %s, %s) answers in %.1f ms",
            server.base_url,
            server.box,
            ", ".join(f"{k} {v}" for k, v in server.models.items()),
            server.latency_ms or 0.0,
        )
