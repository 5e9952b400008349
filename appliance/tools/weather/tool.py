"""The `get_weather` tool: the forecast for a day the caller names, here or somewhere else.

The model passes the caller's words for the day; the date is worked out here, in the business's
time zone, from the injected clock, by the parser the opening hours use too. Whatever goes wrong
(no such place, a day past the forecast, a slow or failing service, a malformed answer) becomes a
short sentence the agent can say, and is logged; the tool never raises and never says weather a
service did not give.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field

from appliance.clock import Clock
from appliance.conversation.days import resolve_day
from appliance.conversation.tools import Tool, ToolContext
from appliance.tools.weather.ports import (
    Forecast,
    Forecaster,
    Geocoder,
    Place,
    WeatherUnavailable,
)
from appliance.tools.weather.spoken import CANNOT, say_day

__all__ = ["weather_day", "weather_tool"]

_log = logging.getLogger(__name__)

_WHICH_DAY = "Which day? I can give the weather for today, tomorrow or a day this week."
_NOT_PAST = "I only have forecasts, not past weather."
_NOTHING_LEFT = "The forecast has nothing left for today; I can tell you about tomorrow."
_HERE = frozenset({"", "here", "local", "locally", "this area", "the area", "nearby"})
_SUN = re.compile(r"\bsun\b", re.IGNORECASE)


class _WeatherArguments(BaseModel):
    day: str | None = Field(
        default=None,
        description='The day in the caller\'s words: "today", "tomorrow", "Friday". '
        "Leave it out for today.",
    )
    place: str | None = Field(
        default=None,
        description="A town or city, only when the caller asks about somewhere else.",
    )


def weather_tool(
    forecaster: Forecaster,
    *,
    clock: Clock,
    timezone: ZoneInfo,
    home: Place,
    geocoder: Geocoder | None = None,
    deadline_s: float = 8.0,
) -> Tool:
    """A tool that tells the forecast for a day; `home` is the business's own place.

    `deadline_s` bounds the lookups together (geocoding and forecast), below the registry's
    own timeout, so a slow service ends in a sentence rather than a tool error.
    """
    homes = _names_of(home)

    async def where(asked: str | None) -> Place | str:
        """The place asked about, or what to say when it cannot be looked up."""
        if asked is None or asked.strip().lower() in homes:
            return home
        if geocoder is None:
            return f"I can only give the weather for {home.label}."
        found = await geocoder.find(asked.strip())
        if found is None:
            _log.info("weather: no place matches %r", asked)
            return f"I couldn't find a place called {asked.strip()}."
        return found

    async def lookup(asked: str | None) -> tuple[Place, Forecast] | str:
        """The place and its forecast, or what to say instead."""
        try:
            async with asyncio.timeout(deadline_s):
                place = await where(asked)
                if isinstance(place, str):
                    return place
                return place, await forecaster.forecast(place, timezone.key)
        except WeatherUnavailable as exc:
            _log.warning("weather: %s", exc)
        except TimeoutError:
            _log.warning("weather: no answer within %g s", deadline_s)
        except Exception:
            # A tool's failure reaches the model as an error it may paper over with made-up
            # weather; a plain "cannot" is safer, and the log keeps the traceback.
            _log.exception("weather: the lookup failed")
        return CANNOT

    async def run(arguments: BaseModel, _: ToolContext) -> str:
        if not isinstance(arguments, _WeatherArguments):
            raise TypeError(f"get_weather takes _WeatherArguments, not {type(arguments)}")
        today = dt.datetime.fromtimestamp(clock.wall(), tz=timezone).date()
        date = weather_day(arguments.day, today)
        if date is None or date < today:
            return _WHICH_DAY if date is None else _NOT_PAST
        found = await lookup(arguments.place)
        if isinstance(found, str):
            return found
        place, forecast = found
        day = forecast.day(date)
        if day is None:
            return _missing(date, today, forecast)
        return say_day(day, forecast, today=today, place=None if place is home else place.label)

    return Tool(
        name="get_weather",
        description="The weather forecast for a day, here or in another town.",
        arguments=_WeatherArguments,
        run=run,
    )


def weather_day(words: str | None, today: dt.date) -> dt.date | None:
    """The date a weather question's `words` name: today when there are none, None when they
    name no day (the tool then asks which). "sun" is sunshine here, not Sunday."""
    said = words or ""
    if not said.strip():
        return today
    return resolve_day(_SUN.sub(" ", said), today)


def _names_of(home: Place) -> frozenset[str]:
    """What a caller (or the model) may call the business's own place."""
    label = home.label.strip().lower()
    return _HERE | {label, label.split(",")[0].strip()}


def _missing(date: dt.date, today: dt.date, forecast: Forecast) -> str:
    """What to say when the forecast has no such day: past its end, or nothing left of today."""
    _log.info("weather: no forecast for %s (days %s)", date, [d.date for d in forecast.days])
    if not forecast.days:
        return CANNOT
    if date == today:
        return _NOTHING_LEFT
    last = forecast.days[-1].date
    if date < last:  # a day the service left without numbers
        return f"I don't have a forecast for {date:%A}, {date:%B} {date.day}."
    return (
        f"The forecast doesn't reach {date:%A}, {date:%B} {date.day} yet; "
        f"it goes as far as {last:%A}, {last:%B} {last.day}."
    )
