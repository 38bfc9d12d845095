"""Registration on real databases and a real nats-server: capacity under contention on two replicas,
the waiting list, offers passing on with the injectable instant, and reminders published exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event, func, select

from contracts.readiness import StaffMemberLeft
from services.community.app import CHORES
from services.community.models import ROSTER, HubMember, Person, Program, Registration, Session
from tests.conftest import make_settings
from tests.stack import Instant, Stack, eventually, problem, running_stack, service_db
from tests.support import NatsServer
from trellis.bus import jetstream
from trellis.db import Database, outbox
from trellis.envelope import Envelope

NOW = datetime(2027, 1, 4, 10, 0, tzinfo=UTC)
START = NOW + timedelta(hours=30)
SERVICES = ("community",)  # for the `st` fixture


async def make_session(db: Database, *, capacity: int, starts_at: datetime = START, offer_hours: int = 24,
                       agencies: list[str] | None = None, hub: tuple[str, str] | None = None) -> str:
    """A program with one session, written directly (the programs area is tested on its own)."""
    program_id, session_id = str(uuid.uuid4()), str(uuid.uuid4())
    async with db.unit_of_work() as uow:
        uow.add(Program(id=program_id, title="MiiWrap ECHO", owner_id=str(uuid.uuid4()), owner_agency="platform",
                        open_to_all=agencies is None, agencies=agencies or [], timezone="America/Chicago",
                        dtstart="2027-01-05T10:00:00", rrule="FREQ=WEEKLY;COUNT=1", duration_minutes=90,
                        capacity=capacity, offer_hours=offer_hours, created_at=NOW, updated_at=NOW))
        uow.add(Session(id=session_id, program_id=program_id, title="Family team meetings", starts_at=starts_at,
                        ends_at=starts_at + timedelta(minutes=90), timezone="America/Chicago", capacity=capacity,
                        created_at=NOW, updated_at=NOW))
        if hub:
            uow.add(HubMember(program_id=program_id, person_id=hub[0], agency_id=hub[1], role="facilitator"))
    return session_id


def db_of(stack: Stack) -> Database:
    return stack.apps["community"].state.db  # type: ignore[no-any-return]


async def published(stack: Stack, name: str, agency: str) -> int:
    subject = f"community.{name}.{agency}"
    info = await jetstream(stack.apps["community"].state.broker).stream_info("COMMUNITY", subjects_filter=subject)
    return int((info.state.subjects or {}).get(subject, 0))


async def staged(stack: Stack, name: str) -> int:
    async with db_of(stack).reader() as s:
        return int((await s.execute(select(func.count()).select_from(outbox).where(
            outbox.c.event_type == f"community.{name}.v1"))).scalar_one())


async def registrations(stack: Stack, session_id: str) -> int:
    async with db_of(stack).reader() as s:
        return int((await s.execute(select(func.count()).select_from(Registration).where(
            Registration.session_id == session_id))).scalar_one())


@contextlib.asynccontextmanager
async def two_replicas(nats_server: NatsServer, url: str, tmp_path: Path, instant: Instant, db_backend: str
                       ) -> AsyncIterator[tuple[Stack, Stack]]:
    """Two community apps on one database and one nats-server: two replicas behind a load balancer.

    SQLite is one process per file in production (its writers are serialised in-process): one app twice."""
    if db_backend == "sqlite":
        async with running_stack(make_settings(nats_server.url, tmp_path / "a"), {"community": url},
                                 now=instant, clock=instant.today) as a:
            yield a, a
        return
    async with (
        running_stack(make_settings(nats_server.url, tmp_path / "a"), {"community": url},
                      now=instant, clock=instant.today) as a,
        running_stack(make_settings(nats_server.url, tmp_path / "b"), {"community": url},
                      now=instant, clock=instant.today) as b,
    ):
        yield a, b


async def test_fifty_registrants_on_two_replicas_fill_twenty_seats_first_come_first_served(
    nats_server: NatsServer, make_db_url: Any, tmp_path: Path, db_backend: str,
) -> None:
    instant = Instant(NOW)
    async with two_replicas(nats_server, make_db_url("community"), tmp_path, instant, db_backend) as (a, b):
        agency, hub = str(uuid.uuid4()), str(uuid.uuid4())
        people = [str(uuid.uuid4()) for _ in range(50)]
        await a.enrol(agency, *people)
        sid = await make_session(db_of(a), capacity=20, hub=(hub, agency))
        hub_headers = a.token(agency, "facilitator", sub=hub)

        async def register(i: int, person: str) -> dict[str, Any]:
            replica = (a, b)[i % 2]
            r = await replica.community.post(f"/v1/sessions/{sid}/registrations",
                                             headers=replica.token(agency, "practitioner", sub=person))
            assert r.status_code == 201, r.text
            return r.json()  # type: ignore[no-any-return]

        regs = await asyncio.gather(*(register(i, p) for i, p in enumerate(people)))
        by_status = {s: [r for r in regs if r["status"] == s] for s in ("confirmed", "waiting", "offered")}
        assert (len(by_status["confirmed"]), len(by_status["waiting"]), len(by_status["offered"])) == (20, 30, 0)
        assert sorted(r["position"] for r in regs) == list(range(1, 51))
        assert sorted(r["position"] for r in by_status["confirmed"]) == list(range(1, 21))

        # The hub's list, by position: the waiting list numbered 1..30 in position order.
        r = await b.community.get(f"/v1/sessions/{sid}/registrations", params={"limit": 100}, headers=hub_headers)
        assert r.status_code == 200, r.text
        listed = r.json()["items"]
        assert [x["position"] for x in listed] == list(range(1, 51))
        assert [x["waitlist_position"] for x in listed] == [None] * 20 + list(range(1, 31))
        first_waiting = {x["position"]: x for x in listed}
        await eventually(lambda: _eq(published(a, "RegistrationConfirmed", agency), 20))

        # A cancellation promotes exactly one person: the first waiting.
        leaver = by_status["confirmed"][0]
        r = await a.community.post(f"/v1/registrations/{leaver['id']}/cancel",
                                   headers=a.token(agency, "practitioner", sub=leaver["person_id"]))
        assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text
        offered = first_waiting[21]
        r = await b.community.get(f"/v1/registrations/{offered['id']}",
                                  headers=b.token(agency, "practitioner", sub=offered["person_id"]))
        assert r.json()["status"] == "offered"
        assert r.json()["offer_expires_at"].startswith((NOW + timedelta(hours=24)).isoformat()[:19])
        r = await b.community.get(f"/v1/sessions/{sid}/registrations", params={"status": "offered"},
                                  headers=hub_headers)
        assert [x["id"] for x in r.json()["items"]] == [offered["id"]]
        await eventually(lambda: _eq(published(a, "WaitlistOffered", agency), 1))
        await eventually(lambda: _eq(published(a, "RegistrationCancelled", agency), 1))

        # Someone else may not accept it; the person offered may.
        r = await a.community.post(f"/v1/registrations/{offered['id']}/accept",
                                   headers=a.token(agency, "practitioner", sub=people[0]))
        assert r.status_code in (403, 404)
        r = await a.community.post(f"/v1/registrations/{offered['id']}/accept",
                                   headers=a.token(agency, "practitioner", sub=offered["person_id"]))
        assert r.status_code == 200, r.text
        assert (r.json()["status"], r.json()["via"], r.json()["offer_expires_at"]) == ("confirmed", "waitlist", None)

        # Another seat frees; its offer expires unanswered and the sweep passes it to the next person.
        leaver = by_status["confirmed"][1]
        r = await b.community.post(f"/v1/registrations/{leaver['id']}/cancel",
                                   headers=b.token(agency, "agency_admin"))  # their agency admin may cancel
        assert r.status_code == 200, r.text
        second, third = first_waiting[22], first_waiting[23]
        instant.move(hours=24, minutes=1)
        assert await CHORES["offer-sweep"](db_of(a)) == 1
        assert await CHORES["offer-sweep"](db_of(b)) == 0  # done once, whichever replica sweeps
        assert await staged(a, "WaitlistOffered") == 3
        r = await a.community.get(f"/v1/registrations/{second['id']}", headers=hub_headers)
        assert (r.json()["status"], r.json()["cancel_reason"]) == ("cancelled", "offer_expired")
        r = await a.community.get(f"/v1/registrations/{third['id']}", headers=hub_headers)
        assert r.json()["status"] == "offered"
        # Less than a day left: the new offer ends at the start.
        assert datetime.fromisoformat(r.json()["offer_expires_at"]) == START
        late = await a.community.post(f"/v1/registrations/{second['id']}/accept",
                                      headers=a.token(agency, "practitioner", sub=second["person_id"]))
        problem(late, 409)
        await eventually(lambda: _eq(published(a, "WaitlistOffered", agency), 3))
        assert await staged(a, "RegistrationCancelled") == 3

        # Seats held never exceed the capacity.
        r = await a.community.get(f"/v1/sessions/{sid}/registrations", params={"limit": 100}, headers=hub_headers)
        held = [x for x in r.json()["items"] if x["status"] in ("confirmed", "offered")]
        assert len(held) == 20

        # Registration closes at the start.
        (latecomer,) = await a.staffed(agency)
        instant.now = START
        body = problem(await a.community.post(f"/v1/sessions/{sid}/registrations",
                                              headers=a.token(agency, "practitioner", sub=latecomer)), 409)
        assert body["type"].endswith("registration-closed")


async def _eq(value: Any, expected: int) -> bool:
    return await value == expected


async def test_bad_input_is_refused_with_problem_json_and_nothing_written(st: Stack) -> None:
    agency, other = str(uuid.uuid4()), str(uuid.uuid4())
    (member, colleague) = await st.staffed(agency, 2)
    sid = await make_session(db_of(st), capacity=2, starts_at=datetime.now(UTC) + timedelta(days=3))
    closed = await make_session(db_of(st), capacity=2, starts_at=datetime.now(UTC) + timedelta(days=3),
                                agencies=[other])
    me = st.token(agency, "practitioner", sub=member)
    url = f"/v1/sessions/{sid}/registrations"
    problem(await st.community.post(url, json={"person_id": "not-a-uuid"}, headers=me), 422)
    problem(await st.community.post(url, json={"person_id": member, "extra": 1}, headers=me), 422)
    # Only an agency admin registers someone else; and only active staff of their own agency.
    problem(await st.community.post(url, json={"person_id": colleague}, headers=me), 403)
    stranger = problem(await st.community.post(url, json={"person_id": str(uuid.uuid4())},
                                               headers=st.token(agency, "agency_admin")), 422)
    assert stranger["errors"][0]["field"] == "body.person_id"
    problem(await st.community.post(url, headers=st.token(agency, "practitioner")), 422)  # not on the roster
    problem(await st.community.post(f"/v1/sessions/{closed}/registrations", headers=me), 403)
    problem(await st.community.post(f"/v1/sessions/{uuid.uuid4()}/registrations", headers=me), 404)
    assert await registrations(st, sid) == 0 and await registrations(st, closed) == 0
    assert await staged(st, "RegistrationConfirmed") == 0

    # Twice for the same session: 409 naming the registration; after a cancel, the same row re-opens.
    first = await st.community.post(url, headers=me)
    assert first.status_code == 201, first.text
    rid = first.json()["id"]
    assert rid in problem(await st.community.post(url, headers=me), 409)["detail"]
    assert (await st.community.post(f"/v1/registrations/{rid}/cancel", headers=me)).status_code == 200
    again = await st.community.post(url, json={"person_id": member}, headers=me)
    assert (again.json()["id"], again.json()["status"], again.json()["position"]) == (rid, "confirmed", 2)
    assert await registrations(st, sid) == 1



async def test_registrations_carry_the_persons_name_one_query_per_page(st: Stack) -> None:
    """The name comes from the community's directory (StaffMemberJoined); a person it never heard of: null."""
    agency, named, facilitator = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    await st.enrol(agency, named, names={named: "Ana Ruiz"})

    async def known() -> bool:
        async with db_of(st).reader() as s:
            return await s.get(Person, named) is not None

    await eventually(known)  # the names consumer is not the roster's: it may come second
    sid = await make_session(db_of(st), capacity=5, starts_at=datetime.now(UTC) + timedelta(days=3),
                             hub=(facilitator, agency))
    me = st.token(agency, "practitioner", sub=named)
    r = await st.community.post(f"/v1/sessions/{sid}/registrations", headers=me)
    assert (r.status_code, r.json()["display_name"]) == (201, "Ana Ruiz"), r.text
    unknown = [str(uuid.uuid4()) for _ in range(3)]
    async with db_of(st).unit_of_work() as uow:  # registrants whose names never arrived
        program_id = (await uow.get(Session, sid)).program_id  # type: ignore[union-attr]
        for i, p in enumerate(unknown):
            uow.add(Registration(id=str(uuid.uuid4()), session_id=sid, program_id=program_id, person_id=p,
                                 agency_id=agency, status="confirmed", position=i + 2, registered_by=p,
                                 created_at=NOW, updated_at=NOW))

    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    engine = db_of(st).engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        r = await st.community.get(f"/v1/sessions/{sid}/registrations",
                                   headers=st.token(agency, "facilitator", sub=facilitator))
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert r.status_code == 200, r.text
    assert {x["person_id"]: x["display_name"] for x in r.json()["items"]} == {
        named: "Ana Ruiz", **dict.fromkeys(unknown, None)}
    assert sum("people" in q for q in statements) == 1  # one look-up for the page, not one per row

    mine = (await st.community.get("/v1/registrations", headers=me)).json()["items"]
    assert [x["display_name"] for x in mine] == ["Ana Ruiz"]
    session = (await st.community.get(f"/v1/sessions/{sid}", headers=me)).json()
    assert session["my_registration"]["display_name"] == "Ana Ruiz"
    r = await st.community.post(f"/v1/registrations/{mine[0]['id']}/cancel", headers=me)
    assert (r.json()["status"], r.json()["display_name"]) == ("cancelled", "Ana Ruiz")


