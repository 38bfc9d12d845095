"""Attendance rules: participant reports (Zoom, BigBlueButton), segments, the threshold, CE rules, codes, PDF."""

from __future__ import annotations

import io
import itertools
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pypdf import PdfReader

from services.community.domain import attendance as rules
from services.community.domain.attendance import (
    CountRule,
    CycleSession,
    MalformedReport,
    Segment,
    ShareRule,
    evaluate,
    merge_segments,
    parse_report,
    presence,
)
from services.community.models import Certificate
from services.community.usecases.certificates import certificate_pdf

START = datetime(2027, 1, 5, 16, 0, tzinfo=UTC)  # 10:00 in Chicago
END = START + timedelta(hours=1)
CHICAGO = "America/Chicago"

ZOOM = """Meeting ID,Topic,Start Time,End Time,User Email,Duration (Minutes),Participants
812 3456 7890,MiiWrap ECHO,01/05/2027 09:55:02 AM,01/05/2027 11:03:40 AM,host@example.org,69,3

Name (Original Name),User Email,Join Time,Leave Time,Duration (Minutes),Guest
Ana Ruiz (Ana R.),ana@example.org,01/05/2027 09:58:10 AM,01/05/2027 10:30:00 AM,32,No
Ana Ruiz (Ana R.),ana@example.org,01/05/2027 10:34:00 AM,01/05/2027 11:03:00 AM,29,No
Ben Okafor,,01/05/2027 10:20:00 AM,01/05/2027 10:50:00 AM,30,Yes
"""

BBB = """Name,Moderator,Activity Score,Talk time,Webcam Time,Messages,Joined,Left,Status
Ana Ruiz,false,7,00:05:00,00:20:00,3,2027-01-05T16:00:00Z,2027-01-05T16:40:00Z,Offline
Ana Ruiz,false,2,00:00:00,00:00:00,0,2027-01-05T16:39:00Z,2027-01-05T17:10:00Z,Offline
Facilitator One,true,9,00:30:00,00:50:00,5,2027-01-05 09:50:00,2027-01-05 11:00:00,Offline
"""


def by_name(report: rules.Report) -> dict[str, rules.Participant]:
    return {p.name: p for p in report.participants}


def test_zoom_report_rejoin_is_merged_in_the_sessions_zone():
    report = parse_report(ZOOM, "auto", CHICAGO)
    assert report.format == "zoom"
    ana = by_name(report)["Ana Ruiz (Ana R.)"]
    assert ana.email == "ana@example.org" and ana.lines == [5, 6]  # the preamble and blank line count
    assert ana.segments[0].joined_at == datetime(2027, 1, 5, 15, 58, 10, tzinfo=UTC)  # CST is UTC-6
    seen = presence(ana.segments, START, END)
    # Clipped to 10:00–11:00 local, the gap 10:30–10:34 is out: 56 minutes, share 56/60.
    assert seen.minutes_present == 56 and seen.share == round(56 / 60, 4) and seen.attended
    assert [(s.joined_at.minute, s.left_at.minute) for s in seen.segments] == [(0, 30), (34, 0)]
    ben = by_name(report)["Ben Okafor"]
    assert ben.email == "" and presence(ben.segments, START, END).minutes_present == 30
    assert not presence(ben.segments, START, END).attended


def test_bbb_report_overlapping_rejoin_counts_once():
    report = parse_report(BBB, "auto", CHICAGO)
    assert report.format == "bbb"
    ana = by_name(report)["Ana Ruiz"]
    seen = presence(ana.segments, START, END)
    assert seen.segments == [Segment(START, END)] and seen.minutes_present == 60 and seen.share == 1.0
    # Naive BigBlueButton times are read in the session's zone, too.
    fac = by_name(report)["Facilitator One"]
    assert fac.segments[0].joined_at == datetime(2027, 1, 5, 15, 50, tzinfo=UTC)


def test_explicit_format_must_match_the_header():
    with pytest.raises(MalformedReport) as e:
        parse_report(BBB, "zoom", CHICAGO)
    assert e.value.errors[0].line == 1 and "bbb" in e.value.errors[0].msg
    assert parse_report(ZOOM, "zoom", CHICAGO).format == "zoom"


