"""`appliance doctor`: check the box and say what to fix.

Each check reports OK, WARN (works, but not as well as it could) or FAIL (the appliance cannot
work until fixed), with the command or step that fixes it. Exit status 1 when anything fails.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final, Literal

from appliance.engines.models import Manifest, ModelStore
from appliance.engines.models.chosen import models_in_use
from appliance.observability import listening, system
from appliance.settings import Settings

__all__ = ["Check", "checks", "run_doctor", "serve_blockers"]

Level = Literal["OK", "WARN", "FAIL"]

_GIB = 1024**3
_LEVELS: Final[dict[system.Level, Level]] = {"ok": "OK", "warn": "WARN", "fail": "FAIL"}
_MODEL_MEMORY_GIB = 1.5
"""What the default models need resident (measured: ~1.1 GB), with room for the rest."""
_SIP_KINDS: Final[tuple[listening.Kind, ...]] = ("udp", "tcp")
_MARKER = "TEL3SIS"
"""In the status page's login page and the SIP line's user agent: how a running box is known."""


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    level: Level
    detail: str
    fix: str = ""


def _python() -> Iterator[Check]:
    yield Check("python", "OK", f"{platform.python_version()} at {sys.executable}")


def _roles(settings: Settings) -> dict[str, str]:
    """What each model in use does, so that every part (the embedder too) is named."""
    engines = settings.engines
    roles = {
        engines.stt_model: "speech to text",
        engines.llm_model: "language model",
        engines.tts_voice: "voice",
        engines.embed_model: "embeddings: memory, FAQ, safety",
        engines.vad_model: "voice activity",
        engines.turn_model: "end of turn",
    }
    return {name: roles.get(name, "") for name in models_in_use(engines)}


def _models(settings: Settings) -> Iterator[Check]:
    store = ModelStore(settings.paths.models, Manifest.load())
    for name, role in _roles(settings).items():
        label, does = f"model {name}", f"{role}: " if role else ""
        try:
            problems = store.verify(name)
        except LookupError as exc:
            yield Check(label, "FAIL", f"{does}{exc}", "fix the model name in .env")
            continue
        if problems:
            detail = f"{does}{'; '.join(map(str, problems))}"
            yield Check(label, "FAIL", detail, problems[0].fix)
        else:
            yield Check(label, "OK", f"{does}installed in {store.path(name)}")


def _disk(settings: Settings) -> Iterator[Check]:
    path = settings.paths.data_dir
    reading = system.disk(path)
    where = (
        f"{reading.free / _GIB:.1f} GiB free of {reading.total / _GIB:.1f} GiB "
        f"({reading.used_ratio:.0%} used) at {reading.path}"
    )
    match system.disk_level(reading):
        case "fail":
            yield Check("disk", "FAIL", where, "free some space: recordings stop when it is full")
        case "warn":
            yield Check("disk", "WARN", where, "keep 2 GiB free for recordings and model updates")
        case _:
            yield Check("disk", "OK", where)
    if path.exists() and not os.access(path, os.W_OK):
        yield Check("data dir", "FAIL", f"{path} is not writable", f"sudo chown -R $USER {path}")


def _memory() -> Iterator[Check]:
    reading = system.memory()
    if reading is None:
        yield Check("memory", "WARN", "cannot read /proc/meminfo")
        return
    available = reading.available / _GIB
    detail = f"{available:.1f} GiB available of {reading.total / _GIB:.1f} GiB"
    if available < _MODEL_MEMORY_GIB:
        yield Check(
            "memory", "WARN", detail, "the default models need about 1.5 GiB; stop other services"
        )
    else:
        yield Check("memory", "OK", detail)


def _cpu() -> Iterator[Check]:
    cores = os.cpu_count() or 1
    yield Check("cpu", "OK" if cores >= 2 else "WARN", f"{cores} cores, {platform.machine()}")
    mode = system.cpu_governor()
    if mode in ("performance", "schedutil"):
        yield Check("cpu governor", "OK", mode)
    elif mode is not None:
        yield Check(
            "cpu governor",
            "WARN",
            f"{mode}: turns start slower",
            "sudo firmware-scripts/cpu-governor.sh",
        )
    celsius = system.cpu_temperature()
    if celsius is not None:
        level = _LEVELS[system.temperature_level(celsius)]
        yield Check(
            "cpu temperature",
            level,
            f"{celsius:.0f} C",
            "" if level == "OK" else "add a heatsink or fan",
        )
    throttled = system.throttling()
    if throttled is None:
        return
    if throttled.flags:
        happened = ", ".join(throttled.now + throttled.since_boot)
        yield Check(
            "throttling",
            "WARN",
            f"get_throttled={throttled.flags:#x} ({happened})",
            "use the official power supply and cooling",
        )
    else:
        yield Check("throttling", "OK", "never throttled since boot")


def _audio() -> Iterator[Check]:
    try:
        import sounddevice  # noqa: PLC0415 - it loads PortAudio at import
    except OSError:
        yield Check(
            "audio",
            "WARN",
            "PortAudio is missing: no USB speakerphone line",
            "sudo apt-get install libportaudio2",
        )
        return
    devices = [d for d in sounddevice.query_devices() if d["max_input_channels"] > 0]
    if devices:
        yield Check("audio", "OK", f"{len(devices)} input device(s): {devices[0]['name']}")
    else:
        yield Check("audio", "OK", "no audio devices (only needed for the local speakerphone line)")


def _load() -> Iterator[Check]:
    reading = system.load_average()
    if reading is None:
        return
    cores = os.cpu_count() or 1
    detail = f"load {reading[0]:.1f} (1 min), {reading[1]:.1f} (5 min) on {cores} cores"
    if reading[0] > cores:
        yield Check(
            "load",
            "WARN",
            f"{detail}: callers wait longer for every answer",
            "stop other work on this machine (`top` shows what is running)",
        )
    else:
        yield Check("load", "OK", detail)


def _admin_password(settings: Settings) -> Iterator[Check]:
    from appliance.web.password import load_password  # noqa: PLC0415

    path = settings.paths.admin_password
    if load_password(path) is None:
        yield Check(
            "admin password",
            "WARN",
            "not set: nobody can sign in to the status page",
            "appliance admin set-password",
        )
    else:
        yield Check("admin password", "OK", f"set ({path})")


@dataclass(frozen=True, slots=True)
class _Port:
    """One port the appliance listens on, and the setting that moves it."""

    name: str
    address: str
    port: int
    kinds: tuple[listening.Kind, ...]
    setting: str

    @property
    def where(self) -> str:
        return f"{self.address}:{self.port}/{'+'.join(self.kinds)}"


def _ports(settings: Settings) -> list[_Port]:
    web = settings.web
    found = [_Port("web port", web.bind_address, web.port, ("tcp",), "WEB_PORT")]
    sip = settings.sip
    if sip.sip_enabled and sip.sip_port != 0:
        kinds = tuple(k for k in _SIP_KINDS if k in sip.transports.lower())
        found.append(_Port("SIP port", sip.bind_address, sip.sip_port, kinds, "SIP_PORT"))
    return found


def _holder(port: _Port) -> tuple[str, OSError] | None:
    """Who holds `port` ("ours": a running TEL3SIS, "other", "denied"), or None when it is free."""
    for kind in port.kinds:
        error = listening.bind_error(port.address, port.port, kind)
        if error is None:
            continue
        if not listening.in_use(error):
            return "denied", error
        ours = (
            listening.web_answers_as(port.address, port.port, _MARKER)
            if port.setting == "WEB_PORT"
            else listening.sip_answers_as(port.address, port.port, _MARKER)
        )
        return ("ours" if ours else "other"), error
    return None


def _where(port: _Port) -> str:
    where = f"{port.name} {port.where}"
    if port.setting == "WEB_PORT":
        host = listening.probe_address(port.address)
        where += f"; its status page is http://{host}:{port.port}/"
    return where


def _running_serve(port: _Port) -> str:
    return f"held by this box's own `appliance serve`, running now ({_where(port)})"


def _port_checks(settings: Settings) -> Iterator[Check]:
    ports = _ports(settings)
    held = [_holder(port) for port in ports]
    # A box whose SIP line answers only its trunk (SIP_ALLOWED_SOURCES) ignores the probe;
    # its status page still says whose the ports are.
    running = any(h is not None and h[0] == "ours" for h in held)
    for port, holder in zip(ports, held, strict=True):
        yield from _port_check(port, holder, running=running)


def _port_check(port: _Port, held: tuple[str, OSError] | None, *, running: bool) -> Iterator[Check]:
    if held is None:
        yield Check(port.name, "OK", f"{port.where} is free")
        return
    who, error = held
    if who == "ours" or (who == "other" and running):
        yield Check(port.name, "OK", _running_serve(port))
    elif who == "denied":
        yield Check(port.name, "FAIL", f"{port.where}: {error.strerror}", _denied_fix(port))
    else:
        yield Check(
            port.name,
            "WARN",
            f"{port.where} is taken by another program",
            _taken_fix(port),
        )


def _taken_fix(port: _Port) -> str:
    return (
        f"set {port.setting} in .env to a free port, or stop the program holding it "
        f"(`sudo ss -lunpt 'sport = :{port.port}'` names it)"
    )


def _denied_fix(port: _Port) -> str:
    return (
        f"ports below 1024 need root: set {port.setting} to 1024 or above, or run the "
        "service with CAP_NET_BIND_SERVICE"
    )


def serve_blockers(settings: Settings) -> list[str]:
    """Why `appliance serve` could not listen, one line each naming the fix (empty: it can).
    Asked before the models load, so that a port in use costs a second, not a minute."""
    problems = _local_line_blockers(settings)
    for port in _ports(settings):
        held = _holder(port)
        if held is None:
            continue
        who, error = held
        if who == "ours":
            # One running box holds every port: saying so once is the whole story.
            return [
                f"another `appliance serve` is already running here ({_where(port)}); stop "
                "it first (`sudo systemctl stop tel3sis` when it runs as the service), or give "
                f"this one another {port.setting}"
            ]
        if who == "denied":
            problems.append(f"the {port.name} {port.where}: {error.strerror}; {_denied_fix(port)}")
        else:
            problems.append(
                f"the {port.name} {port.where} is in use by another program; {_taken_fix(port)}"
            )
    return problems


def _local_line_blockers(settings: Settings) -> list[str]:
    """With LOCAL_LINE: the sound device and the push button, each found and opened (a second),
    so that a wrong LOCAL_AUDIO_DEVICE or LOCAL_BUTTON is said before the models load."""
    local = settings.local
    if not local.local_line:
        return []
    from appliance.telephony.local.button import ButtonError, ButtonPin, GpioButton  # noqa: PLC0415
    from appliance.telephony.local.device import SoundCardError, find_device  # noqa: PLC0415

    problems = []
    try:
        find_device(local.device)
    except SoundCardError as exc:
        problems.append(f"the speakerphone line (LOCAL_LINE): {exc}")
    if local.answer == "button":
        try:
            GpioButton(ButtonPin.parse(local.button)).open().close()
        except ButtonError as exc:
            problems.append(f"the speakerphone's button: {exc}")
    return problems


def _tools() -> Iterator[Check]:
    if shutil.which("espeak-ng"):
        yield Check("espeak-ng", "OK", "harness text turns can be synthesized")
    else:
        yield Check(
            "espeak-ng",
            "WARN",
            "missing: harness text turns cannot run",
            "sudo apt-get install espeak-ng",
        )


def _business(settings: Settings) -> Iterator[Check]:
    from appliance.conversation.profile import BusinessProfile, ProfileError  # noqa: PLC0415

    path = settings.conversation.business_file
    if path is None:
        yield Check(
            "business profile",
            "WARN",
            "BUSINESS_FILE is not set: the agent knows the business's name and nothing else",
            "copy business.example.toml, edit it, and set BUSINESS_FILE to it",
        )
        return
    try:
        profile = BusinessProfile.load(path)
    except ProfileError as exc:
        yield Check("business profile", "FAIL", str(exc), f"correct {path}")
        return
    weather = "weather on" if profile.location else "no [location]: no weather"
    yield Check("business profile", "OK", f"{profile.name} from {path} ({weather})")


def checks(settings: Settings) -> list[Check]:
    sources: list[Callable[[], Iterator[Check]]] = [
        _python,
        lambda: _models(settings),
        lambda: _business(settings),
        lambda: _disk(settings),
        _memory,
        _cpu,
        _load,
        _audio,
        lambda: _port_checks(settings),
        lambda: _admin_password(settings),
        _tools,
    ]
    found: list[Check] = []
    for source in sources:
        try:
            found.extend(source())
        except Exception as exc:
            found.append(
                Check(getattr(source, "__name__", "check"), "WARN", f"check failed: {exc}")
            )
    return found


def run_doctor(settings: Settings) -> int:
    found = checks(settings)
    width = max(len(c.name) for c in found)
    for check in found:
        print(f"{check.level:<4}  {check.name:<{width}}  {check.detail}")
        if check.fix:
            print(f"{'':<4}  {'':<{width}}  fix: {check.fix}")
    failed = sum(c.level == "FAIL" for c in found)
    warned = sum(c.level == "WARN" for c in found)
    print(f"{len(found) - failed - warned} ok, {warned} warning(s), {failed} problem(s)")
    return 1 if failed else 0