async def test_reminders_are_published_once_per_registrant_and_lead_however_often_swept(
    nats_server: NatsServer, make_db_url: Any, tmp_path: Path, db_backend: str,
) -> None:
    instant = Instant(START - timedelta(hours=23))
    url = make_db_url("community")
    async with running_stack(make_settings(nats_server.url, tmp_path), {"community": url},
                             now=instant, clock=instant.today) as st:
        agency = str(uuid.uuid4())
        people = await st.staffed(agency, 4)
        sid = await make_session(db_of(st), capacity=3)
        for p in people:
            r = await st.community.post(f"/v1/sessions/{sid}/registrations",
                                        headers=st.token(agency, "practitioner", sub=p))
            assert r.status_code == 201, r.text  # three confirmed, one waiting (no reminder: no seat)
        sweep = CHORES["reminder-sweep"]
        assert await sweep(db_of(st)) == 3
        assert await sweep(db_of(st)) == 0

        # Two replicas sweep at once when the 1h lead falls due: each reminder is staged once.
        instant.now = START - timedelta(minutes=50)
        replicas = [Database(url, now=instant, clock=instant.today, source="trellis/community") for _ in range(2)]
        try:
            sent = await asyncio.gather(*(sweep(r) for r in replicas))
        finally:
            for r in replicas:
                await r.dispose()
        rest = await sweep(db_of(st))
        assert sum(sent) + rest == 3
        if db_backend == "postgres":
            assert rest == 0
        instant.now = START
        assert await sweep(db_of(st)) == 0  # started: nothing more
        assert await staged(st, "SessionReminderDue") == 6
        await eventually(lambda: _eq(published(st, "SessionReminderDue", agency), 6))
        await asyncio.sleep(0.5)  # anything published twice would have arrived by now
        assert await published(st, "SessionReminderDue", agency) == 6


