"""Roles and replay over real services (real nats-server; SQLite and PostgreSQL): the partner role never
writes on any route, drafts stay with platform admins, calibration cannot be won by replaying the
revealed coding, and the live feed never widens beyond one agency."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from datetime import timedelta
from typing import Any

import nats
import pytest
from sqlalchemy import func, select

from gateway.live import LiveEvents
from services.fidelity.domain import SEEDED_REFERENCES
from services.fidelity.models import Calibration
from services.readiness.domain import READINESS_V1
from services.readiness.models import Response as Answers
from tests.stack import INSTRUMENT, Stack, eventually, observation, problem
from tests.support import NatsServer
from trellis.db import Database, outbox

WRITES = {"post", "put", "patch", "delete"}


SERVICES = ("readiness", "fidelity", "coaching")



async def count(db: Database, what: Any, *where: Any) -> int:
    async with db.reader(all_agencies=True) as s:
        return int((await s.execute(select(func.count()).select_from(what).where(*where))).scalar_one())


async def agency_with_staff(st: Stack) -> tuple[str, dict[str, str], str]:
    """A registered agency, its admin's headers, and one active staff member's id."""
    platform = st.token(str(uuid.uuid4()), "platform_admin")
    r = await st.readiness.post("/v1/agencies", headers=platform, json={"name": "Riverside", "region": "North"})
    assert r.status_code == 201, r.text
    agency = r.json()["id"]
    admin = st.token(agency, "agency_admin")
    r = await st.readiness.post(f"/v1/agencies/{agency}/staff", headers=admin, json={
        "name": "Pat Partner", "email": f"pat.{uuid.uuid4().hex[:6]}@example.org", "roles": ["practitioner"]})
    assert r.status_code == 201, r.text
    return agency, admin, r.json()["id"]


# ---- the partner role is read-only everywhere ----------------------------------------------------


async def test_a_partner_who_is_also_staff_cannot_answer_a_readiness_round(st: Stack):
    agency, admin, staff_id = await agency_with_staff(st)
    r = await st.readiness.post(f"/v1/agencies/{agency}/readiness-rounds", headers=admin, json={"title": "Q1"})
    assert r.status_code == 201, r.text
    url = f"/v1/agencies/{agency}/readiness-rounds/{r.json()['id']}"
    partner = st.token(agency, "partner", sub=staff_id)
    body = {"answers": {i.key: 5 for i in READINESS_V1.items}}
    assert problem(await st.readiness.put(f"{url}/responses/me", headers=partner, json=body),
                   403)["type"].endswith("read-only-role")
    assert await count(st.apps["readiness"].state.db, Answers) == 0
    assert (await st.readiness.get(url, headers=partner)).json()["respondents"] == 0  # reading still works
    # The same person answering as the practitioner they are: accepted.
    me = st.token(agency, "practitioner", sub=staff_id)
    assert (await st.readiness.put(f"{url}/responses/me", headers=me, json=body)).status_code == 201


async def test_partner_gets_403_on_every_write_route_and_nothing_changes(st: Stack):
    """Table-driven over each service's OpenAPI document: every POST, PUT, PATCH and DELETE."""
    agency, admin, staff_id = await agency_with_staff(st)
    r = await st.readiness.post(f"/v1/agencies/{agency}/readiness-rounds", headers=admin, json={"title": "Q1"})
    round_id = r.json()["id"]
    known = {"agency_id": agency, "staff_id": staff_id, "round_id": round_id}
    # Partners read across agencies; this one is also staff and holds an open round to answer.
    partner = st.token(agency, "partner", sub=staff_id)
    dbs = {name: app.state.db for name, app in st.apps.items()}
    before = {name: await count(db, outbox) for name, db in dbs.items()}
    tried: list[tuple[str, str, str]] = []
    for name, app in st.apps.items():
        for path, ops in app.openapi()["paths"].items():
            for method in sorted(WRITES & set(ops)):
                url = re.sub(r"\{(\w+)\}", lambda m: known.get(m.group(1), str(uuid.uuid4())), path)
                r = await st.clients[name].request(method, url, headers=partner, json={})
                body = problem(r, 403)
                assert body["type"].endswith("read-only-role"), (name, method, path, body)
                tried.append((name, method, path))
    assert ("readiness", "put", "/v1/agencies/{agency_id}/readiness-rounds/{round_id}/responses/me") in tried
    assert {n for n, _, _ in tried} == {"readiness", "fidelity", "coaching"} and len(tried) >= 25, tried
    assert {name: await count(db, outbox) for name, db in dbs.items()} == before
    assert await count(dbs["readiness"], Answers) == 0
    # Reads stay open to the partner.
    r = await st.fidelity.get(f"/v1/agencies/{agency}/fidelity-summary", headers=partner)
    assert r.status_code == 200, r.text


