"""What a weather backend answers, and the two small ports the weather tool talks to."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = [
    "DayForecast",
    "Forecast",
    "Forecaster",
    "Geocoder",
    "Place",
    "Units",
    "WeatherUnavailable",
    "units_for_locale",
]

Units = Literal["fahrenheit", "celsius"]

_FAHRENHEIT_COUNTRIES = frozenset({"US", "LR", "BS", "BZ", "KY", "PW", "FM", "MH"})


def units_for_locale(locale: str) -> Units:
    """The temperature scale people in `locale` (`en_US`, `fr-CA`) expect to hear."""
    country = locale.replace("-", "_").split(".")[0].partition("_")[2].upper()
    return "fahrenheit" if country in _FAHRENHEIT_COUNTRIES else "celsius"


class WeatherUnavailable(RuntimeError):
    """The service could not answer (unreachable, too slow, an error status, a malformed body)."""


@dataclass(frozen=True, slots=True)
class Place:
    latitude: float
    longitude: float
    label: str
    """How the place is said: "Springfield" or "Paris, France"."""


@dataclass(frozen=True, slots=True)
class DayForecast:
    date: dt.date
    """The calendar day in the time zone the forecast was asked for."""
    condition: str | None
    """Words for the sky ("light rain"); None when the service's code is not one we know."""
    high: float
    """Degrees, in the units the forecast was asked for."""
    low: float
    """Degrees, in the units the forecast was asked for."""
    precipitation_chance: int | None
    """Percent; None when the service gave none."""
    precipitation: Literal["rain", "snow"] = "rain"


@dataclass(frozen=True, slots=True)
class Forecast:
    days: tuple[DayForecast, ...]
    current_temperature: float | None = None
    """Degrees now, when the service reports it."""
    current_condition: str | None = None

    def day(self, date: dt.date) -> DayForecast | None:
        return next((d for d in self.days if d.date == date), None)


class Forecaster(Protocol):
    async def forecast(self, place: Place, timezone: str) -> Forecast:
        """Daily forecasts for `place`, days counted in `timezone` (an IANA name).

        Raises WeatherUnavailable when the service cannot give one.
        """
        ...


class Geocoder(Protocol):
    async def find(self, query: str) -> Place | None:
        """The best match for a place named by a caller, or None when nothing matches.

        Raises WeatherUnavailable when the service cannot answer.
        """
        ...
