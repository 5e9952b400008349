"""`appliance tokens new-key|rotate` and `appliance calendar connect-google|disconnect-google`.

They run in their own process, beside a running appliance if there is one (WAL lets both use the
database): a calendar connected here is used by the running box from its next booking on, as
the status page's would be.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from appliance.app.calendar import google_auth, token_store
from appliance.bookings import CalendarUnavailable, GoogleAuth
from appliance.clock import LoopClock
from appliance.memory.db import Database, database_path
from appliance.memory.tokens import TokenKey, TokenKeyError
from appliance.settings import Settings

__all__ = ["connect_google", "disconnect_google", "new_key", "rotate_keys"]

EXIT_OK, EXIT_FAILED = 0, 1
Say = Callable[[str], None]


def _err(line: str) -> None:
    print(line, file=sys.stderr)


def new_key(say: Say = print) -> int:
    """Print a fresh TOKEN_ENCRYPTION_KEY (and where it goes, on standard error)."""
    say(TokenKey.new())
    _err(
        "Put it in the appliance's settings as TOKEN_ENCRYPTION_KEY=... and keep a copy: tokens "
        "sealed with it cannot be read without it."
    )
    return EXIT_OK


@asynccontextmanager
async def _database(settings: Settings) -> AsyncIterator[Database]:
    assert settings.paths.database_url is not None
    db = Database(database_path(settings.paths.database_url))
    await db.open()
    try:
        yield db
    finally:
        await db.aclose()


async def rotate_keys(settings: Settings, say: Say = print) -> int:
    """Seal every token TOKEN_ENCRYPTION_KEY_OLD sealed again under TOKEN_ENCRYPTION_KEY."""
    integrations = settings.integrations
    if integrations.token_encryption_key is None or integrations.token_encryption_key_old is None:
        _err(
            "set TOKEN_ENCRYPTION_KEY to the new key and TOKEN_ENCRYPTION_KEY_OLD to the one it "
            "replaces (make a key with `appliance tokens new-key`)"
        )
        return EXIT_FAILED
    async with _database(settings) as db:
        count = await token_store(integrations, db, LoopClock()).rotate()
    say(f"sealed {count} token set(s) again under the new key; TOKEN_ENCRYPTION_KEY_OLD can go")
    return EXIT_OK


@asynccontextmanager
async def _google(settings: Settings) -> AsyncIterator[GoogleAuth | None]:
    async with _database(settings) as db:
        clock = LoopClock()
        auth = google_auth(
            settings.integrations, token_store(settings.integrations, db, clock), clock
        )
        try:
            yield auth
        finally:
            if auth is not None:
                await auth.aclose()


_NOT_SET_UP = (
    "Google Calendar is not set up: set GOOGLE_CLIENT_ID and GOOGLE_CLIENT_SECRET (an OAuth "
    "client of type 'TVs and Limited Input devices')"
)


async def connect_google(settings: Settings, say: Say = print) -> int:
    """The device flow in the terminal: show the code, wait for the operator's answer."""
    async with _google(settings) as auth:
        if auth is None:
            _err(_NOT_SET_UP)
            return EXIT_FAILED
        try:
            code = await auth.start()
            say(f"On a phone or computer, open {code.verification_url} and enter {code.user_code}")
            say("Waiting for Google (Ctrl-C to give up)...")
            outcome = await auth.wait(code)
        except (CalendarUnavailable, TokenKeyError) as exc:
            _err(f"connecting Google Calendar failed: {exc}")
            return EXIT_FAILED
    if outcome == "connected":
        say("Connected: bookings now go to Google Calendar.")
        return EXIT_OK
    _err(
        "Access was not allowed on Google's page."
        if outcome == "denied"
        else "The code expired before it was entered; run this again for a new one."
    )
    return EXIT_FAILED


async def disconnect_google(settings: Settings, say: Say = print) -> int:
    """Revoke the grant at Google and forget the tokens."""
    async with _google(settings) as auth:
        if auth is None:
            _err(_NOT_SET_UP)
            return EXIT_FAILED
        revoked = await auth.disconnect()
    say(
        "Disconnected: Google has revoked the box's access."
        if revoked
        else "Disconnected: the login is forgotten (Google could not confirm the revoke)."
    )
    return EXIT_OK
