"""Follow-ups to the community QA pass, at use-case level on both databases (plus the REST wiring):
a series registration is durable (sessions created later seat the series' people, cancelling it ends
it, a leaver's ends too), reminders follow a moved session, a started session's history stays true,
and an outstanding offer never outlives a session moved earlier."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from services.community.app import CHORES
from services.community.models import ROSTER, Registration, ReminderSent, SeriesRegistration, Session
from services.community.usecases import programs as pu
from services.community.usecases import registration as uc
from tests.integration.test_community_qa import enrol, who
from tests.integration.test_community_registration import NOW, START, db_of, make_session
from tests.integration.test_gateway_community import Gateway, gql  # noqa: F401 (the gateway fixture, reused)
from tests.stack import Instant, Stack, problem, service_db
from trellis.db import Database, outbox
from trellis.problems import Problem

SERVICES = ("community",)  # for the `st` fixture
WEEKLY = {"dtstart": "2027-01-05T10:00:00", "rrule": "FREQ=WEEKLY"}  # unbounded: the chore extends it


@pytest.fixture
async def setup(tmp_path: Path, make_db_url: Any) -> Any:
    instant = Instant(NOW)
    async with service_db("community", tmp_path, instant.today, now=instant, url=make_db_url("community")) as db:
        yield db, instant


async def new_program(db: Database, hub: str, agency: str, **over: Any) -> str:
    fields = {"title": "MiiWrap ECHO", "timezone": "America/Chicago", "recurrence": WEEKLY, "duration_minutes": 90,
              "capacity": 1, **over}
    async with db.unit_of_work() as uow:
        program = await pu.create_program(uow, pu.CreateProgram(who(hub, agency, "facilitator"), fields))
    return program.id


async def regs_of(db: Database, program_id: str, person: str) -> dict[str, Registration]:
    """session id -> the person's registration there."""
    async with db.reader() as uow:
        return {r.session_id: r for r in (await uow.scalars(select(Registration).where(
            Registration.program_id == program_id, Registration.person_id == person))).all()}


async def session_ids(db: Database, program_id: str) -> list[str]:
    async with db.reader() as uow:
        return list((await uow.scalars(select(Session.id).where(Session.program_id == program_id)
                                       .order_by(Session.starts_at))).all())


async def staged(db: Database, name: str) -> int:
    async with db.reader() as uow:
        return int((await uow.execute(select(func.count()).select_from(outbox).where(
            outbox.c.event_type == f"community.{name}.v1"))).scalar_one())


async def test_a_series_registration_seats_its_people_at_sessions_the_expansion_chore_adds_later(setup: Any) -> None:
    db, instant = setup
    agency, hub, first, second, gone = (str(uuid.uuid4()) for _ in range(5))
    await enrol(db, agency, first, second, gone)
    pid = await new_program(db, hub, agency)
    for person in (first, second, gone):
        async with db.unit_of_work() as uow:
            await uc.register_series(uow, uc.RegisterSeries(who(person, agency), pid))
        instant.move(seconds=1)  # the series' order is the order registered (created_at)
    async with db.unit_of_work() as uow:  # `gone` is no longer active staff (no StaffMemberLeft seen yet)
        await uow.execute(update(ROSTER.t).where(ROSTER.t.c.person_id == gone).values(status="left"))
    before = set(await session_ids(db, pid))
    confirmed = await staged(db, "RegistrationConfirmed")

    instant.move(days=14)
    assert await CHORES["session-expansion"](db) == 2
    new = [s for s in await session_ids(db, pid) if s not in before]
    assert len(new) == 2
    mine, theirs, left = [await regs_of(db, pid, p) for p in (first, second, gone)]
    # First come, first served among the series' people: one seat, the second person waits.
    assert [(mine[s].status, mine[s].via) for s in new] == [("confirmed", "series")] * 2
    assert [(theirs[s].status, theirs[s].via) for s in new] == [("waiting", "series")] * 2
    assert not set(new) & set(left)
    assert await staged(db, "RegistrationConfirmed") == confirmed + 2

    # Cancelling the series ends it: future seats cancelled (passed on), no more automatic seats.
    async with db.unit_of_work() as uow:
        ended = await uc.cancel_series(uow, uc.RegisterSeries(who(first, agency), pid))
    assert ended and {s.row.status for s in ended} == {"cancelled"}
    mine, theirs = [await regs_of(db, pid, p) for p in (first, second)]
    async with db.reader() as uow:
        future = set((await uow.scalars(select(Session.id).where(
            Session.program_id == pid, Session.starts_at > instant.now))).all())
    assert {r.status for s, r in mine.items() if s in future} == {"cancelled"}
    assert {r.status for s, r in mine.items() if s not in future} == {"confirmed"}  # the past stays true
    assert {theirs[s].status for s in new} == {"offered"}
    instant.move(days=14)
    assert await CHORES["session-expansion"](db) == 2
    later = [s for s in await session_ids(db, pid) if s not in before and s not in new]
    mine, theirs = [await regs_of(db, pid, p) for p in (first, second)]
    assert not set(later) & set(mine)
    assert [theirs[s].status for s in later] == ["confirmed"] * 2
    async with db.unit_of_work() as uow:  # the series is over: cancelling again is a conflict
        with pytest.raises(Problem) as e:
            await uc.cancel_series(uow, uc.RegisterSeries(who(first, agency), pid))
    assert e.value.status == 409


