"""The calendar from settings: the sealed token store, and Google's login and calendar when an
OAuth client is set (the CalDAV calendar is built beside them in `front.py`)."""

from __future__ import annotations

from appliance.bookings import Calendar, GoogleAuth, GoogleCalendar, GoogleOrCalDav
from appliance.bookings.oauth import TokenVault
from appliance.clock import Clock
from appliance.memory.db import Database
from appliance.memory.tokens import TokenKey, TokenStore
from appliance.settings import IntegrationSettings

__all__ = ["google_auth", "google_or", "token_store"]


def token_store(integrations: IntegrationSettings, db: Database, clock: Clock) -> TokenStore:
    """OAuth tokens on the box's database, sealed with TOKEN_ENCRYPTION_KEY (the settings have
    checked that each key is one)."""
    key, old = integrations.token_encryption_key, integrations.token_encryption_key_old
    return TokenStore(
        db,
        TokenKey.given(key.get_secret_value() if key is not None else None),
        wall=clock.wall,
        old_key=TokenKey.given(old.get_secret_value() if old is not None else None),
    )


def google_auth(
    integrations: IntegrationSettings, tokens: TokenVault | None, clock: Clock
) -> GoogleAuth | None:
    """Google's login for the operator to connect, when GOOGLE_CLIENT_ID is set."""
    if not integrations.google_client_id or tokens is None:
        return None
    secret = integrations.google_client_secret
    return GoogleAuth(
        client_id=integrations.google_client_id,
        client_secret=secret.get_secret_value() if secret is not None else "",
        vault=tokens,
        clock=clock,
        oauth_url=integrations.google_oauth_url,
    )


def google_or(
    integrations: IntegrationSettings, auth: GoogleAuth, caldav: Calendar | None, clock: Clock
) -> Calendar:
    """Google Calendar while connected, else `caldav` (or no calendar, said to the caller)."""
    google = GoogleCalendar(
        auth,
        clock=clock,
        calendar_id=integrations.google_calendar_id,
        base_url=integrations.google_calendar_api_url,
    )
    return GoogleOrCalDav(google, auth, caldav)
