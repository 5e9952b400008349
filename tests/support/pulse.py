"""A PulseAudio daemon of the test's own: a room with a speakerphone in it, as virtual devices.

`speaker` is a null sink (the box's loudspeaker: the default sink); `mic` is a null sink whose
monitor is the box's microphone (the default source). A caller "speaks" by playing a recording
into `mic` (`say`); the room's echo is a loopback from `speaker.monitor` into `mic`, delayed and
attenuated. PortAudio reaches the daemon through ALSA's pulse plugin (libasound2-plugins) as the
`pulse` device, pointed at this daemon by PULSE_SERVER.

Runs as root in a container without dbus or a session: `--daemonize=no -n -F <config>` with a
native-protocol socket of its own (anonymous auth), `--exit-idle-time=-1`, no pid file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

__all__ = ["PulseServer", "portaudio_sees"]

RATE = 48_000
"""The virtual devices' rate: the box converts to 16 kHz at its edge."""


class PulseServer:
    def __init__(self, folder: Path) -> None:
        program = shutil.which("pulseaudio")
        if program is None or shutil.which("pactl") is None:
            pytest.fail(
                "these tests need PulseAudio: ./install.sh --dev "
                "(apt pulseaudio pulseaudio-utils libasound2-plugins)"
            )
        self._program = program
        self.folder = folder
        self.socket = folder / "native"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def server(self) -> str:
        """PULSE_SERVER for clients of this daemon."""
        return f"unix:{self.socket}"

    @property
    def env(self) -> dict[str, str]:
        """The environment of a client (a child process) of this daemon."""
        return {**os.environ, "PULSE_SERVER": self.server}

    def start(self) -> None:
        config = self.folder / "default.pa"
        config.write_text(
            f"load-module module-native-protocol-unix auth-anonymous=1 socket={self.socket}\n"
            f"load-module module-null-sink sink_name=speaker rate={RATE} channels=1\n"
            f"load-module module-null-sink sink_name=mic rate={RATE} channels=1\n"
            "set-default-sink speaker\n"
            "set-default-source mic.monitor\n"
        )
        home = self.folder / "home"
        home.mkdir(exist_ok=True)
        self._process = subprocess.Popen(
            [
                self._program, "--daemonize=no", "-n", "-F", str(config),
                "--exit-idle-time=-1", "--use-pid-file=no", "--disallow-exit",
                "--log-target=file:" + str(self.folder / "pulse.log"),
            ],
            env={**os.environ, "HOME": str(home), "XDG_RUNTIME_DIR": str(self.folder)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 15
        while self.pactl("info", check=False).returncode != 0:
            if self._process.poll() is not None or time.monotonic() > deadline:
                log = (self.folder / "pulse.log").read_text(errors="replace")[-2000:]
                pytest.fail(f"PulseAudio did not start:\n{log}")
            time.sleep(0.05)

    def pactl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["pactl", *args], env=self.env, capture_output=True, text=True, check=check, timeout=10
        )

    def add_echo(self, *, delay_ms: int = 40, gain_db: float = -9.0) -> None:
        """The loudspeaker heard by the microphone: `speaker.monitor` into `mic`."""
        self.pactl(
            "load-module", "module-loopback", "source=speaker.monitor", "sink=mic",
            f"latency_msec={delay_ms}", "adjust_time=0", "source_dont_move=true",
            "sink_dont_move=true",
        )  # fmt: skip
        for row in self.pactl("list", "short", "sink-inputs").stdout.splitlines():
            sink_input, _sink, _client, driver, *_ = row.split("\t")
            if driver == "module-loopback.c":
                self.pactl("set-sink-input-volume", sink_input, f"{gain_db:.1f}dB")
                return
        raise AssertionError("the echo loopback has no sink input")

    def echo_queued_ms(self) -> float | None:
        """What the echo loopback holds between the loudspeaker and the microphone now (its
        sink input's buffer latency): the room's delay grows if that queue does."""
        listing = self.pactl("list", "sink-inputs", check=False).stdout  # a report: never raises
        for block in listing.split("Sink Input #"):
            if "module-loopback.c" in block:
                for line in block.splitlines():
                    if line.strip().startswith("Buffer Latency:"):
                        return int(line.split(":")[1].split()[0]) / 1000
        return None

    def say(self, wav: Path) -> subprocess.Popen[bytes]:
        """The caller speaks `wav` into the box's microphone (returns at once)."""
        return subprocess.Popen(["paplay", "--device=mic", str(wav)], env=self.env)

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(5)
            self._process = None


def portaudio_sees(server: PulseServer) -> None:
    """Point this process's PortAudio at `server`: sounddevice lists devices once, when it
    loads, so it is told to list them again (its documented re-initialisation)."""
    import sounddevice

    os.environ["PULSE_SERVER"] = server.server
    sounddevice._terminate()
    sounddevice._initialize()