async def test_a_series_registration_a_declined_offer_and_my_list(st: Stack) -> None:
    agency = str(uuid.uuid4())
    first, second = await st.staffed(agency, 2)
    soon = datetime.now(UTC) + timedelta(days=2)
    sid = await make_session(db_of(st), capacity=1, starts_at=soon)
    async with db_of(st).unit_of_work() as uow:  # two more sessions of the same program, one already past
        program_id = (await uow.get(Session, sid)).program_id  # type: ignore[union-attr]
        for i, at in enumerate((soon + timedelta(days=14), datetime.now(UTC) - timedelta(days=14))):
            uow.add(Session(id=str(uuid.uuid4()), program_id=program_id, title=f"S{i}", starts_at=at,
                            ends_at=at + timedelta(hours=1), timezone="UTC", capacity=1, created_at=NOW,
                            updated_at=NOW))
    me, them = (st.token(agency, "practitioner", sub=p) for p in (first, second))
    r = await st.community.post(f"/v1/programs/{program_id}/registrations", headers=me)
    assert r.status_code == 201, r.text
    assert [(x["status"], x["via"]) for x in r.json()["items"]] == [("confirmed", "series")] * 2  # future only
    r = await st.community.post(f"/v1/programs/{program_id}/registrations", headers=me)
    assert r.json()["items"] == []  # already registered everywhere: nothing new
    waiting = (await st.community.post(f"/v1/sessions/{sid}/registrations", headers=them)).json()
    assert (waiting["status"], waiting["waitlist_position"]) == ("waiting", 1)

    mine = (await st.community.get("/v1/registrations", headers=me)).json()["items"]
    assert len(mine) == 2 and {x["person_id"] for x in mine} == {first}
    problem(await st.community.get("/v1/registrations", params={"person_id": first}, headers=them), 403)
    problem(await st.community.get(f"/v1/sessions/{sid}/registrations", headers=them), 403)  # hub only
    problem(await st.community.get(f"/v1/registrations/{mine[0]['id']}", headers=them), 404)

    ours = next(x for x in mine if x["session_id"] == sid)
    assert (await st.community.post(f"/v1/registrations/{ours['id']}/cancel", headers=me)).status_code == 200
    r = await st.community.get(f"/v1/registrations/{waiting['id']}", headers=them)
    assert r.json()["status"] == "offered"
    problem(await st.community.post(f"/v1/registrations/{ours['id']}/cancel", headers=me), 409)  # not active
    r = await st.community.post(f"/v1/registrations/{waiting['id']}/decline", headers=them)
    assert (r.json()["status"], r.json()["cancel_reason"]) == ("cancelled", "offer_declined")
    assert await staged(st, "RegistrationCancelled") == 2


