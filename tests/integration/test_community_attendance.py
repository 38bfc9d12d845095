"""Attendance and continuing education through REST, on a real nats-server and both databases.

Programs, sessions, registrations and hub members are written straight into the community database
(a small helper below), so these tests do not depend on the programs and registration areas.
"""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader
from sqlalchemy import func, select

from services.community.models import (
    Agency,
    Attendance,
    AttendanceAdjustment,
    Certificate,
    HubMember,
    Person,
    Program,
    Registration,
    Session,
)
from tests.conftest import make_settings
from tests.stack import Instant, Stack, eventually, problem, running_stack
from tests.support import NatsServer
from trellis.bus import jetstream
from trellis.envelope import Envelope

CHICAGO = "America/Chicago"
FIRST = datetime(2027, 1, 5, 16, 0, tzinfo=UTC)  # Tuesday 10:00 in Chicago, every two weeks


@pytest.fixture
async def cst(nats_server: NatsServer, make_db_url: Any, tmp_path: Path) -> AsyncIterator[tuple[Stack, Instant]]:
    instant = Instant(FIRST + timedelta(hours=2))
    settings = make_settings(nats_server.url, tmp_path)
    async with running_stack(settings, {"community": make_db_url("community")}, now=instant,
                             clock=instant.today) as stack:
        yield stack, instant


@dataclass
class World:
    program: str
    sessions: list[str]
    hub: str
    agency: str
    people: dict[str, str]  # display name → person id
    other_agency: str = field(default_factory=lambda: str(uuid.uuid4()))


async def seed(st: Stack, *, sessions: int = 2, ce_rule: dict[str, Any] | None = None,
               names: tuple[str, ...] = ("Ana Ruiz", "Ben Okafor")) -> World:
    """A program with `sessions` 60-minute sessions, a hub facilitator, and registrants with names."""
    db = st.apps["community"].state.db
    agency, hub = str(uuid.uuid4()), str(uuid.uuid4())
    people = {n: str(uuid.uuid4()) for n in names}
    pid, now = str(uuid.uuid4()), FIRST - timedelta(days=30)
    ids = [str(uuid.uuid4()) for _ in range(sessions)]
    async with db.unit_of_work(all_agencies=True) as uow:
        uow.add(Agency(agency_id=agency, name="Northside Family Services", updated_at=now))
        uow.add(Program(id=pid, title="MiiWrap ECHO: family team meetings", description="", owner_id=hub,
                        owner_agency=agency, open_to_all=True, agencies=[], timezone=CHICAGO,
                        dtstart="2027-01-05T10:00:00",
                        # COUNT matches the sessions written here, so the expansion chore adds none.
                        rrule=f"FREQ=WEEKLY;INTERVAL=2;BYDAY=TU;COUNT={sessions}",
                        duration_minutes=60, capacity=20, session_title="ECHO", topic="", competencies=[],
                        meeting_url="", materials=[], attendance_threshold=0.75, offer_hours=24,
                        ce_rule=ce_rule if ce_rule is not None else {"kind": "count", "sessions": 2},
                        revision=1, created_at=now, updated_at=now))
        uow.add(HubMember(program_id=pid, person_id=hub, agency_id=agency, role="facilitator"))
        for i, sid in enumerate(ids):
            start = FIRST + timedelta(days=14 * i)
            uow.add(Session(id=sid, program_id=pid, occurrence=start, title=f"ECHO session {i + 1}", topic="",
                            starts_at=start, ends_at=start + timedelta(minutes=60), timezone=CHICAGO, capacity=20,
                            materials=[], competencies=[], meeting_url="", status="scheduled", detached=False,
                            revision=1, created_at=now, updated_at=now))
            for pos, person in enumerate(people.values(), start=1):
                uow.add(Registration(id=str(uuid.uuid4()), session_id=sid, program_id=pid, person_id=person,
                                     agency_id=agency, status="confirmed", position=pos, via="series",
                                     registered_by=person, created_at=now, updated_at=now))
        for name, person in people.items():
            uow.add(Person(person_id=person, agency_id=agency, display_name=name, updated_at=now))
    return World(pid, ids, hub, agency, people)


