"""Google Calendar: the device flow, sealed tokens, refresh, rate limits and revoke, and bookings
through the booking tools, against a fake of Google's OAuth and Calendar endpoints on loopback
(real HTTP, Google's JSON) and the box's real SQLite database.

It is Tuesday 8 December 2026, 10 AM in New York (as in test_bookings.py); time is a hand clock,
so Google's 5-second poll interval and a Retry-After cost nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import apsw
import pytest

from appliance.bookings import (
    CalendarUnavailable,
    GoogleAuth,
    GoogleCalendar,
    GoogleNotConnected,
    GoogleOrCalDav,
    booking_tools,
)
from appliance.bookings.google import event_id
from appliance.conversation.ports import CallInfo, ToolCall
from appliance.conversation.profile import BusinessProfile
from appliance.conversation.tools import ToolContext, ToolRegistry
from appliance.memory.db import Database
from appliance.memory.tokens import TokenKey, TokenKeyError, TokenKeyMissing, TokenStore
from tests.support.fake_google import FakeGoogle, fake_google
from tests.support.hand_clock import HandClock

ZONE = ZoneInfo("America/New_York")
NOW = dt.datetime(2026, 12, 8, 10, tzinfo=ZONE)
ANN = "+15550100123"
BOB = "+15550100456"
KEY = TokenKey.new()
_EVENTS = "/calendar/v3/calendars/primary/events"
PROFILE = BusinessProfile.model_validate(
    {
        "name": "Bright Cuts",
        "timezone": "America/New_York",
        "hours": {
            **dict.fromkeys(("monday", "tuesday", "wednesday", "thursday"), "09:00-17:00"),
            "friday": "08:00-12:00",
            "saturday": "10:00-12:00",
        },
        "services": [{"name": "Haircut", "minutes": 30}, {"name": "Colour", "minutes": 90}],
    }
)


@pytest.fixture
def clock() -> HandClock:
    return HandClock(NOW.timestamp())


@pytest.fixture
def google(clock: HandClock) -> Iterator[FakeGoogle]:
    with fake_google(FakeGoogle(now=clock.wall)) as fake:
        yield fake


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(tmp_path / "box.db")
    await database.open()
    yield database
    for auth in _OPEN.pop(database.path, []):
        await auth.aclose()  # its HTTP client's connections
    await database.aclose()


_OPEN: dict[Path, list[GoogleAuth]] = {}
"""The logins each test's database served, closed with it."""


class Box:
    """What the box builds: the sealed store, Google's auth and calendar, the booking tools."""

    def __init__(
        self, google: FakeGoogle, db: Database, clock: HandClock, *, key: str | None = KEY
    ) -> None:
        self.store = TokenStore(db, TokenKey.given(key), wall=clock.wall)
        self.auth = GoogleAuth(
            client_id=google.client_id,
            client_secret=google.client_secret,
            vault=self.store,
            clock=clock,
            oauth_url=google.url,
        )
        _OPEN.setdefault(db.path, []).append(self.auth)
        self.calendar = GoogleCalendar(self.auth, clock=clock, base_url=f"{google.url}/calendar/v3")
        self.tools = ToolRegistry(
            booking_tools(PROFILE, GoogleOrCalDav(self.calendar, self.auth, None), clock=clock)
        )
        self.google = google
        self.db = db

    async def connect(self) -> None:
        code = await self.auth.start()
        self.google.approve(code.user_code)
        assert await self.auth.wait(code) == "connected"

    def raw_row(self) -> tuple[str, bytes, bytes] | None:
        """The sealed row as SQLite holds it, read on a connection of the test's own."""
        conn = apsw.Connection(str(self.db.path))
        try:
            row = conn.execute(
                "SELECT key_id, nonce, sealed FROM sealed_tokens WHERE name = 'google'"
            ).fetchone()
        finally:
            conn.close()
        return None if row is None else (str(row[0]), bytes(row[1]), bytes(row[2]))  # type: ignore[arg-type]

    async def ask(self, caller: str, name: str, **arguments: str) -> tuple[str | None, ToolCall]:
        call = ToolCall(id="1", name=name, arguments=json.dumps(arguments))
        return await self.tools.readback(call, self.tools.parse(call), _call(caller)), call

    async def yes(self, caller: str, call: ToolCall) -> str:
        ok, result = await self.tools.run(call, self.tools.parse(call), _call(caller))
        assert ok, result
        return result

    async def book(self, caller: str, day: str, time: str, service: str = "haircut") -> str:
        readback, call = await self.ask(
            caller, "book_appointment", service=service, day=day, time=time
        )
        assert readback is not None
        return await self.yes(caller, call)