def test_a_malformed_report_is_rejected_whole_with_every_bad_line():
    bad = ZOOM.replace("01/05/2027 10:30:00 AM", "half past ten") + (
        "Carla Diaz,c@example.org,01/05/2027 10:40:00 AM,01/05/2027 10:10:00 AM,0,No\n"
        ",x@example.org,01/05/2027 10:40:00 AM,01/05/2027 10:50:00 AM,10,No\n"
        "Dan Li,d@example.org\n")
    with pytest.raises(MalformedReport) as e:
        parse_report(bad, "auto", CHICAGO)
    assert [(err.line, err.msg.split(" ")[1]) for err in e.value.errors] == [
        (5, "leave"), (8, "leave"), (9, "name"), (10, "6")]
    assert "half past ten" in e.value.errors[0].msg


@pytest.mark.parametrize("text", ["", "just some words\nand more\n", "a,b,c\n1,2,3\n"])
def test_no_header_is_malformed_at_line_one(text: str):
    with pytest.raises(MalformedReport) as e:
        parse_report(text, "auto", CHICAGO)
    assert e.value.errors[0].line == 1


def test_threshold_edge():
    exactly = [Segment(START, START + timedelta(minutes=45))]
    assert presence(exactly, START, END, 0.75).attended
    short = [Segment(START, START + timedelta(minutes=44, seconds=59))]
    assert not presence(short, START, END, 0.75).attended
    # 90 minutes: 67.5 minutes is exactly 75%, despite float arithmetic.
    long_end = START + timedelta(minutes=90)
    assert presence([Segment(START, START + timedelta(minutes=67, seconds=30))], START, long_end).attended
    assert rules.attended_by_share(0.75, 0.75) and not rules.attended_by_share(0.7499, 0.75)


def test_zoom_name_variants_match_either_name():
    assert rules.name_variants("Ana Ruiz (Ana R.)") == ["ana ruiz (ana r.)", "ana ruiz", "ana r."]
    assert rules.name_variants("  Ben   Okafor ") == ["ben okafor"]


# ---- segments: properties ---------------------------------------------------------------------------

minutes = st.integers(min_value=-30, max_value=90)
segments = st.lists(st.tuples(minutes, st.integers(min_value=0, max_value=60)), max_size=12).map(
    lambda xs: [Segment(START + timedelta(minutes=a), START + timedelta(minutes=a + d)) for a, d in xs])


@given(segments)
def test_merged_segments_are_sorted_disjoint_and_inside_the_session(segs: list[Segment]):
    merged = merge_segments(segs, START, END)
    assert all(START <= s.joined_at < s.left_at <= END for s in merged)
    assert all(a.left_at < b.joined_at for a, b in itertools.pairwise(merged))
    assert merge_segments(reversed(segs), START, END) == merged  # order of the rows does not matter
    assert merge_segments(segs + segs, START, END) == merged  # a duplicated row counts once
    # Every clipped instant of the input is covered by the merge.
    for s in segs:
        lo, hi = max(s.joined_at, START), min(s.left_at, END)
        if lo < hi:
            assert any(m.joined_at <= lo and hi <= m.left_at for m in merged)


@given(segments, segments)
def test_more_segments_never_lower_presence(a: list[Segment], b: list[Segment]):
    one, both = presence(a, START, END), presence(a + b, START, END)
    assert both.seconds >= one.seconds and both.share >= one.share and (both.attended or not one.attended)
    assert 0 <= both.share <= 1 and both.minutes_present <= 60


# ---- continuing education ---------------------------------------------------------------------------

cycle_sessions = st.lists(st.tuples(st.booleans(), st.sampled_from([1.0, 1.5, 2.0])), min_size=0, max_size=30).map(
    lambda xs: [CycleSession(f"s{i:02}", f"Session {i}", START + timedelta(days=14 * i), h, att)
                for i, (att, h) in enumerate(xs)])


@given(cycle_sessions, st.floats(min_value=0.05, max_value=1.0))
def test_share_rule_is_met_exactly_at_the_share(sessions: list[CycleSession], min_share: float):
    result = evaluate(ShareRule(min_share), sessions)
    attended = sum(s.attended for s in sessions)
    assert result.met == (bool(sessions) and attended / len(sessions) >= min_share - 1e-9)
    assert result.attended == attended and result.total == len(sessions)
    assert result.hours == round(sum(s.hours for s in sessions if s.attended), 2)