def zoom(*rows: tuple[str, str, str, str]) -> str:
    lines = ["Name (Original Name),User Email,Join Time,Leave Time,Duration (Minutes),Guest"]
    lines += [f"{n},{e},01/05/2027 {j},01/05/2027 {left},0,No" for n, e, j, left in rows]
    return "\n".join(lines) + "\n"


async def count(st: Stack, model: Any) -> int:
    async with st.apps["community"].state.db.reader(all_agencies=True) as s:
        return int((await s.scalars(select(func.count()).select_from(model))).one())


async def events(st: Stack, name: str) -> list[Envelope]:
    js = jetstream(st.apps["community"].state.broker)
    sub = await js.pull_subscribe(f"community.{name}.>", stream="COMMUNITY")
    try:
        msgs = await sub.fetch(100, timeout=0.5)
    except TimeoutError:
        return []
    finally:
        await sub.unsubscribe()
    return [Envelope.from_bytes(m.data) for m in msgs]


async def test_roll_call_import_and_audited_adjustment(cst: tuple[Stack, Instant]):
    st, _ = cst
    w = await seed(st, ce_rule={})
    ana, ben = w.people["Ana Ruiz"], w.people["Ben Okafor"]
    hub = st.token(w.agency, "facilitator", sub=w.hub)
    sid = w.sessions[0]
    # Not on the hub: refused, nothing written.
    stranger = st.token(w.agency, "facilitator")
    problem(await st.community.post(f"/v1/sessions/{sid}/check-ins", json={"person_id": ana}, headers=stranger), 403)

    r = await st.community.post(f"/v1/sessions/{sid}/check-ins", json={"person_id": ana}, headers=hub)
    assert r.status_code == 201, r.text
    row = r.json()
    assert (row["attended"], row["minutes_present"], row["share"], row["source"], row["display_name"]) == (
        True, 60, 1.0, "check_in", "Ana Ruiz")
    # Someone who did not register needs walk_in.
    walk_in = str(uuid.uuid4())
    async with st.apps["community"].state.db.unit_of_work(all_agencies=True) as uow:
        uow.add(Person(person_id=walk_in, agency_id=w.other_agency, display_name="Cleo Walk", updated_at=FIRST))
    problem(await st.community.post(f"/v1/sessions/{sid}/check-ins", json={"person_id": walk_in}, headers=hub), 422)
    r = await st.community.post(f"/v1/sessions/{sid}/check-ins", json={"person_id": walk_in, "walk_in": True},
                                headers=hub)
    assert r.status_code == 201 and r.json()["agency_id"] == w.other_agency

    # Ben left and rejoined (two rows); a guest is not a registrant. 10:00–10:20 and 10:25–11:00 = 55 minutes.
    report = zoom(("Ben Okafor", "", "09:58:00 AM", "10:20:00 AM"), ("Ben Okafor", "", "10:25:00 AM", "11:05:00 AM"),
                  ("Guest Caller", "guest@example.org", "10:00:00 AM", "10:10:00 AM"))
    before = await count(st, Attendance)
    r = await st.community.post(f"/v1/sessions/{sid}/attendance-imports", headers=hub,
                                json={"csv": report, "dry_run": True})
    assert r.status_code == 200, r.text
    assert r.json()["imported"] == 1 and r.json()["dry_run"] and await count(st, Attendance) == before
    r = await st.community.post(f"/v1/sessions/{sid}/attendance-imports", headers=hub, json={"csv": report})
    body = r.json()
    assert r.status_code == 200 and body["format"] == "zoom" and body["imported"] == 1, r.text
    assert body["unmatched"] == [{"name": "Guest Caller", "email": "guest@example.org", "minutes": 10}]
    (ben_row,) = body["attendance"]
    assert (ben_row["person_id"], ben_row["minutes_present"], ben_row["attended"], len(ben_row["segments"])) == (
        ben, 55, True, 2)
    # The mapping matches by email (or name) first; on a dry run nothing changes.
    r = await st.community.post(f"/v1/sessions/{sid}/attendance-imports", headers=hub, json={
        "csv": report, "dry_run": True, "mapping": {"GUEST@example.org": walk_in}})
    assert r.json()["unmatched"] == [] and {m["person_id"] for m in r.json()["matched"]} == {ben, walk_in}
    unknown = str(uuid.uuid4())
    problem(await st.community.post(f"/v1/sessions/{sid}/attendance-imports", headers=hub, json={
        "csv": report, "mapping": {"Guest Caller": unknown}}), 422)

    # A malformed report: 422 naming the lines, nothing written.
    bad = zoom(("Ben Okafor", "", "09:58:00 AM", "soon"), ("Ana Ruiz", "", "10:00:00 AM", "11:00:00 AM"),
               ("Ana Ruiz", "", "10:30:00 AM", "10:00:00 AM"))
    before = await count(st, Attendance)
    body = problem(await st.community.post(f"/v1/sessions/{sid}/attendance-imports", headers=hub,
                                           json={"csv": bad}), 422)
    assert [(e["line"], e["loc"]) for e in body["errors"]] == [(2, ["body", "csv"]), (4, ["body", "csv"])]
    assert await count(st, Attendance) == before
    async with st.apps["community"].state.db.reader(all_agencies=True) as s:
        assert (await s.get(Attendance, (sid, ben))).minutes_present == 55  # type: ignore[union-attr]

    # An adjustment needs a reason; with one it is audited with before and after.
    url = f"/v1/sessions/{sid}/attendance/{ben}"
    problem(await st.community.put(url, json={"attended": False, "reason": "   "}, headers=hub), 422)
    problem(await st.community.put(url, json={"attended": False, "reason": "x"}, headers=stranger), 403)
    assert await count(st, AttendanceAdjustment) == 0
    r = await st.community.put(url, json={"minutes_present": 30, "reason": "Camera on but away"}, headers=hub)
    assert r.status_code == 200, r.text
    assert (r.json()["attended"], r.json()["share"], r.json()["source"], r.json()["revision"]) == (
        False, 0.5, "adjustment", 2)
    (adj,) = (await st.community.get(f"{url}/adjustments", headers=hub)).json()["items"]
    assert adj["adjusted_by"] == w.hub and adj["reason"] == "Camera on but away"
    assert adj["before"] == {"attended": True, "minutes_present": 55, "share": round(55 / 60, 4), "source": "import"}
    assert adj["after"] == {"attended": False, "minutes_present": 30, "share": 0.5, "source": "adjustment"}
    # Ben sees his own audit and row; not Ana's.
    ben_h = st.token(w.agency, "practitioner", sub=ben)
    assert (await st.community.get(f"{url}/adjustments", headers=ben_h)).status_code == 200
    problem(await st.community.get(f"/v1/sessions/{sid}/attendance/{ana}/adjustments", headers=ben_h), 403)
    mine = (await st.community.get(f"/v1/sessions/{sid}/attendance", headers=ben_h)).json()
    assert [i["person_id"] for i in mine["items"]] == [ben] and mine["threshold"] == 0.75
    everyone = (await st.community.get(f"/v1/sessions/{sid}/attendance", headers=hub)).json()["items"]
    assert {i["person_id"] for i in everyone} == {ana, ben, walk_in}

    # Each change reached NATS as AttendanceRecorded under the person's agency.
    async def recorded() -> bool:
        return len(await events(st, "AttendanceRecorded")) == 4
    await eventually(recorded)
    subjects = {(e.data["person_id"], e.agency, e.data["revision"]) for e in await events(st, "AttendanceRecorded")}
    assert subjects == {(ana, w.agency, 1), (walk_in, w.other_agency, 1), (ben, w.agency, 1), (ben, w.agency, 2)}


