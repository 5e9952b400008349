"""One GET of a weather service's JSON, every failure turned into `WeatherUnavailable`."""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from appliance.tools.weather.ports import WeatherUnavailable

__all__ = ["get_json"]


async def get_json(
    url: str, params: Mapping[str, str | int | float], *, timeout_s: float, service: str
) -> dict[str, object]:
    """The JSON object at `url`; raises WeatherUnavailable saying what went wrong."""
    try:
        async with httpx.AsyncClient(timeout=timeout_s) as client:
            response = await client.get(url, params=dict(params))
    except httpx.TimeoutException as exc:
        raise WeatherUnavailable(f"{service} did not answer within {timeout_s:g} s") from exc
    except httpx.HTTPError as exc:
        raise WeatherUnavailable(f"{service} could not be reached: {exc!r}") from exc
    if not response.is_success:
        body = response.text[:300].strip()
        raise WeatherUnavailable(f"{service} answered {response.status_code}: {body}")
    try:
        answer = response.json()
    except ValueError as exc:
        raise WeatherUnavailable(f"{service} answered with a body that is not JSON") from exc
    if not isinstance(answer, dict):
        raise WeatherUnavailable(f"{service} answered with JSON that is not an object")
    return answer
