"""The services' HTTP contract: problem+json, nothing written on bad input, tenancy, idempotency, paging."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest

from tests.stack import INSTRUMENT, Stack, eventually, full_scores, observation


async def count_observations(st: Stack, agency: str) -> int:
    r = await st.fidelity.get("/v1/observations", params={"limit": 500}, headers=st.token(agency, "supervisor"))
    assert r.status_code == 200, r.text
    return len(r.json()["items"])


def assert_problem(r, status: int) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == status and body["title"] and body["detail"] and body["type"].startswith("urn:")
    return body


async def test_instruments_list_the_seeded_instruments_with_items(st: Stack):
    r = await st.fidelity.get("/v1/instruments", headers=st.token(str(uuid.uuid4()), "coach"))
    assert r.status_code == 200
    by_kind = {i["kind"]: i for i in r.json()["items"]}
    assert set(by_kind) == {"practice_observation", "coaching_observation", "record_review"}
    assert by_kind["coaching_observation"]["track"] == "coach" and by_kind["record_review"]["track"] is None
    inst = by_kind["practice_observation"]
    assert inst["id"] == INSTRUMENT and inst["name"] == "MiiWrap practice observation" and inst["version"] == 1
    assert len(inst["items"]) >= 10
    assert {i["competency"] for i in inst["items"]} == set(inst["competencies"])
    assert any(i["critical"] for i in inst["items"])


async def test_scoring_is_returned_and_stored(st: Stack):
    agency = str(uuid.uuid4())
    (practitioner,) = await st.staffed(agency)
    scores = full_scores(2) | {"needs_not_services": 0}
    r = await st.fidelity.post("/v1/observations", json=observation(practitioner) | {"scores": scores},
                               headers=await st.observer(agency))
    assert r.status_code == 201, r.text
    body = r.json()
    total_max = 2 * len(scores)
    assert body["score"] == round(100 * (total_max - 2) / total_max, 2)
    assert body["competency_scores"]["Needs-driven planning"] == round(100 * 4 / 6, 2)
    assert body["competency_scores"]["Team process"] == 100.0
    assert body["passed"] is False  # a critical item below its minimum fails the observation
    assert r.headers["location"] == f"/v1/observations/{body['id']}"
    got = await st.fidelity.get(f"/v1/observations/{body['id']}", headers=st.token(agency, "coach"))
    assert got.json() == body


async def test_bad_observation_lists_every_bad_field_and_writes_nothing(st: Stack):
    agency = str(uuid.uuid4())
    scores = full_scores(2)
    del scores["actions_owned"]  # missing required item
    scores["family_perspective"] = 3  # outside 0–2
    scores["made_up_item"] = 1  # unknown
    (practitioner,) = await st.staffed(agency)
    r = await st.fidelity.post("/v1/observations", json=observation(practitioner) | {"scores": scores},
                               headers=await st.observer(agency))
    problem = assert_problem(r, 422)
    fields = {e["field"]: e["message"] for e in problem["errors"]}
    assert set(fields) == {"body.scores.actions_owned", "body.scores.family_perspective", "body.scores.made_up_item"}
    assert "outside the scale" in fields["body.scores.family_perspective"]
    assert "not an item" in fields["body.scores.made_up_item"]
    assert "required" in fields["body.scores.actions_owned"]
    assert all(e["pointer"].startswith("#/scores/") for e in problem["errors"])
    assert await count_observations(st, agency) == 0
    outbox = await st.fidelity.get("/metrics")
    assert "trellis_events_published_total 0.0" in outbox.text


@pytest.mark.parametrize("body,field", [
    ({"practitioner_id": "not-a-uuid"}, "body.practitioner_id"),
    ({"observed_on": "2999-01-01"}, "body.observed_on"),
    ({"setting": "the moon"}, "body.setting"),
    ({"instrument_id": str(uuid.UUID(int=7))}, "body.instrument_id"),
    ({"surprise": True}, "body.surprise"),
])
async def test_schema_errors_are_problem_json(st: Stack, body: dict, field: str):
    agency = str(uuid.uuid4())
    (practitioner,) = await st.staffed(agency)
    r = await st.fidelity.post("/v1/observations", json=observation(practitioner) | body,
                               headers=await st.observer(agency))
    problem = assert_problem(r, 422)
    assert field in {e["field"] for e in problem["errors"]}
    assert await count_observations(st, agency) == 0


async def test_malformed_json_and_self_observation(st: Stack):
    agency, me = str(uuid.uuid4()), str(uuid.uuid4())
    r = await st.fidelity.post("/v1/observations", content=b"{oops", headers=st.token(agency, "observer")
                               | {"content-type": "application/json"})
    assert_problem(r, 422)
    r = await st.fidelity.post("/v1/observations", json=observation(me), headers=st.token(agency, "observer", sub=me))
    assert "body.practitioner_id" in {e["field"] for e in assert_problem(r, 422)["errors"]}
    assert await count_observations(st, agency) == 0


async def test_only_active_staff_of_the_callers_agency_can_be_observed(st: Stack):
    agency, other_agency = str(uuid.uuid4()), str(uuid.uuid4())
    (colleague,) = await st.staffed(other_agency)
    stranger = str(uuid.uuid4())
    for person, why in ((stranger, "not on your agency's roster"), (colleague, "not on your agency's roster")):
        r = await st.fidelity.post("/v1/observations", json=observation(person), headers=await st.observer(agency))
        (error,) = assert_problem(r, 422)["errors"]
        assert error["field"] == "body.practitioner_id" and error["code"] == "not-active-staff"
        assert why in error["message"] and "active staff" in error["message"]
    due = (date.today() + timedelta(days=10)).isoformat()
    follow_up = {"practitioner_id": stranger, "due_on": due, "title": "Rehearse"}
    r = await st.coaching.post("/v1/tasks", json=follow_up, headers=st.token(agency, "coach"))
    (error,) = assert_problem(r, 422)["errors"]
    assert error["code"] == "not-active-staff"
    assert await count_observations(st, agency) == 0
    assert (await st.coaching.get("/v1/tasks", headers=st.token(agency, "coach"))).json()["items"] == []


async def test_coach_opens_a_follow_up_for_active_staff(st: Stack):
    agency = str(uuid.uuid4())
    (practitioner,) = await st.staffed(agency)
    coach = st.token(agency, "coach")
    body = {"practitioner_id": practitioner, "due_on": "2000-01-01", "title": "Rehearse needs statements"}
    r = await st.coaching.post("/v1/tasks", json=body, headers=coach)
    assert assert_problem(r, 422)["errors"][0]["field"] == "body.due_on"
    r = await st.coaching.post("/v1/tasks", json=body | {"due_on": "2099-01-01"}, headers=coach)
    assert assert_problem(r, 422)["errors"][0]["field"] == "body.due_on"  # too far out to be acting early
    due = (date.today() + timedelta(days=10)).isoformat()
    r = await st.coaching.post("/v1/tasks", json=body | {"due_on": due}, headers=coach)
    assert r.status_code == 201, r.text
    assert r.json()["kind"] == "follow_up" and r.json()["title"] == body["title"]
    assert r.headers["location"] == f"/v1/tasks/{r.json()['id']}"
    assert_problem(await st.coaching.post("/v1/tasks", json=body | {"due_on": due},
                                          headers=st.token(agency, "observer")), 403)


async def test_auth_and_roles(st: Stack):
    agency = str(uuid.uuid4())
    r = await st.fidelity.post("/v1/observations", json=observation(str(uuid.uuid4())))
    assert_problem(r, 401)
    assert r.headers["www-authenticate"].startswith("Bearer")
    r = await st.fidelity.post("/v1/observations", json=observation(str(uuid.uuid4())),
                               headers=st.token(agency, "coach"))
    assert "observer" in assert_problem(r, 403)["detail"]
    r = await st.coaching.get("/v1/tasks", headers={"Authorization": "Bearer not.a.jwt"})
    assert_problem(r, 401)
    r = await st.coaching.get("/v1/tasks", headers=st.token(agency, "partner"))
    assert_problem(r, 403)
    assert await count_observations(st, agency) == 0


async def test_agency_b_sees_nothing_of_agency_a(st: Stack):
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    (practitioner,) = await st.staffed(a)
    r = await st.fidelity.post("/v1/observations", json=observation(practitioner), headers=await st.observer(a))
    obs_id = r.json()["id"]
    coach_a = st.token(a, "coach")

    async def task_opened() -> bool:
        r = await st.coaching.get("/v1/tasks", params={"practitioner_id": practitioner}, headers=coach_a)
        return len(r.json()["items"]) == 1

    await eventually(task_opened)
    task_id = (await st.coaching.get("/v1/tasks", headers=coach_a)).json()["items"][0]["id"]
    for roles in (("coach",), ("supervisor", "agency_admin"), ("observer",)):
        hb = st.token(b, *roles)
        assert (await st.fidelity.get("/v1/observations", headers=hb)).json()["items"] == []
        r = await st.fidelity.get("/v1/observations", params={"practitioner_id": practitioner}, headers=hb)
        assert r.json()["items"] == []
        assert_problem(await st.fidelity.get(f"/v1/observations/{obs_id}", headers=hb), 404)
        r = await st.coaching.get("/v1/tasks", params={"practitioner_id": practitioner}, headers=hb)
        assert r.json()["items"] == []
        assert_problem(await st.coaching.get(f"/v1/tasks/{task_id}", headers=hb), 404)


async def test_practitioner_sees_only_their_own_records(st: Stack):
    agency = str(uuid.uuid4())
    me, other = await st.staffed(agency, 2)
    for p in (me, other):
        await st.fidelity.post("/v1/observations", json=observation(p), headers=await st.observer(agency))
    mine = st.token(agency, "practitioner", sub=me)
    r = await st.fidelity.get("/v1/observations", headers=mine)
    assert [o["practitioner_id"] for o in r.json()["items"]] == [me]
    assert_problem(await st.fidelity.get("/v1/observations", params={"practitioner_id": other}, headers=mine), 403)


async def test_idempotency_key_replays_the_first_response(st: Stack):
    agency = str(uuid.uuid4())
    headers = (await st.observer(agency)) | {"Idempotency-Key": "obs-123"}
    body = observation((await st.staffed(agency))[0])
    first = await st.fidelity.post("/v1/observations", json=body, headers=headers)
    again = await st.fidelity.post("/v1/observations", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers.get("idempotent-replayed") == "true"
    assert await count_observations(st, agency) == 1
    changed = await st.fidelity.post("/v1/observations", json=body | {"notes": "different"}, headers=headers)
    assert "different request" in assert_problem(changed, 422)["detail"]
    assert await count_observations(st, agency) == 1
    # Another caller may use the same key for their own request.
    other = (await st.observer(agency, fresh=True)) | {"Idempotency-Key": "obs-123"}
    assert (await st.fidelity.post("/v1/observations", json=body, headers=other)).status_code == 201
    assert await count_observations(st, agency) == 2


async def test_a_refused_request_can_be_retried_with_the_same_key(st: Stack):
    """A 4xx wrote nothing, so it is not replayed: the retry runs again, e.g. once the roster caught up."""
    agency, newcomer = str(uuid.uuid4()), str(uuid.uuid4())
    headers = (await st.observer(agency)) | {"Idempotency-Key": "obs-early"}
    first = await st.fidelity.post("/v1/observations", json=observation(newcomer), headers=headers)
    assert assert_problem(first, 422)["errors"][0]["code"] == "not-active-staff"
    await st.enrol(agency, newcomer)
    retry = await st.fidelity.post("/v1/observations", json=observation(newcomer), headers=headers)
    assert retry.status_code == 201 and "idempotent-replayed" not in retry.headers
    again = await st.fidelity.post("/v1/observations", json=observation(newcomer), headers=headers)
    assert again.headers.get("idempotent-replayed") == "true" and again.json() == retry.json()


async def test_cursor_pagination(st: Stack):
    agency = str(uuid.uuid4())
    (practitioner,) = await st.staffed(agency)
    created = []
    for _ in range(5):
        r = await st.fidelity.post("/v1/observations", json=observation(practitioner),
                                   headers=await st.observer(agency))
        created.append(r.json()["id"])
    seen, after, pages = [], None, 0
    while True:
        params = {"limit": 2, "practitioner_id": practitioner} | ({"after": after} if after else {})
        page = (await st.fidelity.get("/v1/observations", params=params, headers=st.token(agency, "coach"))).json()
        seen += [o["id"] for o in page["items"]]
        pages += 1
        after = page["next"]
        if not after:
            break
    assert seen == created and pages == 3
    r = await st.fidelity.get("/v1/observations", params={"after": "!!!"}, headers=st.token(agency, "coach"))
    assert_problem(r, 400)
    r = await st.fidelity.get("/v1/observations", params={"limit": 0}, headers=st.token(agency, "coach"))
    assert_problem(r, 422)


async def test_health_readiness_and_metrics(st: Stack):
    for client in (st.fidelity, st.coaching):
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        ready = await client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok", "nats": "ok"}
        metrics = (await client.get("/metrics")).text
        assert "trellis_outbox_unsent" in metrics and "trellis_outbox_oldest_unsent_age_seconds" in metrics
    assert "trellis_consumer_lag" in (await st.coaching.get("/metrics")).text


async def test_roster_events_out_of_order_keep_the_newest_state(st: Stack):
    """Joined and left reach separate consumers; a late, older Joined must not bring someone back."""
    from contracts.readiness import StaffMemberJoined, StaffMemberLeft, StaffRoleChanged
    from services.fidelity.models import ROSTER
    from trellis.bus import jetstream
    from trellis.envelope import Envelope

    agency, person = str(uuid.uuid4()), str(uuid.uuid4())
    joined = Envelope.wrap(StaffMemberJoined(staff_id=person, display_name="P", team_id=None, roles=["practitioner"],
                                             hire_date=date(2025, 1, 6)), source="tests", subject=person, agency=agency)
    roles = Envelope.wrap(StaffRoleChanged(staff_id=person, roles=["coach"], previous_roles=["practitioner"],
                                           team_id=None, previous_team_id=None),
                          source="tests", subject=person, agency=agency)
    left = Envelope.wrap(StaffMemberLeft(staff_id=person, left_on=date(2026, 1, 1)), source="tests", subject=person,
                         agency=agency)
    js = jetstream(st.apps["fidelity"].state.broker)
    for env in (left, roles, joined):  # newest first
        await js.publish(env.nats_subject, env.to_bytes(), headers={"Nats-Msg-Id": env.id})

    async def settled() -> bool:
        metrics = st.apps["fidelity"].state.metrics.registry
        return all(metrics.get_sample_value("trellis_events_consumed_total",
                                            {"consumer": f"fidelity--{c}", "outcome": "handled"}) == 1
                   for c in ("roster-joined", "roster-left", "roster-roles"))

    await eventually(settled)
    async with st.apps["fidelity"].state.db.reader() as s:
        member = await ROSTER.member(s, agency, person)
    assert member is not None and not member.active and member.roles == frozenset({"coach"})
    r = await st.fidelity.post("/v1/observations", json=observation(person), headers=await st.observer(agency))
    assert "has left" in assert_problem(r, 422)["errors"][0]["message"]
