"""The business profile: what the front desk knows, written once by the operator (`BUSINESS_FILE`).

Opening hours are answered from here in code, in the business's time zone, never by the model:
`hours_on`, `is_open`, `next_opening`, `resolve_day` and the `say_*` sentences. `facts_text` is
the part of the system prompt that describes the business; it leaves out the hours of any given
day (a tool answers those) and, when there are many, the FAQ (recalled per turn from `faq`).
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from appliance.conversation.days import (
    WEEKDAYS,
    AnnualDay,
    resolve_day,
    spoken_date,
    spoken_ranges,
    spoken_time,
)
from appliance.conversation.profile_file import (
    ProfileError,
    parse,
    quoted,
    syntax_of,
    validation_problem,
)

__all__ = [
    "FAQ_IN_PROMPT_MAX",
    "BusinessProfile",
    "DayHours",
    "FaqEntry",
    "Location",
    "Person",
    "ProfileError",
    "Service",
    "SpecialDay",
    "box_timezone",
    "is_phone_number",
]

FAQ_IN_PROMPT_MAX = 8
"""Up to this many FAQ entries go into the prompt; beyond it they are recalled per turn."""

Ranges = tuple[tuple[dt.time, dt.time], ...]
_RANGE = re.compile(r"(\d{2}):(\d{2})\s*-\s*(\d{2}):(\d{2})")


def _clock_time(hour: str, minute: str, *, end: bool) -> dt.time:
    if end and (hour, minute) == ("24", "00"):
        return dt.time.max
    return dt.time(int(hour), int(minute))


def _ranges(value: object) -> Ranges:
    """ "09:00-17:00", a list of such ranges, or "closed" (also an empty list)."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ValueError(f'{quoted(value)} is not a time range like "09:00-17:00" or "closed"')
    if [str(item).strip().lower() for item in items] == ["closed"]:
        return ()
    parsed: list[tuple[dt.time, dt.time]] = []
    for item in items:
        found = _RANGE.fullmatch(item.strip()) if isinstance(item, str) else None
        if found is None:
            raise ValueError(f'{quoted(item)} is not a time range like "09:00-17:00"')
        try:
            start = _clock_time(found[1], found[2], end=False)
            end = _clock_time(found[3], found[4], end=True)
        except ValueError:
            raise ValueError(f"{quoted(item)} has a time that is not on the clock") from None
        if end <= start:
            raise ValueError(f"{quoted(item)} ends before it starts")
        parsed.append((start, end))
    parsed.sort()
    for (_, end), (start, _) in itertools.pairwise(parsed):
        if start < end:
            raise ValueError(f"{quoted(items)} has ranges that overlap")
    return tuple(parsed)


def _when(value: object) -> object:
    """A date (once) or "MM-DD" (every year)."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
        if found := re.fullmatch(r"(\d{2})-(\d{2})", value.strip()):
            try:
                dt.date(2000, int(found[1]), int(found[2]))  # a leap year: "02-29" is a day
            except ValueError:
                pass
            else:
                return (int(found[1]), int(found[2]))
    raise ValueError(f'{quoted(value)} is not a date like "2026-12-25", or "12-25" for every year')


def _zone(value: object) -> ZoneInfo:
    if isinstance(value, ZoneInfo):
        return value
    try:
        return ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f'{quoted(value)} is not a time zone like "America/New_York"') from None


_E164 = re.compile(r"\+[1-9]\d{6,14}")


def is_phone_number(text: str) -> bool:
    """Whether `text` is an E.164 number ("+15550100100"), one a text message can go to."""
    return _E164.fullmatch(text) is not None


def _phone_number(value: object) -> str:
    digits = re.sub(r"[\s().-]", "", str(value))
    if not is_phone_number(digits):
        raise ValueError(f'{quoted(value)} is not a phone number like "+1 555 010 0100"')
    return digits


def _phone_as_written(value: object) -> str:
    _phone_number(value)
    return str(value)


def _sip_uri(value: object) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"sips?:[^\s@]+(@[^\s@]+)?", value):
        raise ValueError(f'{quoted(value)} is not a SIP URI like "sip:desk@pbx.example.com"')
    return value


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


_Text = Annotated[str, Field(min_length=1)]
_Hours = Annotated[Ranges, BeforeValidator(_ranges)]


class _Week(_Part):
    monday: _Hours = ()
    tuesday: _Hours = ()
    wednesday: _Hours = ()
    thursday: _Hours = ()
    friday: _Hours = ()
    saturday: _Hours = ()
    sunday: _Hours = ()

    def on(self, day: dt.date) -> Ranges:
        ranges: Ranges = getattr(self, WEEKDAYS[day.weekday()])
        return ranges


class SpecialDay(_Part):
    """A holiday or a day of special hours: closed unless `hours` are given."""

    date: Annotated[dt.date | AnnualDay, BeforeValidator(_when)]
    name: _Text | None = None
    hours: _Hours = ()

    def applies_to(self, day: dt.date) -> bool:
        if isinstance(self.date, dt.date):
            return self.date == day
        return self.date == (day.month, day.day)


class Service(_Part):
    name: _Text
    price: Decimal | None = Field(default=None, ge=0)
    minutes: int | None = Field(default=None, gt=0)
    """How long it takes."""
    about: _Text | None = None


class FaqEntry(_Part):
    question: _Text
    answer: _Text


class Person(_Part):
    """Someone (or a department) a caller can be put through to: one number or one SIP URI."""

    name: _Text
    role: _Text
    number: Annotated[str, BeforeValidator(_phone_number)] | None = None
    sip: Annotated[str, BeforeValidator(_sip_uri)] | None = None

    @model_validator(mode="after")
    def _one_way_to_reach(self) -> Self:
        if (self.number is None) == (self.sip is None):
            raise ValueError(f"{self.name} needs either a number or a sip URI (one of them)")
        return self

    @property
    def target(self) -> str:
        """The E.164 number or SIP URI a transfer goes to."""
        target = self.number or self.sip
        assert target is not None
        return target


class Location(_Part):
    """Where the business is, for the weather: coordinates, and how the town is said."""

    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    town: _Text
    """As the agent says it ("Springfield")."""
    units: Literal["fahrenheit", "celsius"] = "celsius"


class _AgentRules(_Part):
    may: tuple[_Text, ...] = ()
    may_not: tuple[_Text, ...] = ()


@dataclass(frozen=True, slots=True)
class DayHours:
    """The hours of one date: open ranges (local wall time), none when closed."""

    day: dt.date
    ranges: Ranges
    holiday: str | None = None
    """The special day's name, when one applies."""

    @property
    def closed(self) -> bool:
        return not self.ranges