async def test_a_leaver_loses_their_seats_and_the_next_person_is_offered_one(st: Stack) -> None:
    agency = str(uuid.uuid4())
    leaver, waiter = await st.staffed(agency, 2)
    sid = await make_session(db_of(st), capacity=1, starts_at=datetime.now(UTC) + timedelta(days=2))
    seat = (await st.community.post(f"/v1/sessions/{sid}/registrations",
                                    headers=st.token(agency, "practitioner", sub=leaver))).json()
    queued = (await st.community.post(f"/v1/sessions/{sid}/registrations",
                                      headers=st.token(agency, "practitioner", sub=waiter))).json()
    left = Envelope.wrap(StaffMemberLeft(staff_id=leaver, left_on=date(2026, 12, 1)), source="tests",
                         subject=leaver, agency=agency)
    await jetstream(st.apps["community"].state.broker).publish(
        left.nats_subject, left.to_bytes(), headers={"Nats-Msg-Id": left.id}, stream="READINESS")
    hub = st.token(agency, "platform_admin")

    async def passed_on() -> bool:
        r = await st.community.get(f"/v1/registrations/{queued['id']}", headers=hub)
        return bool(r.json()["status"] == "offered")

    await eventually(passed_on)
    r = await st.community.get(f"/v1/registrations/{seat['id']}", headers=hub)
    assert (r.json()["status"], r.json()["cancel_reason"]) == ("cancelled", "left_roster")


