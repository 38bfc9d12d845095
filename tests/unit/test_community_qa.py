"""QA: participant reports as real Zoom and BigBlueButton servers write them, outside the US defaults."""

from __future__ import annotations

from datetime import UTC, datetime

from services.community.domain.attendance import parse_report

START = datetime(2027, 3, 2, 10, 0, tzinfo=UTC)  # Tuesday 2 March 2027, 10:00 in London (GMT)


def test_a_day_first_report_is_read_around_the_session_not_as_another_month() -> None:
    # A UK server writes 2 March as 02/03/2027; read month-first it is 3 February and the person
    # silently "was not there".
    report = parse_report("Name,Moderator,Joined,Left\n\"Ruiz, Ana\",false,02/03/2027 10:00:00,02/03/2027 11:00:00\n",
                          "auto", "Europe/London", near=START)
    [ana] = report.participants
    assert ana.name == "Ruiz, Ana"
    assert ana.segments[0].joined_at == START


def test_browser_locale_times_with_a_comma_are_read() -> None:
    # BigBlueButton's learning dashboard writes times as the browser formats them: "3/2/2027, 10:00:00 AM".
    us = parse_report('Name,Join,Left\nAna,"3/2/2027, 10:00:00 AM","3/2/2027, 11:00:00 AM"\n', "auto",
                      "Europe/London", near=START)
    uk = parse_report('Name,Join,Left\nAna,"02/03/2027, 10:00:00","02/03/2027, 11:00:00"\n', "auto",
                      "Europe/London", near=START)
    assert us.participants[0].segments[0].joined_at == uk.participants[0].segments[0].joined_at == START


def test_time_in_zoom_s_waiting_room_is_not_time_in_the_session() -> None:
    # Zoom's newer participant export has an "In waiting room" column: those rows are time spent waiting to
    # be admitted, not time in the meeting.
    report = parse_report(
        "Meeting ID,Topic,Start time,End time,User email,Duration (minutes),Participants\n"
        "812 3456 7890,MiiWrap ECHO,03/02/2027 09:55:00 AM,03/02/2027 11:00:00 AM,host@example.org,65,2\n"
        "\n"
        "Name (original name),Email,Join time,Leave time,Duration (minutes),Guest,"
        "Recording disclaimer response,In waiting room\n"
        "Ana Ruiz,ana@example.org,03/02/2027 09:55:00 AM,03/02/2027 10:30:00 AM,35,No,,Yes\n"
        "Ana Ruiz,ana@example.org,03/02/2027 10:30:00 AM,03/02/2027 11:00:00 AM,30,No,OK,No\n",
        "auto", "Europe/London", near=START)
    [ana] = report.participants
    assert [(s.joined_at.hour, s.joined_at.minute) for s in ana.segments] == [(10, 30)]