async def test_a_recurrence_edit_that_adds_occurrences_seats_the_series_and_a_leaver_s_series_ends(
    setup: Any,
) -> None:
    db, _ = setup
    agency, hub, stays, leaves = (str(uuid.uuid4()) for _ in range(4))
    await enrol(db, agency, stays, leaves)
    pid = await new_program(db, hub, agency, capacity=5,
                            recurrence={"dtstart": "2027-01-05T10:00:00", "rrule": "FREQ=WEEKLY;COUNT=4"})
    for person in (stays, leaves):
        async with db.unit_of_work() as uow:
            await uc.register_series(uow, uc.RegisterSeries(who(person, agency), pid))
    async with db.unit_of_work() as uow:
        assert await uc.release_seats_of_leaver(uow, agency, leaves) == 4
    async with db.reader() as uow:
        series = {r.person_id: r for r in (await uow.scalars(select(SeriesRegistration))).all()}
    assert series[stays].cancelled_at is None and series[leaves].cancelled_at == NOW
    before = set(await session_ids(db, pid))
    async with db.unit_of_work() as uow:  # back on the roster: their series stays ended all the same
        await uow.execute(update(ROSTER.t).where(ROSTER.t.c.person_id == leaves).values(status="active"))
    async with db.unit_of_work() as uow:
        await pu.update_program(uow, pu.UpdateProgram(who(hub, agency, "facilitator"), pid, {
            "recurrence": {"dtstart": "2027-01-05T10:00:00", "rrule": "FREQ=WEEKLY;BYDAY=TU,TH;COUNT=8"}}))
    new = [s for s in await session_ids(db, pid) if s not in before]
    assert len(new) == 4
    kept, gone = [await regs_of(db, pid, p) for p in (stays, leaves)]
    assert [(kept[s].status, kept[s].via) for s in new] == [("confirmed", "series")] * 4
    assert not set(new) & set(gone)


async def test_reminders_follow_a_moved_session_once_per_person_lead_and_start(setup: Any) -> None:
    db, instant = setup
    agency, hub, person = (str(uuid.uuid4()) for _ in range(3))
    await enrol(db, agency, person)
    sid = await make_session(db, capacity=2, hub=(hub, agency))  # starts NOW + 30 h
    async with db.unit_of_work() as uow:
        await uc.register(uow, uc.Register(who(person, agency), sid))
    sweep = CHORES["reminder-sweep"]
    instant.now = START - timedelta(hours=23)
    assert await sweep(db) == 1  # the 24 h reminder for the first start
    moved = START + timedelta(days=2)
    async with db.unit_of_work() as uow:
        await pu.update_session(uow, pu.UpdateSession(who(hub, agency, "facilitator"), sid, {
            "starts_at": moved, "ends_at": moved + timedelta(minutes=90)}))
    assert await sweep(db) == 0  # not due yet for the new start
    instant.now = moved - timedelta(hours=23)
    assert await sweep(db) == 1  # due again, for the new start
    assert await sweep(db) == 0  # and only once
    instant.now = moved - timedelta(minutes=30)
    assert await sweep(db) == 1
    async with db.reader() as uow:
        rows = sorted(((r.lead, r.starts_at) for r in (await uow.scalars(select(ReminderSent))).all()),
                      key=lambda x: x[1])
        ids = set((await uow.scalars(select(outbox.c.event_id).where(
            outbox.c.event_type == "community.SessionReminderDue.v1"))).all())
    assert [(lead, at.astimezone(UTC)) for lead, at in rows] == [("24h", START), ("24h", moved), ("1h", moved)]
    assert len(ids) == 3


