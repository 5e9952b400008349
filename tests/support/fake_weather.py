"""Open-Meteo (forecast, geocoding) and OpenWeatherMap on a loopback port, on their wire formats.

A test writes the weather as a table of local days in degrees Celsius; the fake answers each
service's query from it as the real service would: Open-Meteo's parallel `daily` arrays in the
asked `temperature_unit` (400 `{"error": true, "reason": ...}` for a bad parameter), its geocoding
`results` (absent when nothing matches), and OpenWeatherMap's 3-hourly `list` in the asked
`units`, starting at the fake's `now` (401 for a wrong `appid`). Every request is kept with its
query. `script` holds answers to give first: an HTTP error, a hang past the client's timeout, or
a body that is not what the service sends.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["City", "Day", "FakeWeather", "Seen", "fake_weather"]

Answer = tuple[int, bytes]
Trouble = Literal["hang", "garbage", "not-an-object", "wrong-shape"] | int | bytes
"""A scripted answer: "hang" (answer nothing until the test ends), a body that is not JSON, JSON
that is not an object, an object of the wrong shape, an HTTP status with the service's error
body, or these bytes as a 200's body."""


@dataclass(frozen=True)
class Day:
    """One local day of weather, as a test writes it."""

    date: dt.date
    wmo: int = 0
    high_c: float = 20.0
    low_c: float = 10.0
    precipitation: int | None = 0
    """Percent chance; None where Open-Meteo's model has no value (it answers null)."""
    owm_id: int = 800
    owm_text: str = "clear sky"
    owm_night: tuple[int, str] | None = None
    """OpenWeatherMap's condition from 21:00 to 06:00, when it differs from the day's."""


@dataclass(frozen=True)
class City:
    name: str
    latitude: float
    longitude: float
    country: str
    country_code: str
    timezone: str
    admin1: str | None = None


@dataclass(frozen=True)
class Seen:
    path: str
    query: dict[str, str]


@dataclass
class FakeWeather:
    zone: str
    """The time zone the days are local to (OpenWeatherMap's steps are laid out in it)."""
    now: float
    """Unix seconds: OpenWeatherMap's first step is the three hours that hold it."""
    days: list[Day] = field(default_factory=list)
    now_c: float | None = None
    now_wmo: int | None = None
    cities: list[City] = field(default_factory=list)
    api_key: str = "owm-test-key"
    script: list[Trouble] = field(default_factory=list)
    requests: list[Seen] = field(default_factory=list)
    url: str = ""
    released: threading.Event = field(default_factory=threading.Event)

    def seen(self, path: str) -> list[dict[str, str]]:
        """The queries of the requests made to `path`, in order."""
        return [s.query for s in self.requests if s.path == path]

    def answer(self, seen: Seen) -> Answer:
        self.requests.append(seen)
        if self.script:
            return self._trouble(self.script.pop(0), seen.path)
        match seen.path:
            case "/v1/forecast":
                return _open_meteo(self, seen.query)
            case "/v1/search":
                return _geocoding(self, seen.query)
            case "/data/2.5/forecast":
                return _openweathermap(self, seen.query)
        return _json(404, {"error": True, "reason": "Not Found"})

    def _trouble(self, trouble: Trouble, path: str) -> Answer:
        if trouble == "hang":
            self.released.wait(30)
            return _json(200, {})
        if isinstance(trouble, int):
            if path.startswith("/data/"):
                return _json(trouble, {"cod": trouble, "message": "Internal error"})
            return _json(trouble, {"error": True, "reason": "Internal Server Error"})
        return 200, trouble if isinstance(trouble, bytes) else _BODIES[trouble]


_BODIES = {
    "garbage": b"<html><body>502 Bad Gateway</body></html>",
    "not-an-object": b"[1, 2, 3]",
    "wrong-shape": b'{"daily": {"time": "soon"}, "list": [{"dt": "later"}], "results": 7}',
}


def _json(status: int, body: object) -> Answer:
    return status, json.dumps(body).encode()


