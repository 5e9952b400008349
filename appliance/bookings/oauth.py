"""Google's OAuth 2.0 for a box without a browser: the device flow, refresh, revoke.

The operator starts the device flow from the status page (or `appliance calendar
connect-google`): Google gives a short user code and a URL; the operator opens the URL on a
phone or laptop, types the code and allows calendar access, while the box polls Google's token
endpoint at the interval Google asked for (RFC 8628: `authorization_pending` means keep asking,
`slow_down` means ask 5 s less often, `access_denied` and `expired_token` end it).

The tokens go to a `TokenVault` (the sealed store on the box's database); the access token is
refreshed a minute before it expires, and once more when Google answers 401 to it anyway (a
token revoked early, a clock that drifted). Disconnecting revokes the refresh token at Google
(which ends the whole grant) and forgets the tokens whether or not Google could be reached.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import httpx

from appliance.bookings.calendar import CalendarUnavailable
from appliance.clock import Clock

__all__ = [
    "CALENDAR_SCOPE",
    "DeviceCode",
    "GoogleAuth",
    "GoogleNotConnected",
    "Outcome",
    "TokenVault",
]

_log = logging.getLogger(__name__)

CALENDAR_SCOPE = "https://www.googleapis.com/auth/calendar.events"
"""Events only: the box reads and writes appointments, never the account's other calendars."""
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
VAULT_NAME = "google"
_REFRESH_MARGIN_S = 60.0
_SLOW_DOWN_S = 5.0

Outcome = Literal["pending", "connected", "denied", "expired"]


class GoogleNotConnected(CalendarUnavailable):
    """No usable Google login: never connected, revoked, or its tokens cannot be opened."""


class TokenVault(Protocol):
    """Where the tokens are kept, sealed (`appliance.memory.tokens.TokenStore`)."""

    async def get(self, name: str) -> dict[str, Any] | None: ...

    async def put(self, name: str, value: dict[str, Any]) -> None: ...

    async def delete(self, name: str) -> None: ...


@dataclass(slots=True)
class DeviceCode:
    """One device flow in progress: what the operator is shown, and how often to poll."""

    device_code: str
    user_code: str
    verification_url: str
    expires_at: float
    """Unix seconds."""
    interval_s: float
    """Raised by 5 s on each `slow_down`."""