async def test_a_started_session_refuses_every_change_but_its_materials(setup: Any) -> None:
    db, instant = setup
    agency, hub = str(uuid.uuid4()), str(uuid.uuid4())
    sid = await make_session(db, capacity=2, hub=(hub, agency))
    instant.now = START + timedelta(minutes=30)
    scheduled = await staged(db, "SessionScheduled")
    for change in ({"title": "Renamed"}, {"topic": "Other"}, {"capacity": 9}, {"competencies": ["x"]},
                   {"meeting_url": "https://elsewhere.example.org"}, {"title": "T", "materials": []},
                   {"starts_at": START + timedelta(days=1)}):
        async with db.unit_of_work() as uow:
            with pytest.raises(Problem) as e:
                await pu.update_session(uow, pu.UpdateSession(who(hub, agency, "facilitator"), sid, change))
        assert (e.value.status, e.value.slug) == (409, "session-started"), change
    async with db.reader() as uow:
        s = await uow.get(Session, sid)
        assert s is not None and (s.title, s.capacity, s.revision) == ("Family team meetings", 2, 1)
    assert await staged(db, "SessionScheduled") == scheduled
    slides = [{"title": "Slides", "url": "https://x.org/slides"}]
    async with db.unit_of_work() as uow:
        s = await pu.update_session(uow, pu.UpdateSession(who(hub, agency, "facilitator"), sid, {"materials": slides}))
        assert s.materials == slides


async def test_an_outstanding_offer_is_capped_at_a_start_moved_earlier(setup: Any) -> None:
    db, _ = setup
    agency, hub, a, b = (str(uuid.uuid4()) for _ in range(4))
    await enrol(db, agency, a, b)
    sid = await make_session(db, capacity=1, hub=(hub, agency))  # starts NOW + 30 h; offers last 24 h
    async with db.unit_of_work() as uow:
        first = await uc.register(uow, uc.Register(who(a, agency), sid))
    async with db.unit_of_work() as uow:
        second = await uc.register(uow, uc.Register(who(b, agency), sid))
    async with db.unit_of_work() as uow:
        await uc.cancel(uow, uc.Act(who(a, agency), first.row.id))
    earlier = NOW + timedelta(hours=5)
    async with db.unit_of_work() as uow:
        await pu.update_session(uow, pu.UpdateSession(who(hub, agency, "facilitator"), sid, {
            "starts_at": earlier, "ends_at": earlier + timedelta(hours=1)}))
    async with db.reader() as uow:
        offer = await uow.get(Registration, second.row.id)
    assert offer is not None and offer.status == "offered"
    assert offer.offer_expires_at is not None and offer.offer_expires_at.astimezone(UTC) == earlier


async def test_cancelling_a_series_over_rest(st: Stack) -> None:
    agency = str(uuid.uuid4())
    person, other = await st.staffed(agency, 2)
    sid = await make_session(db_of(st), capacity=1, starts_at=datetime.now(UTC) + timedelta(days=2))
    async with db_of(st).reader() as uow:
        pid = (await uow.get(Session, sid)).program_id  # type: ignore[union-attr]
    me = st.token(agency, "practitioner", sub=person)
    r = await st.community.post(f"/v1/programs/{pid}/registrations", headers=me)
    assert r.status_code == 201, r.text
    problem(await st.community.post(f"/v1/programs/{pid}/registrations/cancel", json={"person_id": person},
                                    headers=st.token(agency, "practitioner", sub=other)), 403)
    r = await st.community.post(f"/v1/programs/{pid}/registrations/cancel", headers=me)
    assert r.status_code == 200, r.text
    assert [(x["session_id"], x["status"]) for x in r.json()["items"]] == [(sid, "cancelled")]
    problem(await st.community.post(f"/v1/programs/{pid}/registrations/cancel", headers=me), 409)


async def test_cancel_series_through_the_gateway(gql: Gateway) -> None:  # noqa: F811 (the imported fixture)
    w = gql.world
    series = """mutation($p: ID!) { registerSeries(programId: $p) { id status } }"""
    assert len((await gql.ok(series, gql.as_(w.ben), p=w.program))["registerSeries"]) == 20
    cancel = """mutation($p: ID!) { cancelSeries(programId: $p) { sessionId status } }"""
    ended = (await gql.ok(cancel, gql.as_(w.ben), p=w.program))["cancelSeries"]
    assert sorted(r["sessionId"] for r in ended) == sorted(w.sessions)
    assert {r["status"] for r in ended} == {"cancelled"}
    ext = await gql.refused(cancel, gql.as_(w.ben), p=w.program)
    assert ext["status"] == 409
