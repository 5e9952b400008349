"""The box as a LAN inference server (`INFERENCE_SERVER`), and the LAN's servers as it finds
them (`LAN_INFERENCE=auto`), from the settings and the local engines.

The server answers with the local engines themselves, not the calls' fallback chains: a request
must not bounce on to another box or the cloud.

`LAN_INFERENCE=auto`: `browse_lan` starts browsing when start-up begins, so the browse (3 s) and
the probes run while the models load; after the warm-up, `join_lan_servers` takes the fastest
server that accepts INFERENCE_API_KEY (never this box) and puts its engines into each stage's
chain as the first fallback, before any cloud API engine. Its language model goes ahead of the
local one when `lan_llm_first` says it is clearly faster: both are timed to the first token of
the same short chat ("Say OK."), the local model warm (its opening evaluated), the LAN one over
the network, as a turn would use it. Start-up waits at most `LAN_WAIT_S` for the browse after
its own warm-up and `FIRST_TOKEN_WAIT_S` for the two timings; a failure is logged, never fatal.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from appliance import __version__
from appliance.app.engines import LocalEngines, join_lan, lan_engines
from appliance.clock import Clock
from appliance.conversation.ports import LanguageModel, Message, TextDelta
from appliance.engines.api.client import ApiEndpoint
from appliance.inference.advertise import InferenceAdvertisement
from appliance.inference.discovery import LanServer, discover, first_token_ms
from appliance.inference.server import InferencePorts, InferenceServer, missing_key
from appliance.settings import Settings
from appliance.web.advertise import box_id

__all__ = [
    "FIRST_TOKEN_WAIT_S",
    "LAN_WAIT_S",
    "LanChoice",
    "browse_lan",
    "inference_key_problem",
    "inference_server",
    "join_lan_servers",
    "lan_llm_first",
    "lan_servers",
    "local_first_token_ms",
]

_log = logging.getLogger(__name__)

_MB = 1024 * 1024

_BROWSE_S: Final = 3.0
"""Seconds a board browses for inference servers at start-up (while its models load)."""
LAN_WAIT_S: Final = 5.0
"""Seconds start-up waits, once its own engines are warm, for the browse and probes to end."""
FIRST_TOKEN_WAIT_S: Final = 3.0
"""Seconds each first-token timing may take (the local one and the LAN one run together)."""
_FASTER_BY_MS: Final = 200.0
_FASTER_BY_SHARE: Final = 0.3
_TIMING_PROMPT: Final = "Say OK."


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


@dataclass(frozen=True, slots=True)
class LanChoice:
    """The LAN inference server a board joined to its chains, and why its language model is
    where it is."""

    server: LanServer
    name: str
    """The engines' name (`lan:<host>`): what a turn's record and the status page show."""
    local_ms: float | None
    """The local model's first token, in milliseconds; None when it gave none in time."""
    lan_ms: float | None
    """The LAN model's first token, in milliseconds; None when it gave none in time."""
    llm_first: bool
    """The LAN language model answers first; the local one is its fallback."""


def lan_llm_first(local_ms: float | None, lan_ms: float | None) -> bool:
    """Whether the LAN language model should answer before the local one: it must be clearly
    faster to its first token, by 200 ms (what a caller notices) and by 30 % of the local time
    (a shared server's time varies with its load, and the network can fail where the board's own
    model cannot), so that noise in one timing never hands the calls to the LAN. A local model
    that gave no token in time loses to any LAN model that did."""
    if lan_ms is None:
        return False
    if local_ms is None:
        return True
    return local_ms - lan_ms >= max(_FASTER_BY_MS, _FASTER_BY_SHARE * local_ms)


def browse_lan(
    settings: Settings, *, wait_s: float = _BROWSE_S
) -> asyncio.Task[list[LanServer]] | None:
    """With `LAN_INFERENCE=auto`, start browsing for the LAN's inference servers for `wait_s`
    (None when it is off); `join_lan_servers` takes what it found. The task never raises: a
    failure to browse is logged and finds nothing."""
    if settings.inference.lan_inference != "auto":
        return None
    return asyncio.create_task(_browsed(settings, wait_s), name="lan inference")


