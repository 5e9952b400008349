"""A push button on a GPIO line, for LOCAL_ANSWER=button: a press answers, another hangs up.

Read through the kernel's GPIO character device (libgpiod v2, the `gpiod` package): the line is
requested as an input with its pull-up on and active-low, so a button wired between the pin and
ground reads "active" while held, and the kernel reports each press as an edge event, debounced
(`debounce_ms`). No thread and no polling: the request's file descriptor is watched by the event
loop (`add_reader`), so an idle box spends nothing on the button. A press counts only while
someone waits for one: presses made before (during a conversation the agent ended) are dropped.

`LOCAL_BUTTON` names the line as `CHIP:LINE`: the chip as a path (`/dev/gpiochip0`) or a name
(`gpiochip0`), the line as an offset (`17`) or a line name the board gives it (`GPIO17` on a
Raspberry Pi; `gpioinfo` lists both).
"""

from __future__ import annotations

import asyncio
import errno
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import gpiod

__all__ = ["ButtonError", "ButtonPin", "GpioButton"]

_CONSUMER = "tel3sis-speakerphone"
"""How the line's user shows in `gpioinfo`."""


class ButtonError(RuntimeError):
    """The button cannot be used; the message says what to fix."""


@dataclass(frozen=True, slots=True)
class ButtonPin:
    chip: str
    """The chip's device path (/dev/gpiochipN)."""
    line: int | str
    """The line's offset on the chip, or its name."""

    @classmethod
    def parse(cls, text: str) -> ButtonPin:
        """`/dev/gpiochip0:17`, `gpiochip0:17` or `gpiochip0:GPIO17`; raises ButtonError."""
        chip, sep, line = text.strip().rpartition(":")
        if not sep or not chip or not line.strip():
            raise ButtonError(
                f"LOCAL_BUTTON={text!r} is not CHIP:LINE (e.g. /dev/gpiochip0:17 or "
                "gpiochip0:GPIO17; `gpioinfo` lists the chips and their lines)"
            )
        path = chip if chip.startswith("/") else f"/dev/{chip}"
        line = line.strip()
        return cls(chip=path, line=int(line) if line.isdigit() else line)

    def __str__(self) -> str:
        return f"{self.chip}:{self.line}"


def _gpiod() -> Any:
    try:
        import gpiod  # noqa: PLC0415 - only a box with a button needs libgpiod
    except ImportError as exc:
        raise ButtonError(
            f"LOCAL_ANSWER=button needs the gpiod package ({exc}): "
            "`.venv/bin/pip install 'gpiod>=2.2,<3'` (./install.sh installs it)"
        ) from exc
    return gpiod


def _chips_here() -> str:
    found = sorted(str(p) for p in Path("/dev").glob("gpiochip*"))
    return ", ".join(found) if found else "none (this kernel shows no GPIO character device)"


class GpioButton:
    """The button at `pin`: `open()`, then `await pressed()` for each press; `close()`."""

    def __init__(self, pin: ButtonPin, *, debounce_ms: int = 30) -> None:
        self.pin = pin
        self._debounce = timedelta(milliseconds=debounce_ms)
        self._request: gpiod.LineRequest | None = None
        self.presses = 0

    def open(self) -> GpioButton:
        """Request the line; raises ButtonError naming the fix."""
        gpiod = _gpiod()
        from gpiod.line import Bias, Direction, Edge  # noqa: PLC0415

        settings = gpiod.LineSettings(
            direction=Direction.INPUT, edge_detection=Edge.RISING, bias=Bias.PULL_UP,
            active_low=True, debounce_period=self._debounce,
        )  # fmt: skip
        try:
            with gpiod.Chip(self.pin.chip) as chip:
                offset = self._offset(chip)
                self._request = chip.request_lines({offset: settings}, consumer=_CONSUMER)
        except ButtonError:
            raise
        except OSError as exc:
            raise ButtonError(self._failure(exc)) from exc
        return self

    def _offset(self, chip: gpiod.Chip) -> int:
        try:
            return chip.line_offset_from_id(self.pin.line)
        except (OSError, ValueError) as exc:
            lines = chip.get_info().num_lines
            raise ButtonError(
                f"{self.pin.chip} has no line {self.pin.line!r} (LOCAL_BUTTON; it has {lines} "
                f"lines, offsets 0 to {lines - 1}; `gpioinfo {self.pin.chip}` names them)"
            ) from exc

    def _failure(self, exc: OSError) -> str:
        chip, named = self.pin.chip, f"(LOCAL_BUTTON={self.pin})"
        if exc.errno == errno.ENOENT:
            return f"no GPIO chip {chip} {named}; GPIO chips here: {_chips_here()}"
        if exc.errno in (errno.EACCES, errno.EPERM):
            return (
                f"the GPIO chip {chip} {named} cannot be opened: permission denied. Add the "
                "appliance's user to the group that owns it (`gpio` on Raspberry Pi OS)"
            )
        if exc.errno == errno.EBUSY:
            return f"line {self.pin.line} of {chip} {named} is used by another program (`gpioinfo`)"
        if exc.errno in (errno.ENODEV, errno.ENOTTY, errno.EINVAL):
            return f"{chip} is not a GPIO chip {named}; GPIO chips here: {_chips_here()}"
        return f"the GPIO chip {chip} {named} cannot be used: {exc}"

    def close(self) -> None:
        request, self._request = self._request, None
        if request is not None:
            request.release()

    async def pressed(self) -> None:
        """Returns at the next press (one made after this call)."""
        request = self._request
        if request is None:
            raise RuntimeError("the button is not open")
        while request.wait_edge_events(0):  # presses nobody was waiting for
            request.read_edge_events()
        loop = asyncio.get_running_loop()
        press: asyncio.Future[None] = loop.create_future()

        def readable() -> None:
            if request.read_edge_events() and not press.done():
                press.set_result(None)

        loop.add_reader(request.fd, readable)
        try:
            await press
        finally:
            loop.remove_reader(request.fd)
        self.presses += 1
