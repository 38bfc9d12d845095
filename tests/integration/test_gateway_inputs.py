"""One shape for scores across REST and GraphQL, and refusals named where the caller wrote the input.

REST takes `scores` as `{item: score}` or as GraphQL's `[{item, score}]`, and both score alike; the gateway
sends the list as it was given. A refusal through the gateway keeps the service's problem (REST fields) and
adds `extensions.errors` with GraphQL input paths: `input.scores[2].score`, not `body.scores.family_voice`.
On SQLite and PostgreSQL, with a real NATS."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from services.fidelity.domain import MIIWRAP_PRACTICE_V1
from tests.gateway_harness import GraphQL, serving_gateway
from tests.stack import INSTRUMENT, Stack, full_scores, observation, problem

SERVICES = ("fidelity", "coaching")
KEYS = [i.key for i in MIIWRAP_PRACTICE_V1.items]

RECORD = """mutation($input: RecordObservationInput!) { recordObservation(input: $input) {
  id score passed competencyScores itemScores { item score } } }"""
AMEND = """mutation($id: ID!, $scores: [ItemScoreInput!]!, $reason: String!) {
  amendObservation(id: $id, scores: $scores, reason: $reason) { id score itemScores { item score } } }"""
CALIBRATE = """mutation($ref: ID, $scores: [ItemScoreInput!]!) {
  calibrate(referenceId: $ref, scores: $scores) { id agreement } }"""
CREATE = """mutation($input: CreateInstrumentInput!) { createInstrument(input: $input) { id } }"""
SET_POLICY = """mutation($input: CertificationPolicyInput!) { setCertificationPolicy(input: $input) {
  requiredPasses } }"""


def as_list(scores: dict[str, int]) -> list[dict[str, Any]]:
    return [{"item": k, "score": v} for k, v in scores.items()]


def observed(person: str, scores: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"practitionerId": person, "instrumentId": INSTRUMENT, "observedOn": "2026-11-02",
            "setting": "team_meeting", "scores": scores, **extra}


@pytest.fixture
async def gql(st: Stack, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[GraphQL]:
    for name in ("readiness", *SERVICES):
        monkeypatch.setenv(f"TRELLIS_{name.upper()}_BASE_URL", f"http://{name}")
    async with serving_gateway(st, st.settings) as (http, transport):
        yield GraphQL(st, http, transport)


async def recorded(st: Stack, person: str, observer: dict[str, str]) -> list[dict[str, Any]]:
    r = await st.fidelity.get("/v1/observations", params={"practitioner_id": person}, headers=observer)
    assert r.status_code == 200, r.text
    return r.json()["items"]  # type: ignore[no-any-return]


# ---- REST: both shapes ---------------------------------------------------------------------------


async def test_rest_takes_scores_as_an_object_or_a_list_and_scores_them_alike(st: Stack) -> None:
    agency = str(uuid.uuid4())
    a, b, c = await st.staffed(agency, 3)
    observer = await st.observer(agency)
    scores = {**full_scores(2), "actions_owned": 1, "strengths_used": 0}

    r = await st.fidelity.post("/v1/observations", json=observation(a, scores=scores), headers=observer)
    as_object = r.json()
    assert r.status_code == 201, r.text
    r = await st.fidelity.post("/v1/observations", json=observation(b, scores=as_list(scores)), headers=observer)
    assert r.status_code == 201, r.text
    as_a_list = r.json()
    reversed_list = as_list(dict(reversed(list(scores.items()))))
    r = await st.fidelity.post("/v1/observations", json=observation(c, scores=reversed_list), headers=observer)
    assert r.status_code == 201, r.text
    for got in (as_a_list, r.json()):
        for field in ("scores", "score", "passed", "competency_scores"):
            assert got[field] == as_object[field], field
    assert as_a_list["scores"] == scores  # REST answers with the object form

    # Amendments and calibrations take the list too.
    corrected = {**full_scores(2), "actions_owned": 2}
    r = await st.fidelity.post(f"/v1/observations/{as_a_list['id']}/amendments",
                               json={"scores": as_list(corrected), "reason": "Miscounted two items"}, headers=observer)
    assert r.status_code == 201, r.text
    assert r.json()["scores"] == corrected
    other = st.token(agency, "observer")  # double-codes the live observation
    r = await st.fidelity.post("/v1/calibrations", json={"observation_id": as_a_list["id"],
                                                         "scores": as_list(corrected)}, headers=other)
    assert r.status_code == 201, r.text
    assert r.json()["agreement"] == 100.0


async def test_rest_refuses_a_bad_list_entry_at_its_place_and_records_nothing(st: Stack) -> None:
    agency = str(uuid.uuid4())
    (person,) = await st.staffed(agency)
    observer = await st.observer(agency)
    good = as_list(full_scores(2))

    cases = [
        ([*good[:2], {"item": good[2]["item"], "score": "2"}, *good[3:]], "body.scores.2.score", "int_type"),
        ([*good, {"item": good[0]["item"], "score": 1}], f"body.scores.{len(good)}.item", "duplicate_item"),
        ([{**good[0], "note": "x"}, *good[1:]], "body.scores.0.note", "extra_forbidden"),
        ([*good[:1], {"score": 2}, *good[2:]], "body.scores.1.item", "missing"),
    ]
    for scores, field, code in cases:
        r = await st.fidelity.post("/v1/observations", json=observation(person, scores=scores), headers=observer)
        errors = problem(r, 422)["errors"]
        assert [(e["field"], e["code"]) for e in errors] == [(field, code)], errors
    twice = problem(await st.fidelity.post("/v1/observations", json=observation(
        person, scores=[*good, {"item": good[0]["item"], "score": 1}]), headers=observer), 422)["errors"]
    assert twice[0]["message"] == f"item '{good[0]['item']}' is scored twice"
    assert twice[0]["pointer"] == f"#/scores/{len(good)}/item"
    assert await recorded(st, person, observer) == []


# ---- GraphQL: errors at GraphQL input paths ---------------------------------------------------------


async def test_the_gateway_names_refused_scores_by_their_graphql_input_path(st: Stack, gql: GraphQL) -> None:
    agency = str(uuid.uuid4())
    (person,) = await st.staffed(agency)
    observer = await st.observer(agency)
    scores = as_list(full_scores(2))

    # Out of scale at index 2, and a required item not given at all.
    bad = [*scores[:2], {"item": scores[2]["item"], "score": 7}, *scores[3:-1]]
    err = await gql.refused(RECORD, observer, input=observed(person, bad))
    assert err["code"] == "BAD_USER_INPUT" and err["service"] == "fidelity"
    assert {(e["path"], e["message"]) for e in err["errors"]} == {
        ("input.scores[2].score", "score 7 is outside the scale 0–2"),
        ("input.scores", f"'{KEYS[-1]}' is required and was not scored")}
    # The service's problem is passed on unchanged: REST clients and GraphQL clients read the same words.
    assert {e["field"] for e in err["problem"]["errors"]} == {f"body.scores.{scores[2]['item']}",
                                                               f"body.scores.{KEYS[-1]}"}
    assert [e["message"] for e in err["problem"]["errors"]] == [e["message"] for e in err["errors"]]

    # Not an item of the instrument, and a date in the future: other fields of the input are named alike.
    err = await gql.refused(RECORD, observer, input=observed(person, [*scores, {"item": "made_up", "score": 1}],
                                                             observedOn="2099-01-01"))
    assert {e["path"] for e in err["errors"]} == {f"input.scores[{len(scores)}].score", "input.observedOn"}
    assert await recorded(st, person, observer) == []

    # Scores given as arguments (not in an input object) are named from the argument.
    obs = (await gql.ok(RECORD, observer, input=observed(person, scores)))["recordObservation"]["id"]
    err = await gql.refused(AMEND, observer, id=obs, scores=[*scores[:3], {"item": scores[3]["item"], "score": -1},
                                                             *scores[4:]], reason="Miscounted")
    assert [e["path"] for e in err["errors"]] == ["scores[3].score"]

    # An item given twice never leaves the gateway, and is named the same way.
    gql.transport.calls.clear()
    err = await gql.refused(AMEND, observer, id=obs, scores=[*scores, scores[1]], reason="Miscounted")
    assert err == {"code": "BAD_USER_INPUT", "errors": [
        {"path": f"scores[{len(scores)}].item", "message": f"item '{scores[1]['item']}' is scored twice"}]}
    assert gql.transport.calls == {}
    err = await gql.refused(RECORD, observer, input=observed(person, [*scores, scores[0]]))
    assert err["errors"][0]["path"] == f"input.scores[{len(scores)}].item"

    err = await gql.refused(CALIBRATE, st.token(agency, "observer"), ref=None, scores=scores)
    assert err["code"] == "BAD_USER_INPUT" and "errors" in err  # neither a reference nor an observation


async def test_other_inputs_are_named_by_their_graphql_path_too(st: Stack, gql: GraphQL) -> None:
    platform = st.token(str(uuid.uuid4()), "platform_admin")
    new = {"family": f"dart-{uuid.uuid4().hex[:8]}", "kind": "record_review", "name": "DART",
           "items": [{"key": "Bad Key", "label": "x", "competency": "y", "scaleMin": 2, "scaleMax": 2}]}
    err = await gql.refused(CREATE, platform, input=new)
    assert {e["path"] for e in err["errors"]} == {"input.items[0].key", "input.items[0].scaleMax"}
    assert {e["field"] for e in err["problem"]["errors"]} == {"body.items.0.key", "body.items.0.scale_max"}

    admin = st.token(str(uuid.uuid4()), "agency_admin")
    err = await gql.refused(SET_POLICY, admin, input={"requiredPasses": 0, "windowDays": 0})
    assert {e["path"] for e in err["errors"]} == {"input.requiredPasses", "input.windowDays"}


# ---- the same scores agree -----------------------------------------------------------------------


async def test_graphql_and_rest_record_the_same_scores_alike(st: Stack, gql: GraphQL) -> None:
    agency = str(uuid.uuid4())
    a, b = await st.staffed(agency, 2)
    observer = await st.observer(agency)
    scores = {**full_scores(2), "needs_not_services": 0, "progress_reviewed": 1}

    through_graphql = (await gql.ok(RECORD, observer, input=observed(a, as_list(scores))))["recordObservation"]
    r = await st.fidelity.post("/v1/observations", json=observation(b, scores=scores, observed_on="2026-11-02"),
                               headers=observer)
    assert r.status_code == 201, r.text
    over_rest = r.json()
    assert through_graphql["itemScores"] == as_list(over_rest["scores"])
    assert (through_graphql["score"], through_graphql["passed"]) == (over_rest["score"], over_rest["passed"])
    assert not through_graphql["passed"]  # a critical item scored 0
    assert through_graphql["competencyScores"] == over_rest["competency_scores"]
    [stored] = await recorded(st, a, observer)
    assert stored["scores"] == scores