def _om_error(reason: str) -> Answer:
    return _json(400, {"error": True, "reason": reason})


def _fahrenheit(celsius: float) -> float:
    return round(celsius * 9 / 5 + 32, 1)


_OM_DAILY = {
    "weather_code": ("wmo code", lambda d: d.wmo),
    "temperature_2m_max": ("°C", lambda d: d.high_c),
    "temperature_2m_min": ("°C", lambda d: d.low_c),
    "precipitation_probability_max": ("%", lambda d: d.precipitation),
}


def _open_meteo(fake: FakeWeather, query: dict[str, str]) -> Answer:
    try:
        latitude, longitude = float(query["latitude"]), float(query["longitude"])
        zone = ZoneInfo(query.get("timezone", "GMT"))
    except KeyError as missing:
        return _om_error(f"Parameter {missing} is required")
    except (ValueError, ZoneInfoNotFoundError):
        return _om_error("Invalid coordinates or timezone")
    unit = query.get("temperature_unit", "celsius")
    if unit not in ("celsius", "fahrenheit"):
        return _om_error(f"Cannot initialize TemperatureUnit from invalid String value {unit}")
    daily = [v for v in query.get("daily", "").split(",") if v]
    if unknown := [v for v in daily if v not in _OM_DAILY]:
        return _om_error(
            f"Cannot initialize ForecastVariableDaily from invalid String value {unknown[0]}"
        )
    convert = _fahrenheit if unit == "fahrenheit" else (lambda c: c)
    degrees = "°F" if unit == "fahrenheit" else "°C"
    days = fake.days[: int(query.get("forecast_days", "7"))]
    local_now = dt.datetime.fromtimestamp(fake.now, zone)
    body: dict[str, object] = {
        "latitude": round(latitude, 4),
        "longitude": round(longitude, 4),
        "generationtime_ms": 0.05,
        "utc_offset_seconds": int((local_now.utcoffset() or dt.timedelta()).total_seconds()),
        "timezone": query.get("timezone", "GMT"),
        "timezone_abbreviation": local_now.tzname(),
        "elevation": 38.0,
    }
    if daily:
        body["daily_units"] = {"time": "iso8601"} | {
            v: degrees if _OM_DAILY[v][0] == "°C" else _OM_DAILY[v][0] for v in daily
        }
        body["daily"] = {"time": [d.date.isoformat() for d in days]} | {
            v: [
                convert(x) if x is not None and _OM_DAILY[v][0] == "°C" else x
                for x in map(_OM_DAILY[v][1], days)
            ]
            for v in daily
        }
    current = [v for v in query.get("current", "").split(",") if v]
    if current:
        stamp = dt.datetime.fromtimestamp(fake.now - fake.now % 900, zone)
        values = {
            "temperature_2m": None if fake.now_c is None else convert(fake.now_c),
            "weather_code": fake.now_wmo,
        }
        body["current_units"] = {"time": "iso8601", "interval": "seconds"} | {
            v: "wmo code" if v == "weather_code" else degrees for v in current
        }
        body["current"] = {"time": stamp.strftime("%Y-%m-%dT%H:%M"), "interval": 900} | {
            v: values.get(v) for v in current
        }
    return _json(200, body)


def _geocoding(fake: FakeWeather, query: dict[str, str]) -> Answer:
    wanted = query.get("name", "").strip().lower()
    if not wanted:
        return _om_error("Parameter 'name' is required")
    found = [c for c in fake.cities if c.name.lower().startswith(wanted)]
    body: dict[str, object] = {"generationtime_ms": 0.4}
    if found:
        body["results"] = [
            {
                "id": 2950159 + n,
                "name": c.name,
                "latitude": c.latitude,
                "longitude": c.longitude,
                "elevation": 74.0,
                "feature_code": "PPLC",
                "country_code": c.country_code,
                "timezone": c.timezone,
                "population": 3426354,
                "country_id": 2921044,
                "country": c.country,
            }
            | ({"admin1": c.admin1} if c.admin1 else {})
            for n, c in enumerate(found[: int(query.get("count", "10"))])
        ]
    return _json(200, body)