def _call(caller: str) -> ToolContext:
    return ToolContext(
        call=CallInfo(call_id=f"call-{caller}", line="sip", caller=caller, vouched=True)
    )


def _find(day: str) -> ToolCall:
    arguments = json.dumps({"service": "haircut", "day": day})
    return ToolCall(id="f", name="find_free_times", arguments=arguments)


def _held(google: FakeGoogle) -> list[tuple[dt.datetime, str, str]]:
    """The box's live events as the fake holds them: start (New York), summary, caller."""
    return sorted(
        (
            dt.datetime.fromisoformat(e["start"]["dateTime"]).astimezone(ZONE),
            e.get("summary", ""),
            e.get("extendedProperties", {}).get("private", {}).get("caller", ""),
        )
        for e in google.events.values()
        if e["status"] != "cancelled" and "extendedProperties" in e
    )


def _at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 12, day, hour, minute, tzinfo=ZONE)


# --- connecting -------------------------------------------------------------------------------


async def test_the_device_flow_connects_and_the_tokens_at_rest_are_sealed(
    google: FakeGoogle, db: Database, clock: HandClock
) -> None:
    box = Box(google, db, clock)
    assert not await box.auth.connected()
    code = await box.auth.start()
    assert code.verification_url == "https://www.google.com/device"
    assert len(code.user_code) == 9 and code.user_code[4] == "-"
    assert await box.auth.poll(code) == "pending"
    assert box.raw_row() is None
    google.approve(code.user_code)
    clock.t += code.interval_s
    assert await box.auth.poll(code) == "connected"
    assert await box.auth.connected()
    (refresh,) = google.refresh_tokens
    (access,) = google.access_tokens
    row = box.raw_row()
    assert row is not None
    key_id, nonce, sealed = row
    assert key_id == TokenKey(KEY).id and len(nonce) == 12
    for secret in (refresh, access):
        assert secret.encode() not in sealed and secret.encode() not in nonce
    assert b"refresh" not in sealed and b"ya29" not in sealed
    assert google.grants() == ["urn:ietf:params:oauth:grant-type:device_code"] * 2


async def test_polling_keeps_googles_interval_and_slows_down_when_told(
    google: FakeGoogle, db: Database, clock: HandClock
) -> None:
    box = Box(google, db, clock)
    google.operator_acts_after = 4
    code = await box.auth.start()
    clock.t += 5
    assert await box.auth.poll(code) == "pending"
    assert await box.auth.poll(code) == "pending"  # at once: too soon, Google says slow_down
    assert code.interval_s == 10
    started = clock.t
    assert await box.auth.wait(code) == "connected"
    polls = google.seen("/token")
    assert len(polls) == 4
    assert clock.t - started == 20  # two more polls, 10 s apart
    assert google.statuses().count(403) == 1


@pytest.mark.parametrize("case", [(False, 0, "denied"), (None, 1800, "expired")])
async def test_a_refused_or_abandoned_flow_stores_nothing(
    google: FakeGoogle, db: Database, clock: HandClock, case: tuple[bool | None, float, str]
) -> None:
    allows, late, outcome = case
    box = Box(google, db, clock)
    code = await box.auth.start()
    if allows is not None:
        google.approve(code.user_code, allow=allows)
    clock.t += late
    assert await box.auth.wait(code) == outcome
    assert box.raw_row() is None and not await box.auth.connected()


# --- the key ----------------------------------------------------------------------------------


async def test_without_a_key_no_token_is_stored_and_the_error_says_how_to_make_one(
    google: FakeGoogle, db: Database, clock: HandClock
) -> None:
    box = Box(google, db, clock, key=None)
    code = await box.auth.start()
    google.approve(code.user_code)
    with pytest.raises(TokenKeyMissing) as refused:
        await box.auth.wait(code)
    assert "TOKEN_ENCRYPTION_KEY is not set" in str(refused.value)
    assert "appliance tokens new-key" in str(refused.value)
    assert box.raw_row() is None
    assert google.revoked != [] and google.refresh_tokens == set()  # no grant left behind
    with pytest.raises(TokenKeyError, match="URL-safe base64"):
        TokenKey("not-a-key")