@given(cycle_sessions, st.integers(min_value=1, max_value=30))
def test_count_rule(sessions: list[CycleSession], n: int):
    result = evaluate(CountRule(n), sessions)
    assert result.met == (sum(s.attended for s in sessions) >= n)
    assert [s.id for s in result.counted] == sorted(s.id for s in sessions if s.attended)


@given(cycle_sessions, st.data())
def test_attending_more_never_unmeets_a_rule(sessions: list[CycleSession], data: st.DataObject):
    rule = data.draw(st.one_of(st.builds(ShareRule, st.floats(0.05, 1.0)), st.builds(CountRule, st.integers(1, 30))))
    if not sessions:
        return
    i = data.draw(st.integers(0, len(sessions) - 1))
    more = [CycleSession(s.id, s.title, s.starts_at, s.hours, s.attended or j == i) for j, s in enumerate(sessions)]
    assert evaluate(rule, more).met or not evaluate(rule, sessions).met


def test_share_rule_examples():
    ten = [CycleSession(f"s{i}", "t", START + timedelta(days=i), 1.5, i < 8) for i in range(10)]
    assert evaluate(ShareRule(0.8), ten).met and evaluate(ShareRule(0.8), ten).hours == 12.0
    assert not evaluate(ShareRule(0.81), ten).met
    assert evaluate(ShareRule(0.8), ten).needed == 8  # not 9 because 0.8 * 10 = 8.000000000000002
    assert not evaluate(ShareRule(0.8), []).met


def test_rule_from_the_program():
    assert rules.rule_from({"kind": "share", "min_share": 0.8}) == ShareRule(0.8)
    assert rules.rule_from({"kind": "count", "sessions": 6}) == CountRule(6)
    assert rules.rule_from({}) is None and rules.rule_from(None) is None


def test_the_cycle_is_the_calendar_year_in_the_programs_zone():
    new_years_eve = datetime(2028, 1, 1, 2, 0, tzinfo=UTC)  # 20:00 on 31 December in Chicago
    assert rules.cycle_of(new_years_eve, CHICAGO) == "2027" and rules.cycle_of(new_years_eve, "UTC") == "2028"
    start, end = rules.cycle_bounds("2027", CHICAGO)
    assert start == datetime(2027, 1, 1, 6, tzinfo=UTC) and end == datetime(2028, 1, 1, 6, tzinfo=UTC)


# ---- verification codes -----------------------------------------------------------------------------


@settings(max_examples=50)
@given(st.text(alphabet=rules.CODE_ALPHABET, min_size=12, max_size=12))
def test_a_code_survives_how_people_type_it(code: str):
    typed = rules.display_code(code).lower().replace("0", "o").replace("1", "l")
    assert rules.normal_code(typed) == code and rules.normal_code(f" {code[:6]} {code[6:]} ") == code


def test_bad_codes():
    assert rules.normal_code("ABCD") is None and rules.normal_code("ABCD-EFGH-JKMU") is None  # U is not used


# ---- the PDF ----------------------------------------------------------------------------------------


def test_certificate_pdf_carries_name_agency_program_sessions_hours_and_code():
    cert = Certificate(
        id="c1", program_id="p1", person_id="x", agency_id="a", cycle="2027", person_name="Zoë Ñúñez",
        agency_name="Northside Family Services", program_title="MiiWrap ECHO: family team meetings",
        sessions=[{"id": "s1", "title": "Engaging families", "starts_at": START.isoformat(), "hours": 1.5},
                  {"id": "s2", "title": "Crisis plans ✓", "starts_at": (START + timedelta(days=14)).isoformat(),
                   "hours": 1.5}],
        hours=3.0, verification_code="7K3MQ9XA2BCD", issued_on=date(2027, 1, 19))
    pdf = certificate_pdf(cert, CHICAGO)
    assert pdf.startswith(b"%PDF") and certificate_pdf(cert, CHICAGO) == pdf  # same row, same bytes
    text = " ".join((page.extract_text() or "") for page in PdfReader(io.BytesIO(pdf)).pages)
    for expected in ("Zoë Ñúñez", "Northside Family Services", "MiiWrap ECHO: family team meetings",
                     "Engaging families", "3 hours", "7K3M-Q9XA-2BCD", "2027-01-05", "2027-01-19"):
        assert expected in text, expected