class BusinessProfile(_Part):
    name: _Text
    phone: Annotated[str, BeforeValidator(_phone_as_written)] | None = None
    """As written, for saying aloud."""
    address: _Text | None = None
    timezone: Annotated[ZoneInfo, BeforeValidator(_zone)]
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "USD"
    hours: _Week = _Week()
    exceptions: tuple[SpecialDay, ...] = ()
    services: tuple[Service, ...] = ()
    faq: tuple[FaqEntry, ...] = ()
    people: tuple[Person, ...] = ()
    location: Location | None = None
    agent: _AgentRules = _AgentRules()

    @field_validator("exceptions")
    @classmethod
    def _one_entry_per_date(cls, exceptions: tuple[SpecialDay, ...]) -> tuple[SpecialDay, ...]:
        seen: set[object] = set()
        for special in exceptions:
            if special.date in seen:
                raise ValueError(f"{_said_when(special.date)} is listed twice")
            seen.add(special.date)
        return exceptions

    @classmethod
    def load(cls, path: Path, *, box_zone: str | None = None) -> BusinessProfile:
        """Read and validate `path` (.toml, .yaml, .yml); raises ProfileError, one line.

        With no `timezone` in the file, the business is where the box is (`box_zone`, else read
        from the system)."""
        syntax = syntax_of(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ProfileError(f"{path}: cannot be read ({exc})") from exc
        data: dict[str, Any] = parse(path, text, syntax)
        data.setdefault("timezone", box_zone or box_timezone())
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ProfileError(validation_problem(path, text, syntax, exc.errors())) from None

    def local(self, at: dt.datetime | float) -> dt.datetime:
        """`at` (aware, or Unix seconds) on the business's clock; a naive `at` is already local."""
        if isinstance(at, float | int):
            return dt.datetime.fromtimestamp(at, self.timezone)
        if at.tzinfo is None:
            return at.replace(tzinfo=self.timezone)
        return at.astimezone(self.timezone)

    def hours_on(self, day: dt.date) -> DayHours:
        dated = [s for s in self.exceptions if isinstance(s.date, dt.date) and s.applies_to(day)]
        yearly = [s for s in self.exceptions if s.applies_to(day)]
        for special in (*dated, *yearly):
            return DayHours(day, special.hours, special.name)
        return DayHours(day, self.hours.on(day))

    def is_open(self, at: dt.datetime) -> bool:
        local = self.local(at)
        now = local.time().replace(tzinfo=None)
        return any(start <= now < end for start, end in self.hours_on(local.date()).ranges)

    def next_opening(self, after: dt.datetime) -> dt.datetime | None:
        """When the doors next open at or after `after`, business time; None if not in a year."""
        local = self.local(after)
        for offset in range(367):
            day = local.date() + dt.timedelta(days=offset)
            for start, _ in self.hours_on(day).ranges:
                opening = self._at(day, start)
                if opening >= local:
                    return opening
        return None

    def _at(self, day: dt.date, at: dt.time) -> dt.datetime:
        # A wall time that a spring-forward skips becomes the instant it would have been.
        naive = dt.datetime.combine(day, at, tzinfo=self.timezone)
        return naive.astimezone(dt.UTC).astimezone(self.timezone)

    def vocabulary(self, *, services: bool = False) -> str:
        """The names callers say that speech-to-text may not expect: the business's, its
        people's and its town's, and with `services` (a box that books them) the services'
        (see `WhisperSpeechToText.vocabulary`).

        Measured with tiny.en on espeak-ng callers: on the front-desk scenarios' 39 turns the
        names alone took WER from 0.053 (no prompt) to 0.049, and the services with them made
        it worse (0.069: "going to rain" became "going terrain"); on the 11 booking turns the
        names alone gave 0.216 ("book a check-up" heard as "walk out checkup") and names with
        the services 0.161, with no turn over 40%."""
        parts = [
            self.name,
            *(person.name for person in self.people if person.name[:1].isupper()),
            self.location.town if self.location is not None else "",
        ]
        if services:
            parts[1:1] = [service.name for service in self.services]
        return ", ".join(part for part in parts if part) + "."

    def resolve_day(self, text: str, now: dt.datetime) -> dt.date | None:
        """The date a caller names ("saturday", "christmas"), relative to the business's today."""
        named = [(s.name, _annual(s.date)) for s in self.exceptions if s.name]
        return resolve_day(text, self.local(now).date(), named)

    def say_hours(self, day: dt.date, now: dt.datetime) -> str:
        """ "On Saturday the 6th we're open from 9 AM to 1 PM." and the like."""
        today = self.local(now).date()
        hours = self.hours_on(day)
        label = spoken_date(day, today)
        if hours.holiday:
            label = f"{hours.holiday}, {label}"
        relative = {0: "today", 1: "tomorrow", -1: "yesterday"}.get((day - today).days)
        label = f"{relative}, {label}" if relative else f"on {label}"
        tense = " were" if day < today else "'re"
        if hours.closed:
            return f"We{tense} closed {label}."
        comma = "," if relative or hours.holiday else ""
        said = f"{label}{comma} we{tense} open {spoken_ranges(hours.ranges)}."
        return said[0].upper() + said[1:]

    def say_now(self, now: dt.datetime) -> str:
        """Whether the doors are open at `now`, and until when or when they open next."""
        local = self.local(now)
        clock = local.time().replace(tzinfo=None)
        for start, end in self.hours_on(local.date()).ranges:
            if start <= clock < end:
                return f"We're open right now, until {spoken_time(end)}."
        opening = self.next_opening(local)
        if opening is None:
            return "We're closed right now, and no opening hours are set for the coming year."
        when = spoken_time(opening.time().replace(tzinfo=None))
        if opening.date() == local.date():
            return f"We're closed right now; we open again today at {when}."
        return (
            f"We're closed right now; we open again on "
            f"{spoken_date(opening.date(), local.date())} at {when}."
        )

    def facts_text(self) -> str:
        """The business facts for the system prompt: the same bytes on every call."""
        return "\n".join(self._facts())

    def _facts(self) -> Iterator[str]:
        yield f"Business: {self.name}"
        if self.phone:
            yield f"Phone: {self.phone}"
        if self.address:
            yield f"Address: {self.address}"
        if self.location:
            yield f"Town: {self.location.town}"
        yield f"Time zone: {self.timezone.key}"
        if self.services:
            yield "Services:"
            yield from (f"- {self._service(service)}" for service in self.services)
        if self.people:
            yield "People the caller can be put through to:"
            yield from (f"- {person.name} ({person.role})" for person in self.people)
        if self.agent.may:
            yield "You may:"
            yield from (f"- {rule}" for rule in self.agent.may)
        if self.agent.may_not:
            yield "You must not:"
            yield from (f"- {rule}" for rule in self.agent.may_not)
        if 0 < len(self.faq) <= FAQ_IN_PROMPT_MAX:
            yield "Answers to common questions:"
            yield from (f"- Q: {entry.question} A: {entry.answer}" for entry in self.faq)

    def _service(self, service: Service) -> str:
        parts = [service.name]
        if service.price is not None:
            parts.append(self.price_text(service.price))
        if service.minutes is not None:
            parts.append(f"{service.minutes} minutes")
        said = ", ".join(parts)
        return f"{said}. {service.about}" if service.about else said

    def price_text(self, price: Decimal) -> str:
        """ "$120", "$49.50", "80 CHF"."""
        amount = f"{price:,.0f}" if price == price.to_integral_value() else f"{price:,.2f}"
        symbol = {"USD": "$", "CAD": "$", "AUD": "$", "EUR": "€", "GBP": "£"}.get(self.currency)
        return f"{symbol}{amount}" if symbol else f"{amount} {self.currency}"


def _annual(when: dt.date | AnnualDay) -> AnnualDay:
    return (when.month, when.day) if isinstance(when, dt.date) else when


def _said_when(when: dt.date | AnnualDay) -> str:
    return when.isoformat() if isinstance(when, dt.date) else f"{when[0]:02d}-{when[1]:02d}"


def box_timezone(localtime: Path = Path("/etc/localtime")) -> str:
    """The box's IANA time zone, from the /etc/localtime link; UTC when it cannot be told."""
    try:
        target = str(localtime.resolve())
    except OSError:
        return "UTC"
    _, found, key = target.partition("/zoneinfo/")
    return key if found and key else "UTC"