@pytest.mark.parametrize("how", ["rotate", "read"])
async def test_rotation_seals_the_tokens_again_under_the_new_key(
    google: FakeGoogle, db: Database, clock: HandClock, how: str
) -> None:
    box = Box(google, db, clock)
    await box.connect()
    before = box.raw_row()
    tokens = await box.store.get("google")
    new = TokenKey.new()
    rotated = TokenStore(db, TokenKey(new), wall=clock.wall)
    with pytest.raises(TokenKeyError, match="TOKEN_ENCRYPTION_KEY_OLD"):
        await rotated.get("google")
    assert await rotated.rotate() == 0  # no old key given: nothing to do
    rotated = TokenStore(db, TokenKey(new), wall=clock.wall, old_key=TokenKey(KEY))
    if how == "rotate":
        assert await rotated.rotate() == 1
    assert await rotated.get("google") == tokens  # when read: sealed again first
    after = box.raw_row()
    assert before is not None and after is not None
    assert after[0] == TokenKey(new).id and after[2] != before[2]
    with pytest.raises(TokenKeyError):
        await box.store.get("google")  # the old key opens nothing any more
    assert await rotated.rotate() == 0  # done once
    assert await TokenStore(db, TokenKey(new), wall=clock.wall).get("google") == tokens


async def test_tokens_sealed_with_another_key_are_said_to_the_caller_not_skipped(
    google: FakeGoogle, db: Database, clock: HandClock
) -> None:
    await Box(google, db, clock).connect()
    other = Box(google, db, clock, key=TokenKey.new())
    assert not await other.auth.connected()
    said = await other.yes(ANN, _find("tomorrow"))
    assert said.startswith("Not found: the Google Calendar login cannot be read")
    assert "TOKEN_ENCRYPTION_KEY_OLD" in said
    assert google.seen(_EVENTS) == []


# --- using the tokens -------------------------------------------------------------------------


async def test_a_token_about_to_expire_is_refreshed_before_it_is_used(
    google: FakeGoogle, db: Database, clock: HandClock
) -> None:
    box = Box(google, db, clock)
    await box.connect()
    await box.calendar.between(_at(9, 0), _at(10, 0))
    assert google.grants()[-1] != "refresh_token"
    clock.t += 3599 - 30  # half a minute left: refreshed first
    await box.calendar.between(_at(9, 0), _at(10, 0))
    assert google.grants()[-1] == "refresh_token"
    assert 401 not in google.statuses()
    refreshed = await box.store.get("google")
    assert refreshed is not None and refreshed["refresh_token"] in google.refresh_tokens


async def test_a_401_gets_one_refresh_and_one_retry(
    google: FakeGoogle, db: Database, clock: HandClock
) -> None:
    box = Box(google, db, clock)
    await box.connect()
    google.add_event("staff1", "2026-12-09T14:00:00Z", "2026-12-09T15:00:00Z", summary="Staff")
    google.expire_access_tokens()  # Google revoked it early; the box still thinks it is good
    (found,) = await box.calendar.between(_at(9, 0), _at(10, 0))
    assert found.uid == "staff1"
    assert google.statuses().count(401) == 1
    assert google.grants().count("refresh_token") == 1
    # A refresh token Google no longer takes: the login is dropped and the tools say so.
    google.refresh_tokens.clear()
    google.expire_access_tokens()
    with pytest.raises(GoogleNotConnected, match="reconnect Google Calendar"):
        await box.calendar.between(_at(9, 0), _at(10, 0))
    assert box.raw_row() is None


async def test_a_rate_limit_is_waited_out_as_long_as_google_says(
    google: FakeGoogle, db: Database, clock: HandClock
) -> None:
    box = Box(google, db, clock)
    await box.connect()
    google.calendar_troubles += [(429, {"Retry-After": "2"}), (403, {})]
    started = clock.t
    assert await box.calendar.between(_at(9, 0), _at(10, 0)) == []
    assert clock.t - started == 2 + 2  # Retry-After, then the second back-off step
    assert [s for s in google.statuses() if s >= 400] == [429, 403]
    google.calendar_troubles += [(429, {"Retry-After": "1"})] * 3
    with pytest.raises(CalendarUnavailable, match="busy"):
        await box.calendar.between(_at(9, 0), _at(10, 0))
    google.calendar_troubles += [(429, {"Retry-After": "3"})] * 2  # 6 s: too long in all
    waited = clock.t
    with pytest.raises(CalendarUnavailable, match="busy"):
        await box.calendar.between(_at(9, 0), _at(10, 0))
    assert clock.t - waited == 3
    google.calendar_troubles += [(429, {"Retry-After": "120"})]  # too long for a caller
    waited = clock.t
    with pytest.raises(CalendarUnavailable, match="busy"):
        await box.calendar.between(_at(9, 0), _at(10, 0))
    assert clock.t == waited