class GoogleAuth:
    """One Google account's tokens for one OAuth client (a "TVs and Limited Input devices"
    client in Google Cloud's console)."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        vault: TokenVault,
        clock: Clock,
        oauth_url: str = "https://oauth2.googleapis.com",
        scope: str = CALENDAR_SCOPE,
        timeout_s: float = 10.0,
    ) -> None:
        self._client = {"client_id": client_id, "client_secret": client_secret}
        self._vault = vault
        self._clock = clock
        self._url = oauth_url.rstrip("/")
        self._scope = scope
        self._timeout = timeout_s
        self._refreshing = asyncio.Lock()
        self._http: httpx.AsyncClient | None = None
        self._closed = False

    def http(self) -> httpx.AsyncClient:
        """The one HTTP client of Google's login and calendar, made on first use: it keeps its
        connections (a TLS handshake to Google per request would cost a caller ~100 ms each),
        and building a client costs ~90 ms (it reads the CA bundle). `aclose` closes it."""
        if self._closed:
            raise GoogleNotConnected("the box is stopping; the calendar cannot be used now")
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self._timeout)
        return self._http

    async def aclose(self) -> None:
        """Close the HTTP client, for good: a flow still polling ends instead of opening more."""
        self._closed = True
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()

    # --- the device flow ------------------------------------------------------------------------

    async def start(self) -> DeviceCode:
        """Ask Google for a user code; raises GoogleNotConnected when it refuses."""
        body = await self._post(
            "/device/code", {"client_id": self._client["client_id"], "scope": self._scope}
        )
        return DeviceCode(
            device_code=str(body["device_code"]),
            user_code=str(body["user_code"]),
            verification_url=str(body.get("verification_url") or body["verification_uri"]),
            expires_at=self._clock.wall() + float(body.get("expires_in", 1800)),
            interval_s=float(body.get("interval", 5)),
        )

    async def poll(self, code: DeviceCode) -> Outcome:
        """Ask once whether the operator has allowed access; stores the tokens when so."""
        if self._clock.wall() >= code.expires_at:
            return "expired"
        form = {**self._client, "device_code": code.device_code, "grant_type": DEVICE_GRANT}
        response = await self._request("/token", form)
        if response.status_code == httpx.codes.OK:
            granted = response.json()
            try:
                await self._keep(granted, refresh_token=None)
            except Exception:  # not kept (no key): leave no grant behind at Google
                await self._revoke(str(granted.get("refresh_token") or granted["access_token"]))
                raise
            return "connected"
        error = _error_code(response)
        if error == "slow_down":
            code.interval_s += _SLOW_DOWN_S
            return "pending"
        if error == "authorization_pending":
            return "pending"
        if error == "access_denied":
            return "denied"
        if error == "expired_token":
            return "expired"
        raise GoogleNotConnected(_refusal(response))

    async def wait(self, code: DeviceCode) -> Outcome:
        """Poll at Google's interval until the flow ends; returns how it ended."""
        while True:
            await self._clock.sleep(code.interval_s)
            outcome = await self.poll(code)
            if outcome != "pending":
                return outcome

    # --- the tokens -----------------------------------------------------------------------------

    async def connected(self) -> bool:
        """Whether tokens are stored (and open with the key)."""
        try:
            return await self.has_login()
        except GoogleNotConnected:
            return False

    async def has_login(self) -> bool:
        """Whether tokens are stored; raises GoogleNotConnected when they cannot be opened
        (no key, another key), saying what to do."""
        try:
            return await self._vault.get(VAULT_NAME) is not None
        except Exception as exc:  # the vault's message says how to fix it
            raise GoogleNotConnected(f"the Google Calendar login cannot be read: {exc}") from exc

    async def token(self, *, refresh: bool = False) -> str:
        """A current access token, refreshed when it expires within a minute (or `refresh`)."""
        async with self._refreshing:  # one refresh at a time; the others take its result
            stored = await self._stored()
            fresh = stored.get("expires_at", 0.0) - _REFRESH_MARGIN_S > self._clock.wall()
            if fresh and not refresh:
                return str(stored["access_token"])
            form = {
                **self._client,
                "grant_type": "refresh_token",
                "refresh_token": str(stored["refresh_token"]),
            }
            response = await self._request("/token", form)
            if response.status_code != httpx.codes.OK:
                if _error_code(response) == "invalid_grant":
                    await self._vault.delete(VAULT_NAME)
                    raise GoogleNotConnected(
                        "Google no longer accepts the box's calendar login (it was revoked or "
                        "expired); reconnect Google Calendar from the status page"
                    )
                raise GoogleNotConnected(_refusal(response))
            return await self._keep(response.json(), refresh_token=str(stored["refresh_token"]))

    async def disconnect(self) -> bool:
        """Revoke the grant at Google and forget the tokens; True when Google confirmed."""
        try:
            stored = await self._vault.get(VAULT_NAME)
        except Exception:  # unreadable tokens are forgotten all the same
            stored = None
        revoked = False
        if stored is not None:
            token = stored.get("refresh_token") or stored.get("access_token")
            revoked = await self._revoke(str(token))
        await self._vault.delete(VAULT_NAME)
        return revoked

    async def _revoke(self, token: str) -> bool:
        """Revoke `token` (a refresh token ends its whole grant); True when Google confirmed."""
        try:
            response = await self._request("/revoke", {"token": token})
        except GoogleNotConnected as exc:
            _log.warning("google: revoking the calendar login failed: %s", exc)
            return False
        return response.status_code == httpx.codes.OK

    async def _stored(self) -> dict[str, Any]:
        try:
            stored = await self._vault.get(VAULT_NAME)
        except Exception as exc:  # the vault's message says how to fix it
            raise GoogleNotConnected(f"the Google Calendar login cannot be read: {exc}") from exc
        if stored is None:
            raise GoogleNotConnected(
                "Google Calendar is not connected; connect it from the status page"
            )
        return stored

    async def _keep(self, body: dict[str, Any], *, refresh_token: str | None) -> str:
        """Store a token answer (a refresh answer has no refresh token: keep the old one)."""
        access = str(body["access_token"])
        await self._vault.put(
            VAULT_NAME,
            {
                "access_token": access,
                "refresh_token": str(body.get("refresh_token") or refresh_token or ""),
                "expires_at": self._clock.wall() + float(body.get("expires_in", 3600)),
                "scope": str(body.get("scope", self._scope)),
            },
        )
        return access

    async def _post(self, path: str, form: dict[str, str]) -> dict[str, Any]:
        response = await self._request(path, form)
        if response.status_code != httpx.codes.OK:
            raise GoogleNotConnected(_refusal(response))
        body = response.json()
        assert isinstance(body, dict)
        return body

    async def _request(self, path: str, form: dict[str, str]) -> httpx.Response:
        try:
            return await self.http().post(self._url + path, data=form)
        except httpx.HTTPError as exc:
            raise GoogleNotConnected(
                f"Google's sign-in service cannot be reached ({type(exc).__name__})"
            ) from exc


def _error_code(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    return str(body.get("error", "")) if isinstance(body, dict) else ""


def _refusal(response: httpx.Response) -> str:
    try:
        body = response.json()
        said = f"{body.get('error')}: {body.get('error_description', '')}"
    except (ValueError, AttributeError):
        said = response.text[:200]
    return f"Google refused ({response.status_code} {said})"
