"""The speakerphone's push button (LOCAL_BUTTON): how the line is named, and what the box says
when it cannot be used, through the real libgpiod (the `gpiod` package).

A press itself is not tested here: that needs a GPIO chip, real or simulated (the kernel's
gpio-sim through configfs, or gpio-mockup), and the kernel this suite was written on has
neither (no CONFIG_GPIOLIB, no configfs, no loadable modules). See the README's speakerphone
section; a board with a button is where a press is checked.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from appliance.settings import LocalSettings
from appliance.telephony.local.button import ButtonError, ButtonPin, GpioButton


@pytest.mark.parametrize(
    ("text", "chip", "line"),
    [
        ("/dev/gpiochip0:17", "/dev/gpiochip0", 17),
        ("gpiochip4:17", "/dev/gpiochip4", 17),
        ("gpiochip0:GPIO17", "/dev/gpiochip0", "GPIO17"),
        (" /dev/gpiochip1 : 5 ", "/dev/gpiochip1", 5),
    ],
)
def test_the_button_is_named_by_chip_and_line(text: str, chip: str, line: int | str) -> None:
    pin = ButtonPin.parse(text)
    assert (pin.chip.strip(), pin.line) == (chip, line)


@pytest.mark.parametrize("text", ["", "17", "gpiochip0", "gpiochip0:", ":17"])
def test_a_button_that_is_not_chip_and_line_is_refused_with_an_example(text: str) -> None:
    with pytest.raises(ButtonError, match=r"not CHIP:LINE \(e\.g\. /dev/gpiochip0:17"):
        ButtonPin.parse(text)


def test_a_missing_chip_is_named_with_the_chips_there_are(tmp_path: Path) -> None:
    missing = tmp_path / "gpiochip7"
    with pytest.raises(ButtonError) as caught:
        GpioButton(ButtonPin.parse(f"{missing}:17")).open()
    assert str(caught.value).startswith(f"no GPIO chip {missing} (LOCAL_BUTTON={missing}:17)")
    assert "GPIO chips here:" in str(caught.value)


def test_a_file_that_is_not_a_gpio_chip_is_said_to_be_none() -> None:
    with pytest.raises(ButtonError, match=r"/dev/null is not a GPIO chip"):
        GpioButton(ButtonPin.parse("/dev/null:17")).open()


async def test_a_button_not_opened_cannot_be_waited_on() -> None:
    with pytest.raises(RuntimeError, match="not open"):
        await GpioButton(ButtonPin.parse("gpiochip0:17")).pressed()


def test_answering_by_button_needs_a_button() -> None:
    with pytest.raises(ValidationError, match="LOCAL_BUTTON"):
        LocalSettings(answer="button")
    assert LocalSettings(answer="button", button="gpiochip0:17").button == "gpiochip0:17"
