"""The business profile: loading TOML and YAML, one-line errors with the line, hours worked out in
code (holidays, DST), the days callers name, the sentences the agent says, and the prompt facts."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from appliance.conversation.profile import (
    FAQ_IN_PROMPT_MAX,
    BusinessProfile,
    DayHours,
    ProfileError,
    box_timezone,
)
from appliance.settings import ConversationSettings

ROOT = Path(__file__).resolve().parents[2]
NY = ZoneInfo("America/New_York")

SALON = """\
name = "Cut Above"
phone = "+1 555 010 0200"
address = "9 Elm Road"
timezone = "America/New_York"

[hours]
monday = "09:00-17:00"
tuesday = "09:00-17:00"
wednesday = ["09:00-12:00", "13:30-19:00"]
thursday = "09:00-17:00"
friday = "09:00-24:00"
saturday = "09:00-13:00"

[[exceptions]]
date = "12-25"
name = "Christmas Day"

[[exceptions]]
date = "12-24"
name = "Christmas Eve"
hours = "09:00-12:00"

[[exceptions]]
date = 2026-12-24
hours = "10:00-11:00"

[[services]]
name = "Haircut"
price = 40
minutes = 30

[[services]]
name = "Colour"
price = 89.5
minutes = 90
about = "Includes a wash."

[[faq]]
question = "Do you take walk-ins?"
answer = "Yes, when a chair is free."

[[people]]
name = "Sam"
role = "manager"
number = "+1 555 010 0201"

[[people]]
name = "Bookings"
role = "desk"
sip = "sip:desk@pbx.example.com"

[agent]
may = ["say prices"]
may_not = ["book appointments"]
"""

SALON_YAML = """\
name: Cut Above
phone: "+1 555 010 0200"
address: 9 Elm Road
timezone: America/New_York
hours:
  monday: "09:00-17:00"
  tuesday: "09:00-17:00"
  wednesday: ["09:00-12:00", "13:30-19:00"]
  thursday: "09:00-17:00"
  friday: "09:00-24:00"
  saturday: "09:00-13:00"
exceptions:
  - date: "12-25"
    name: Christmas Day
  - date: "12-24"
    name: Christmas Eve
    hours: "09:00-12:00"
  - date: 2026-12-24
    hours: "10:00-11:00"
services:
  - name: Haircut
    price: 40
    minutes: 30
  - name: Colour
    price: 89.5
    minutes: 90
    about: Includes a wash.
faq:
  - question: Do you take walk-ins?
    answer: Yes, when a chair is free.
people:
  - name: Sam
    role: manager
    number: "+1 555 010 0201"
  - name: Bookings
    role: desk
    sip: "sip:desk@pbx.example.com"
agent:
  may: [say prices]
  may_not: [book appointments]
