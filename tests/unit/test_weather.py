"""The weather tool against fake Open-Meteo and OpenWeatherMap servers speaking their real JSON.

The business is in New York; the clock stands just before or just after a local midnight, when
the UTC date is already the next day, so a day resolved in the wrong zone shows.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from collections.abc import Iterator
from typing import Literal
from zoneinfo import ZoneInfo

import pytest

from appliance.conversation.ports import CallInfo, ToolCall
from appliance.conversation.tools import ToolContext, ToolRegistry
from appliance.tools.weather import (
    Forecaster,
    OpenMeteo,
    OpenMeteoGeocoder,
    OpenWeatherMap,
    Place,
    Units,
    units_for_locale,
    weather_day,
    weather_tool,
)
from tests.support.fake_weather import City, Day, FakeWeather, fake_weather
from tests.support.hand_clock import HandClock

ZONE = ZoneInfo("America/New_York")
HOME = Place(latitude=40.7128, longitude=-74.006, label="Springfield")
THURSDAY = dt.date(2025, 1, 9)
CANNOT = "I can't get the weather right now."
PARIS = City("Paris", 48.8534, 2.3488, "France", "FR", "Europe/Paris", "Île-de-France")
Backend = Literal["open-meteo", "openweathermap"]


def _local(date: dt.date, hh: int, mm: int, ss: int = 0) -> float:
    return dt.datetime.combine(date, dt.time(hh, mm, ss), ZONE).timestamp()


def _week(start: dt.date, **changes: dict[str, object]) -> list[Day]:
    """Seven overcast days from `start`, Thursday the 9th at 10 °C and 0 °C, one degree and 10%
    chance of rain more each day; `changes`, by weekday ("fri"), alter a day."""
    days = []
    for offset in range(7):
        date = start + dt.timedelta(days=offset)
        n = (date - THURSDAY).days  # a date's numbers do not depend on where the week starts
        base = Day(date, wmo=3, high_c=10.0 + n, low_c=0.0 + n, precipitation=10 * n)
        days.append(dataclasses.replace(base, **changes.get(f"{date:%a}".lower(), {})))  # type: ignore[arg-type]
    return days


@pytest.fixture
def fake() -> Iterator[FakeWeather]:
    """Thursday 23:59:30 in New York (04:59:30 UTC Friday), a week from Thursday."""
    served = FakeWeather(zone=ZONE.key, now=_local(THURSDAY, 23, 59, 30), days=_week(THURSDAY))
    served.cities.append(PARIS)
    with fake_weather(served) as running:
        yield running


def _forecaster(
    fake: FakeWeather, backend: Backend, units: Units, timeout_s: float, key: str | None
) -> Forecaster:
    if backend == "open-meteo":
        return OpenMeteo(units=units, base_url=fake.url, timeout_s=timeout_s)
    return OpenWeatherMap(
        api_key=key or fake.api_key, units=units, base_url=fake.url, timeout_s=timeout_s
    )


async def _ask(
    fake: FakeWeather,
    *,
    backend: Backend = "open-meteo",
    units: Units = "fahrenheit",
    timeout_s: float = 2.0,
    deadline_s: float = 5.0,
    key: str | None = None,
    geocoding: bool = True,
    **arguments: str,
) -> str:
    """The tool's answer, called as the model calls it: JSON arguments through the registry."""
    tool = weather_tool(
        _forecaster(fake, backend, units, timeout_s, key),
        clock=HandClock(fake.now),
        timezone=ZONE,
        home=HOME,
        geocoder=OpenMeteoGeocoder(base_url=fake.url, timeout_s=timeout_s) if geocoding else None,
        deadline_s=deadline_s,
    )
    registry = ToolRegistry([tool])
    call = ToolCall(id="call-1", name="get_weather", arguments=json.dumps(arguments))
    context = ToolContext(call=CallInfo(call_id="c", line="wav", caller="+15550100"))
    ok, text = await registry.run(call, registry.parse(call), context)
    assert ok, text
    return text


# The day, resolved in code


@pytest.mark.parametrize(
    ("words", "ahead"),
    [
        (None, 0),
        ("", 0),
        ("today", 0),
        ("tonight", 0),
        ("this evening", 0),
        ("this morning", 0),
        ("right now", 0),
        ("currently", 0),
        ("tomorrow", 1),
        ("Tomorrow morning", 1),
        ("the day after tomorrow", 2),
        ("Friday", 1),
        ("on friday", 1),
        ("sat", 2),
        ("sun on saturday", 2),
        ("Sunday", 3),
        ("Thursday", 0),
        ("next Thursday", 7),
        ("Wednesday", 6),
        ("2025-01-12", 3),
        ("yesterday", -1),
    ],
)
def test_a_day_in_words_is_counted_from_today(words: str | None, ahead: int) -> None:
    assert weather_day(words, THURSDAY) == THURSDAY + dt.timedelta(days=ahead)


