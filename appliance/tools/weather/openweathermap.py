"""OpenWeatherMap (with an API key): the free "5 day / 3 hour" forecast, `data/2.5/forecast`.

`GET {base}/data/2.5/forecast?lat&lon&appid&units&lang` answers a `list` of up to 40 steps three
hours apart, each with `dt` (Unix seconds, UTC), `main.temp_min`/`temp_max`, `weather[0]`
(`id`, `description`) and `pop` (0 to 1). We chose it over One Call 3.0 because a free key can
call it; One Call needs a separate subscription. It has no daily aggregates and no current
conditions, so a day here is the steps that fall on that date in the asked time zone: the highest
`temp_max`, the lowest `temp_min`, the highest `pop`, and the sky of the most severe step. Today
covers only the steps still to come, and the fifth day only those the forecast reaches.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, ValidationError

from appliance.tools.weather.fetch import get_json
from appliance.tools.weather.ports import DayForecast, Forecast, Place, Units, WeatherUnavailable

__all__ = ["OpenWeatherMap"]

_UNITS = {"fahrenheit": "imperial", "celsius": "metric"}
_SEVERITY = {2: 6, 6: 5, 5: 4, 3: 3, 7: 2, 8: 1}
"""Condition groups (id // 100) from mildest to worst: clouds and clear, atmosphere (fog, haze),
drizzle, rain, snow, thunderstorm."""


class _Main(BaseModel):
    temp_min: float
    temp_max: float


class _Condition(BaseModel):
    id: int
    description: str


class _Step(BaseModel):
    dt: int
    main: _Main
    weather: list[_Condition]
    pop: float = 0.0


class _ForecastAnswer(BaseModel):
    steps: list[_Step] = Field(alias="list")


class OpenWeatherMap:
    """The Forecaster port over OpenWeatherMap's 5 day / 3 hour forecast."""

    def __init__(
        self,
        *,
        api_key: str,
        units: Units = "fahrenheit",
        base_url: str = "https://api.openweathermap.org",
        timeout_s: float = 4.0,
    ) -> None:
        self._key = api_key
        self._units = units
        self._url = f"{base_url.rstrip('/')}/data/2.5/forecast"
        self._timeout_s = timeout_s

    async def forecast(self, place: Place, timezone: str) -> Forecast:
        params: dict[str, str | int | float] = {
            "lat": place.latitude,
            "lon": place.longitude,
            "appid": self._key,
            "units": _UNITS[self._units],
            "lang": "en",
        }
        raw = await get_json(self._url, params, timeout_s=self._timeout_s, service="OpenWeatherMap")
        by_day: defaultdict[dt.date, list[_Step]] = defaultdict(list)
        try:
            zone = ZoneInfo(timezone)
            for step in _ForecastAnswer.model_validate(raw).steps:
                by_day[dt.datetime.fromtimestamp(step.dt, zone).date()].append(step)
        except (ValidationError, ZoneInfoNotFoundError, OverflowError, OSError, ValueError) as exc:
            raise WeatherUnavailable(f"OpenWeatherMap's forecast is unusable: {exc}") from exc
        return Forecast(days=tuple(_day(date, steps) for date, steps in sorted(by_day.items())))


def _day(date: dt.date, steps: list[_Step]) -> DayForecast:
    conditions = [c for step in steps for c in step.weather]
    worst = max(conditions, key=lambda c: (_SEVERITY.get(c.id // 100, 0), c.id), default=None)
    return DayForecast(
        date=date,
        condition=worst.description.lower() if worst else None,
        high=max(step.main.temp_max for step in steps),
        low=min(step.main.temp_min for step in steps),
        precipitation_chance=round(100 * max(step.pop for step in steps)),
        precipitation="snow" if worst and worst.id // 100 == 6 else "rain",
    )
