"""Programs and sessions over REST on both databases and a real nats-server: expansion into sessions
with SessionScheduled on the COMMUNITY stream, editing the recurrence changes future sessions only
(on the injectable instant), moving and cancelling one session, competency tags, visibility by agency,
the session list's pages and filters, and bad input answered with problem+json and nothing written."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from services.community.app import CHORES
from services.community.models import Competency, Program, Registration, Session
from tests.conftest import make_settings
from tests.stack import Instant, Stack, eventually, problem, running_stack
from tests.support import NatsServer
from trellis.bus import jetstream
from trellis.db import Database, outbox

# Monday 1 March 2027, noon UTC: daylight saving starts in Chicago on Sunday 14 March.
NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
WEEKLY = {"dtstart": "2027-03-02T10:00:00", "rrule": "FREQ=WEEKLY;BYDAY=TU;COUNT=6"}


@pytest.fixture
async def instant() -> Instant:
    return Instant(NOW)


@pytest.fixture
async def stack(nats_server: NatsServer, make_db_url: Any, tmp_path: Path, instant: Instant
                ) -> AsyncIterator[Stack]:
    settings = make_settings(nats_server.url, tmp_path)
    async with running_stack(settings, {"community": make_db_url("community")}, now=instant,
                             clock=instant.today) as st:
        yield st


def db_of(st: Stack) -> Database:
    return st.apps["community"].state.db  # type: ignore[no-any-return]


def program_body(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": "MiiWrap ECHO: family team meetings", "timezone": "America/Chicago", "recurrence": WEEKLY,
        "duration_minutes": 90, "capacity": 2, "topic": "Needs statements", "competencies": ["Family voice and choice"],
        "meeting_url": "https://meet.example.org/echo", "materials": [{"title": "Slides", "url": "https://x.org/s"}],
    }
    body.update(over)
    return body


async def published(st: Stack, name: str, agency: str = "platform") -> int:
    subject = f"community.{name}.{agency}"
    info = await jetstream(st.apps["community"].state.broker).stream_info("COMMUNITY", subjects_filter=subject)
    return int((info.state.subjects or {}).get(subject, 0))


async def until_published(st: Stack, name: str, n: int, agency: str = "platform") -> None:
    async def check() -> bool:
        return await published(st, name, agency) == n
    await eventually(check)


async def counts(st: Stack) -> tuple[int, int, int]:
    async with db_of(st).reader() as s:
        return tuple([int((await s.execute(select(func.count()).select_from(t))).scalar_one())  # type: ignore[return-value]
                      for t in (Program, Session, outbox)])


async def sessions_of(st: Stack, program_id: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    r = await st.community.get("/v1/sessions", params={"program_id": program_id, "limit": 100}, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()["items"]  # type: ignore[no-any-return]


async def create(st: Stack, headers: dict[str, str], **over: Any) -> dict[str, Any]:
    r = await st.community.post("/v1/programs", json=program_body(**over), headers=headers)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_a_program_is_expanded_into_sessions_across_daylight_saving_and_each_is_announced(stack: Stack) -> None:
    agency, me = str(uuid.uuid4()), str(uuid.uuid4())
    fac = stack.token(agency, "facilitator", sub=me)
    program = await create(stack, fac)
    assert program["hub"] == [{"person_id": me, "agency_id": agency, "role": "facilitator"}]
    assert (program["session_count"], program["is_hub"], program["owner_id"]) == (6, True, me)
    assert program["next_session_at"].startswith("2027-03-02T16:00:00")
    assert program["meeting_url"] == "https://meet.example.org/echo"  # the hub sees it

    items = await sessions_of(stack, program["id"], fac)
    assert [s["starts_at"][:16] for s in items] == ["2027-03-02T16:00", "2027-03-09T16:00", "2027-03-16T15:00",
                                                     "2027-03-23T15:00", "2027-03-30T15:00", "2027-04-06T15:00"]
    first = items[0]
    assert (first["title"], first["topic"], first["timezone"], first["capacity"]) == (
        program["title"], "Needs statements", "America/Chicago", 2)
    assert (first["seats_taken"], first["waiting"], first["my_registration"], first["registration_open"]) == (
        0, 0, None, True)
    await until_published(stack, "SessionScheduled", 6)

    # Someone of another agency sees the program (open to all) but not its meeting link.
    other = stack.token(str(uuid.uuid4()), "practitioner")
    r = await stack.community.get(f"/v1/sessions/{first['id']}", headers=other)
    assert r.status_code == 200 and r.json()["meeting_url"] is None and r.json()["is_hub"] is False
    r = await stack.community.get(f"/v1/programs/{program['id']}", headers=other)
    assert r.status_code == 200 and r.json()["meeting_url"] is None


async def test_editing_the_recurrence_changes_future_sessions_only(stack: Stack, instant: Instant) -> None:
    agency, me = str(uuid.uuid4()), str(uuid.uuid4())
    fac = stack.token(agency, "facilitator", sub=me)
    # Begun two weeks ago: 16 and 23 February are past.
    program = await create(stack, fac, recurrence={"dtstart": "2027-02-16T10:00:00",
                                                   "rrule": "FREQ=WEEKLY;BYDAY=TU;COUNT=6"})
    before = {s["starts_at"][:10]: s for s in await sessions_of(stack, program["id"], fac)}
    assert sorted(before) == ["2027-02-16", "2027-02-23", "2027-03-02", "2027-03-09", "2027-03-16", "2027-03-23"]
    # The hub moved 16 March to Wednesday alone; a participant holds a seat on 9 March.
    moved = before["2027-03-16"]["id"]
    r = await stack.community.patch(f"/v1/sessions/{moved}", headers=fac,
                                    json={"starts_at": "2027-03-17T17:00:00Z", "ends_at": "2027-03-17T18:30:00Z"})
    assert r.status_code == 200 and r.json()["detached"] is True, r.text
    (person,) = await stack.staffed(agency)
    r = await stack.community.post(f"/v1/sessions/{before['2027-03-09']['id']}/registrations",
                                   headers=stack.token(agency, "practitioner", sub=person))
    assert r.status_code == 201 and r.json()["status"] == "confirmed", r.text
    await until_published(stack, "SessionScheduled", 7)

    # Every other Tuesday at 11:00 until the end of March.
    r = await stack.community.patch(f"/v1/programs/{program['id']}", headers=fac, json={"recurrence": {
        "dtstart": "2027-02-16T11:00:00", "rrule": "FREQ=WEEKLY;INTERVAL=2;BYDAY=TU;UNTIL=20270331T000000Z"}})
    assert r.status_code == 200, r.text
    assert r.json()["revision"] == 2 and r.json()["recurrence"]["dtstart"] == "2027-02-16T11:00:00"
    after = {s["id"]: s for s in await sessions_of(stack, program["id"], fac)}

    # The past stays as it was: 10:00 CST.
    for day in ("2027-02-16", "2027-02-23"):
        assert after[before[day]["id"]] == before[day]
    # 2 March: same session, now 11:00 local (17:00 UTC), revision 2.
    kept = after[before["2027-03-02"]["id"]]
    assert (kept["starts_at"][:16], kept["status"], kept["revision"]) == ("2027-03-02T17:00", "scheduled", 2)
    # 9 and 23 March are no longer in the rule: cancelled, and so is the seat held on the 9th.
    for day in ("2027-03-09", "2027-03-23"):
        assert after[before[day]["id"]]["status"] == "cancelled"
    async with db_of(stack).reader() as s:
        reg = (await s.scalars(select(Registration).where(Registration.person_id == person))).one()
    assert (reg.status, reg.cancel_reason) == ("cancelled", "session_cancelled")
    # The moved session is the hub's: untouched, and 16 March is not scheduled a second time.
    assert after[moved]["starts_at"][:16] == "2027-03-17T17:00" and after[moved]["revision"] == 2
    assert not [s for s in after.values() if s["starts_at"].startswith("2027-03-16")]
    # 30 March is new, at 11:00 CDT.
    (new,) = [s for s in after.values() if s["id"] not in {b["id"] for b in before.values()}]
    assert (new["starts_at"][:16], new["revision"]) == ("2027-03-30T16:00", 1)
    await until_published(stack, "SessionCancelled", 2)
    await until_published(stack, "SessionScheduled", 9)  # 7 + the moved 2 March + the new 30 March
    await until_published(stack, "RegistrationCancelled", 1, agency)

    # A program-wide capacity rise reaches future attached sessions only.
    instant.move(days=2)  # 3 March: the 2 March session is past now
    r = await stack.community.patch(f"/v1/programs/{program['id']}", headers=fac, json={"capacity": 5})
    assert r.status_code == 200, r.text
    later = {s["id"]: s for s in await sessions_of(stack, program["id"], fac)}
    assert later[kept["id"]]["capacity"] == 2 and later[moved]["capacity"] == 2 and later[new["id"]]["capacity"] == 5

    # Only a facilitator of the hub edits the program.
    problem(await stack.community.patch(f"/v1/programs/{program['id']}", json={"capacity": 9},
                                        headers=stack.token(agency, "facilitator")), 403)


async def test_moving_and_cancelling_one_session(stack: Stack) -> None:
    agency, me = str(uuid.uuid4()), str(uuid.uuid4())
    fac = stack.token(agency, "facilitator", sub=me)
    program = await create(stack, fac, capacity=1)
    sid = (await sessions_of(stack, program["id"], fac))[0]["id"]
    a, b = await stack.staffed(agency, 2)
    a_h, b_h = (stack.token(agency, "practitioner", sub=p) for p in (a, b))
    url = f"/v1/sessions/{sid}/registrations"
    assert (await stack.community.post(url, headers=a_h)).json()["status"] == "confirmed"
    assert (await stack.community.post(url, headers=b_h)).json()["status"] == "waiting"

    # The confirmed person sees the link and their registration; the waiting one sees their place, no link.
    r = (await stack.community.get(f"/v1/sessions/{sid}", headers=a_h)).json()
    assert (r["meeting_url"], r["my_registration"]["status"], r["seats_taken"], r["waiting"]) == (
        "https://meet.example.org/echo", "confirmed", 1, 1)
    r = (await stack.community.get(f"/v1/sessions/{sid}", headers=b_h)).json()
    assert (r["meeting_url"], r["my_registration"]["waitlist_position"]) == (None, 1)

    # A capacity rise offers the seat to the first waiting.
    r = await stack.community.patch(f"/v1/sessions/{sid}", json={"capacity": 2}, headers=fac)
    assert r.status_code == 200, r.text
    assert (r.json()["capacity"], r.json()["seats_taken"], r.json()["waiting"], r.json()["detached"]) == (2, 2, 0, True)
    await until_published(stack, "WaitlistOffered", 1, agency)
    # Below the seats taken: refused, nothing changed.
    body = problem(await stack.community.patch(f"/v1/sessions/{sid}", json={"capacity": 1}, headers=fac), 422)
    assert body["errors"][0]["field"] == "body.capacity"
    # Moving it: start given alone keeps the length.
    r = await stack.community.patch(f"/v1/sessions/{sid}", headers=fac,
                                    json={"starts_at": "2027-03-03T10:00:00-06:00", "topic": "Moved"})
    assert r.status_code == 200, r.text
    moved = r.json()
    assert (moved["starts_at"][:16], moved["ends_at"][:16], moved["topic"], moved["capacity"], moved["revision"]) == (
        "2027-03-03T16:00", "2027-03-03T17:30", "Moved", 2, 3)
    # Not the hub: no.
    problem(await stack.community.patch(f"/v1/sessions/{sid}", json={"topic": "x"}, headers=a_h), 403)
    problem(await stack.community.post(f"/v1/sessions/{sid}/cancel", json={}, headers=a_h), 403)

    r = await stack.community.post(f"/v1/sessions/{sid}/cancel", json={"reason": "Facilitator ill"}, headers=fac)
    assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text
    assert (r.json()["seats_taken"], r.json()["registration_open"], r.json()["meeting_url"]) == (0, False, None)
    await until_published(stack, "SessionCancelled", 1)
    await until_published(stack, "RegistrationCancelled", 2, agency)
    problem(await stack.community.post(f"/v1/sessions/{sid}/cancel", json={}, headers=fac), 409)
    problem(await stack.community.patch(f"/v1/sessions/{sid}", json={"topic": "x"}, headers=fac), 409)


async def test_competency_tags_must_be_known_once_any_are(stack: Stack) -> None:
    fac = stack.token(str(uuid.uuid4()), "facilitator")
    # None known yet: any tidy name; markup is not a name.
    await create(stack, fac, competencies=["Team process"])
    problem(await stack.community.post("/v1/programs", json=program_body(competencies=["<b>x</b>"]), headers=fac), 422)
    async with db_of(stack).unit_of_work() as uow:
        for name in ("Family voice and choice", "Needs-driven planning"):
            uow.add(Competency(name=name, first_seen_at=NOW))
    r = await stack.community.get("/v1/competencies", headers=fac)
    assert r.json() == {"items": ["Family voice and choice", "Needs-driven planning"]}
    body = problem(await stack.community.post("/v1/programs", json=program_body(competencies=["Team process"]),
                                              headers=fac), 422)
    assert body["errors"][0]["field"] == "body.competencies.0"
    assert body["errors"][0]["known"] == ["Family voice and choice", "Needs-driven planning"]
    program = await create(stack, fac, competencies=["Needs-driven planning"])
    sid = (await sessions_of(stack, program["id"], fac))[0]["id"]
    problem(await stack.community.patch(f"/v1/sessions/{sid}", json={"competencies": ["Nope"]}, headers=fac), 422)
    # The competency filter of the session list.
    r = await stack.community.get("/v1/sessions", params={"competency": "Needs-driven planning"}, headers=fac)
    assert {s["program_id"] for s in r.json()["items"]} == {program["id"]} and len(r.json()["items"]) == 6


async def test_bad_input_is_problem_json_and_writes_nothing(stack: Stack) -> None:
    fac = stack.token(str(uuid.uuid4()), "facilitator")
    before = await counts(stack)
    bad: list[tuple[dict[str, Any], str]] = [
        (program_body(timezone="Central Time"), "body.timezone"),
        (program_body(recurrence={"dtstart": "2027-03-02T10:00:00", "rrule": "FREQ=HOURLY;COUNT=5"}),
         "body.recurrence.rrule"),
        (program_body(recurrence={"dtstart": "2027-03-02T10:00:00-06:00", "rrule": "FREQ=WEEKLY"}),
         "body.recurrence.dtstart"),
        (program_body(recurrence={"dtstart": "2027-03-02T10:00:00", "rrule": "FREQ=WEEKLY;BYDAY=XX"}),
         "body.recurrence.rrule"),
        (program_body(capacity=0), "body.capacity"),
        (program_body(open_to_all=False), "body.agencies"),
        (program_body(meeting_url="javascript:alert(1)"), "body.meeting_url"),
        (program_body(surprise=True), "body.surprise"),
    ]
    for body, field in bad:
        got = problem(await stack.community.post("/v1/programs", json=body, headers=fac), 422)
        assert any(e["field"].startswith(field) for e in got["errors"]), (field, got)
    problem(await stack.community.post("/v1/programs", json=program_body(),
                                       headers=stack.token(str(uuid.uuid4()), "practitioner")), 403)
    assert await counts(stack) == before

    program = await create(stack, fac)
    before = await counts(stack)
    r = await stack.community.patch(f"/v1/programs/{program['id']}", headers=fac, json={
        "timezone": "Nowhere/Else", "recurrence": {"dtstart": "2027-03-02T10:00:00", "rrule": "FREQ=SECONDLY"}})
    assert {e["field"] for e in problem(r, 422)["errors"]} == {"body.timezone", "body.recurrence.rrule"}
    problem(await stack.community.patch(f"/v1/programs/{program['id']}", headers=fac, json={"title": None}), 422)
    sid = (await sessions_of(stack, program["id"], fac))[0]["id"]
    problem(await stack.community.patch(f"/v1/sessions/{sid}", headers=fac, json={"capacity": None}), 422)
    problem(await stack.community.patch(f"/v1/sessions/{sid}", headers=fac,
                                        json={"starts_at": "2027-03-02T12:00:00Z", "ends_at": "2027-03-02T11:00:00Z"}),
            422)
    problem(await stack.community.patch(f"/v1/sessions/{sid}", headers=fac, json={"starts_at": "2027-03-02T12:00:00"}),
            422)  # no offset
    problem(await stack.community.patch(f"/v1/sessions/{sid}", headers=fac, json={"starts_at": "2027-02-01T12:00:00Z"}),
            422)  # the past
    problem(await stack.community.get("/v1/sessions", params={"after": "bm9wZQ"}, headers=fac), 400)
    problem(await stack.community.get("/v1/sessions", params={"from": "2027-04-01T00:00:00Z",
                                                              "to": "2027-03-01T00:00:00Z"}, headers=fac), 422)
    problem(await stack.community.get(f"/v1/sessions/{uuid.uuid4()}", headers=fac), 404)
    assert await counts(stack) == before
    r = (await stack.community.get(f"/v1/programs/{program['id']}", headers=fac)).json()
    assert (r["revision"], r["timezone"]) == (1, "America/Chicago")


async def test_programs_and_their_sessions_are_visible_to_the_agencies_they_are_open_to(stack: Stack) -> None:
    a, b, c = (str(uuid.uuid4()) for _ in range(3))
    fac = stack.token(a, "facilitator")
    expert = str(uuid.uuid4())
    private = await create(stack, fac, title="Agency A only", open_to_all=False, agencies=[a],
                           hub=[{"person_id": expert, "agency_id": c, "role": "expert"}])
    public = await create(stack, fac, title="Everyone")
    sid = (await sessions_of(stack, private["id"], fac))[0]["id"]

    async def seen(headers: dict[str, str]) -> set[str]:
        r = await stack.community.get("/v1/programs", headers=headers)
        assert r.status_code == 200, r.text
        return {p["title"] for p in r.json()["items"]}

    assert await seen(stack.token(a, "practitioner")) == {"Agency A only", "Everyone"}
    outsider = stack.token(b, "practitioner")
    assert await seen(outsider) == {"Everyone"}
    problem(await stack.community.get(f"/v1/programs/{private['id']}", headers=outsider), 404)
    problem(await stack.community.get(f"/v1/sessions/{sid}", headers=outsider), 404)
    r = await stack.community.get("/v1/sessions", params={"limit": 100}, headers=outsider)
    assert {s["program_id"] for s in r.json()["items"]} == {public["id"]}
    # The hub's expert of a third agency sees it (and its link); the platform admin sees everything.
    ex = stack.token(c, "coach", sub=expert)
    assert await seen(ex) == {"Agency A only", "Everyone"}
    r = await stack.community.get(f"/v1/sessions/{sid}", headers=ex)
    assert (r.json()["is_hub"], r.json()["meeting_url"]) == (True, "https://meet.example.org/echo")
    assert await seen(stack.token(b, "platform_admin")) == {"Agency A only", "Everyone"}

    # Pages of the session list, by start time, with the from/to window.
    pages, after = [], None
    while True:
        r = await stack.community.get("/v1/sessions", params={"limit": 5, **({"after": after} if after else {})},
                                      headers=fac)
        pages.append(r.json()["items"])
        after = r.json()["next"]
        if after is None:
            break
    flat = [s for p in pages for s in p]
    assert [len(p) for p in pages] == [5, 5, 2]
    assert [(s["starts_at"], s["id"]) for s in flat] == sorted((s["starts_at"], s["id"]) for s in flat)
    assert len({s["id"] for s in flat}) == 12
    r = await stack.community.get("/v1/sessions", headers=fac, params={
        "from": "2027-03-09T00:00:00Z", "to": "2027-03-23T00:00:00Z", "program_id": public["id"]})
    assert [s["starts_at"][:10] for s in r.json()["items"]] == ["2027-03-09", "2027-03-16"]

    # Hub membership: a facilitator adds and removes; the last facilitator stays.
    me = stack.token(a, "facilitator", sub=public["owner_id"])
    newcomer = str(uuid.uuid4())
    r = await stack.community.post(f"/v1/programs/{public['id']}/hub", headers=me,
                                   json={"person_id": newcomer, "agency_id": b, "role": "expert"})
    assert r.status_code == 200 and len(r.json()["hub"]) == 2, r.text
    r = await stack.community.delete(f"/v1/programs/{public['id']}/hub/{newcomer}", headers=me)
    assert r.status_code == 200 and len(r.json()["hub"]) == 1
    problem(await stack.community.delete(f"/v1/programs/{public['id']}/hub/{public['owner_id']}", headers=me), 409)


async def test_the_expansion_chore_follows_the_horizon_for_unbounded_rules(stack: Stack, instant: Instant) -> None:
    fac = stack.token(str(uuid.uuid4()), "facilitator")
    program = await create(stack, fac, recurrence={"dtstart": "2027-03-02T10:00:00", "rrule": "FREQ=WEEKLY"})
    n = program["session_count"]
    assert 55 <= n <= 60  # 400 days of Tuesdays
    assert await CHORES["session-expansion"](db_of(stack)) == 0
    instant.move(days=14)
    assert await CHORES["session-expansion"](db_of(stack)) == 2
    assert await CHORES["session-expansion"](db_of(stack)) == 0  # once only
    r = await stack.community.get(f"/v1/programs/{program['id']}", headers=fac)
    assert r.json()["session_count"] == n + 2
    await until_published(stack, "SessionScheduled", n + 2)