@pytest.mark.parametrize("words", ["whenever", "will there be sun", "2025-13-01", "next week"])
def test_words_that_name_no_day_resolve_to_none(words: str) -> None:
    assert weather_day(words, THURSDAY) is None


@pytest.mark.parametrize(
    ("local", "words", "expected"),
    [
        (
            (THURSDAY, 23, 59, 30),
            "today",
            "Today, Thursday: overcast, high of 50 and low of 32 degrees, 0% chance of rain.",
        ),
        (
            (THURSDAY, 23, 59, 30),
            "tomorrow",
            "Tomorrow, Friday: overcast, high of 52 and low of 34 degrees, 10% chance of rain.",
        ),
        (
            (THURSDAY + dt.timedelta(days=1), 0, 0, 30),
            "today",
            "Today, Friday: overcast, high of 52 and low of 34 degrees, 10% chance of rain.",
        ),
        (
            (THURSDAY + dt.timedelta(days=1), 0, 0, 30),
            "tomorrow",
            "Tomorrow, Saturday: overcast, high of 54 and low of 36 degrees, 20% chance of rain.",
        ),
        (
            (THURSDAY, 23, 59, 30),
            "Monday",
            "Monday, January 13: overcast, high of 57 and low of 39 degrees, 40% chance of rain.",
        ),
    ],
)
async def test_the_day_is_resolved_in_the_business_time_zone_around_midnight(
    fake: FakeWeather, local: tuple[dt.date, int, int, int], words: str, expected: str
) -> None:
    fake.now = _local(*local)
    fake.days = _week(dt.datetime.fromtimestamp(fake.now, ZONE).date())
    assert await _ask(fake, day=words) == expected
    assert fake.seen("/v1/forecast")[0]["timezone"] == "America/New_York"


async def test_a_day_past_the_forecast_is_said_so_and_nothing_is_made_up(
    fake: FakeWeather,
) -> None:
    answer = await _ask(fake, day="next Thursday")
    assert answer == (
        "The forecast doesn't reach Thursday, January 16 yet; "
        "it goes as far as Wednesday, January 15."
    )


async def test_a_day_the_service_left_null_is_not_guessed(fake: FakeWeather) -> None:
    fake.days = _week(THURSDAY, sat={"high_c": None, "low_c": None, "precipitation": None})
    answer = await _ask(fake, day="Saturday")
    assert answer == "I don't have a forecast for Saturday, January 11."


async def test_a_past_day_or_an_unknown_one_asks_nothing_of_the_service(
    fake: FakeWeather,
) -> None:
    assert await _ask(fake, day="yesterday") == "I only have forecasts, not past weather."
    assert (await _ask(fake, day="whenever")).startswith("Which day?")
    assert fake.requests == []


# What is said comes from the service's numbers only


@pytest.mark.parametrize(
    ("high_c", "low_c", "chance", "said"),
    [
        (12.2, 5.0, 70, "high of 54 and low of 41 degrees, 70% chance of rain"),
        (30.0, 21.5, 5, "high of 86 and low of 71 degrees, 5% chance of rain"),
        (-7.5, -21.0, 0, "high of 19 and low of minus 6 degrees, 0% chance of rain"),
    ],
)
async def test_the_sentence_carries_the_services_numbers(
    fake: FakeWeather, high_c: float, low_c: float, chance: int, said: str
) -> None:
    fake.days = _week(
        THURSDAY, fri={"wmo": 61, "high_c": high_c, "low_c": low_c, "precipitation": chance}
    )
    assert await _ask(fake, day="tomorrow") == f"Tomorrow, Friday: light rain, {said}."


async def test_celsius_is_asked_for_and_said_when_configured(fake: FakeWeather) -> None:
    fake.days = _week(THURSDAY, fri={"high_c": 12.2, "low_c": -3.6})
    answer = await _ask(fake, day="tomorrow", units="celsius")
    assert "high of 12 and low of minus 4 degrees" in answer
    assert fake.seen("/v1/forecast")[0]["temperature_unit"] == "celsius"


async def test_no_chance_is_said_when_the_service_gives_none(fake: FakeWeather) -> None:
    fake.days = _week(THURSDAY, fri={"precipitation": None})
    answer = await _ask(fake, day="tomorrow")
    assert answer == "Tomorrow, Friday: overcast, high of 52 and low of 34 degrees."


