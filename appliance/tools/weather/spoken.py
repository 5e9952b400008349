"""The weather said in one or two short sentences, built only from a backend's numbers."""

from __future__ import annotations

import datetime as dt
import math

from appliance.tools.weather.ports import DayForecast, Forecast

__all__ = ["CANNOT", "say_day"]

CANNOT = "I can't get the weather right now."


def _degrees(value: float) -> str:
    whole = math.floor(value + 0.5)  # half up, not Python's half to even: 54.5 is 55
    return f"minus {-whole}" if whole < 0 else str(whole)


def _heading(date: dt.date, today: dt.date) -> str:
    if date == today:
        return f"Today, {date:%A}"
    if date == today + dt.timedelta(days=1):
        return f"Tomorrow, {date:%A}"
    return f"{date:%A}, {date:%B} {date.day}"


def say_day(
    day: DayForecast, forecast: Forecast, *, today: dt.date, place: str | None = None
) -> str:
    """ "Tomorrow, Friday: light rain, high of 54 and low of 41 degrees, 70% chance of rain."

    `place` is named when it is not the business's own; today adds the temperature now when
    the backend reports it.
    """
    heading = _heading(day.date, today)
    if place:
        heading = f"In {place}, {heading[0].lower()}{heading[1:]}"
    parts = [day.condition] if day.condition else []
    parts.append(f"high of {_degrees(day.high)} and low of {_degrees(day.low)} degrees")
    if day.precipitation_chance is not None:
        parts.append(f"{day.precipitation_chance}% chance of {day.precipitation}")
    sentence = f"{heading}: {', '.join(parts)}."
    if day.date == today and forecast.current_temperature is not None:
        now = f"Right now: {_degrees(forecast.current_temperature)} degrees"
        if forecast.current_condition:
            now += f", {forecast.current_condition}"
        sentence += f" {now}."
    return sentence