async def test_disconnecting_revokes_the_grant_at_google_and_forgets_it(
    google: FakeGoogle, db: Database, clock: HandClock
) -> None:
    box = Box(google, db, clock)
    await box.connect()
    (refresh,) = google.refresh_tokens
    assert await box.auth.disconnect()
    assert google.revoked == [refresh]
    assert google.refresh_tokens == set() and google.access_tokens == {}
    assert box.raw_row() is None and not await box.auth.connected()
    assert "no calendar is connected" in await box.yes(ANN, _find("tomorrow"))


# --- booking through the tools ----------------------------------------------------------------


async def test_booking_moving_and_cancelling_through_the_tools_on_google(
    google: FakeGoogle, db: Database, clock: HandClock
) -> None:
    box = Box(google, db, clock)
    await box.connect()
    google.add_event("allday1", "2026-12-10", "2026-12-11", summary="Closed for stock-take")
    google.add_event(
        "free1", "2026-12-09T19:00:00Z", "2026-12-09T20:00:00Z", transparency="transparent"
    )
    readback, call = await box.ask(
        ANN, "book_appointment", service="haircut", day="tomorrow", time="2 pm"
    )
    assert readback == "That's Wednesday the 9th at 2 PM for a haircut. Shall I book it?"
    assert _held(google) == []  # nothing before the yes
    assert await box.yes(ANN, call) == "Booked: Wednesday the 9th at 2 PM for a haircut."
    assert (_at(9, 14), "Haircut", ANN) in _held(google)
    readback, call = await box.ask(
        BOB, "book_appointment", service="haircut", day="thursday", time="11 am"
    )
    assert readback is None  # the all-day event takes Thursday
    assert "Thursday the 10th at 11 AM is taken" in await box.yes(BOB, call)
    readback, call = await box.ask(ANN, "move_appointment", day="friday", time="9 am")
    assert readback is not None
    assert await box.yes(ANN, call) == "Moved: your haircut is now Friday the 11th at 9 AM."
    assert (_at(11, 9), "Haircut", ANN) in _held(google)
    assert len(_held(google)) == 1  # moved (patched), not copied
    readback, call = await box.ask(ANN, "cancel_appointment")
    assert await box.yes(ANN, call) == "Cancelled: your haircut on Friday the 11th at 9 AM."
    assert _held(google) == []
    assert google.events["allday1"]["status"] == "confirmed"
    methods = [s.method for s in google.requests if "/events" in s.path and s.method != "GET"]
    assert methods == ["POST", "POST", "PATCH", "DELETE"]  # insert; 409 then patch; delete
    assert google.connections == 1 < len(google.requests)  # one connection, kept alive


async def test_two_calls_booking_the_same_slot_at_once_get_it_once(
    google: FakeGoogle, db: Database, clock: HandClock
) -> None:
    box = Box(google, db, clock)
    await box.connect()
    asked = [
        await box.ask(who, "book_appointment", service="haircut", day="tomorrow", time="3 pm")
        for who in (ANN, BOB)
    ]
    assert all(readback is not None for readback, _ in asked)  # both were offered 3 PM
    results = await asyncio.gather(box.yes(ANN, asked[0][1]), box.yes(BOB, asked[1][1]))
    booked, refused = sorted(results)
    assert booked == "Booked: Wednesday the 9th at 3 PM for a haircut."
    assert refused.startswith("Not done: Wednesday the 9th at 3 PM was just taken. Free on")
    assert [start for start, _, _ in _held(google)] == [_at(9, 15)]


async def test_a_long_day_is_read_page_by_page(
    google: FakeGoogle, db: Database, clock: HandClock
) -> None:
    box = Box(google, db, clock)
    await box.connect()
    for n in range(260):
        start = _at(9, 9) + dt.timedelta(minutes=n)
        end = (start + dt.timedelta(minutes=1)).isoformat()
        google.add_event(f"busy{n:03d}", start.isoformat(), end)
    found = await box.calendar.between(_at(9, 0), _at(10, 0))
    assert len({a.uid for a in found}) == 260
    pages = [s.query.get("pageToken") for s in google.seen(_EVENTS, "GET")]
    assert pages == [None, "250"]


def test_an_appointments_uid_becomes_a_valid_google_event_id() -> None:
    made = event_id("0b3c9d8e-1f2a-4b5c-9d8e-7f6a5b4c3d2e@tel3sis")
    assert len(made) == 40 and set(made) <= set("0123456789abcdef")
    assert event_id("abc123def") == "abc123def"  # Google's own ids are kept