async def test_today_adds_the_temperature_now(fake: FakeWeather) -> None:
    fake.now_c, fake.now_wmo = 8.9, 45
    answer = await _ask(fake)
    assert answer.endswith(" Right now: 48 degrees, fog.")


@pytest.mark.parametrize(
    ("wmo", "words", "wet"),
    [
        (0, "clear skies", "rain"),
        (1, "mostly clear", "rain"),
        (2, "partly cloudy", "rain"),
        (3, "overcast", "rain"),
        (45, "fog", "rain"),
        (48, "freezing fog", "rain"),
        (53, "drizzle", "rain"),
        (56, "light freezing drizzle", "rain"),
        (65, "heavy rain", "rain"),
        (67, "freezing rain", "rain"),
        (71, "light snow", "snow"),
        (77, "snow grains", "snow"),
        (81, "rain showers", "rain"),
        (86, "heavy snow showers", "snow"),
        (95, "thunderstorms", "rain"),
        (99, "thunderstorms with heavy hail", "rain"),
    ],
)
async def test_each_wmo_code_family_is_said_in_words(
    fake: FakeWeather, wmo: int, words: str, wet: str
) -> None:
    fake.days = _week(THURSDAY, fri={"wmo": wmo, "precipitation": 40})
    answer = await _ask(fake, day="tomorrow")
    assert answer == (
        f"Tomorrow, Friday: {words}, high of 52 and low of 34 degrees, 40% chance of {wet}."
    )


async def test_a_code_outside_the_table_is_left_unsaid(fake: FakeWeather) -> None:
    fake.days = _week(THURSDAY, fri={"wmo": 42})
    answer = await _ask(fake, day="tomorrow")
    assert answer == "Tomorrow, Friday: high of 52 and low of 34 degrees, 10% chance of rain."


async def test_open_meteo_is_asked_for_the_business_place_and_zone(fake: FakeWeather) -> None:
    await _ask(fake, day="Friday")
    (query,) = fake.seen("/v1/forecast")
    assert (float(query["latitude"]), float(query["longitude"])) == (40.7128, -74.006)
    assert query["daily"].split(",") == [
        "weather_code",
        "temperature_2m_max",
        "temperature_2m_min",
        "precipitation_probability_max",
    ]
    assert query["current"] == "temperature_2m,weather_code"
    assert (query["timezone"], query["forecast_days"]) == ("America/New_York", "7")
    assert query["temperature_unit"] == "fahrenheit"
    assert fake.seen("/v1/search") == []


# OpenWeatherMap


async def test_openweathermap_answers_a_day_from_its_three_hour_steps(
    fake: FakeWeather,
) -> None:
    fake.days = _week(
        THURSDAY,
        fri={"high_c": 12.2, "low_c": 5.0, "precipitation": 70, "owm_id": 500},
    )
    fake.days[1] = dataclasses.replace(fake.days[1], owm_text="light rain")
    answer = await _ask(fake, backend="openweathermap", day="tomorrow")
    assert answer == (
        "Tomorrow, Friday: light rain, high of 54 and low of 41 degrees, 70% chance of rain."
    )
    (query,) = fake.seen("/data/2.5/forecast")
    assert (query["lat"], query["lon"], query["units"]) == ("40.7128", "-74.006", "imperial")
    assert query["appid"] == fake.api_key


async def test_openweathermap_says_the_worst_sky_of_the_day(fake: FakeWeather) -> None:
    fake.days = _week(
        THURSDAY, sat={"owm_id": 801, "owm_text": "few clouds", "owm_night": (601, "Snow")}
    )
    answer = await _ask(fake, backend="openweathermap", units="celsius", day="Saturday")
    assert answer.startswith("Saturday, January 11: snow, high of 12 and low of 2 degrees")
    assert answer.endswith("20% chance of snow.")
    assert fake.seen("/data/2.5/forecast")[0]["units"] == "metric"


async def test_openweathermap_has_nothing_left_of_today_at_midnight(fake: FakeWeather) -> None:
    assert await _ask(fake, backend="openweathermap") == (
        "The forecast has nothing left for today; I can tell you about tomorrow."
    )


async def test_openweathermap_reaches_five_days_only(fake: FakeWeather) -> None:
    answer = await _ask(fake, backend="openweathermap", day="Wednesday")
    assert answer.startswith("The forecast doesn't reach Wednesday, January 15 yet;")


