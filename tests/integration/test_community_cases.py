"""ECHO case consultation over REST, on both databases and a real nats-server.

Programs, sessions, hub members and registrations are written straight into the community database
(their own areas are tested elsewhere), so these tests need only the cases area.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from services.community.models import Attendance, Case, CaseRead, HubMember, Person, Program, Registration, Session
from services.community.usecases.cases import sweep_cases
from tests.conftest import make_settings
from tests.stack import Instant, Stack, eventually, problem, running_stack, service_db
from tests.support import NatsServer
from trellis.bus import jetstream
from trellis.db import Database, outbox

START = datetime(2027, 1, 1, 12, 0, tzinfo=UTC)
# 10:00 in Chicago on Tuesday 5 January 2027; 02:00 UTC on the 6th is still the 5th there.
SESSION_AT = datetime(2027, 1, 5, 16, 0, tzinfo=UTC)
A, B = str(uuid.uuid4()), str(uuid.uuid4())  # the presenter's agency, another agency


@pytest.fixture
async def cs(nats_server: NatsServer, make_db_url: Any, tmp_path: Path) -> AsyncIterator[tuple[Stack, Instant]]:
    instant = Instant(START)
    settings = make_settings(nats_server.url, tmp_path)
    async with running_stack(settings, {"community": make_db_url("community")}, now=instant,
                             clock=instant.today) as stack:
        yield stack, instant


def cdb(st: Stack) -> Database:
    return st.apps["community"].state.db  # type: ignore[no-any-return]


async def seed(st: Stack, hub: str, participants: dict[str, str], attendees: dict[str, str] | None = None,
               names: tuple[str, ...] = ()) -> str:
    """A program with one session (returned) on 5 Jan 2027 in Chicago, its hub, registrants and attendees."""
    program_id, session_id = str(uuid.uuid4()), str(uuid.uuid4())
    async with cdb(st).unit_of_work() as uow:
        uow.add(Program(id=program_id, title="MiiWrap ECHO", description="", owner_id=hub, owner_agency=B,
                        open_to_all=True, agencies=[], timezone="America/Chicago", dtstart="2027-01-05T10:00:00",
                        rrule="FREQ=WEEKLY;COUNT=1", duration_minutes=60, capacity=20, session_title="ECHO",
                        topic="", competencies=[], meeting_url="", materials=[], attendance_threshold=0.75,
                        offer_hours=24, ce_rule={}, revision=1, created_at=START, updated_at=START))
        uow.add(HubMember(program_id=program_id, person_id=hub, agency_id=B, role="facilitator"))
        uow.add(Session(id=session_id, program_id=program_id, occurrence=None, title="ECHO", topic="",
                        starts_at=SESSION_AT, ends_at=SESSION_AT + timedelta(hours=1), timezone="America/Chicago",
                        capacity=20, materials=[], competencies=[], meeting_url="", status="scheduled",
                        detached=False, revision=1, created_at=START, updated_at=START))
        for i, (person, agency) in enumerate(participants.items()):
            uow.add(Registration(id=str(uuid.uuid4()), session_id=session_id, program_id=program_id,
                                 person_id=person, agency_id=agency, status="confirmed", position=i + 1,
                                 via="direct", registered_by=person, created_at=START, updated_at=START))
        for person, agency in (attendees or {}).items():
            uow.add(Attendance(session_id=session_id, person_id=person, program_id=program_id, agency_id=agency,
                               attended=True, minutes_present=60, share=1.0, source="check_in", segments=[],
                               revision=1, recorded_by=hub, recorded_at=SESSION_AT))
        for name in names:
            uow.add(Person(person_id=str(uuid.uuid4()), agency_id=A, display_name=name, updated_at=START))
    return session_id


async def count(st: Stack, what: Any, *where: Any) -> int:
    async with cdb(st).reader() as s:
        return int((await s.execute(select(func.count()).select_from(what).where(*where))).scalar_one())


async def published(st: Stack, name: str, agency: str) -> int:
    subject = f"community.{name}.{agency}"
    info = await jetstream(st.apps["community"].state.broker).stream_info("COMMUNITY", subjects_filter=subject)
    return int((info.state.subjects or {}).get(subject, 0))


FIELDS = {"strengths": "The grandmother is steady and warm; the youth loves soccer.",
          "needs": "Call Maria Lopez at 555-123-4567 about school; the youth needs a steady routine.",
          "tried": "Weekly check-ins since last spring; a behaviour chart at home.",
          "question": "How do we keep the team engaged between meetings? Ask ann.smith@example.com."}


async def test_a_case_from_draft_to_redaction(cs: tuple[Stack, Instant]) -> None:
    st, instant = cs
    presenter, hub, participant, attendee = (str(uuid.uuid4()) for _ in range(4))
    session_id = await seed(st, hub, {presenter: A, participant: B}, {attendee: B}, names=("Maria Lopez",))
    me = st.token(A, "practitioner", sub=presenter)
    hub_h = st.token(B, "facilitator", sub=hub)
    sup_a, sup_b = st.token(A, "supervisor"), st.token(B, "supervisor")
    part_h, att_h = st.token(B, "practitioner", sub=participant), st.token(B, "practitioner", sub=attendee)
    admin, colleague = st.token(A, "platform_admin"), st.token(A, "practitioner", "coach")
    c = st.community

    async def sees(headers: dict[str, str], case_id: str) -> bool:
        r = await c.get(f"/v1/cases/{case_id}", headers=headers)
        assert r.status_code in (200, 404), r.text
        listed = (await c.get("/v1/cases", headers=headers)).json()["items"]
        assert (case_id in {x["id"] for x in listed}) is (r.status_code == 200)
        return r.status_code == 200

    # Drafted with identifiers: findings with their spans, the case stays a draft.
    r = await c.post("/v1/cases", json={"session_id": session_id, "title": "Keeping the team engaged",
                                        "fields": FIELDS}, headers=me)
    assert r.status_code == 201, r.text
    case = r.json()
    case_id = case["id"]
    assert case["state"] == "draft"
    kinds = {(f["field"], f["kind"]): f for f in case["findings"]}
    assert {("needs", "name"), ("needs", "phone"), ("question", "email")} <= set(kinds)
    phone = kinds[("needs", "phone")]
    assert FIELDS["needs"][phone["start"]:phone["end"]] == "555-123-4567" and phone["status"] == "open"

    # Nobody else sees a draft, not even the hub, the supervisor or a platform admin.
    for other in (hub_h, sup_a, admin, part_h):
        assert not await sees(other, case_id)
    r = await c.post(f"/v1/cases/{case_id}/submit", headers=me)
    body = problem(r, 409)
    assert {e["finding_id"] for e in body["errors"]} == {f["id"] for f in case["findings"]}

    # Fix the phone and the name; justify the email (a staff inbox): screened.
    needs = "Call the caregiver about school; the youth needs a steady routine."
    r = await c.patch(f"/v1/cases/{case_id}", json={"fields": {"needs": needs}}, headers=me)
    assert r.status_code == 200, r.text
    case = r.json()
    assert case["state"] == "draft"
    assert {f["kind"]: f["status"] for f in case["findings"]} == {"name": "fixed", "phone": "fixed", "email": "open"}
    email = next(f for f in case["findings"] if f["kind"] == "email")
    r = await c.post(f"/v1/cases/{case_id}/justifications",
                     json={"items": [{"finding_id": email["id"], "reason": "the program's shared staff inbox"}]},
                     headers=me)
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "screened"
    assert not await sees(hub_h, case_id)  # screened is not submitted

    r = await c.post(f"/v1/cases/{case_id}/submit", headers=me)
    assert r.status_code == 200 and r.json()["state"] == "in_review", r.text

    # In review: the presenter, their agency's supervisor and the hub (any agency); nobody else.
    assert await sees(me, case_id) and await sees(sup_a, case_id) and await sees(hub_h, case_id)
    for other in (sup_b, part_h, admin, colleague):
        assert not await sees(other, case_id)
    queue = (await c.get("/v1/cases", params={"review_queue": "true"}, headers=hub_h)).json()["items"]
    assert [x["id"] for x in queue] == [case_id]

    # Returned with comments; the presenter edits and resubmits; approved.
    problem(await c.post(f"/v1/cases/{case_id}/review", json={"decision": "approve"}, headers=me), 403)
    r = await c.post(f"/v1/cases/{case_id}/review",
                     json={"decision": "return", "comments": "Say more about what the school tried."}, headers=hub_h)
    assert r.json()["state"] == "returned" and r.json()["hub_comments"].startswith("Say more"), r.text
    tried = FIELDS["tried"] + " The school added a mentor."
    r = await c.patch(f"/v1/cases/{case_id}", json={"fields": {"tried": tried}}, headers=me)
    assert r.json()["state"] == "screened", r.text
    assert r.json()["findings"][0]["status"] == "justified"  # the justification survived the edit
    assert (await c.post(f"/v1/cases/{case_id}/submit", headers=me)).json()["state"] == "in_review"
    r = await c.post(f"/v1/cases/{case_id}/review", json={"decision": "approve", "comments": ""}, headers=hub_h)
    assert r.json()["state"] == "approved", r.text

    # Approved: participants (registrants and attendees) only from the session's local day.
    assert not await sees(part_h, case_id) and not await sees(att_h, case_id)
    problem(await c.post(f"/v1/cases/{case_id}/presented", headers=hub_h), 409)
    instant.now = datetime(2027, 1, 5, 6, 0, tzinfo=UTC)  # 00:00 in Chicago on the 5th
    assert await sees(part_h, case_id) and await sees(att_h, case_id)
    assert not await sees(admin, case_id) and not await sees(sup_b, case_id)
    r = await c.post(f"/v1/cases/{case_id}/presented", headers=hub_h)
    assert r.json()["state"] == "presented", r.text

    # Recommendations: an identifier is refused and nothing is written; then issued exactly once.
    bad = {"items": [{"text": "Call 555-987-6543 weekly"}], "follow_up_on": "2027-02-05"}
    body = problem(await c.post(f"/v1/cases/{case_id}/recommendations", json=bad, headers=hub_h), 422)
    assert body["errors"][0]["kind"] == "phone"
    good = {"items": [{"text": "Hold a 15-minute team huddle each week", "due_on": "2027-01-20"},
                      {"text": "Invite the school mentor to the next meeting"}], "follow_up_on": "2027-02-05"}
    keyed = hub_h | {"Idempotency-Key": "recs-1"}
    first = await c.post(f"/v1/cases/{case_id}/recommendations", json=good, headers=keyed)
    assert first.status_code == 200 and first.json()["state"] == "recommendations_issued", first.text
    again = await c.post(f"/v1/cases/{case_id}/recommendations", json=good, headers=keyed)
    assert again.status_code == 200 and again.json() == first.json()
    problem(await c.post(f"/v1/cases/{case_id}/recommendations", json=good, headers=hub_h), 409)
    recs = first.json()["recommendations"]
    assert [x["assigned_to"] for x in recs] == [presenter, presenter]

    async def issued_once() -> bool:
        return await published(st, "CaseRecommendationsIssued", A) == 1

    await eventually(issued_once)
    await asyncio.sleep(1.0)  # a duplicate would have been relayed by now (outbox poll 0.2 s)
    assert await published(st, "CaseRecommendationsIssued", A) == 1
    assert await count(st, outbox, outbox.c.event_type == "community.CaseRecommendationsIssued.v1") == 1
    async with cdb(st).reader() as s:
        payload = (await s.execute(select(outbox.c.body).where(
            outbox.c.event_type == "community.CaseRecommendationsIssued.v1"))).scalar_one()
    text = payload.decode() if isinstance(payload, bytes) else str(payload)
    assert "steady and warm" not in text and "ann.smith" not in text  # no case text in the event
    assert "team huddle" in text

    # The follow-up falls due on its date (the sweep, twice: once is enough).
    instant.now = datetime(2027, 2, 5, 15, 0, tzinfo=UTC)
    assert await sweep_cases(cdb(st)) == 1
    assert await sweep_cases(cdb(st)) == 0
    assert (await c.get(f"/v1/cases/{case_id}", headers=me)).json()["state"] == "follow_up_due"
    problem(await c.post(f"/v1/cases/{case_id}/follow-up", json={"report": "It went well"}, headers=hub_h), 403)
    r = await c.post(f"/v1/cases/{case_id}/follow-up",
                     json={"report": "The huddles happen; the mentor joined twice."}, headers=me)
    assert r.json()["state"] == "closed", r.text

    async def reported() -> bool:
        return await published(st, "CaseFollowUpReported", A) == 1

    await eventually(reported)

    # Every read is audited; the presenter and hub see the log, nobody else.
    reads = (await c.get(f"/v1/cases/{case_id}/reads", params={"limit": 500}, headers=me)).json()["items"]
    assert len(reads) == await count(st, CaseRead, CaseRead.case_id == case_id)
    assert {(x["reader_id"], x["state"]) for x in reads} >= {(participant, "approved"), (hub, "in_review"),
                                                             (attendee, "approved")}
    assert all(x["read_at"] and x["reader_roles"] for x in reads)
    assert (await c.get(f"/v1/cases/{case_id}/reads", headers=hub_h)).status_code == 200
    problem(await c.get(f"/v1/cases/{case_id}/reads", headers=part_h), 403)
    problem(await c.get(f"/v1/cases/{case_id}/reads", headers=sup_b), 404)
    before = await count(st, CaseRead, CaseRead.case_id == case_id)
    assert await sees(part_h, case_id)
    assert await count(st, CaseRead, CaseRead.case_id == case_id) == before + 2  # GET one and the list item

    # Past retention the texts go; structure, recommendations and the follow-up date stay.
    assert await sweep_cases(cdb(st)) == 0
    instant.move(days=366)
    assert await sweep_cases(cdb(st)) == 1
    assert await sweep_cases(cdb(st)) == 0
    out = (await c.get(f"/v1/cases/{case_id}", headers=me)).json()
    assert out["redacted"] is True and out["fields"] == {"strengths": "", "needs": "", "tried": "", "question": ""}
    assert out["findings"] == [] and out["hub_comments"] == "" and out["follow_up_report"] == ""
    assert out["recommendations"] == recs and out["follow_up_on"] == "2027-02-05" and out["state"] == "closed"


async def test_bad_input_is_refused_and_writes_nothing(cs: tuple[Stack, Instant]) -> None:
    st, _ = cs
    presenter, hub = str(uuid.uuid4()), str(uuid.uuid4())
    session_id = await seed(st, hub, {presenter: A})
    me = st.token(A, "practitioner", sub=presenter)
    c = st.community
    tpl = (await c.get("/v1/case-template", headers=me)).json()["fields"]
    assert [f["key"] for f in tpl] == ["strengths", "needs", "tried", "question"]
    question_max = next(f["max_length"] for f in tpl if f["key"] == "question")

    attempts = [
        ({"session_id": session_id, "title": "t", "fields": {"family_name": "x"}}, me, 422),
        ({"session_id": session_id, "title": "t", "fields": {"question": "x" * (question_max + 1)}}, me, 422),
        ({"session_id": session_id, "title": "   "}, me, 422),
        ({"session_id": "not-a-uuid", "title": "t"}, me, 422),
        ({"session_id": str(uuid.uuid4()), "title": "t"}, me, 404),
        ({"session_id": session_id, "title": "t"}, st.token(A, "observer"), 403),
        ({"session_id": session_id, "title": "t"}, st.token(A, "partner"), 403),
    ]
    for body, headers, status in attempts:
        problem(await c.post("/v1/cases", json=body, headers=headers), status)
    assert await count(st, Case) == 0 and await count(st, CaseRead) == 0

    r = await c.post("/v1/cases", json={"session_id": session_id, "title": "A stuck plan",
                                        "fields": {"needs": "Reach her at 555-123-4567."}}, headers=me)
    assert r.status_code == 201 and r.json()["state"] == "draft", r.text
    case = r.json()
    rev = await _revision(st, case["id"])
    for path, body, status in [
        ("justifications", {"items": [{"finding_id": "nope", "reason": "x"}]}, 422),
        ("justifications", {"items": [{"finding_id": case["findings"][0]["id"], "reason": "call 555-222-3333"}]}, 422),
        ("justifications", {"items": []}, 422),
        ("submit", None, 409),
        ("review", {"decision": "approve"}, 403),
        ("review", {"decision": "maybe"}, 422),
        ("recommendations", {"items": [{"text": "x"}], "follow_up_on": "2027-02-01"}, 403),
    ]:
        problem(await c.post(f"/v1/cases/{case['id']}/{path}", json=body, headers=me), status)
    problem(await c.patch(f"/v1/cases/{case['id']}", json={"fields": {"extra": "x"}}, headers=me), 422)
    problem(await c.patch(f"/v1/cases/{case['id']}", json={"title": "x"}, headers=st.token(A, "practitioner")), 404)
    problem(await c.get("/v1/cases/not-a-uuid", headers=me), 422)
    assert await _revision(st, case["id"]) == rev
    assert await count(st, Case) == 1

    # A filled-in screened case still needs every template field before it is submitted.
    r = await c.patch(f"/v1/cases/{case['id']}", json={"fields": {"needs": "A steady routine."}}, headers=me)
    assert r.json()["state"] == "screened", r.text
    body = problem(await c.post(f"/v1/cases/{case['id']}/submit", headers=me), 409)
    assert {e["field"] for e in body["errors"]} == {"fields.strengths", "fields.tried", "fields.question"}


async def _revision(st: Stack, case_id: str) -> int:
    async with cdb(st).reader() as s:
        return int((await s.scalars(select(Case.revision).where(Case.id == case_id))).one())



async def test_two_sweeps_at_once_move_each_case_once(make_db_url: Any, tmp_path: Path) -> None:
    """Replicas sweeping together: each follow-up falls due once and each old case is redacted once."""
    instant = Instant(datetime(2028, 6, 1, 12, 0, tzinfo=UTC))
    async with service_db("community", tmp_path, instant.today, now=instant, url=make_db_url("community")) as db:
        async with db.unit_of_work() as uow:
            for i in range(6):
                state = "recommendations_issued" if i % 2 else "closed"
                uow.add(Case(id=str(uuid.uuid4()), session_id=str(uuid.uuid4()), program_id=str(uuid.uuid4()),
                             presenter_id=str(uuid.uuid4()), presenter_agency=A, title="A title",
                             fields={"strengths": "s", "needs": "n", "tried": "t", "question": "q"}, findings=[],
                             justifications=[], state=state, hub_comments="c", recommendations=[{"id": "r"}],
                             follow_up_on=date(2028, 5, 1), follow_up_report="done" if state == "closed" else "",
                             closed_at=datetime(2027, 1, 1, tzinfo=UTC) if state == "closed" else None,
                             revision=1, created_at=START, updated_at=START))
        moved = await asyncio.gather(*(sweep_cases(db) for _ in range(3)))
        assert sum(moved) == 6
        async with db.reader() as s:
            rows = list((await s.scalars(select(Case))).all())
        assert {r.state for r in rows} == {"follow_up_due", "closed"}
        assert all(r.revision == 2 for r in rows)  # exactly one change each
        assert all(r.redacted_at and r.fields["needs"] == "" and r.recommendations == [{"id": "r"}]
                   for r in rows if r.state == "closed")
