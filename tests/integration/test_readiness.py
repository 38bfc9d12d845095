"""Readiness over REST with a real nats-server, on SQLite and PostgreSQL: roster, CSV import,
readiness rounds and their privacy floor, the plan and the gate, stages driven by certification events."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date, timedelta
from typing import Any

import nats
import pytest
from sqlalchemy import func, select

from contracts.fidelity import CertificationLapsed, CertificationRevoked, PractitionerCertified
from services.readiness.domain import READINESS_V1
from services.readiness.usecases import sweep_stages
from tests.stack import Stack, eventually, observation, problem
from tests.support import NatsServer
from trellis.db import outbox
from trellis.envelope import Envelope, EventPayload

TODAY = date.today()


SERVICES = ("readiness", "fidelity", "coaching")



async def outbox_rows(st: Stack) -> int:
    async with st.apps["readiness"].state.db.reader() as s:
        return int((await s.execute(select(func.count()).select_from(outbox))).scalar_one())


class Agency:
    """One registered agency and tokens for its people."""

    def __init__(self, st: Stack, agency_id: str) -> None:
        self.st, self.id = st, agency_id
        self.admin_id = str(uuid.uuid4())
        self.admin = st.token(agency_id, "agency_admin", sub=self.admin_id)
        self.url = f"/v1/agencies/{agency_id}"

    async def add(self, name: str, roles: list[str], **extra: Any) -> dict[str, Any]:
        email = f"{name.lower().replace(' ', '.')}.{uuid.uuid4().hex[:6]}@example.org"
        r = await self.st.readiness.post(f"{self.url}/staff", headers=self.admin,
                                         json={"name": name, "email": email, "roles": roles, **extra})
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]


async def register(st: Stack, name: str = "Riverside Family Services") -> Agency:
    platform = st.token(str(uuid.uuid4()), "platform_admin")
    r = await st.readiness.post("/v1/agencies", headers=platform,
                                json={"name": name, "region": "North", "programs": ["Wraparound"]})
    assert r.status_code == 201, r.text
    return Agency(st, r.json()["id"])


async def test_registration_roster_and_the_roster_reaching_fidelity(st: Stack):
    platform = st.token(str(uuid.uuid4()), "platform_admin")
    r = await st.readiness.post("/v1/agencies", headers=platform, json={"name": "Riverside", "region": "North"})
    assert r.status_code == 201
    body = r.json()
    assert body["stage"] == "exploration" and body["readiness_level"] is None
    assert body["training_clearance"] == {"cleared": False,
                                          "reasons": ["no readiness assessment has been closed yet"]}
    assert r.headers["location"] == f"/v1/agencies/{body['id']}"
    a = Agency(st, body["id"])
    problem(await st.readiness.post("/v1/agencies", headers=a.admin, json={"name": "Mine"}), 403)

    team = (await st.readiness.post(f"{a.url}/teams", headers=a.admin, json={"name": "North team"})).json()
    ana = await a.add("Ana Ruiz", ["practitioner"], team_id=team["id"])
    assert ana["status"] == "active" and ana["hire_date"] == TODAY.isoformat()
    observer = await st.observer(a.id)

    async def observation_accepted() -> bool:
        r = await st.fidelity.post("/v1/observations", json=observation(ana["id"]), headers=observer)
        return r.status_code == 201

    await eventually(observation_accepted)  # StaffMemberJoined reached fidelity's roster

    r = await st.readiness.patch(f"{a.url}/staff/{ana['id']}", headers=a.admin,
                                 json={"roles": ["practitioner", "observer"]})
    assert r.json()["roles"] == ["observer", "practitioner"]
    r = await st.readiness.get(f"{a.url}/staff", params={"role": "observer"}, headers=a.admin)
    assert [m["id"] for m in r.json()["items"]] == [ana["id"]]

    r = await st.readiness.post(f"{a.url}/staff/{ana['id']}/leave", headers=a.admin, json={})
    assert r.json()["status"] == "left" and r.json()["left_on"] == TODAY.isoformat()
    problem(await st.readiness.post(f"{a.url}/staff/{ana['id']}/leave", headers=a.admin, json={}), 409)

    async def observation_refused() -> bool:
        r = await st.fidelity.post("/v1/observations", json=observation(ana["id"]), headers=observer)
        return r.status_code == 422 and "has left" in r.json()["errors"][0]["message"]

    await eventually(observation_refused)  # StaffMemberLeft reached fidelity too

    r = await st.readiness.get(f"{a.url}/turnover", headers=a.admin)
    figures = r.json()
    assert figures["agency"] == {"active": 0, "joined_12m": 1, "left_12m": 1, "new_staff_share": None,
                                 "turnover_rate": None}  # no headcount to divide by
    assert [t["team_name"] for t in figures["teams"]] == ["North team"]

    # Coming back: active again, and observable again once fidelity has heard.
    r = await st.readiness.post(f"{a.url}/staff/{ana['id']}/rejoin", headers=a.admin, json={"roles": ["coach"]})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "active" and r.json()["left_on"] is None and r.json()["roles"] == ["coach"]
    problem(await st.readiness.post(f"{a.url}/staff/{ana['id']}/rejoin", headers=a.admin, json={}), 409)
    await eventually(observation_accepted)


ROSTER_BAD = """name,email,team,roles,hire_date
Ana Ruiz,ana@example.org,North,practitioner,2025-02-01
Ben Okafor,ben@example.org,Nowhere,practitioner,2025-02-01
Chloe Martin,ana@example.org,North,coach,2025-02-01
Dev Patel,dev@example.org,,wizard;practitioner,2025-02-01
Eli Novak,eli@example.org,South,supervisor,someday
,fay@example.org,South,practitioner,2025-02-01
"""

ROSTER_GOOD = """name,email,team,roles,hire_date
Ana Ruiz,ana@example.org,North,practitioner,2025-02-01
Ben Okafor,ben@example.org,north,practitioner;observer,2026-01-05
Chloe Martin,chloe@example.org,South,coach,2024-06-01
Dev Patel,DEV@example.org,,supervisor,2023-09-01
"""


async def test_csv_import_is_all_or_nothing_and_idempotent(st: Stack):
    a = await register(st)
    for team in ("North", "South"):
        await st.readiness.post(f"{a.url}/teams", headers=a.admin, json={"name": team})
    before = await outbox_rows(st)
    csv_headers = a.admin | {"content-type": "text/csv"}
    r = await st.readiness.post(f"{a.url}/staff/import", content=ROSTER_BAD, headers=csv_headers)
    body = problem(r, 422)
    found = {(e["line"], e["column"]) for e in body["errors"]}
    assert found == {(3, "team"), (4, "email"), (5, "roles"), (6, "hire_date"), (7, "name")}
    messages = {e["line"]: e["message"] for e in body["errors"]}
    assert "duplicate email ana@example.org: also on line 2" in messages[4]
    assert "unknown team 'Nowhere'" in messages[3] and "unknown role 'wizard'" in messages[5]
    staff = await st.readiness.get(f"{a.url}/staff", headers=a.admin)
    assert staff.json()["items"] == [] and await outbox_rows(st) == before  # line 2 was fine, still not written

    keyed = csv_headers | {"Idempotency-Key": "roster-1"}
    r = await st.readiness.post(f"{a.url}/staff/import", params={"dry_run": "true"}, content=ROSTER_GOOD,
                                headers=keyed)
    assert r.json() == {"dry_run": True, "rows": 4, "created": 4, "updated": 0, "unchanged": 0}
    assert (await st.readiness.get(f"{a.url}/staff", headers=a.admin)).json()["items"] == []
    # The real run is another request, not a replay of the dry run.
    problem(await st.readiness.post(f"{a.url}/staff/import", content=ROSTER_GOOD, headers=keyed), 422)

    r = await st.readiness.post(f"{a.url}/staff/import", content=ROSTER_GOOD, headers=csv_headers)
    assert r.status_code == 200, r.text
    assert r.json() == {"dry_run": False, "rows": 4, "created": 4, "updated": 0, "unchanged": 0}
    after_first = await outbox_rows(st)
    assert after_first == before + 4  # one StaffMemberJoined each
    r = await st.readiness.post(f"{a.url}/staff/import", content=ROSTER_GOOD, headers=csv_headers)
    assert r.json() == {"dry_run": False, "rows": 4, "created": 0, "updated": 0, "unchanged": 4}
    assert await outbox_rows(st) == after_first  # the same file again changes nothing

    staff = {m["email"]: m for m in (await st.readiness.get(f"{a.url}/staff", headers=a.admin)).json()["items"]}
    assert set(staff) == {"ana@example.org", "ben@example.org", "chloe@example.org", "dev@example.org"}
    assert staff["ben@example.org"]["roles"] == ["observer", "practitioner"]

    moved = ROSTER_GOOD.replace("chloe@example.org,South,coach", "chloe@example.org,North,coach;supervisor")
    r = await st.readiness.post(f"{a.url}/staff/import", content=moved, headers=csv_headers)
    assert r.json()["updated"] == 1 and await outbox_rows(st) == after_first + 1  # StaffRoleChanged

    problem(await st.readiness.post(f"{a.url}/staff/import", content="{}", headers=a.admin
                                    | {"content-type": "application/json"}), 415)
    r = await st.readiness.post(f"{a.url}/staff/import", content="who,what\n1,2\n", headers=csv_headers)
    assert "missing: name, email, roles" in problem(r, 422)["errors"][0]["message"]

    turnover = (await st.readiness.get(f"{a.url}/turnover", headers=a.admin)).json()
    assert turnover["agency"]["active"] == 4
    by_team = {t["team_name"]: t for t in turnover["teams"]}
    assert by_team["North"]["active"] == 3 and by_team["No team"]["active"] == 1


def answers(level: int, low: str | None = None) -> dict[str, int]:
    return {i.key: (2 if i.domain == low else level) for i in READINESS_V1.items}


async def test_readiness_rounds_privacy_floor_plan_and_training_gate(st: Stack):
    a = await register(st)
    people = [await a.add(f"Person {n}", ["practitioner"]) for n in range(7)]
    tokens = [st.token(a.id, "practitioner", sub=p["id"]) for p in people]

    r = await st.readiness.post(f"{a.url}/readiness-rounds", headers=a.admin, json={"title": "Baseline"})
    assert r.status_code == 201, r.text
    first = r.json()
    problem(await st.readiness.post(f"{a.url}/readiness-rounds", headers=a.admin, json={"title": "Again"}), 409)
    url = f"{a.url}/readiness-rounds/{first['id']}"
    for t in tokens[:4]:
        r = await st.readiness.put(f"{url}/responses/me", headers=t, json={"answers": answers(5)})
        assert r.status_code == 201
    # Not staff of this agency: refused.
    problem(await st.readiness.put(f"{url}/responses/me", headers=st.token(a.id, "practitioner"),
                                   json={"answers": answers(5)}), 403)
    closed = (await st.readiness.post(f"{url}/close", headers=a.admin)).json()
    assert closed["status"] == "closed" and closed["respondents"] == 4
    assert all(d["status"] == "insufficient" and d["mean"] is None and d["spread"] is None
               and d["agreement"] is None for d in closed["results"])  # 4 < 5: never shown
    assert closed["level"] == "not_ready"
    problem(await st.readiness.put(f"{url}/responses/me", headers=tokens[0], json={"answers": answers(4)}), 409)

    second = (await st.readiness.post(f"{a.url}/readiness-rounds", headers=a.admin,
                                      json={"title": "Six months on"})).json()
    url2 = f"{a.url}/readiness-rounds/{second['id']}"
    for t in tokens[:6]:
        await st.readiness.put(f"{url2}/responses/me", headers=t, json={"answers": answers(3)})
    for t in tokens[:6]:  # answers can change until the round closes
        r = await st.readiness.put(f"{url2}/responses/me", headers=t, json={"answers": answers(5, low="data_systems")})
        assert r.status_code == 200
    mine = (await st.readiness.get(f"{url2}/responses/me", headers=tokens[0])).json()
    assert mine["answers"]["data_systems_1"] == 2
    problem(await st.readiness.get(f"{url2}/responses/me", headers=tokens[6]), 404)
    bad = await st.readiness.put(f"{url2}/responses/me", headers=tokens[6],
                                 json={"answers": {"made_up": 3, "data_systems_1": 9}})
    assert {e["field"] for e in problem(bad, 422)["errors"]} == {"body.answers.made_up", "body.answers.data_systems_1"}

    result = (await st.readiness.post(f"{url2}/close", headers=a.admin)).json()
    by_key = {d["key"]: d for d in result["results"]}
    assert by_key["data_systems"] == {"key": "data_systems", "status": "gap", "respondents": 6, "mean": 2.0,
                                      "spread": 0.0, "agreement": 1.0}
    assert by_key["leadership_commitment"]["status"] == "ok" and by_key["leadership_commitment"]["mean"] == 5.0
    assert result["level"] == "not_ready"  # 2.0 is below the conditions threshold of 3

    cmp = await st.readiness.get(f"{a.url}/readiness-rounds/compare", headers=a.admin,
                                 params={"base": first["id"], "other": second["id"]})
    rows = {row["key"]: row for row in cmp.json()["domains"]}
    assert rows["data_systems"]["change"] is None and rows["data_systems"]["other"]["mean"] == 2.0

    plan = (await st.readiness.get(f"{a.url}/plan", headers=a.admin)).json()
    suggested = [x for x in plan["actions"] if x["origin"] == "suggested"]
    assert suggested and {x["readiness_domain"] for x in suggested} == {"data_systems"}

    # A third round with only a mild gap: ready with conditions, cleared once the plan is approved.
    third = (await st.readiness.post(f"{a.url}/readiness-rounds", headers=a.admin, json={"title": "Q3"})).json()
    url3 = f"{a.url}/readiness-rounds/{third['id']}"
    mild = {k: (3 if k.startswith("data_systems") else 5) for k in answers(5)}
    for t in tokens[:5]:
        await st.readiness.put(f"{url3}/responses/me", headers=t, json={"answers": mild})
    assert (await st.readiness.post(f"{url3}/close", headers=a.admin)).json()["level"] == "ready_with_conditions"
    agency = (await st.readiness.get(a.url, headers=a.admin)).json()
    assert agency["training_clearance"] == {
        "cleared": False, "reasons": ["ready with conditions, but the implementation plan is not approved yet"]}
    plan = (await st.readiness.get(f"{a.url}/plan", headers=a.admin)).json()
    assert len([x for x in plan["actions"] if x["readiness_domain"] == "data_systems"]) == 1  # not suggested twice

    problem(await st.readiness.post(f"{a.url}/plan/approve", headers=st.token(a.id, "platform_admin")), 403)
    r = await st.readiness.post(f"{a.url}/plan/approve", headers=a.admin)
    assert r.status_code == 200 and r.json()["approved"] and r.json()["approved_revision"] == 1
    problem(await st.readiness.post(f"{a.url}/plan/approve", headers=a.admin), 409)
    agency = (await st.readiness.get(a.url, headers=a.admin)).json()
    assert agency["training_clearance"]["cleared"] is True and agency["stage"] == "installation"


async def test_plan_actions_comments_and_overdue(st: Stack):
    a = await register(st)
    owner = await a.add("Olive Owner", ["supervisor"])
    problem(await st.readiness.post(f"{a.url}/plan/approve", headers=a.admin), 422)  # nothing to approve
    r = await st.readiness.post(f"{a.url}/plan/actions", headers=a.admin, json={
        "title": "Protect supervision time", "readiness_domain": "supervision_capacity",
        "owner_id": owner["id"], "due_on": (TODAY + timedelta(days=1)).isoformat()})
    assert r.status_code == 201, r.text
    action = r.json()
    bad = await st.readiness.post(f"{a.url}/plan/actions", headers=a.admin, json={
        "title": "x", "readiness_domain": "astrology", "owner_id": str(uuid.uuid4()), "due_on": "2001-01-01"})
    assert {e["field"] for e in problem(bad, 422)["errors"]} == {"body.readiness_domain", "body.owner_id",
                                                                "body.due_on"}
    url = f"{a.url}/plan/actions/{action['id']}"
    # Overdue: due yesterday and still open (set through the API as a re-plan).
    r = await st.readiness.patch(url, headers=a.admin, json={"due_on": (TODAY - timedelta(days=1)).isoformat()})
    assert r.json()["overdue"] is True
    overdue = await st.readiness.get(f"{a.url}/plan/actions", params={"overdue": "true"}, headers=a.admin)
    assert [x["id"] for x in overdue.json()["items"]] == [action["id"]]
    assert (await st.readiness.get(f"{a.url}/plan", headers=a.admin)).json()["overdue_actions"] == 1

    before = await outbox_rows(st)
    r = await st.readiness.patch(url, headers=a.admin, json={"status": "done"})
    assert r.json()["status"] == "done" and r.json()["completed_on"] == TODAY.isoformat() and not r.json()["overdue"]
    assert await outbox_rows(st) == before + 1  # PlanActionCompleted
    problem(await st.readiness.patch(url, headers=a.admin, json={"status": "open"}), 422)

    partner = st.token(str(uuid.uuid4()), "platform_admin")
    c1 = await st.readiness.post(f"{a.url}/plan/comments", headers=partner, json={"body": "Good start."})
    c2 = await st.readiness.post(f"{a.url}/plan/comments", headers=st.token(a.id, "supervisor"),
                                 json={"body": "Agreed.", "action_id": action["id"]})
    assert c1.json()["author_kind"] == "partner" and c2.json()["author_kind"] == "agency"
    comments = (await st.readiness.get(f"{a.url}/plan/comments", headers=a.admin)).json()["items"]
    assert [c["body"] for c in comments] == ["Good start.", "Agreed."]


async def publish(js: Any, agency: str, payload: EventPayload) -> None:
    env = Envelope.wrap(payload, source="trellis/fidelity", subject=payload.certification_id, agency=agency)
    ack = await js.publish(env.nats_subject, env.to_bytes(), headers={"Nats-Msg-Id": env.id})
    assert not ack.duplicate


async def test_stage_moves_to_full_implementation_and_back_as_certifications_arrive(
    st: Stack, nats_server: NatsServer
):
    a = await register(st)
    practitioners = [await a.add(f"P {n}", ["practitioner"]) for n in range(4)]
    await a.add("Coach", ["coach"])
    await st.readiness.post(f"{a.url}/plan/actions", headers=a.admin, json={"title": "Kick-off"})
    await st.readiness.post(f"{a.url}/plan/approve", headers=a.admin)
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    certs = {p["id"]: str(uuid.uuid4()) for p in practitioners}

    def certified(p: dict[str, Any], revision: int = 1) -> PractitionerCertified:
        return PractitionerCertified(certification_id=certs[p["id"]], practitioner_id=p["id"],
                                     instrument_id=str(uuid.uuid4()), certified_on=TODAY,
                                     expires_on=TODAY + timedelta(days=730), revision=revision)

    async def stage_is(stage: str) -> None:
        async def check() -> bool:
            return (await st.readiness.get(a.url, headers=a.admin)).json()["stage"] == stage
        await eventually(check)

    try:
        await stage_is("installation")
        await publish(js, a.id, certified(practitioners[0]))
        await stage_is("initial_implementation")
        await publish(js, a.id, certified(practitioners[1]))
        await stage_is("full_implementation")  # 2 of 4 = 50%
        await publish(js, a.id, CertificationLapsed(certification_id=certs[practitioners[1]["id"]],
                                                    practitioner_id=practitioners[1]["id"], lapsed_on=TODAY,
                                                    revision=3))
        await stage_is("initial_implementation")  # 1 of 4
        # A late, older transition of the same certification changes nothing.
        await publish(js, a.id, certified(practitioners[1], revision=2))
        await publish(js, a.id, certified(practitioners[2]))
        await publish(js, a.id, certified(practitioners[3]))
        await stage_is("full_implementation")  # 3 of 4 (p0, p2, p3; p1's lapse still stands)
        # Someone leaving changes the denominator as well as the count: 2 of 3 is still full.
        await st.readiness.post(f"{a.url}/staff/{practitioners[3]['id']}/leave", headers=a.admin, json={})
        await publish(js, a.id, CertificationRevoked(certification_id=certs[practitioners[2]["id"]],
                                                     practitioner_id=practitioners[2]["id"], revoked_on=TODAY,
                                                     revoked_by=a.admin_id, reason="Policy", revision=2))
        await stage_is("initial_implementation")  # 1 of 3
        history = (await st.readiness.get(f"{a.url}/stages", headers=a.admin)).json()
        stages = [h["stage"] for h in history["history"]]
        assert stages == ["exploration", "installation", "initial_implementation", "full_implementation",
                          "initial_implementation", "full_implementation", "initial_implementation"]
        assert history["history"][3]["certified_share"] == 0.5
        assert "2 of 4 active practitioners certified" in history["history"][3]["reason"]
        assert "fell below 50%" in history["history"][4]["reason"]

        async def all_published() -> bool:  # one ImplementationStageChanged per entry, on the agency's subject
            subject = f"readiness.ImplementationStageChanged.{a.id}"
            i = await js.stream_info("READINESS", subjects_filter=subject)
            return (i.state.subjects or {}).get(subject) == 7

        await eventually(all_published)
    finally:
        await nc.close()


async def test_agency_admin_of_b_cannot_read_or_change_a(st: Stack):
    a = await register(st, "A")
    b = await register(st, "B")
    ana = await a.add("Ana", ["practitioner"])
    before = await outbox_rows(st)
    hb = b.admin
    for path in ("", "/staff", f"/staff/{ana['id']}", "/teams", "/plan", "/stages", "/turnover",
                 "/readiness-rounds", "/plan/comments"):
        problem(await st.readiness.get(f"{a.url}{path}", headers=hb), 403)
    writes = [
        ("post", "/staff", {"json": {"name": "X", "email": "x@example.org", "roles": ["coach"]}}),
        ("post", f"/staff/{ana['id']}/leave", {"json": {}}),
        ("patch", f"/staff/{ana['id']}", {"json": {"roles": ["coach"]}}),
        ("post", "/teams", {"json": {"name": "T"}}),
        ("post", "/staff/import", {"content": ROSTER_GOOD, "headers": {"content-type": "text/csv"}}),
        ("post", "/readiness-rounds", {"json": {"title": "R"}}),
        ("post", "/plan/actions", {"json": {"title": "T"}}),
        ("post", "/plan/approve", {}),
        ("patch", "", {"json": {"name": "Taken over"}}),
    ]
    for method, path, kw in writes:
        headers = hb | kw.pop("headers", {})
        r = await getattr(st.readiness, method)(f"{a.url}{path}", headers=headers, **kw)
        problem(r, 403)
    assert (await st.readiness.get("/v1/agencies", headers=hb)).json()["items"][0]["id"] == b.id
    assert await outbox_rows(st) == before
    agency = (await st.readiness.get(a.url, headers=a.admin)).json()
    assert agency["name"] == "A"
    platform = st.token(str(uuid.uuid4()), "platform_admin")
    assert {x["id"] for x in (await st.readiness.get("/v1/agencies", headers=platform)).json()["items"]} >= {a.id, b.id}


@pytest.mark.parametrize("path,body,field", [
    ("/staff", {"name": "", "email": "x@example.org", "roles": ["coach"]}, "body.name"),
    ("/staff", {"name": "X", "email": "not-an-email", "roles": ["coach"]}, "body.email"),
    ("/staff", {"name": "X", "email": "x@example.org", "roles": ["wizard"]}, "body.roles.0"),
    ("/staff", {"name": "X", "email": "x@example.org", "roles": ["platform_admin"]}, "body.roles.0"),
    ("/staff", {"name": "X", "email": "x@example.org", "roles": []}, "body.roles"),
    ("/staff", {"name": "X", "email": "x@example.org", "roles": ["coach"], "hire_date": "2999-01-01"},
     "body.hire_date"),
    ("/staff", {"name": "X", "email": "x@example.org", "roles": ["coach"], "team_id": str(uuid.UUID(int=3))},
     "body.team_id"),
    ("/teams", {"name": ""}, "body.name"),
    ("/readiness-rounds", {"title": "R", "instrument_id": str(uuid.UUID(int=9))}, "body.instrument_id"),
    ("/plan/actions", {"title": ""}, "body.title"),
    ("", {"ready_at": 9}, "body.ready_at"),
])
async def test_bad_input_is_problem_json_and_writes_nothing(st: Stack, path: str, body: dict, field: str):
    a = await register(st)
    before = await outbox_rows(st)
    method = st.readiness.patch if path == "" else st.readiness.post
    r = await method(f"{a.url}{path}", headers=a.admin, json=body)
    assert field in {e["field"] for e in problem(r, 422)["errors"]}
    assert await outbox_rows(st) == before
    assert (await st.readiness.get(f"{a.url}/staff", headers=a.admin)).json()["items"] == []
    assert (await st.readiness.get(f"{a.url}/readiness-rounds", headers=a.admin)).json()["items"] == []
    assert (await st.readiness.get(f"{a.url}/plan", headers=a.admin)).json()["actions"] == []


async def test_thresholds_are_per_agency_and_only_platform_admins_change_them(st: Stack):
    a = await register(st)
    problem(await st.readiness.patch(a.url, headers=a.admin, json={"ready_at": 3.5}), 403)
    platform = st.token(str(uuid.uuid4()), "platform_admin")
    r = await st.readiness.patch(a.url, headers=platform, json={"ready_at": 3.5, "min_respondents": 8})
    assert r.json()["policy"] == {"ready_at": 3.5, "conditions_at": 3.0, "min_respondents": 8}
    assert problem(await st.readiness.patch(a.url, headers=platform, json={"conditions_at": 4.0}), 422)
    problem(await st.readiness.patch(a.url, headers=platform, json={"min_respondents": 2}), 422)


async def test_concurrent_answers_and_opens_are_counted_once(st: Stack):
    a = await register(st)
    people = [await a.add(f"Person {n}", ["practitioner"]) for n in range(8)]
    opened = await asyncio.gather(*(st.readiness.post(f"{a.url}/readiness-rounds", headers=a.admin,
                                                      json={"title": f"R{n}"}) for n in range(3)))
    assert sorted(r.status_code for r in opened) == [201, 409, 409]
    url = f"{a.url}/readiness-rounds/{next(r for r in opened if r.status_code == 201).json()['id']}"
    tokens = [st.token(a.id, "practitioner", sub=p["id"]) for p in people]
    puts = [st.readiness.put(f"{url}/responses/me", headers=t, json={"answers": answers(4)}) for t in tokens * 2]
    assert {r.status_code for r in await asyncio.gather(*puts)} <= {200, 201}
    assert (await st.readiness.get(url, headers=a.admin)).json()["respondents"] == 8
    closed = (await st.readiness.post(f"{url}/close", headers=a.admin)).json()
    assert closed["respondents"] == 8 and all(d["respondents"] == 8 for d in closed["results"])


async def test_the_sweep_moves_a_year_of_full_implementation_to_sustainment_once(
    st: Stack, nats_server: NatsServer
):
    a = await register(st)
    p1, _p2 = [await a.add(f"P {n}", ["practitioner"]) for n in range(2)]
    await st.readiness.post(f"{a.url}/plan/actions", headers=a.admin, json={"title": "Kick-off"})
    await st.readiness.post(f"{a.url}/plan/approve", headers=a.admin)
    nc = await nats.connect(nats_server.url)
    try:
        cert = PractitionerCertified(certification_id=str(uuid.uuid4()), practitioner_id=p1["id"],
                                     instrument_id=str(uuid.uuid4()), certified_on=TODAY,
                                     expires_on=TODAY + timedelta(days=730))
        await publish(nc.jetstream(), a.id, cert)

        async def full() -> bool:
            return (await st.readiness.get(a.url, headers=a.admin)).json()["stage"] == "full_implementation"

        await eventually(full)  # 1 of 2 is 50%: installation, initial and full in one step
    finally:
        await nc.close()
    db = st.apps["readiness"].state.db
    assert await sweep_stages(db, TODAY + timedelta(days=364)) == 0
    assert await sweep_stages(db, TODAY + timedelta(days=365)) == 1
    assert await sweep_stages(db, TODAY + timedelta(days=366)) == 0  # a second sweep finds nothing to do
    history = (await st.readiness.get(f"{a.url}/stages", headers=a.admin)).json()
    assert history["current"] == "sustainment"
    assert [h["stage"] for h in history["history"]][-2:] == ["full_implementation", "sustainment"]
    assert "held for 365 days" in history["history"][-1]["reason"]