async def test_a_refused_key_is_a_spoken_fallback(
    fake: FakeWeather, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        answer = await _ask(fake, backend="openweathermap", key="wrong", day="tomorrow")
    assert answer == CANNOT
    assert "OpenWeatherMap answered 401" in caplog.text
    assert "wrong" not in caplog.text


# Another place


async def test_another_place_is_geocoded_then_forecast_there(fake: FakeWeather) -> None:
    answer = await _ask(fake, day="tomorrow", place="Paris")
    assert answer.startswith("In Paris, France, tomorrow, Friday: overcast, high of 52")
    assert fake.seen("/v1/search") == [
        {"name": "Paris", "count": "1", "language": "en", "format": "json"}
    ]
    (query,) = fake.seen("/v1/forecast")
    assert (query["latitude"], query["longitude"]) == ("48.8534", "2.3488")


@pytest.mark.parametrize("place", ["Springfield", "springfield", "here", ""])
async def test_the_business_place_is_not_geocoded(fake: FakeWeather, place: str) -> None:
    answer = await _ask(fake, day="tomorrow", place=place)
    assert answer.startswith("Tomorrow, Friday:")
    assert fake.seen("/v1/search") == []


async def test_an_unknown_place_is_said_so(fake: FakeWeather) -> None:
    answer = await _ask(fake, day="tomorrow", place="Atlantis")
    assert answer == "I couldn't find a place called Atlantis."
    assert fake.seen("/v1/forecast") == []


async def test_without_a_geocoder_only_the_business_place_is_known(fake: FakeWeather) -> None:
    answer = await _ask(fake, place="Paris", geocoding=False)
    assert answer == "I can only give the weather for Springfield."
    assert fake.requests == []


# Failures: each is a sentence and a log line, never an exception or made-up weather


@pytest.mark.parametrize("backend", ["open-meteo", "openweathermap"])
@pytest.mark.parametrize(
    ("trouble", "logged"),
    [
        (500, "answered 500"),
        (503, "answered 503"),
        (404, "answered 404"),
        ("hang", "did not answer within 0.3 s"),
        ("garbage", "not JSON"),
        ("not-an-object", "not an object"),
        ("wrong-shape", "forecast is"),
    ],
)
async def test_a_failing_service_gives_a_spoken_fallback(
    fake: FakeWeather,
    caplog: pytest.LogCaptureFixture,
    backend: Backend,
    trouble: int | str,
    logged: str,
) -> None:
    fake.script.append(trouble)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="appliance.tools.weather"):
        answer = await _ask(fake, backend=backend, timeout_s=0.3, day="tomorrow")
    assert answer == CANNOT
    assert logged in caplog.text
    assert len(fake.requests) == 1


async def test_arrays_of_different_lengths_are_malformed(
    fake: FakeWeather, caplog: pytest.LogCaptureFixture
) -> None:
    body = {
        "daily": {
            "time": ["2025-01-09", "2025-01-10"],
            "weather_code": [3, 61],
            "temperature_2m_max": [50.0, 54.0],
            "temperature_2m_min": [32.0],
            "precipitation_probability_max": [0, 70],
        }
    }
    fake.script.append(json.dumps(body).encode())
    with caplog.at_level(logging.WARNING, logger="appliance.tools.weather"):
        assert await _ask(fake, day="tomorrow") == CANNOT
    assert "malformed" in caplog.text


async def test_a_failing_geocoder_gives_the_fallback(fake: FakeWeather) -> None:
    fake.script.append(500)
    assert await _ask(fake, place="Paris") == CANNOT
    assert fake.seen("/v1/forecast") == []


async def test_the_deadline_ends_a_slow_lookup_before_the_registry_does(
    fake: FakeWeather, caplog: pytest.LogCaptureFixture
) -> None:
    fake.script.append("hang")
    with caplog.at_level(logging.WARNING, logger="appliance.tools.weather"):
        answer = await _ask(fake, timeout_s=5.0, deadline_s=0.3, place="Paris")
    assert answer == CANNOT
    assert "no answer within 0.3 s" in caplog.text


async def test_an_unreachable_service_gives_the_fallback(fake: FakeWeather) -> None:
    fake.url = "http://127.0.0.1:9"  # discard port: nothing listens on loopback
    assert await _ask(fake, day="tomorrow") == CANNOT


# The tool as the model sees it


def test_the_tool_takes_a_day_and_a_place_and_no_name_argument() -> None:
    tool = weather_tool(OpenMeteo(), clock=HandClock(), timezone=ZONE, home=HOME)
    spec = tool.spec
    assert spec.name == "get_weather"
    assert set(spec.parameters["properties"]) == {"day", "place"}
    assert spec.parameters.get("required", []) == []


@pytest.mark.parametrize(
    ("locale", "units"),
    [("en_US", "fahrenheit"), ("en-US", "fahrenheit"), ("en_GB", "celsius"), ("fr_CA", "celsius")],
)
def test_the_scale_follows_the_locale(locale: str, units: Units) -> None:
    assert units_for_locale(locale) == units
