"""The front desk: what the agent knows of the business, what it says, and the tools it may use.

Built once at start from the settings and the business profile (`BUSINESS_FILE`). The system
prompt and the tool list are the same bytes on every turn of every call, so llama.cpp's cache
of their tokens holds from the warm-up on; what changes per turn (FAQ entries recalled for the
caller's words, caller memory) goes in messages after them.
"""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

from appliance.app.calendar import google_auth, google_or
from appliance.bookings import CalDavCalendar, Calendar, GoogleAuth, booking_tools
from appliance.bookings.oauth import TokenVault
from appliance.clock import Clock
from appliance.conversation.days import WEEKDAYS
from appliance.conversation.persona import Persona
from appliance.conversation.ports import Mailer, Texter
from appliance.conversation.profile import BusinessProfile, box_timezone
from appliance.conversation.tools import ToolPolicy, ToolRegistry
from appliance.settings import ConversationSettings, IntegrationSettings
from appliance.tools.call import end_call
from appliance.tools.clock import current_time
from appliance.tools.hours import opening_hours
from appliance.tools.memory import CallerMemoryStore, forget_me, what_you_remember
from appliance.tools.text_caller import text_the_caller
from appliance.tools.transfer import transfer_tool
from appliance.tools.weather import (
    Forecaster,
    OpenMeteo,
    OpenMeteoGeocoder,
    OpenWeatherMap,
    Place,
    Units,
    weather_tool,
)

__all__ = ["FrontDesk", "front_desk"]


@dataclass(frozen=True, slots=True)
class FrontDesk:
    profile: BusinessProfile | None
    """None when no `BUSINESS_FILE` is set: the agent knows only the business's name."""
    persona: Persona
    tools: ToolRegistry
    vocabulary: str = ""
    """What callers will say that speech-to-text should expect (the profile's names)."""
    google: GoogleAuth | None = None
    """Google Calendar's login, for the operator to connect (None: no GOOGLE_CLIENT_ID)."""


def front_desk(
    conv: ConversationSettings,
    integrations: IntegrationSettings,
    *,
    clock: Clock,
    texter: Texter | None = None,
    mailer: Mailer | None = None,
    memory: CallerMemoryStore | None = None,
    tokens: TokenVault | None = None,
) -> FrontDesk:
    """Read the business profile (raises `ProfileError`, one line naming the place) and build
    the persona and the tools from it. `texter` and `mailer` send a hand-off's summary to the
    person (by text to a number) and to `NOTIFY_EMAIL`. With `memory` (callers are remembered),
    a caller can hear what is kept about them and have it forgotten. `tokens` keeps Google
    Calendar's login (with GOOGLE_CLIENT_ID set)."""
    profile = BusinessProfile.load(conv.business_file) if conv.business_file else None
    zone = profile.timezone if profile is not None else ZoneInfo(box_timezone())
    tools = [end_call, current_time(clock, zone)]
    google = google_auth(integrations, tokens, clock)
    people = profile.people if profile is not None else ()
    if people or integrations.escalation_phone_number:
        tools.append(
            transfer_tool(
                people,
                integrations.escalation_phone_number,
                texter=texter,
                mailer=mailer,
                email_to=integrations.notify_email,
            )
        )
    if memory is not None:
        tools += [what_you_remember(memory, zone), forget_me(memory)]
    if profile is not None:
        tools.append(opening_hours(profile, clock))
        calendar = _calendar(profile, integrations, clock, google)
        # The post-call jobs run beside every front desk with the same Twilio account, so the
        # caller can have this call's transcript or summary texted once it ends.
        texting = (
            text_the_caller(profile, texter, clock=clock, bookings=calendar, after_call=True)
            if texter is not None
            else None
        )
        if texting is not None:
            tools.append(texting)
        if calendar is not None:
            step = integrations.booking_step_minutes
            tools += booking_tools(profile, calendar, clock=clock, step_minutes=step)
        if profile.location is not None:
            place = profile.location
            tools.append(
                weather_tool(
                    _forecaster(integrations, place.units),
                    clock=clock,
                    timezone=profile.timezone,
                    home=Place(place.latitude, place.longitude, place.town),
                    geocoder=OpenMeteoGeocoder(base_url=integrations.open_meteo_geocoding_url),
                )
            )
    targets = {person.target for person in people}
    if integrations.escalation_phone_number:
        targets.add(integrations.escalation_phone_number)
    registry = ToolRegistry(tools, policy=ToolPolicy(transfer_targets=frozenset(targets)))
    persona = Persona.load(
        agent_name=conv.agent_name,
        business_name=profile.name if profile is not None else conv.business_name,
        prompt_file=conv.persona_file,
        greeting=conv.greeting,
        about=_about(profile, registry),
    )
    books = "book_appointment" in registry
    vocabulary = profile.vocabulary(services=books) if profile is not None else ""
    return FrontDesk(
        profile=profile, persona=persona, tools=registry, vocabulary=vocabulary, google=google
    )


def _about(profile: BusinessProfile | None, tools: ToolRegistry) -> str:
    """The business's facts and which tool answers what, for the end of the system prompt."""
    lines: list[str] = []
    if profile is not None:
        lines += [
            "What you know about the business (nothing else is known):",
            profile.facts_text(),
            "",
            "Opening hours depend on the day and on holidays: for any question about when we are "
            "open, use opening_hours with the caller's words for the day.",
        ]
    if "get_weather" in tools:
        lines.append("For the weather, use get_weather; never describe weather yourself.")
    if "text_the_caller" in tools:
        theirs = "their appointment, " if "book_appointment" in tools else ""
        lines.append(
            "When the caller wants something by text message (our address or phone number, "
            f"{theirs}this call's transcript or summary), use text_the_caller."
        )
    if "book_appointment" in tools:
        lines.append(
            "For appointments, use find_free_times, then book_appointment, move_appointment or "
            "cancel_appointment with the caller's own words for the day and time; never work "
            "out dates, times or free slots yourself."
        )
    if "transfer_to_person" in tools:
        what = "" if "book_appointment" in tools else " (such as bookings)"
        lines.append(
            f"When the caller asks for a person, or for what you may not do{what}, "
            "use transfer_to_person."
        )
    return "\n".join(lines)


def _calendar(
    profile: BusinessProfile,
    integrations: IntegrationSettings,
    clock: Clock,
    google: GoogleAuth | None,
) -> Calendar | None:
    """The calendar the booking tools use, when a CalDAV calendar or a Google login is set and
    the profile has hours and services (without them there is nothing to book, or no time to
    book it in)."""
    has_hours = any(getattr(profile.hours, day) for day in WEEKDAYS)
    if not (integrations.caldav_url or google) or not profile.services or not has_hours:
        return None
    calendar: Calendar | None = None
    if integrations.caldav_url:
        password = integrations.caldav_password
        calendar = CalDavCalendar(
            integrations.caldav_url,
            username=integrations.caldav_username,
            password=password.get_secret_value() if password is not None else None,
            calendar=integrations.caldav_calendar,
        )
    if google is not None:
        calendar = google_or(integrations, google, calendar, clock)
    return calendar


def _forecaster(integrations: IntegrationSettings, scale: Units) -> Forecaster:
    key = integrations.openweather_api_key
    if key is not None and key.get_secret_value():
        return OpenWeatherMap(
            api_key=key.get_secret_value(), units=scale, base_url=integrations.openweather_api_url
        )
    return OpenMeteo(units=scale, base_url=integrations.open_meteo_url)