# ---- draft instruments ---------------------------------------------------------------------------


async def test_draft_instruments_are_seen_only_by_platform_admins(st: Stack):
    agency = str(uuid.uuid4())
    platform = st.token(str(uuid.uuid4()), "platform_admin")
    family = f"dart-{uuid.uuid4().hex[:8]}"
    r = await st.fidelity.post("/v1/instruments", headers=platform, json={
        "family": family, "kind": "record_review", "name": "Draft review", "pass_threshold": 75,
        "items": [{"key": "needs", "label": "Needs documented", "competency": "Records"}]})
    assert r.status_code == 201 and r.json()["status"] == "draft", r.text
    draft = r.json()["id"]

    async def listed(headers: dict[str, str], **params: str) -> set[str]:
        r = await st.fidelity.get("/v1/instruments", headers=headers, params={"limit": "200", **params})
        assert r.status_code == 200, r.text
        return {i["id"] for i in r.json()["items"]}

    for role in ("agency_admin", "supervisor", "coach", "observer", "practitioner", "partner"):
        headers = st.token(agency, role)
        assert draft not in await listed(headers), role
        assert not await listed(headers, status="draft"), role
        assert INSTRUMENT in await listed(headers), role  # active ones are still listed
        problem(await st.fidelity.get(f"/v1/instruments/{draft}", headers=headers), 404)
    assert draft in await listed(platform, status="draft")
    assert (await st.fidelity.get(f"/v1/instruments/{draft}", headers=platform)).status_code == 200
    assert (await st.fidelity.post(f"/v1/instruments/{draft}/activate", headers=platform)).status_code == 200
    observer = st.token(agency, "observer")
    assert (await st.fidelity.get(f"/v1/instruments/{draft}", headers=observer)).json()["status"] == "active"


# ---- calibration cannot be replayed --------------------------------------------------------------


async def fidelity_ready(st: Stack) -> bool:
    return (await st.fidelity.get("/readyz")).status_code == 200


async def calibrate(st: Stack, headers: dict[str, str], **body: Any) -> Any:
    return await st.fidelity.post("/v1/calibrations", json=body, headers=headers)


async def rater_status(st: Stack, agency: str, rater: str) -> dict[str, Any]:
    r = await st.fidelity.get(f"/v1/raters/{rater}/status", headers=st.token(agency, "supervisor"))
    return r.json()  # type: ignore[no-any-return]


async def end_cooldown(st: Stack, agency: str, rater: str) -> None:
    """As if the rater's last attempt were older than the cooldown."""
    ago = timedelta(seconds=st.apps["fidelity"].state.settings.calibration_cooldown_s + 1)
    async with st.apps["fidelity"].state.db.unit_of_work(agency=agency) as s:
        for c in await s.scalars(select(Calibration).where(Calibration.rater_id == rater)):
            c.created_at -= ago


async def test_scoring_zeros_then_replaying_the_revealed_coding_does_not_calibrate(st: Stack):
    agency, rater = str(uuid.uuid4()), str(uuid.uuid4())
    headers = st.token(agency, "observer", sub=rater)
    fidelity_db = st.apps["fidelity"].state.db
    ref = SEEDED_REFERENCES[0]
    listed = (await st.fidelity.get("/v1/calibration-references", headers=headers)).json()["items"]
    assert all(r["scores"] is None for r in listed)  # the coding is hidden before an attempt
    r = await calibrate(st, headers, reference_id=ref.id, scores=dict.fromkeys(ref.scores, 0))
    assert r.status_code == 201 and r.json()["calibrated"] is False, r.text
    revealed = r.json()["reference_scores"]
    assert revealed == ref.scores  # revealed once the attempt is recorded
    # The replay: the revealed coding on the same reference. Refused; the failed attempt stands.
    replay = problem(await calibrate(st, headers, reference_id=ref.id, scores=revealed), 409)
    assert replay["type"].endswith("reference-seen") and "another" in replay["detail"]
    assert await count(fidelity_db, Calibration, Calibration.rater_id == rater) == 1
    status = await rater_status(st, agency, rater)
    assert status["calibrated"] is False and "below" in status["reason"]
    # Even after the cooldown the seen reference never counts again.
    await end_cooldown(st, agency, rater)
    problem(await calibrate(st, headers, reference_id=ref.id, scores=revealed), 409)
    assert (await rater_status(st, agency, rater))["calibrated"] is False