async def test_helpers_for_the_programs_area_offer_a_capacity_rise_and_cancel_a_whole_session(tmp_path: Path) -> None:
    """`offer_free_seats` after a capacity rise and `cancel_all` for a cancelled session, at use-case level."""
    from services.community.usecases import registration as uc
    from trellis.auth import Principal

    instant = Instant(NOW)
    async with service_db("community", tmp_path, instant.today, now=instant) as db:
        agency = str(uuid.uuid4())
        people = [str(uuid.uuid4()) for _ in range(4)]
        async with db.unit_of_work() as uow:
            await uow.execute(ROSTER.t.insert(), [
                {"agency_id": agency, "person_id": p, "roles": ["practitioner"], "team_id": None,
                 "status": "active", "status_event_id": str(uuid.uuid4()), "roles_event_id": str(uuid.uuid4()),
                 "updated_at": NOW} for p in people])
        sid = await make_session(db, capacity=1, offer_hours=6)
        seats = []
        for p in people:
            async with db.unit_of_work() as uow:
                seats.append(await uc.register(uow, uc.Register(Principal(p, agency, frozenset({"practitioner"})),
                                                                sid)))
        assert [s.row.status for s in seats] == ["confirmed", "waiting", "waiting", "waiting"]
        assert [s.waitlist_position for s in seats] == [None, 1, 2, 3]
        async with db.unit_of_work() as uow:
            session = await uow.get(Session, sid)
            assert session is not None
            session.capacity = 3
            assert await uc.offer_free_seats(uow, session) == 2
        async with db.reader() as uow:
            rows = {r.person_id: r for r in (await uow.scalars(select(Registration))).all()}
        assert [rows[p].status for p in people] == ["confirmed", "offered", "offered", "waiting"]
        assert rows[people[1]].offer_expires_at == NOW + timedelta(hours=6)
        async with db.unit_of_work() as uow:
            session = await uow.get(Session, sid)
            assert session is not None
            session.status = "cancelled"
            assert await uc.cancel_all(uow, session, "session_cancelled") == 4
        async with db.reader() as uow:
            reasons = {r.cancel_reason for r in (await uow.scalars(select(Registration))).all()}
            cancelled = int((await uow.execute(select(func.count()).select_from(outbox).where(
                outbox.c.event_type == "community.RegistrationCancelled.v1"))).scalar_one())
        assert reasons == {"session_cancelled"} and cancelled == 4