async def _browsed(settings: Settings, wait_s: float) -> list[LanServer]:
    try:
        found = await lan_servers(settings, wait_s=wait_s)
    except Exception as exc:
        _log.warning("LAN_INFERENCE=auto: could not browse for inference servers: %s", exc)
        return []
    for server in found:
        _log.info(
            "LAN_INFERENCE=auto: found %s (box %s, %s) answering in %.1f ms",
            server.base_url,
            server.box,
            ", ".join(f"{k} {v}" for k, v in server.models.items()),
            server.latency_ms or 0.0,
        )
    return found


async def join_lan_servers(
    settings: Settings,
    local: LocalEngines,
    browsing: Awaitable[list[LanServer]],
    *,
    clock: Clock,
    wait_s: float = LAN_WAIT_S,
    first_token_wait_s: float = FIRST_TOKEN_WAIT_S,
) -> LanChoice | None:
    """Join the fastest server `browsing` finds to the calls' chains (module docstring); None,
    logged, when there is none, or when the browse is not done within `wait_s`."""
    try:
        found = await asyncio.wait_for(browsing, wait_s)
    except TimeoutError:
        _log.warning(
            "LAN_INFERENCE=auto: the browse for inference servers took over %g s more; "
            "calls use this box's engines only",
            wait_s,
        )
        return None
    if not found:
        _log.info("LAN_INFERENCE=auto: no inference server on the LAN accepts INFERENCE_API_KEY")
        return None
    server, key = found[0], _api_key(settings) or ""
    local_ms, lan_ms = await asyncio.gather(
        local_first_token_ms(local.llm, timeout_s=first_token_wait_s),
        first_token_ms(server.base_url, key, prompt=_TIMING_PROMPT, timeout_s=first_token_wait_s),
    )
    choice = LanChoice(server, _lan_name(server), local_ms, lan_ms, lan_llm_first(local_ms, lan_ms))
    eng = settings.engines
    endpoint = ApiEndpoint(server.base_url, key, timeout_s=eng.engine_timeout_s)
    lan = lan_engines(endpoint, choice.name, server.models, eng)
    join_lan(local, lan, eng, clock=clock, llm_first=choice.llm_first)
    _log_choice(choice, local.llm.name)
    return choice


async def local_first_token_ms(llm: LanguageModel, *, timeout_s: float) -> float | None:
    """Milliseconds to the local model's first token of the timing chat; None when it fails or
    gives none within `timeout_s`."""
    stream = llm.stream([Message(role="user", content=_TIMING_PROMPT)])
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout_s):
            async for output in stream:
                if isinstance(output, TextDelta) and output.text:
                    return (time.perf_counter() - started) * 1000
    except Exception as exc:  # a model that cannot answer loses the timing, nothing more
        _log.info("LAN_INFERENCE=auto: the local model gave no first token: %r", exc)
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    return None


def _lan_name(server: LanServer) -> str:
    """`lan:tel3sis-<box>`, the server's host name without `.local`; its address when it
    did not say its box."""
    return f"lan:tel3sis-{server.box}" if server.box else f"lan:{urlsplit(server.base_url).netloc}"


def _ms(value: float | None) -> str:
    return "none in time" if value is None else f"{value:.0f} ms"


def _log_choice(choice: LanChoice, local_llm: str) -> None:
    server = choice.server
    _log.info(
        "LAN_INFERENCE=auto: %s (%s, probe %.1f ms) is each stage's first fallback, "
        "before any cloud API engine",
        choice.name,
        server.base_url,
        server.latency_ms or 0.0,
    )
    timings = (
        f"first token {_ms(choice.lan_ms)} on the LAN against {_ms(choice.local_ms)} for the "
        f"local {local_llm}"
    )
    if choice.llm_first:
        _log.info(
            "LAN_INFERENCE=auto: the LAN language model answers first, the local one is its "
            "fallback: %s (faster by at least 200 ms and 30 %%)",
            timings,
        )
    else:
        _log.info(
            "LAN_INFERENCE=auto: the local language model stays first: %s (the LAN must be "
            "faster by at least 200 ms and 30 %%)",
            timings,
        )