"""


def _load(tmp_path: Path, text: str = SALON, suffix: str = ".toml") -> BusinessProfile:
    path = tmp_path / f"business{suffix}"
    path.write_text(text)
    return BusinessProfile.load(path)


@pytest.fixture
def salon(tmp_path: Path) -> BusinessProfile:
    return _load(tmp_path)


def _at(*parts: int, zone: dt.tzinfo = NY) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=zone)  # type: ignore[misc]


# --- loading -------------------------------------------------------------------------------------


def test_the_example_in_the_repo_loads() -> None:
    profile = BusinessProfile.load(ROOT / "business.example.toml")
    assert profile.name and profile.address and profile.timezone.key == "America/New_York"
    assert 4 <= len(profile.services) <= 6
    assert all(service.price is not None for service in profile.services)
    assert len(profile.faq) == 3
    assert len(profile.people) == 2
    assert all(person.target.startswith("+1555") for person in profile.people)
    assert any(s.name and s.hours == () for s in profile.exceptions)  # a holiday, closed
    assert profile.agent.may and profile.agent.may_not
    assert profile.hours_on(dt.date(2026, 12, 25)).holiday == "Christmas Day"


def test_yaml_and_toml_load_the_same_profile(tmp_path: Path) -> None:
    toml = _load(tmp_path)
    assert _load(tmp_path, SALON_YAML, ".yaml") == toml
    assert _load(tmp_path, SALON_YAML, ".yml") == toml
    assert toml.hours.wednesday == ((dt.time(9), dt.time(12)), (dt.time(13, 30), dt.time(19)))
    assert toml.hours.friday == ((dt.time(9), dt.time.max),)
    assert toml.hours.sunday == ()
    assert toml.people[0].target == "+15550100201"
    assert toml.people[1].target == "sip:desk@pbx.example.com"
    assert toml.phone == "+1 555 010 0200"


def test_a_profile_without_a_time_zone_is_where_the_box_is(tmp_path: Path) -> None:
    text = SALON.replace('timezone = "America/New_York"\n', "")
    path = tmp_path / "business.toml"
    path.write_text(text)
    assert BusinessProfile.load(path, box_zone="Europe/Paris").timezone.key == "Europe/Paris"
    link = tmp_path / "localtime"
    link.symlink_to("/usr/share/zoneinfo/Asia/Tokyo")
    assert box_timezone(link) == "Asia/Tokyo"
    assert box_timezone(tmp_path / "nothing-here") == "UTC"


def test_the_setting_names_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ConversationSettings().business_file is None
    monkeypatch.setenv("BUSINESS_FILE", "/etc/tel3sis/business.toml")
    assert ConversationSettings().business_file == Path("/etc/tel3sis/business.toml")


# Each case: (text replaced, replacement, the message after "line N: ", text on line N).
TOML_ERRORS = [
    ('saturday = "09:00-13:00"', 'saturday = "9-17"',
     'hours.saturday: "9-17" is not a time range like "09:00-17:00"', 'saturday = "9-17"'),
    ('monday = "09:00-17:00"', 'monday = "17:00-09:00"',
     'hours.monday: "17:00-09:00" ends before it starts', "monday ="),
    ('monday = "09:00-17:00"', 'monday = "09:00-25:00"',
     'hours.monday: "09:00-25:00" has a time that is not on the clock', "monday ="),
    ('monday = "09:00-17:00"', 'monday = ["09:00-13:00", "12:00-17:00"]',
     'hours.monday: ["09:00-13:00", "12:00-17:00"] has ranges that overlap', "monday ="),
    ('monday = "09:00-17:00"', "monday = 9",
     'hours.monday: 9 is not a time range like "09:00-17:00" or "closed"', "monday ="),
    ('saturday = "09:00-13:00"', 'saterday = "09:00-13:00"',
     'hours: "saterday" is not a key the profile knows', "saterday"),
    ('timezone = "America/New_York"', 'timezone = "Mars/Olympus"',
     'timezone: "Mars/Olympus" is not a time zone like "America/New_York"', "timezone ="),
    ('date = "12-25"', 'date = "25-12"',
     'exceptions.date: "25-12" is not a date like "2026-12-25", or "12-25" for every year',
     'date = "25-12"'),
    ('date = "12-25"', 'date = "12-24"', "exceptions: 12-24 is listed twice", "[[exceptions]]"),
    ("price = 40", 'price = "forty"',
     'services.price: input should be a valid decimal, not "forty"', "price ="),
    ("price = 40", 'price = "-5"',
     'services.price: input should be greater than or equal to 0, not "-5"', "price ="),
    ("minutes = 90", "minutes = 0",
     "services.minutes: input should be greater than 0, not 0", "minutes = 0"),
    ('name = "Colour"\n', "", "services: name is missing", "[[services]]\nprice = 89.5"),
    ('number = "+1 555 010 0201"', 'number = "555-0201"',
     'people.number: "555-0201" is not a phone number like "+1 555 010 0100"', "555-0201"),
    ('sip = "sip:desk@pbx.example.com"', 'sip = "desk@pbx"',
     'people.sip: "desk@pbx" is not a SIP URI like "sip:desk@pbx.example.com"', "desk@pbx"),
    ('number = "+1 555 010 0201"', 'role2 = "x"',
     'people: "role2" is not a key the profile knows', "role2"),
    ('sip = "sip:desk@pbx.example.com"', 'sip = "sip:desk@pbx.example.com"\nnumber = "+15550100"',
     "people: Bookings needs either a number or a sip URI (one of them)",
     '[[people]]\nname = "Bookings"'),
    ('phone = "+1 555 010 0200"', 'phone = "call us"',
     'phone: "call us" is not a phone number like "+1 555 010 0100"', "phone ="),
    ('may = ["say prices"]', 'may = "say prices"',
     'agent.may: input should be a valid tuple, not "say prices"', "may ="),
    ('[agent]', '[agent]\nmay_never = ["x"]',
     'agent: "may_never" is not a key the profile knows', "may_never"),
]  # fmt: skip


def _line_of(text: str, marker: str) -> int:
    return text[: text.index(marker)].count("\n") + 1 + (marker.startswith("\n"))


@pytest.mark.parametrize(("old", "new", "message", "marker"), TOML_ERRORS)
def test_each_bad_value_is_one_line_naming_the_file_and_the_line(
    tmp_path: Path, old: str, new: str, message: str, marker: str
) -> None:
    assert old in SALON
    text = SALON.replace(old, new, 1)
    path = tmp_path / "business.toml"
    path.write_text(text)
    with pytest.raises(ProfileError) as caught:
        BusinessProfile.load(path)
    assert str(caught.value) == f"{path} line {_line_of(text, marker)}: {message}"
    assert "\n" not in str(caught.value)


def test_the_first_problem_in_the_file_is_told_and_the_rest_counted(tmp_path: Path) -> None:
    text = SALON.replace("minutes = 90", "minutes = 0").replace('"9 Elm Road"', "7")
    path = tmp_path / "business.toml"
    path.write_text(text)
    with pytest.raises(ProfileError, match=r"line 3: address: input should be a valid string, "
                       r"not 7 \(and 1 more\)$"):  # fmt: skip
        BusinessProfile.load(path)


def test_a_missing_name_has_no_line_to_point_at(tmp_path: Path) -> None:
    path = tmp_path / "business.toml"
    path.write_text(SALON.replace('name = "Cut Above"\n', ""))
    with pytest.raises(ProfileError) as caught:
        BusinessProfile.load(path)
    assert str(caught.value) == f"{path}: name is missing"


@pytest.mark.parametrize(
    ("old", "new", "message", "marker"),
    [
        ('saturday: "09:00-13:00"', 'saturday: "9-17"',
         'hours.saturday: "9-17" is not a time range like "09:00-17:00"', "saturday"),
        ("    minutes: 90", "    minutes: 0",
         "services.minutes: input should be greater than 0, not 0", "minutes: 0"),
        ("    role: desk\n", "", "people: role is missing", "  - name: Bookings"),
        ('  - date: "12-25"', '  - date: "xmas"',
         'exceptions.date: "xmas" is not a date like "2026-12-25", or "12-25" for every year',
         '"xmas"'),
        ("  may_not: [book appointments]", "  may_not: [book appointments]\n  maybe: [x]",
         'agent: "maybe" is not a key the profile knows', "maybe"),
    ],
)  # fmt: skip
def test_yaml_errors_name_the_line_too(
    tmp_path: Path, old: str, new: str, message: str, marker: str
) -> None:
    assert old in SALON_YAML
    text = SALON_YAML.replace(old, new, 1)
    path = tmp_path / "business.yaml"
    path.write_text(text)
    with pytest.raises(ProfileError) as caught:
        BusinessProfile.load(path)
    assert str(caught.value) == f"{path} line {_line_of(text, marker)}: {message}"


@pytest.mark.parametrize(
    ("suffix", "text", "message"),
    [
        (".toml", 'name = "x"\n[hours]\n[hours]\n', "line 3: Cannot declare ('hours',) twice"),
        (".toml", 'name = "x"\nphone "1"\n', "line 2: Expected '=' after a key in a key/value"),
        (".yaml", "name: x\nhours: [a, b\n", "line 3: expected ',' or ']', but got '<stream end>'"),
        (".yaml", "- a\n- b\n", "line 1: the profile must be a mapping of keys to values"),
        (".json", "{}", ": a business profile is a .toml, .yaml or .yml file"),
    ],
)  # fmt: skip
def test_a_file_that_does_not_parse_names_its_line(
    tmp_path: Path, suffix: str, text: str, message: str
) -> None:
    path = tmp_path / f"business{suffix}"
    path.write_text(text)
    with pytest.raises(ProfileError) as caught:
        BusinessProfile.load(path)
    assert str(caught.value).startswith(f"{path}")
    assert message in str(caught.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=r"business\.toml: cannot be read"):
        BusinessProfile.load(tmp_path / "business.toml")


# --- hours ---------------------------------------------------------------------------------------


def test_hours_on_a_weekday_a_closed_day_and_holidays(salon: BusinessProfile) -> None:
    wednesday = dt.date(2026, 12, 9)
    assert salon.hours_on(wednesday) == DayHours(
        wednesday, ((dt.time(9), dt.time(12)), (dt.time(13, 30), dt.time(19))), None
    )
    assert salon.hours_on(dt.date(2026, 12, 13)).closed  # a Sunday: not in [hours]
    christmas = salon.hours_on(dt.date(2027, 12, 25))  # a Saturday, closed every year
    assert (christmas.closed, christmas.holiday) == (True, "Christmas Day")
    eve = salon.hours_on(dt.date(2027, 12, 24))
    assert (eve.ranges, eve.holiday) == (((dt.time(9), dt.time(12)),), "Christmas Eve")
    dated = salon.hours_on(dt.date(2026, 12, 24))  # a date beats the yearly entry
    assert (dated.ranges, dated.holiday) == (((dt.time(10), dt.time(11)),), None)


def test_open_from_the_first_minute_to_before_the_last(salon: BusinessProfile) -> None:
    assert not salon.is_open(_at(2026, 12, 9, 8, 59, 59))
    assert salon.is_open(_at(2026, 12, 9, 9, 0))
    assert salon.is_open(_at(2026, 12, 9, 11, 59, 59))
    assert not salon.is_open(_at(2026, 12, 9, 12, 30))  # lunch
    assert not salon.is_open(_at(2026, 12, 9, 19, 0))
    assert salon.is_open(_at(2026, 12, 11, 23, 59, 59))  # Friday to midnight
    assert not salon.is_open(_at(2026, 12, 25, 10, 0))
    # 15:00 in London is 10:00 in New York; a naive time is the business's own.
    assert salon.is_open(_at(2026, 12, 9, 15, 0, zone=ZoneInfo("Europe/London")))
    assert salon.is_open(dt.datetime(2026, 12, 9, 10, 0))
    assert not salon.is_open(_at(2026, 12, 9, 10, 0, zone=dt.UTC))  # 05:00 in New York


def test_opening_hours_hold_on_the_local_clock_across_dst(salon: BusinessProfile) -> None:
    # 2026-03-08 clocks go forward (EST -5 to EDT -4); 2026-11-01 back.
    before, after = _at(2026, 3, 6, 9, 0), _at(2026, 3, 9, 9, 0)
    assert before.astimezone(dt.UTC).hour == 14 and after.astimezone(dt.UTC).hour == 13
    assert salon.next_opening(_at(2026, 3, 7, 14, 0)) == after  # Sat after close -> Monday
    assert salon.next_opening(_at(2026, 3, 7, 14, 0)).utcoffset() == dt.timedelta(hours=-4)  # type: ignore[union-attr]
    assert salon.is_open(dt.datetime(2026, 3, 9, 13, 30, tzinfo=dt.UTC))  # 09:30 EDT
    assert not salon.is_open(dt.datetime(2026, 3, 6, 13, 30, tzinfo=dt.UTC))  # 08:30 EST
    assert salon.is_open(dt.datetime(2026, 11, 2, 14, 30, tzinfo=dt.UTC))  # 09:30 EST
    assert not salon.is_open(dt.datetime(2026, 10, 30, 12, 30, tzinfo=dt.UTC))  # 08:30 EDT
    assert salon.local(1_772_978_400.0) == _at(2026, 3, 8, 10, 0)  # 14:00 UTC, EDT


def test_an_opening_that_spring_forward_skips_is_the_instant_after(tmp_path: Path) -> None:
    night = _load(tmp_path, SALON.replace('monday = "09:00-17:00"', 'sunday = "02:30-05:00"'))
    opening = night.next_opening(_at(2026, 3, 8, 0, 0))
    assert opening is not None
    assert opening.astimezone(dt.UTC) == dt.datetime(2026, 3, 8, 7, 30, tzinfo=dt.UTC)
    assert (opening.hour, opening.minute) == (3, 30)


def test_next_opening_skips_holidays_and_is_none_when_never_open(
    salon: BusinessProfile, tmp_path: Path
) -> None:
    assert salon.next_opening(_at(2026, 12, 24, 11, 0)) == _at(2026, 12, 26, 9, 0)
    assert salon.next_opening(_at(2026, 12, 9, 12, 15)) == _at(2026, 12, 9, 13, 30)
    assert salon.next_opening(_at(2026, 12, 9, 9, 0)) == _at(2026, 12, 9, 9, 0)
    closed = _load(tmp_path, 'name = "Gone"\ntimezone = "UTC"\n')
    assert closed.next_opening(_at(2026, 12, 9, 9, 0)) is None


# --- the days callers name -----------------------------------------------------------------------

NOW = _at(2026, 12, 2, 15, 0)  # a Wednesday
"""Wednesday, December 2nd 2026, 3 PM in New York."""


@pytest.mark.parametrize(
    ("text", "day"),
    [
        ("today", dt.date(2026, 12, 2)),
        ("Tonight", dt.date(2026, 12, 2)),
        ("right now", dt.date(2026, 12, 2)),
        ("currently", dt.date(2026, 12, 2)),
        ("this evening", dt.date(2026, 12, 2)),
        ("in the morning", dt.date(2026, 12, 2)),
        ("tomorrow afternoon", dt.date(2026, 12, 3)),
        ("saturday morning", dt.date(2026, 12, 5)),
        ("tomorrow", dt.date(2026, 12, 3)),
        ("the day after tomorrow", dt.date(2026, 12, 4)),
        ("yesterday", dt.date(2026, 12, 1)),
        ("saturday", dt.date(2026, 12, 5)),
        ("this Saturday?", dt.date(2026, 12, 5)),
        ("on saturdays", dt.date(2026, 12, 5)),
        ("sat", dt.date(2026, 12, 5)),
        ("wednesday", dt.date(2026, 12, 2)),
        ("next wednesday", dt.date(2026, 12, 9)),
        ("next monday", dt.date(2026, 12, 7)),
        ("monday", dt.date(2026, 12, 7)),
        ("christmas", dt.date(2026, 12, 25)),
        ("Christmas Day", dt.date(2026, 12, 25)),
        ("christmas eve", dt.date(2026, 12, 24)),
        ("new year's day", dt.date(2027, 1, 1)),
        ("New Year\u2019s Eve", dt.date(2026, 12, 31)),
        ("2026-12-25", dt.date(2026, 12, 25)),
        ("2027-02-03", dt.date(2027, 2, 3)),
        ("December 25th", dt.date(2026, 12, 25)),
        ("the 25th of december", dt.date(2026, 12, 25)),
        ("dec 1", dt.date(2027, 12, 1)),
        ("march 3rd", dt.date(2027, 3, 3)),
        ("the 3rd", dt.date(2026, 12, 3)),
        ("the 1st", dt.date(2027, 1, 1)),
        ("", None),
        ("whenever", None),
        ("2026-02-30", None),
        ("the 3rd in the morning", None),
    ],
)
def test_resolve_day(salon: BusinessProfile, text: str, day: dt.date | None) -> None:
    assert salon.resolve_day(text, NOW) == day


def test_a_day_is_resolved_on_the_business_clock_not_utc(salon: BusinessProfile) -> None:
    late = dt.datetime(2026, 12, 3, 3, 0, tzinfo=dt.UTC)  # still Wednesday evening in New York
    assert salon.resolve_day("today", late) == dt.date(2026, 12, 2)
    assert salon.resolve_day("tomorrow", late) == dt.date(2026, 12, 3)


def test_a_profile_names_its_own_days(tmp_path: Path) -> None:
    text = SALON + '\n[[exceptions]]\ndate = "07-14"\nname = "Founders Day"\n'
    profile = _load(tmp_path, text)
    assert profile.resolve_day("founders day", NOW) == dt.date(2027, 7, 14)
    assert profile.resolve_day("are you open on founders day?", NOW) == dt.date(2027, 7, 14)


# --- what the agent says -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "said"),
    [
        (dt.date(2026, 12, 5), "On Saturday the 5th we're open from 9 AM to 1 PM."),
        (dt.date(2026, 12, 2), "Today, Wednesday the 2nd, we're open from 9 AM to noon "
                               "and from 1:30 PM to 7 PM."),
        (dt.date(2026, 12, 3), "Tomorrow, Thursday the 3rd, we're open from 9 AM to 5 PM."),
        (dt.date(2026, 12, 1), "Yesterday, Tuesday the 1st, we were open from 9 AM to 5 PM."),
        (dt.date(2026, 12, 6), "We're closed on Sunday the 6th."),
        (dt.date(2026, 12, 4), "On Friday the 4th we're open from 9 AM to midnight."),
        (dt.date(2026, 12, 25), "We're closed on Christmas Day, Friday the 25th."),
        (dt.date(2027, 12, 24), "On Christmas Eve, Friday, December 24th, 2027, "
                                "we're open from 9 AM to noon."),
        (dt.date(2027, 1, 4), "On Monday, January 4th we're open from 9 AM to 5 PM."),
    ],
)  # fmt: skip
def test_the_hours_of_a_day_as_a_sentence(salon: BusinessProfile, day: dt.date, said: str) -> None:
    assert salon.say_hours(day, NOW) == said


@pytest.mark.parametrize(
    ("now", "said"),
    [
        (_at(2026, 12, 2, 15, 0), "We're open right now, until 7 PM."),
        (_at(2026, 12, 2, 12, 10), "We're closed right now; we open again today at 1:30 PM."),
        (_at(2026, 12, 5, 13, 0), "We're closed right now; we open again on Monday the 7th "
                                  "at 9 AM."),
        (_at(2026, 12, 31, 20, 0), "We're closed right now; we open again on Friday, "
                                   "January 1st at 9 AM."),
    ],
)  # fmt: skip
def test_whether_it_is_open_now_as_a_sentence(
    salon: BusinessProfile, now: dt.datetime, said: str
) -> None:
    assert salon.say_now(now) == said


# --- the prompt's facts --------------------------------------------------------------------------

FACTS = """\
Business: Cut Above
Phone: +1 555 010 0200
Address: 9 Elm Road
Time zone: America/New_York
Services:
- Haircut, $40, 30 minutes
- Colour, $89.50, 90 minutes. Includes a wash.
People the caller can be put through to:
- Sam (manager)
- Bookings (desk)
You may:
- say prices
You must not:
- book appointments
Answers to common questions:
- Q: Do you take walk-ins? A: Yes, when a chair is free."""


def test_the_facts_are_the_same_bytes_every_time(salon: BusinessProfile, tmp_path: Path) -> None:
    assert salon.facts_text() == FACTS
    assert salon.facts_text() == _load(tmp_path, SALON_YAML, ".yaml").facts_text()
    assert "09:00" not in FACTS and "9 AM" not in FACTS and "Christmas" not in FACTS
    assert "0201" not in FACTS  # numbers are for the transfer, not for the model


def test_a_long_faq_stays_out_of_the_prompt_and_is_there_for_recall(tmp_path: Path) -> None:
    entry = '\n[[faq]]\nquestion = "Q{n}?"\nanswer = "A{n}."\n'
    at_most = SALON + "".join(entry.format(n=n) for n in range(FAQ_IN_PROMPT_MAX - 1))
    assert "Q0?" in _load(tmp_path, at_most).facts_text()
    many = _load(tmp_path, at_most + entry.format(n="x"))
    assert len(many.faq) == FAQ_IN_PROMPT_MAX + 1
    assert "Q0?" not in many.facts_text() and "walk-ins" not in many.facts_text()
    assert many.faq[-1].question == "Qx?"


def test_prices_in_other_currencies(tmp_path: Path) -> None:
    paris = 'timezone = "Europe/Paris"\ncurrency = "EUR"'
    euros = _load(tmp_path, SALON.replace('timezone = "America/New_York"', paris))
    assert "- Colour, €89.50, 90 minutes" in euros.facts_text()
    francs = euros.model_copy(update={"currency": "CHF"})
    assert francs.price_text(francs.services[0].price or 0) == "40 CHF"  # type: ignore[arg-type]


def test_speech_to_text_is_primed_with_the_names_and_with_the_services_only_on_a_box_that_books():
    profile = BusinessProfile.load(ROOT / "business.example.toml")
    names = profile.vocabulary()
    assert names == "Maple Street Dental, Dr. Elena Park, Front office, Springfield."
    booking = profile.vocabulary(services=True)
    assert "Filling" in booking and "Teeth whitening" in booking and "Filling" not in names
