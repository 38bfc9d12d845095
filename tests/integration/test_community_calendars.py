"""iCalendar feeds behind revocable secret URLs, without sign-in, on both databases: parsed back with
icalendar (TZID and VTIMEZONE), a person's feed holds their sessions and the meeting link only once
confirmed, a program's feed never holds it, and rotating revokes the old URL (404)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import pytest

from tests.conftest import make_settings
from tests.stack import Instant, Stack, problem, running_stack
from tests.support import NatsServer

NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
CHICAGO = ZoneInfo("America/Chicago")


@pytest.fixture
async def stack(nats_server: NatsServer, make_db_url: Any, tmp_path: Path) -> AsyncIterator[Stack]:
    instant = Instant(NOW)
    async with running_stack(make_settings(nats_server.url, tmp_path), {"community": make_db_url("community")},
                             now=instant, clock=instant.today) as st:
        yield st


async def program_with_sessions(st: Stack, headers: dict[str, str], capacity: int = 1) -> tuple[str, list[str]]:
    r = await st.community.post("/v1/programs", headers=headers, json={
        "title": "MiiWrap ECHO", "timezone": "America/Chicago", "duration_minutes": 60, "capacity": capacity,
        "recurrence": {"dtstart": "2027-03-09T10:00:00", "rrule": "FREQ=WEEKLY;COUNT=3"},
        "meeting_url": "https://meet.example.org/echo"})
    assert r.status_code == 201, r.text
    r = await st.community.get("/v1/sessions", params={"program_id": r.json()["id"]}, headers=headers)
    return r.json()["items"][0]["program_id"], [s["id"] for s in r.json()["items"]]


async def ics(st: Stack, path: str) -> icalendar.Calendar:
    r = await st.community.get(path)  # no Authorization header: the URL is the secret
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/calendar; charset=utf-8"
    return icalendar.Calendar.from_ical(r.content)


def events(cal: icalendar.Calendar) -> dict[str, icalendar.Event]:
    return {str(e["UID"]).removesuffix("@trellis"): e for e in cal.walk("VEVENT")}


async def test_a_persons_feed_holds_their_sessions_with_the_link_only_once_confirmed(stack: Stack) -> None:
    agency = str(uuid.uuid4())
    fac = stack.token(agency, "facilitator")
    _, (s1, s2, s3) = await program_with_sessions(stack, fac)
    first, second = await stack.staffed(agency, 2)
    me = stack.token(agency, "practitioner", sub=second)
    first_h = stack.token(agency, "practitioner", sub=first)
    held = await stack.community.post(f"/v1/sessions/{s1}/registrations", headers=first_h)
    assert held.status_code == 201, held.text
    waiting = (await stack.community.post(f"/v1/sessions/{s1}/registrations", headers=me)).json()
    assert waiting["status"] == "waiting"
    assert (await stack.community.post(f"/v1/sessions/{s2}/registrations", headers=me)).json()["status"] == "confirmed"
    assert (await stack.community.post(f"/v1/sessions/{s3}/registrations", headers=me)).json()["status"] == "confirmed"

    r = await stack.community.get("/v1/people/me/calendar-feed", headers=me)
    assert r.status_code == 200, r.text
    feed = r.json()
    assert feed["path"] == f"/v1/calendar/{feed['token']}.ics" and len(feed["token"]) >= 40
    assert (await stack.community.get("/v1/people/me/calendar-feed", headers=me)).json() == feed  # stable

    cal = await ics(stack, feed["path"])
    [tz] = cal.walk("VTIMEZONE")
    assert tz["TZID"] == "America/Chicago"
    got = events(cal)
    assert set(got) == {s2, s3}  # waiting for s1: not in the calendar
    e2 = got[s2]
    assert e2["DTSTART"].params["TZID"] == "America/Chicago"
    # 16 March, after the change to daylight time: still 10:00 in Chicago.
    assert e2.decoded("DTSTART") == datetime(2027, 3, 16, 10, tzinfo=CHICAGO)
    assert str(e2["URL"]) == "https://meet.example.org/echo" and str(e2["STATUS"]) == "CONFIRMED"

    # Cancelling a session keeps it in the feed as cancelled, without the link.
    assert (await stack.community.post(f"/v1/sessions/{s3}/cancel", json={}, headers=fac)).status_code == 200
    got = events(await ics(stack, feed["path"]))
    assert str(got[s3]["STATUS"]) == "CANCELLED" and "URL" not in got[s3]

    # Offered a seat: in the calendar, still without the link until accepted.
    r = await stack.community.post(f"/v1/registrations/{held.json()['id']}/cancel", headers=first_h)
    assert r.status_code == 200, r.text
    got = events(await ics(stack, feed["path"]))
    assert set(got) == {s1, s2, s3} and "URL" not in got[s1]
    assert (await stack.community.post(f"/v1/registrations/{waiting['id']}/accept", headers=me)).status_code == 200
    assert str(events(await ics(stack, feed["path"]))[s1]["URL"]) == "https://meet.example.org/echo"

    # Rotating revokes the old URL at once.
    r = await stack.community.post("/v1/people/me/calendar-feed/rotate", headers=me)
    assert r.status_code == 200 and r.json()["token"] != feed["token"]
    problem(await stack.community.get(feed["path"]), 404)
    assert set(events(await ics(stack, r.json()["path"]))) == {s1, s2, s3}
    problem(await stack.community.get(f"/v1/calendar/{'x' * 43}.ics"), 404)
    problem(await stack.community.get("/v1/people/me/calendar-feed"), 401)  # issuing one needs sign-in


async def test_a_programs_feed_holds_every_session_never_the_link_and_the_hub_rotates_it(stack: Stack) -> None:
    agency = str(uuid.uuid4())
    fac = stack.token(agency, "facilitator")
    program_id, sessions = await program_with_sessions(stack, fac)
    outsider = stack.token(str(uuid.uuid4()), "practitioner")
    feed = (await stack.community.get(f"/v1/programs/{program_id}/calendar-feed", headers=outsider)).json()
    assert (await stack.community.get(f"/v1/programs/{program_id}/calendar-feed", headers=fac)).json() == feed
    assert (await stack.community.post(f"/v1/sessions/{sessions[0]}/cancel", json={}, headers=fac)).status_code == 200
    got = events(await ics(stack, feed["path"]))
    assert set(got) == set(sessions)
    assert str(got[sessions[0]]["STATUS"]) == "CANCELLED"
    assert not any("URL" in e for e in got.values())
    assert [str(e["DTSTART"].params["TZID"]) for e in got.values()] == ["America/Chicago"] * 3

    problem(await stack.community.post(f"/v1/programs/{program_id}/calendar-feed/rotate", headers=outsider), 403)
    r = await stack.community.post(f"/v1/programs/{program_id}/calendar-feed/rotate", headers=fac)
    assert r.status_code == 200, r.text
    problem(await stack.community.get(feed["path"]), 404)
    await ics(stack, r.json()["path"])
    problem(await stack.community.get(f"/v1/programs/{uuid.uuid4()}/calendar-feed", headers=fac), 404)