async def test_rule_met_gives_one_certificate_pdf_and_public_verification(cst: tuple[Stack, Instant]):
    st, instant = cst
    w = await seed(st, sessions=3, ce_rule={"kind": "share", "min_share": 0.6})  # 2 of 3 sessions
    ana = w.people["Ana Ruiz"]
    hub = st.token(w.agency, "facilitator", sub=w.hub)
    ana_h = st.token(w.agency, "practitioner", sub=ana)
    # A future session takes no attendance yet.
    problem(await st.community.post(f"/v1/sessions/{w.sessions[1]}/check-ins", json={"person_id": ana},
                                    headers=hub), 409)
    assert (await st.community.post(f"/v1/sessions/{w.sessions[0]}/check-ins", json={"person_id": ana},
                                    headers=hub)).status_code == 201
    assert (await st.community.get("/v1/certificates", headers=ana_h)).json()["items"] == []
    instant.move(days=14)
    assert (await st.community.post(f"/v1/sessions/{w.sessions[1]}/check-ins", json={"person_id": ana},
                                    headers=hub)).status_code == 201
    (cert,) = (await st.community.get("/v1/certificates", headers=ana_h)).json()["items"]
    assert (cert["person_name"], cert["agency_name"], cert["cycle"], cert["hours"]) == (
        "Ana Ruiz", "Northside Family Services", "2027", 2.0)
    assert [s["id"] for s in cert["sessions"]] == w.sessions[:2] and len(cert["verification_code"]) == 12

    # Re-evaluated again (an adjustment, a third session): still one certificate, one event.
    r = await st.community.put(f"/v1/sessions/{w.sessions[0]}/attendance/{ana}", headers=hub,
                               json={"minutes_present": 50, "reason": "Left ten minutes early"})
    assert r.status_code == 200, r.text
    instant.move(days=14)
    assert (await st.community.post(f"/v1/sessions/{w.sessions[2]}/check-ins", json={"person_id": ana},
                                    headers=hub)).status_code == 201
    assert await count(st, Certificate) == 1

    async def earned() -> bool:
        return bool(await events(st, "ContinuingEducationEarned"))
    await eventually(earned)
    await asyncio.sleep(0.6)  # give a duplicate time to arrive, were there one
    (ev,) = await events(st, "ContinuingEducationEarned")
    assert ev.agency == w.agency and ev.data["certificate_id"] == cert["id"]
    assert ev.data["verification_code"] == cert["verification_code"] and ev.data["hours"] == 2.0

    # The PDF: name, program, hours and code, read back.
    r = await st.community.get(f"/v1/certificates/{cert['id']}/pdf", headers=ana_h)
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    text = " ".join(p.extract_text() or "" for p in PdfReader(io.BytesIO(r.content)).pages)
    code = cert["verification_code"]
    for expected in ("Ana Ruiz", "MiiWrap ECHO: family team meetings", "2 hours", f"{code[:4]}-{code[4:8]}-{code[8:]}"):
        assert expected in text, expected
    # Someone else's certificate is not theirs to read; the hub may.
    ben_h = st.token(w.agency, "practitioner", sub=w.people["Ben Okafor"])
    problem(await st.community.get(f"/v1/certificates/{cert['id']}/pdf", headers=ben_h), 404)
    problem(await st.community.get("/v1/certificates", params={"person_id": ana}, headers=ben_h), 403)
    assert (await st.community.get(f"/v1/certificates/{cert['id']}", headers=hub)).status_code == 200

    # Public verification: no token, typed loosely; an unknown code is 404.
    r = await st.community.get(f"/v1/certificates/verify/{code[:4].lower()}-{code[4:8]}-{code[8:]}")
    assert r.status_code == 200, r.text
    assert {k: r.json()[k] for k in ("valid", "person_name", "program_title", "hours")} == {
        "valid": True, "person_name": "Ana Ruiz", "program_title": "MiiWrap ECHO: family team meetings", "hours": 2.0}
    problem(await st.community.get("/v1/certificates/verify/ZZZZ-ZZZZ-ZZZZ"), 404)
    problem(await st.community.get("/v1/certificates/verify/nonsense"), 404)
