"""`appliance doctor`: check the box and say what to fix.

Each check reports OK, WARN (works, but not as well as it could) or FAIL (the appliance cannot
work until fixed), with the command or step that fixes it. Exit status 1 when anything fails.
"""

from __future__ import annotations

import os
import platform
import shutil
import socket
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final, Literal

from appliance.engines.models import Manifest, ModelStore
from appliance.engines.models.chosen import models_in_use
from appliance.observability import system
from appliance.settings import Settings

__all__ = ["Check", "checks", "run_doctor"]

Level = Literal["OK", "WARN", "FAIL"]

_GIB = 1024**3
_LEVELS: Final[dict[system.Level, Level]] = {"ok": "OK", "warn": "WARN", "fail": "FAIL"}
_MODEL_MEMORY_GIB = 1.5
"""What the default models need resident (measured: ~1.1 GB), with room for the rest."""


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    level: Level
    detail: str
    fix: str = ""


def _python() -> Iterator[Check]:
    yield Check("python", "OK", f"{platform.python_version()} at {sys.executable}")


def _models(settings: Settings) -> Iterator[Check]:
    store = ModelStore(settings.paths.models, Manifest.load())
    for name in models_in_use(settings.engines):
        try:
            problems = store.verify(name)
        except LookupError as exc:
            yield Check(f"model {name}", "FAIL", str(exc), "fix the model name in .env")
            continue
        if problems:
            yield Check(f"model {name}", "FAIL", "; ".join(map(str, problems)), problems[0].fix)
        else:
            yield Check(f"model {name}", "OK", f"installed in {store.path(name)}")


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


def _port(name: str, address: str, port: int) -> Iterator[Check]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError as exc:
            yield Check(
                name,
                "WARN",
                f"{address}:{port} is taken ({exc.strerror})",
                "change the port in .env",
            )
            return
    yield Check(name, "OK", f"{address}:{port} is free")


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
        _audio,
        lambda: _port("web port", settings.web.bind_address, settings.web.port),
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
