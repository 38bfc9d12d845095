"""Recurrence rules of community programs: expansion across daylight-saving changes, refusals, editing
future sessions only, and the iCalendar text (pure domain, no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import icalendar
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.community.domain.sessions import (
    CalendarEntry,
    Existing,
    Occurrence,
    Recurrence,
    RecurrenceError,
    calendar_text,
    expand,
    plan_future,
    validate,
)

CHICAGO = ZoneInfo("America/Chicago")
FAR = datetime(2030, 1, 1, tzinfo=UTC)


def utc(*a: int) -> datetime:
    return datetime(*a, tzinfo=UTC)


def test_weekly_at_ten_in_chicago_keeps_ten_local_across_the_march_change() -> None:
    # 2027: daylight saving starts Sunday 14 March in the US.
    rec = Recurrence("America/Chicago", "2027-03-02T10:00:00", "FREQ=WEEKLY;BYDAY=TU;COUNT=4", 90)
    occ = expand(rec, until=FAR)
    assert [o.starts_at for o in occ] == [utc(2027, 3, 2, 16), utc(2027, 3, 9, 16),  # CST, UTC-6
                                          utc(2027, 3, 16, 15), utc(2027, 3, 23, 15)]  # CDT, UTC-5
    assert {o.starts_at.astimezone(CHICAGO).hour for o in occ} == {10}
    assert all(o.ends_at - o.starts_at == timedelta(minutes=90) for o in occ)
    assert [o.occurrence for o in occ] == [o.starts_at for o in occ]


def test_every_other_tuesday_until_a_utc_time_and_across_the_november_change() -> None:
    rec = Recurrence("America/Chicago", "2027-10-26T10:00:00",
                     "FREQ=WEEKLY;INTERVAL=2;BYDAY=TU;UNTIL=20271207T235959Z", 60)
    starts = [o.starts_at for o in expand(rec, until=FAR)]
    # Standard time from 7 November: 10:00 CST is 16:00 UTC, 10:00 CDT was 15:00 UTC.
    assert starts == [utc(2027, 10, 26, 15), utc(2027, 11, 9, 16), utc(2027, 11, 23, 16), utc(2027, 12, 7, 16)]


def test_a_floating_until_date_is_read_in_the_programs_zone() -> None:
    rec = Recurrence("Europe/Berlin", "2027-03-22T18:00:00", "FREQ=DAILY;UNTIL=20270328", 60)
    occ = expand(rec, until=FAR)
    assert len(occ) == 6  # 22..27; the 28th starts after the floating UNTIL (midnight local)
    assert occ[-1].starts_at == utc(2027, 3, 27, 17)


def test_a_time_in_the_spring_gap_takes_the_offset_before_the_gap() -> None:
    # 02:30 does not exist on 14 March 2027 in Chicago: RFC 5545 reads it as 03:30 CDT.
    rec = Recurrence("America/Chicago", "2027-03-13T02:30:00", "FREQ=DAILY;COUNT=2", 30)
    assert [o.starts_at for o in expand(rec, until=FAR)] == [utc(2027, 3, 13, 8, 30), utc(2027, 3, 14, 8, 30)]


def test_unbounded_rules_stop_at_the_horizon_and_the_cap() -> None:
    rec = Recurrence("UTC", "2027-01-01T09:00:00", "FREQ=DAILY", 60)
    assert len(expand(rec, until=utc(2027, 1, 11))) == 10
    assert len(expand(rec, until=FAR)) == 500
    assert len(expand(rec, until=utc(2027, 1, 11), after=utc(2027, 1, 5, 9))) == 5


@pytest.mark.parametrize(("field", "rec"), [
    ("rrule", Recurrence("UTC", "2027-01-01T09:00:00", "FREQ=HOURLY;COUNT=3", 60)),
    ("rrule", Recurrence("UTC", "2027-01-01T09:00:00", "FREQ=MINUTELY", 60)),
    ("rrule", Recurrence("UTC", "2027-01-01T09:00:00", "FREQ=DAILY;BYHOUR=9,15", 60)),
    ("rrule", Recurrence("UTC", "2027-01-01T09:00:00", "FREQ=WEEKLY;BYDAY=XX", 60)),
    ("rrule", Recurrence("UTC", "2027-01-01T09:00:00", "FREQ=WEEKLY;INTERVAL=0", 60)),
    ("rrule", Recurrence("UTC", "2027-01-01T09:00:00", "FREQ=WEEKLY;COUNT=2;UNTIL=20270101", 60)),
    ("rrule", Recurrence("UTC", "2027-01-01T09:00:00", "BYDAY=TU", 60)),
    ("rrule", Recurrence("UTC", "2027-01-01T09:00:00", "FREQ=WEEKLY\nEXDATE:20270108T090000Z", 60)),
    ("timezone", Recurrence("America/Springfield", "2027-01-01T09:00:00", "FREQ=WEEKLY", 60)),
    ("timezone", Recurrence("../etc/passwd", "2027-01-01T09:00:00", "FREQ=WEEKLY", 60)),
    ("dtstart", Recurrence("UTC", "2027-01-01T09:00:00+01:00", "FREQ=WEEKLY", 60)),
    ("dtstart", Recurrence("UTC", "next tuesday", "FREQ=WEEKLY", 60)),
    ("duration_minutes", Recurrence("UTC", "2027-01-01T09:00:00", "FREQ=WEEKLY", 0)),
])
def test_bad_recurrences_are_refused_with_the_field_at_fault(field: str, rec: Recurrence) -> None:
    with pytest.raises(RecurrenceError) as e:
        validate(rec)
    assert field in e.value.problems


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(RecurrenceError) as e:
        validate(Recurrence("Mars/Olympus", "soon", "FREQ=SECONDLY", 0))
    assert set(e.value.problems) == {"timezone", "dtstart", "rrule", "duration_minutes"}


@settings(max_examples=60, deadline=None)
@given(zone=st.sampled_from(["America/Chicago", "America/New_York", "Europe/Berlin", "Australia/Sydney",
                             "America/Sao_Paulo", "Asia/Kolkata"]),
       hour=st.integers(7, 20), minute=st.sampled_from([0, 15, 30, 45]),
       day=st.dates(min_value=datetime(2026, 1, 1).date(), max_value=datetime(2030, 12, 1).date()),
       freq=st.sampled_from(["DAILY", "WEEKLY", "WEEKLY;INTERVAL=2", "MONTHLY"]))
def test_every_occurrence_keeps_the_local_wall_time(zone: str, hour: int, minute: int, day: object,
                                                    freq: str) -> None:
    """Whatever the zone and season, each session starts at DTSTART's local time (none falls in a gap
    at these hours), and sessions come in order, one a day at most."""
    start = f"{day}T{hour:02d}:{minute:02d}:00"
    # Far horizon: monthly on the 31st skips the shorter months.
    occ = expand(Recurrence(zone, start, f"FREQ={freq};COUNT=30", 45), until=FAR.replace(year=2040))
    assert len(occ) == 30
    local = [o.starts_at.astimezone(ZoneInfo(zone)) for o in occ]
    assert {(t.hour, t.minute) for t in local} == {(hour, minute)}
    assert len({t.date() for t in local}) == 30
    assert [o.starts_at for o in occ] == sorted(o.starts_at for o in occ)


# ---- editing future sessions ----------------------------------------------------------------------------


def _occ(*a: int, minutes: int = 60) -> Occurrence:
    return Occurrence(utc(*a), utc(*a), utc(*a) + timedelta(minutes=minutes))


def test_a_new_rule_keeps_matching_sessions_drops_the_rest_and_adds_new_ones() -> None:
    existing = [Existing("a", utc(2027, 3, 2, 16), utc(2027, 3, 2, 16)),
                Existing("b", utc(2027, 3, 9, 16), utc(2027, 3, 9, 16)),
                Existing("c", utc(2027, 3, 16, 15), utc(2027, 3, 16, 15))]
    # Weekly on Tuesdays becomes every other Tuesday plus one Thursday.
    wanted = [_occ(2027, 3, 2, 16), _occ(2027, 3, 16, 15), _occ(2027, 3, 18, 15)]
    plan = plan_future(existing, wanted, "America/Chicago")
    assert [sid for sid, _ in plan.update] == ["a", "c"]
    assert plan.drop == ["b"]
    assert plan.create == [_occ(2027, 3, 18, 15)]


def test_a_new_time_of_day_moves_the_same_days_sessions_rather_than_replacing_them() -> None:
    existing = [Existing("a", utc(2027, 3, 2, 16), utc(2027, 3, 2, 16))]
    plan = plan_future(existing, [_occ(2027, 3, 2, 17)], "America/Chicago")  # 10:00 → 11:00 local
    assert plan.update == [("a", _occ(2027, 3, 2, 17))] and not plan.drop and not plan.create


def test_detached_sessions_are_left_alone_and_keep_their_occurrence() -> None:
    existing = [Existing("moved", utc(2027, 3, 2, 16), utc(2027, 3, 3, 18), frozen=True),
                Existing("gone", utc(2027, 3, 9, 16), utc(2027, 3, 9, 16), frozen=True)]
    plan = plan_future(existing, [_occ(2027, 3, 2, 16)], "America/Chicago")
    assert plan.update == [] and plan.drop == [] and plan.create == []


def test_an_unchanged_rule_changes_nothing() -> None:
    rec = Recurrence("America/Chicago", "2027-03-02T10:00:00", "FREQ=WEEKLY;COUNT=6", 60)
    occ = expand(rec, until=FAR)
    existing = [Existing(f"s{i}", o.occurrence, o.starts_at) for i, o in enumerate(occ)]
    plan = plan_future(existing, occ, rec.timezone)
    assert [o for _, o in plan.update] == occ and not plan.drop and not plan.create


@settings(max_examples=80, deadline=None)
@given(old=st.sets(st.integers(0, 60), max_size=25), new=st.sets(st.integers(0, 60), max_size=25),
       frozen=st.sets(st.integers(0, 60), max_size=5), shift=st.sampled_from([0, 0, 1, 2]))
def test_plan_accounts_for_every_session_and_every_occurrence_exactly_once(
        old: set[int], new: set[int], frozen: set[int], shift: int) -> None:
    base = utc(2027, 3, 1, 16)
    existing = [Existing(str(d), base + timedelta(days=d), base + timedelta(days=d), frozen=d in frozen) for d in old]
    wanted = [Occurrence(base + timedelta(days=d, hours=shift), base + timedelta(days=d, hours=shift),
                         base + timedelta(days=d, hours=shift + 1)) for d in sorted(new)]
    plan = plan_future(existing, wanted, "America/Chicago")
    touched = [sid for sid, _ in plan.update] + plan.drop
    assert len(touched) == len(set(touched))
    assert not set(touched) & {str(d) for d in frozen}  # the hub's own edits are never overridden
    assert {str(d) for d in old - frozen} == set(touched)
    used = [o for _, o in plan.update] + plan.create
    assert len(used) == len(set(used))
    # Every wanted instance is a session: updated, created, or held by a detached session on that day.
    held = {d for d in frozen & old if d in new}
    assert len(used) + len(held) == len(wanted)


# ---- iCalendar ----------------------------------------------------------------------------------------


def test_the_calendar_has_the_zone_its_events_use_and_hides_links_of_cancelled_sessions() -> None:
    text = calendar_text("ECHO", [
        CalendarEntry("a@t", "Session 1", "ECHO", utc(2027, 3, 9, 16), utc(2027, 3, 9, 17), "America/Chicago",
                      url="https://meet.example.org/a"),
        CalendarEntry("b@t", "Session 2", "ECHO", utc(2027, 3, 16, 15), utc(2027, 3, 16, 16), "America/Chicago",
                      cancelled=True, url="https://meet.example.org/a"),
    ], stamp=utc(2027, 1, 1))
    cal = icalendar.Calendar.from_ical(text)
    [tz] = cal.walk("VTIMEZONE")
    assert tz["TZID"] == "America/Chicago"
    one, two = cal.walk("VEVENT")
    assert one["DTSTART"].params["TZID"] == "America/Chicago"
    assert one.decoded("DTSTART") == datetime(2027, 3, 9, 10, tzinfo=CHICAGO)
    assert two.decoded("DTSTART").astimezone(CHICAGO).hour == 10
    assert str(one["URL"]) == "https://meet.example.org/a" and "URL" not in two
    assert str(two["STATUS"]) == "CANCELLED"
    assert b"DTSTART;TZID=America/Chicago:20270316T100000" in text