_OWM_UNITS: dict[str, Callable[[float], float]] = {
    "imperial": _fahrenheit,
    "metric": lambda c: c,
    "standard": lambda c: round(c + 273.15, 2),
}
_STEP_S = 3 * 3600


def _openweathermap(fake: FakeWeather, query: dict[str, str]) -> Answer:
    if query.get("appid") != fake.api_key:
        return _json(
            401,
            {
                "cod": 401,
                "message": "Invalid API key. Please see https://openweathermap.org/faq#error401 "
                "for more info.",
            },
        )
    if "lat" not in query or "lon" not in query:
        return _json(400, {"cod": "400", "message": "Nothing to geocode"})
    convert = _OWM_UNITS.get(query.get("units", "standard"), _OWM_UNITS["standard"])
    first = fake.now - fake.now % _STEP_S
    steps = list(_owm_steps(fake, convert, since=first))[: int(query.get("cnt", "40"))]
    offset = dt.datetime.fromtimestamp(fake.now, ZoneInfo(fake.zone)).utcoffset()
    body = {
        "cod": "200",
        "message": 0,
        "cnt": len(steps),
        "list": steps,
        "city": {
            "id": 3163858,
            "name": "Springfield",
            "coord": {"lat": float(query["lat"]), "lon": float(query["lon"])},
            "country": "US",
            "population": 4593,
            "timezone": int((offset or dt.timedelta()).total_seconds()),
            "sunrise": int(first),
            "sunset": int(first) + 36000,
        },
    }
    return _json(200, body)


def _owm_steps(
    fake: FakeWeather, convert: Callable[[float], float], *, since: float
) -> Iterator[dict[str, object]]:
    """Each day's eight steps at local 00:00 to 21:00 from `since` on: the low by night, the high
    in the afternoon, the day's chance of rain in the afternoon and half of it otherwise."""
    zone = ZoneInfo(fake.zone)
    for day in fake.days:
        for hour in range(0, 24, 3):
            local = dt.datetime.combine(day.date, dt.time(hour), zone)
            celsius = (
                day.low_c
                if hour <= 6
                else day.high_c
                if hour in (12, 15)
                else (day.low_c + day.high_c) / 2
            )
            chance = (day.precipitation or 0) / 100 * (1 if hour in (12, 15) else 0.5)
            utc = local.astimezone(dt.UTC)
            night = hour <= 6 or hour == 21
            sky = day.owm_night if night and day.owm_night else (day.owm_id, day.owm_text)
            if utc.timestamp() < since:
                continue
            yield {
                "dt": int(utc.timestamp()),
                "main": {
                    "temp": convert(celsius),
                    "feels_like": convert(celsius),
                    "temp_min": convert(celsius),
                    "temp_max": convert(celsius),
                    "pressure": 1015,
                    "humidity": 69,
                },
                "weather": [{"id": sky[0], "main": "", "description": sky[1], "icon": "10d"}],
                "clouds": {"all": 60},
                "wind": {"speed": 2.1, "deg": 200, "gust": 3.4},
                "visibility": 10000,
                "pop": round(chance, 2),
                "sys": {"pod": "d" if 6 <= hour < 18 else "n"},
                "dt_txt": utc.strftime("%Y-%m-%d %H:%M:%S"),
            }


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that gave up on a hanging answer closed its socket: nothing to report."""


@contextmanager
def fake_weather(fake: FakeWeather) -> Iterator[FakeWeather]:
    """`fake` serving the three services on one loopback port; point every base URL at its url."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            status, body = fake.answer(Seen(parts.path, dict(parse_qsl(parts.query))))
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = _Server(("127.0.0.1", 0), Handler)
    # A short poll: shutdown() waits up to one poll, and every test starts and stops a server.
    thread = threading.Thread(
        target=server.serve_forever, args=(0.02,), name="fake-weather", daemon=True
    )
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        fake.released.set()
        server.shutdown()
        server.server_close()
        thread.join(5)