async def test_attempts_wait_for_a_cooldown_then_a_new_reference_counts(st: Stack):
    agency, rater = str(uuid.uuid4()), str(uuid.uuid4())
    headers = st.token(agency, "observer", sub=rater)
    platform = st.token(str(uuid.uuid4()), "platform_admin")
    ref = SEEDED_REFERENCES[0]
    other = {k: 2 for k in ref.scores}
    r = await st.fidelity.post("/v1/calibration-references", headers=platform, json={
        "instrument_id": INSTRUMENT, "title": "Second recording", "reference_rater": "Purveyor", "scores": other})
    assert r.status_code == 201, r.text
    second = r.json()["id"]
    assert (await calibrate(st, headers, reference_id=ref.id, scores=dict.fromkeys(ref.scores, 0))).status_code == 201
    r = await calibrate(st, headers, reference_id=second, scores=other)
    body = problem(r, 429)
    assert body["type"].endswith("calibration-cooldown")
    cooldown = st.apps["fidelity"].state.settings.calibration_cooldown_s
    assert cooldown == 900 and 0 < int(r.headers["retry-after"]) <= cooldown
    assert await count(st.apps["fidelity"].state.db, Calibration, Calibration.rater_id == rater) == 1
    await end_cooldown(st, agency, rater)
    r = await calibrate(st, headers, reference_id=second, scores=other)
    assert r.status_code == 201 and r.json()["calibrated"] is True, r.text
    assert (await rater_status(st, agency, rater))["calibrated"] is True
    # The cooldown is a setting (TRELLIS_CALIBRATION_COOLDOWN_S); 0 turns it off.
    settings = st.apps["fidelity"].state.settings
    st.apps["fidelity"].state.settings = settings.model_copy(update={"calibration_cooldown_s": 0.0})
    try:
        newcomer = st.token(agency, "observer")
        assert (await calibrate(st, newcomer, reference_id=ref.id, scores=ref.scores)).status_code == 201
        assert (await calibrate(st, newcomer, reference_id=second, scores=other)).status_code == 201
    finally:
        st.apps["fidelity"].state.settings = settings


async def test_whoever_can_read_a_master_coding_cannot_calibrate_on_it(st: Stack):
    agency = str(uuid.uuid4())
    curator = st.token(str(uuid.uuid4()), "platform_admin", "observer")
    ref = SEEDED_REFERENCES[0]
    problem(await calibrate(st, curator, reference_id=ref.id, scores=ref.scores), 409)
    author = str(uuid.uuid4())
    own = st.token(agency, "agency_admin", "observer", sub=author)
    r = await st.fidelity.post("/v1/calibration-references", headers=own, json={
        "instrument_id": INSTRUMENT, "title": "Our recording", "reference_rater": "Lead", "scores": ref.scores})
    assert r.status_code == 201, r.text
    problem(await calibrate(st, own, reference_id=r.json()["id"], scores=ref.scores), 409)
    assert (await rater_status(st, agency, author))["calibrated"] is False


async def test_a_live_observation_is_double_coded_once(st: Stack):
    agency = str(uuid.uuid4())
    await eventually(lambda: fidelity_ready(st))  # the roster arrives over NATS
    (person,) = await st.staffed(agency)
    r = await st.fidelity.post("/v1/observations", json=observation(person), headers=await st.observer(agency))
    assert r.status_code == 201, r.text
    second = st.token(agency, "observer")
    first = await calibrate(st, second, observation_id=r.json()["id"], scores=dict.fromkeys(r.json()["scores"], 0))
    assert first.status_code == 201 and first.json()["calibrated"] is False
    again = await calibrate(st, second, observation_id=r.json()["id"], scores=first.json()["reference_scores"])
    assert problem(again, 409)["type"].endswith("reference-seen")


# ---- the live feed stays within one agency -------------------------------------------------------


async def test_the_live_feed_never_subscribes_beyond_one_agency(nats_server: NatsServer):
    live = LiveEvents([nats_server.url])
    await live.connect()
    publisher = await nats.connect(nats_server.url)
    mine, theirs = str(uuid.uuid4()), str(uuid.uuid4())
    try:
        for wildcard in ("*", ">", f"{mine}.>"):
            with pytest.raises(ValueError, match="not an agency id"):
                await asyncio.wait_for(anext(live.stream(wildcard)), 3)
        own = live.stream(mine)
        first = asyncio.create_task(anext(own))
        await asyncio.sleep(0.3)
        assert live.nc is not None
        await live.nc.flush()
        await publisher.publish(f"readiness.StaffMemberJoined.{theirs}", json.dumps({"agency": theirs}).encode())
        await publisher.publish(f"readiness.StaffMemberJoined.{mine}", json.dumps({"agency": mine}).encode())
        await publisher.flush()
        assert (await asyncio.wait_for(first, 5)) == {"agency": mine}
        await own.aclose()
    finally:
        await publisher.close()
        await live.close()
