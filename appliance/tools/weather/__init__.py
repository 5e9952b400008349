"""The weather tool: a forecast for the day a caller names, from Open-Meteo or OpenWeatherMap.

`weather_tool` is the tool; it talks to a `Forecaster` (`OpenMeteo`, no key, by default;
`OpenWeatherMap` when an API key is set) and, for places other than the business's own, a
`Geocoder` (`OpenMeteoGeocoder`).
"""

from __future__ import annotations

from appliance.tools.weather.open_meteo import OpenMeteo, OpenMeteoGeocoder
from appliance.tools.weather.openweathermap import OpenWeatherMap
from appliance.tools.weather.ports import (
    DayForecast,
    Forecast,
    Forecaster,
    Geocoder,
    Place,
    Units,
    WeatherUnavailable,
    units_for_locale,
)
from appliance.tools.weather.tool import weather_day, weather_tool

__all__ = [
    "DayForecast",
    "Forecast",
    "Forecaster",
    "Geocoder",
    "OpenMeteo",
    "OpenMeteoGeocoder",
    "OpenWeatherMap",
    "Place",
    "Units",
    "WeatherUnavailable",
    "units_for_locale",
    "weather_day",
    "weather_tool",
]
