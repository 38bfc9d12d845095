"""The pure pieces behind the community service's 4xx answers to bad input (each once let a 500 through):
instants beyond the calendar, report times beyond it, cursors and feed tokens with a NUL, bare-date
DTSTARTs; and the certificate PDF with names outside Latin-1."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from pydantic import TypeAdapter, ValidationError

from services.community.domain import attendance, sessions
from services.community.schemas.attendance import AdjustIn, ImportIn
from services.community.schemas.cases import JustificationsIn
from services.community.schemas.inputs import Instant
from services.community.schemas.programs import ProgramIn
from services.community.usecases.calendars import TOKEN
from services.community.usecases.certificates import _latin1, certificate_pdf
from trellis.pagination import decode_cursor, encode_cursor
from trellis.problems import Problem

INSTANT = TypeAdapter(Instant)
PROGRAM = {"title": "ECHO", "timezone": "America/Chicago", "duration_minutes": 60, "capacity": 5,
           "recurrence": {"dtstart": "2027-03-02T10:00:00", "rrule": "FREQ=WEEKLY;COUNT=3"}}


@pytest.mark.parametrize("text", ["0.5", "1700000000", "2027-03-01T00:00:00", "2027-03-01",
                                  "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_an_instant_is_iso_text_with_an_offset_inside_the_calendar_in_utc(text: str) -> None:
    with pytest.raises(ValidationError):
        INSTANT.validate_python(text)


def test_an_instant_is_converted_to_utc() -> None:
    assert INSTANT.validate_python("2027-03-02T10:00:00-06:00") == datetime(2027, 3, 2, 16, tzinfo=UTC)


@pytest.mark.parametrize("value", ["12/31/9999 11:59:59 PM", "9999-12-31T23:59:59", "99999999999999999999",
                                   "0001-01-01T00:00:00"])
def test_a_report_time_beyond_the_calendar_is_not_a_time(value: str) -> None:
    zone = ZoneInfo("America/Chicago") if "0001" not in value else ZoneInfo("Asia/Tokyo")
    assert attendance.parse_time(value, zone) is None


@pytest.mark.parametrize("dtstart", ["2027-03-02", "0001-01-01T00:00:00", "9999-12-31T23:00:00"])
def test_a_dtstart_is_a_time_of_day_within_the_years_sessions_happen(dtstart: str) -> None:
    with pytest.raises(sessions.RecurrenceError) as e:
        sessions.validate(sessions.Recurrence("Asia/Tokyo", dtstart, "FREQ=DAILY", 60))
    assert set(e.value.problems) == {"dtstart"}


@pytest.mark.parametrize("rule", ["FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30", "FREQ=WEEKLY;BYMONTH=4;BYMONTHDAY=31",
                                  "FREQ=DAILY;BYSETPOS=3"])
def test_a_rule_that_never_occurs_is_refused_quickly(rule: str) -> None:
    # dateutil walked every day up to year 9999 before giving up: 2-4 s of CPU, then zero sessions.
    started = time.perf_counter()
    with pytest.raises(sessions.RecurrenceError) as e:
        sessions.validate(sessions.Recurrence("America/Chicago", "2027-01-05T10:00:00", rule, 60))
    assert set(e.value.problems) == {"rrule"} and time.perf_counter() - started < 1.5


def test_a_rare_but_real_rule_is_kept() -> None:
    # Tuesday 29 February: 2028 is the next one after January 2027.
    rule = "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;BYDAY=TU"
    rec = sessions.Recurrence("America/Chicago", "2027-01-05T10:00:00", rule, 60)
    [first] = sessions.expand(rec, until=datetime(2029, 1, 1, tzinfo=UTC))
    assert first.starts_at == datetime(2028, 2, 29, 16, tzinfo=UTC)


@pytest.mark.parametrize("raw", ["\x00", "a\x00b", "\n"])
def test_a_cursor_with_control_characters_is_not_one_this_api_issued(raw: str) -> None:
    with pytest.raises(Problem) as e:
        decode_cursor(encode_cursor(raw))
    assert e.value.status == 400


def test_only_what_token_urlsafe_issues_can_name_a_calendar_feed() -> None:
    assert TOKEN.fullmatch("Zm9vYmFy-_09")
    assert not any(TOKEN.fullmatch(t) for t in ("a\x00b", "x" * 65, "☃", "a/b", ""))


@pytest.mark.parametrize(("model", "body"), [
    (ProgramIn, {**PROGRAM, "title": "a\x00b"}),
    (ProgramIn, {**PROGRAM, "competencies": ["a\x00b"]}),
    (ProgramIn, {**PROGRAM, "capacity": "5"}),  # lax pydantic read it as 5
    (ProgramIn, {**PROGRAM, "open_to_all": "yes"}),
    (ImportIn, {"csv": "a,b", "mapping": {"a\x00": "0190a000-0000-7000-8000-0000000000a1"}}),
    (AdjustIn, {"reason": "late", "minutes_present": 10**12}),  # INTEGER column: once a 500 on PostgreSQL
    (AdjustIn, {"reason": "late", "attended": 1}),
    (JustificationsIn, {"items": [{"finding_id": "f", "reason": "staff name", "extra": 1}]}),
])
def test_request_bodies_refuse_nul_coercions_and_unknown_fields(model: type, body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        model.model_validate(body)  # type: ignore[attr-defined]


def test_names_outside_latin1_are_transliterated_on_the_certificate_pdf() -> None:
    # fpdf2's core fonts are Latin-1: accents Latin-1 has are kept, others lose their mark, the rest is '?'.
    assert _latin1("Zoë Ngũgĩ") == "Zoë Ngugi"
    assert _latin1("李 Wei") == "? Wei"
    cert = SimpleNamespace(
        issued_on=date(2027, 5, 1), program_title="ECHO 李 🎉", person_name="Zoë Ngũgĩ 李\u200b😀" * 20,
        agency_name="Agência ☃", cycle="2027", hours=1.5, verification_code="ABCDEFGHJKMN",
        sessions=[{"starts_at": "2027-03-02T16:00:00+00:00", "title": "Séance 李" * 40, "hours": 1.5}] * 40)
    pdf = certificate_pdf(cert, "America/Chicago")  # type: ignore[arg-type]
    assert pdf.startswith(b"%PDF-") and len(pdf) > 2000
