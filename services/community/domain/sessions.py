"""Sessions of a program: RFC 5545 recurrence expansion, editing future sessions, iCalendar text.

A program's recurrence is a DTSTART in local wall time plus an RRULE, held in an IANA time zone,
as a calendar client holds it: "every other Tuesday at 10:00 in America/Chicago" stays 10:00 in
Chicago across daylight-saving changes, so its UTC instant moves by an hour twice a year.
Expansion uses python-dateutil's `rrulestr`; zones come from the standard library's zoneinfo.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

from dateutil.rrule import DAILY, rrule, rrulestr
from icalendar import Calendar, Event

MAX_SESSIONS = 500  # per expansion: a rule that asks for more is capped (the horizon also caps it)
MAX_DURATION_MINUTES = 24 * 60
# Sessions happen within these years: near year 1 or 9999 a local time has no UTC value (OverflowError), and
# the .ics feed's VTIMEZONE spans the years around each event.
YEARS = (1900, 2999)
# The session's time of day comes from DTSTART: rules may not multiply occurrences within a day.
_FORBIDDEN_PARTS = ("BYHOUR", "BYMINUTE", "BYSECOND", "DTSTART")
_PART = re.compile(r"^[A-Z]+=[A-Z0-9,+\-:TZ]+$")


class RecurrenceError(ValueError):
    """Bad recurrence input: `problems` maps a field (timezone, dtstart, rrule) to what is wrong."""

    def __init__(self, problems: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in problems.items()))
        self.problems = problems


@dataclass(frozen=True, order=True)
class Occurrence:
    """One instance of the recurrence: its RECURRENCE-ID and its times, all in UTC."""

    occurrence: datetime
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True)
class Recurrence:
    timezone: str
    dtstart: str  # local wall time "2027-01-05T10:00:00"
    rrule: str  # the RRULE value, without "RRULE:"
    duration_minutes: int


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def zone_problem(name: str) -> str | None:
    if name not in _zones():
        return f"{name!r} is not an IANA time zone (for example America/Chicago)"
    return None


def parse_dtstart(text: str) -> datetime:
    """Local wall time without an offset; seconds allowed, fractions and offsets not."""
    try:
        if "T" not in text.upper():  # a bare date would quietly mean midnight: sessions have a time of day
            raise ValueError
        value = datetime.fromisoformat(text)
    except ValueError:
        raise RecurrenceError({"dtstart": "must be a local time like 2027-01-05T10:00:00"}) from None
    if value.tzinfo is not None:
        raise RecurrenceError({"dtstart": "is local wall time in the program's time zone: give it without an offset"})
    if value.microsecond:
        raise RecurrenceError({"dtstart": "has no fractions of a second"})
    if not YEARS[0] <= value.year <= YEARS[1]:
        raise RecurrenceError({"dtstart": f"must be within the years {YEARS[0]} to {YEARS[1]}"})
    return value


def normalise_rule(text: str) -> str:
    """The RRULE value alone, upper-case, without a leading "RRULE:"."""
    rule = text.strip()
    if rule.upper().startswith("RRULE:"):
        rule = rule[6:]
    return rule.upper()


def rule_problem(text: str) -> str | None:
    """Why an RRULE value is refused, or None. Parsing it for real happens in `expand`."""
    rule = normalise_rule(text)
    if not rule:
        return "is empty"
    if "\n" in rule or "\r" in rule:
        return "is one RRULE value, without other iCalendar lines"
    parts = rule.split(";")
    names = [p.split("=", 1)[0] for p in parts]
    if not all(_PART.match(p) for p in parts):
        return "must be NAME=VALUE parts separated by ';' (RFC 5545), e.g. FREQ=WEEKLY;BYDAY=TU"
    if len(set(names)) != len(names):
        return "names a part twice"
    if "FREQ" not in names:
        return "needs FREQ"
    freq = dict(p.split("=", 1) for p in parts)["FREQ"]
    if freq in ("HOURLY", "MINUTELY", "SECONDLY"):
        return "FREQ finer than DAILY is not a session schedule"
    if freq not in ("DAILY", "WEEKLY", "MONTHLY", "YEARLY"):
        return f"FREQ {freq} is unknown"
    bad = [n for n in names if n in _FORBIDDEN_PARTS]
    if bad:
        return f"{', '.join(bad)} not allowed: the time of day comes from dtstart"
    if "UNTIL" in names and "COUNT" in names:
        return "has both UNTIL and COUNT (RFC 5545 allows one)"
    values = dict(p.split("=", 1) for p in parts)
    if "UNTIL" in values and not re.fullmatch(r"\d{8}(T\d{6}Z?)?", values["UNTIL"]):
        return "UNTIL must be a date (20270629) or a UTC time (20270629T235959Z)"
    for name, top in (("INTERVAL", 1000), ("COUNT", 10_000)):
        if name in values and not (values[name].isdigit() and 1 <= int(values[name]) <= top):
            return f"{name} must be a whole number from 1 to {top}"
    return None


def validate(rec: Recurrence) -> None:
    """Raise RecurrenceError with every problem of a recurrence at once."""
    problems: dict[str, str] = {}
    if (p := zone_problem(rec.timezone)) is not None:
        problems["timezone"] = p
    try:
        parse_dtstart(rec.dtstart)
    except RecurrenceError as e:
        problems.update(e.problems)
    if (p := rule_problem(rec.rrule)) is not None:
        problems["rrule"] = p
    if not 1 <= rec.duration_minutes <= MAX_DURATION_MINUTES:
        problems["duration_minutes"] = f"must be between 1 and {MAX_DURATION_MINUTES}"
    if problems:
        raise RecurrenceError(problems)
    _build(rec)  # dateutil's own parse: values it cannot read
    if _never_occurs(rec):
        raise RecurrenceError({"rrule": "has no occurrence within 400 years of dtstart "
                                        "(e.g. BYMONTH=2;BYMONTHDAY=30 never happens)"})


def _never_occurs(rec: Recurrence) -> bool:
    """A rule that matches no day (FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30) makes dateutil walk every period up to
    year 9999 before it gives up: 2-4 s of CPU on the event loop per request. The Gregorian calendar repeats
    every 400 years (146097 days = 20871 weeks = 4800 months), so the rule, without UNTIL or COUNT, is probed
    from the same point of the cycle 400-800 years before 9999, where dateutil stops: at most about 0.5 s,
    and it finds what the real rule would find in its first 400 years."""
    start = parse_dtstart(rec.dtstart)
    probe = start.replace(year=start.year + ((9199 - start.year) // 400 + 1) * 400)
    parts = [p for p in normalise_rule(rec.rrule).split(";") if p.split("=", 1)[0] not in ("UNTIL", "COUNT")]
    return next(iter(rrulestr(";".join(parts), dtstart=probe)), None) is None


def _build(rec: Recurrence) -> rrule:
    zone = ZoneInfo(rec.timezone)
    start = parse_dtstart(rec.dtstart)
    rule = normalise_rule(rec.rrule)
    # RFC 5545: with a zoned DTSTART, UNTIL is UTC ("...Z"); a floating UNTIL is read as local wall time.
    aware = re.search(r"UNTIL=\d{8}(T\d{6})?Z", rule) is not None
    try:
        built = rrulestr(rule, dtstart=start.replace(tzinfo=zone) if aware else start)
    except (ValueError, TypeError, KeyError, AttributeError) as e:
        raise RecurrenceError({"rrule": f"cannot be read: {e}"}) from None
    if not isinstance(built, rrule) or built._freq > DAILY:  # dateutil keeps FREQ private
        raise RecurrenceError({"rrule": "FREQ finer than DAILY is not a session schedule"})
    return built


def to_utc(wall: datetime, zone: ZoneInfo) -> datetime:
    """A local wall time to UTC. RFC 5545 §3.3.5: a time in a spring-forward gap takes the offset before
    the gap (02:30 → 03:30 new time); an ambiguous fall-back time is the first of the two (fold=0)."""
    return wall.replace(tzinfo=None, fold=0).replace(tzinfo=zone).astimezone(UTC)


def expand(rec: Recurrence, *, until: datetime, after: datetime | None = None,
           limit: int = MAX_SESSIONS) -> list[Occurrence]:
    """Occurrences starting before `until` (UTC; the horizon) and after `after` (UTC), at most `limit`.

    Unbounded rules are fine: the horizon caps them (a chore extends them as time passes).
    """
    validate(rec)
    built = _build(rec)
    zone = ZoneInfo(rec.timezone)
    length = timedelta(minutes=rec.duration_minutes)
    out: list[Occurrence] = []
    for wall in built:
        start = to_utc(wall, zone)
        if start >= until:
            break
        if after is not None and start <= after:
            continue
        out.append(Occurrence(start, start, start + length))
        if len(out) >= limit:
            break
    return out


# ---- editing future sessions only -----------------------------------------------------------------


@dataclass(frozen=True)
class Existing:
    """A session of the program as the edit sees it. `frozen`: moved alone (detached) or cancelled —
    a recurrence edit never changes it, but its occurrence is taken (no duplicate is created)."""

    id: str
    occurrence: datetime | None
    starts_at: datetime
    frozen: bool = False


@dataclass(frozen=True)
class FuturePlan:
    update: list[tuple[str, Occurrence]] = field(default_factory=list)  # (session id, its new instance)
    create: list[Occurrence] = field(default_factory=list)
    drop: list[str] = field(default_factory=list)  # session ids no longer in the rule: cancel them


def plan_future(existing: Iterable[Existing], wanted: Sequence[Occurrence], timezone: str) -> FuturePlan:
    """How future sessions follow a new rule. Give only future sessions and future occurrences.

    A session keeps its identity (and its registrations) when the new rule has the same instance,
    or failing that an instance on the same local day (the rule moved the time of day or the
    duration). Sessions left over are dropped; instances left over are new sessions.
    """
    zone = ZoneInfo(timezone)
    pending = {o.occurrence: o for o in wanted}
    leftover: list[Existing] = []
    update: list[tuple[str, Occurrence]] = []
    for s in sorted(existing, key=lambda e: e.starts_at):
        match = pending.pop(s.occurrence, None) if s.occurrence is not None else None
        if match is None:
            leftover.append(s)
        elif not s.frozen:
            update.append((s.id, match))
    by_day: dict[object, Occurrence] = {}
    for o in pending.values():
        by_day.setdefault(o.occurrence.astimezone(zone).date(), o)
    drop: list[str] = []
    for s in leftover:
        day = (s.occurrence or s.starts_at).astimezone(zone).date()
        match = by_day.pop(day, None)
        if match is not None:
            pending.pop(match.occurrence)
            if not s.frozen:
                update.append((s.id, match))
        elif not s.frozen:
            drop.append(s.id)
    return FuturePlan(update=update, create=sorted(pending.values()), drop=drop)


# ---- iCalendar --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CalendarEntry:
    uid: str
    title: str
    description: str
    starts_at: datetime  # UTC
    ends_at: datetime  # UTC
    timezone: str
    cancelled: bool = False
    url: str = ""  # the meeting link: only for people who may see it
    sequence: int = 0
    occurrence: datetime | None = None


def calendar_text(name: str, entries: Iterable[CalendarEntry], *, stamp: datetime) -> bytes:
    """An RFC 5545 VCALENDAR: each event in its own zone (DTSTART;TZID=...) with the VTIMEZONEs it needs."""
    cal = Calendar()
    cal.add("prodid", "-//Trellis//Community//EN")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    cal.add("x-wr-calname", name)
    years: list[int] = []
    for e in entries:
        years.append(e.starts_at.year)
        zone = ZoneInfo(e.timezone)
        ev = Event()
        ev.add("uid", e.uid)
        ev.add("dtstamp", stamp.astimezone(UTC))
        ev.add("summary", e.title)
        if e.description:
            ev.add("description", e.description)
        ev.add("dtstart", e.starts_at.astimezone(zone))
        ev.add("dtend", e.ends_at.astimezone(zone))
        ev.add("sequence", e.sequence)
        ev.add("status", "CANCELLED" if e.cancelled else "CONFIRMED")
        if e.url and not e.cancelled:
            ev.add("url", e.url)
            ev.add("location", e.url)
        cal.add_component(ev)
    if years:  # VTIMEZONE rules for the years the events span, not 1970-2038
        cal.add_missing_timezones(first_date=date(min(years) - 1, 1, 1), last_date=date(max(years) + 2, 1, 1))
    return cal.to_ical()
