"""Creating the pjsua2 library, its transports and our account from a `SipConfig` (owner thread).

The conference bridge runs at 16 kHz, the internal rate: each call's codec audio (G.711 at
8 kHz, G.722 at 16 kHz) is decoded and resampled by pjmedia in C on the media clock thread,
and our media port exchanges 16 kHz frames as they are. There is no sound card: the null
audio device drives the bridge's 20 ms clock.

pjsua is a process-wide singleton: one library may exist at a time (`_ONE_LIBRARY`). A second
`pj.Endpoint()` while one exists throws a C++ exception from a constructor, which aborts.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from typing import Any

import pjsua2 as pj
from pjsua2 import _pjsua2

from appliance.telephony.sip.config import SipConfig
from appliance.telephony.sip.message import split_address
from appliance.telephony.sip.pjobjects import Hooks, PjAccount

__all__ = [
    "PjLogWriter",
    "create_account",
    "create_library",
    "destroy_library",
    "reshuffle_rtp_ports",
]

_pj_log = logging.getLogger("appliance.telephony.sip.pj")
_ONE_LIBRARY = threading.Lock()
"""Held from a library's creation to its destruction: pjsua allows one per process."""
_LEVELS = {0: logging.CRITICAL, 1: logging.ERROR, 2: logging.WARNING, 3: logging.INFO}
_ANY = ("", "0.0.0.0", "::")  # noqa: S104 - these are compared, not bound


class PjLogWriter(pj.LogWriter):  # type: ignore[misc]
    """pjsua2's log, into Python logging (called from any pj thread)."""

    def write(self, entry: Any) -> None:
        try:
            level = _LEVELS.get(int(entry.level), logging.DEBUG)
            _pj_log.log(level, "%s", str(entry.msg).rstrip())
        except Exception:  # noqa: S110 - a log line must never abort the process
            pass


def create_library(config: SipConfig, writer: PjLogWriter) -> tuple[Any, list[str], int]:
    """Create, initialise and start pjsua2; returns (endpoint, listening, port).

    Takes the one-library lock; `destroy_library` gives it back. On failure everything
    created so far is destroyed before the exception propagates."""
    if not _ONE_LIBRARY.acquire(blocking=False):
        raise RuntimeError("a SIP endpoint is already running in this process")
    _quiet_until_configured()
    lib = pj.Endpoint()
    try:
        lib.libCreate()
        lib.libInit(_endpoint_config(config, writer))
        listening, port = _create_transports(lib, config)
        lib.libStart()
        lib.audDevManager().setNullDev()
        _set_codecs(lib, config.codecs)
    except BaseException:
        destroy_library(lib)
        raise
    return lib, listening, port


def _quiet_until_configured() -> None:
    """Silence pjlib's console log before `libCreate`, which logs to stdout at level 4 before
    our log configuration (applied by `libInit`) exists; stdout may be a command's JSON."""
    try:
        core = ctypes.CDLL(_pjsua2.__file__)  # already loaded: this finds the same instance
        core.pj_log_set_level.argtypes = [ctypes.c_int]
        core.pj_log_set_level(0)
    except (OSError, AttributeError):
        _pj_log.debug("could not quiet pjlib before libCreate")


def destroy_library(lib: Any) -> None:
    """Destroy the library (every pj object must be gone by now) and give the lock back."""
    try:
        lib.libDestroy(pj.PJSUA_DESTROY_NO_NETWORK)
    finally:
        _ONE_LIBRARY.release()


def _endpoint_config(config: SipConfig, writer: PjLogWriter) -> Any:
    cfg = pj.EpConfig()
    ua = cfg.uaConfig
    ua.threadCnt = 0
    ua.mainThreadOnly = True
    ua.maxCalls = config.pjsua_max_calls
    ua.userAgent = config.user_agent
    log = cfg.logConfig
    log.level = config.log_level
    log.consoleLevel = 0
    log.msgLogging = config.log_level >= 4
    log.writer = writer
    log.decor = pj.PJ_LOG_HAS_SENDER
    med = cfg.medConfig
    med.clockRate = 16000
    med.sndClockRate = 16000
    med.channelCount = 1
    med.audioFramePtime = 20
    med.noVad = True  # send RTP continuously: peers time calls out on missing RTP too
    med.ecTailLen = 0  # no sound card, so nothing to cancel
    med.maxMediaPorts = 2 * ua.maxCalls + 8
    return cfg


