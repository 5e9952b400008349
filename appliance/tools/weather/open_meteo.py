"""Open-Meteo (no key): the forecast API's daily aggregates and its geocoding API.

Forecast: `GET {base}/v1/forecast?latitude&longitude&daily=...&current=...&timezone&forecast_days=7
&temperature_unit`; the answer holds parallel arrays under `daily` (`time`, `weather_code`,
`temperature_2m_max`, ...), one entry per local day, with `null` where a model has no value.
Geocoding: `GET {base}/v1/search?name&count=1&language=en&format=json`; the answer's `results` is
absent when nothing matches. Sky conditions are WMO weather interpretation codes (WW).
"""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ValidationError

from appliance.tools.weather.fetch import get_json
from appliance.tools.weather.ports import DayForecast, Forecast, Place, Units, WeatherUnavailable

__all__ = ["OpenMeteo", "OpenMeteoGeocoder", "wmo_words"]

_WMO_WORDS = {
    0: "clear skies",
    1: "mostly clear",
    2: "partly cloudy",
    3: "overcast",
    45: "fog",
    48: "freezing fog",
    51: "light drizzle",
    53: "drizzle",
    55: "heavy drizzle",
    56: "light freezing drizzle",
    57: "freezing drizzle",
    61: "light rain",
    63: "rain",
    65: "heavy rain",
    66: "light freezing rain",
    67: "freezing rain",
    71: "light snow",
    73: "snow",
    75: "heavy snow",
    77: "snow grains",
    80: "light rain showers",
    81: "rain showers",
    82: "heavy rain showers",
    85: "light snow showers",
    86: "heavy snow showers",
    95: "thunderstorms",
    96: "thunderstorms with hail",
    99: "thunderstorms with heavy hail",
}
_SNOW_CODES = frozenset({71, 73, 75, 77, 85, 86})
_DAILY = "weather_code,temperature_2m_max,temperature_2m_min,precipitation_probability_max"


def wmo_words(code: int | None) -> str | None:
    """Words for a WMO weather code; None for a code the table does not hold."""
    return None if code is None else _WMO_WORDS.get(code)


class _Daily(BaseModel):
    time: list[dt.date]
    weather_code: list[int | None]
    temperature_2m_max: list[float | None]
    temperature_2m_min: list[float | None]
    precipitation_probability_max: list[float | None]


class _Current(BaseModel):
    temperature_2m: float | None = None
    weather_code: int | None = None


class _ForecastAnswer(BaseModel):
    daily: _Daily
    current: _Current | None = None


class OpenMeteo:
    """The Forecaster port over Open-Meteo's forecast API."""

    def __init__(
        self,
        *,
        units: Units = "fahrenheit",
        base_url: str = "https://api.open-meteo.com",
        timeout_s: float = 4.0,
    ) -> None:
        self._units = units
        self._url = f"{base_url.rstrip('/')}/v1/forecast"
        self._timeout_s = timeout_s

    async def forecast(self, place: Place, timezone: str) -> Forecast:
        params: dict[str, str | int | float] = {
            "latitude": place.latitude,
            "longitude": place.longitude,
            "daily": _DAILY,
            "current": "temperature_2m,weather_code",
            "timezone": timezone,
            "forecast_days": 7,
            "temperature_unit": self._units,
        }
        raw = await get_json(self._url, params, timeout_s=self._timeout_s, service="Open-Meteo")
        try:
            answer = _ForecastAnswer.model_validate(raw)
            days = _days(answer.daily)
        except (ValidationError, ValueError) as exc:
            raise WeatherUnavailable(f"Open-Meteo's forecast is malformed: {exc}") from exc
        current = answer.current or _Current()
        return Forecast(
            days=days,
            current_temperature=current.temperature_2m,
            current_condition=wmo_words(current.weather_code),
        )


def _days(daily: _Daily) -> tuple[DayForecast, ...]:
    """One DayForecast per day with both temperatures; a day the model left null is skipped."""
    rows = zip(
        daily.time,
        daily.weather_code,
        daily.temperature_2m_max,
        daily.temperature_2m_min,
        daily.precipitation_probability_max,
        strict=True,
    )
    return tuple(
        DayForecast(
            date=date,
            condition=wmo_words(code),
            high=high,
            low=low,
            precipitation_chance=None if chance is None else round(chance),
            precipitation="snow" if code in _SNOW_CODES else "rain",
        )
        for date, code, high, low, chance in rows
        if high is not None and low is not None
    )


class _Match(BaseModel):
    name: str
    latitude: float
    longitude: float
    country: str | None = None


class _SearchAnswer(BaseModel):
    results: list[_Match] = []


class OpenMeteoGeocoder:
    """The Geocoder port over Open-Meteo's geocoding API."""

    def __init__(
        self,
        *,
        base_url: str = "https://geocoding-api.open-meteo.com",
        language: str = "en",
        timeout_s: float = 4.0,
    ) -> None:
        self._url = f"{base_url.rstrip('/')}/v1/search"
        self._language = language
        self._timeout_s = timeout_s

    async def find(self, query: str) -> Place | None:
        params: dict[str, str | int | float] = {
            "name": query,
            "count": 1,
            "language": self._language,
            "format": "json",
        }
        raw = await get_json(
            self._url, params, timeout_s=self._timeout_s, service="Open-Meteo geocoding"
        )
        try:
            answer = _SearchAnswer.model_validate(raw)
        except ValidationError as exc:
            raise WeatherUnavailable(f"Open-Meteo geocoding is malformed: {exc}") from exc
        if not answer.results:
            return None
        best = answer.results[0]
        label = f"{best.name}, {best.country}" if best.country else best.name
        return Place(latitude=best.latitude, longitude=best.longitude, label=label)