def _create_transports(lib: Any, config: SipConfig) -> tuple[list[str], int]:
    ipv6 = ":" in config.bind_address
    kinds = {
        "udp": pj.PJSIP_TRANSPORT_UDP6 if ipv6 else pj.PJSIP_TRANSPORT_UDP,
        "tcp": pj.PJSIP_TRANSPORT_TCP6 if ipv6 else pj.PJSIP_TRANSPORT_TCP,
    }
    listening: list[str] = []
    port = config.port
    for name in config.transports:
        tc = pj.TransportConfig()
        tc.port = port
        if config.bind_address not in _ANY:
            tc.boundAddress = config.bind_address
        if config.public_address:
            tc.publicAddress = config.public_address
        try:
            transport = lib.transportCreate(kinds[name], tc)
        except pj.Error as exc:
            where = f"{name} {config.bind_address}:{port}"
            raise RuntimeError(f"cannot listen on {where}: {exc.reason}") from None
        bound = str(lib.transportGetInfo(transport).localName)
        port = port or split_address(bound)[1]
        listening.append(f"{name} {config.bind_address}:{port}")
    return listening, port


def _set_codecs(lib: Any, wanted: tuple[str, ...]) -> None:
    order = [name.upper() for name in wanted]
    available = set()
    for codec in lib.codecEnum2():
        name = str(codec.codecId).split("/")[0].upper()
        available.add(name)
        priority = 250 - 10 * order.index(name) if name in order else 0
        lib.codecSetPriority(codec.codecId, priority)
    missing = [name for name in order if name not in available]
    if missing:
        _pj_log.info("codecs not in this pjsua2 build: %s", ", ".join(missing))
    if not set(order) & available:
        raise RuntimeError(f"none of the codecs {', '.join(wanted)} is available")


def create_account(config: SipConfig, hooks: Hooks) -> PjAccount:
    """Our one account: it takes every incoming call and registers when a registrar is set."""
    account = PjAccount(hooks)
    account.create(_account_config(config), True)
    return account


def reshuffle_rtp_ports(account: PjAccount, config: SipConfig, shifted: bool) -> None:
    """Make pjsua draw the next call's RTP port at random within the range again.

    pjsua draws (`randomizePort`) only when an account's first RTP port changes and hands out
    the ports after it in sequence, so a call's ports would tell an attacker the next call's.
    Moving the first port between `rtp_port` and `rtp_port + 2` (the range shrinking to match)
    after each call has taken its ports makes it draw again; nothing else in the account
    changes, so nothing is re-registered."""
    if config.rtp_port and config.rtp_port_range >= 4:
        account.modify(_account_config(config, shifted=shifted))


def _account_config(config: SipConfig, *, shifted: bool = False) -> Any:
    cfg = pj.AccountConfig()
    reg = config.registration
    if reg is not None:
        host = reg.registrar.split(":", 1)[-1].split(";", 1)[0]
        cfg.idUri = f"sip:{reg.username}@{host}"
        cfg.regConfig.registrarUri = reg.registrar
        cfg.regConfig.timeoutSec = reg.expires_s
        cfg.regConfig.retryIntervalSec = reg.retry_s
        cfg.regConfig.firstRetryIntervalSec = min(reg.retry_s, 10)
        credentials = pj.AuthCredInfo("digest", "*", reg.username, 0, reg.password)
        cfg.sipConfig.authCreds.append(credentials)
    else:
        host = config.public_address or (
            "localhost" if config.bind_address in _ANY else config.bind_address
        )
        cfg.idUri = f"sip:{config.local_user}@{f'[{host}]' if ':' in host else host}"
    rtp = cfg.mediaConfig.transportConfig
    shift = 2 if shifted else 0
    rtp.port = config.rtp_port + shift
    rtp.portRange = config.rtp_port_range - shift if config.rtp_port else 0
    rtp.randomizePort = True
    if config.bind_address not in _ANY:
        rtp.boundAddress = config.bind_address
    if config.public_address:
        rtp.publicAddress = config.public_address
    return cfg
