"""gateway/upstream: the committed models match the services' OpenAPI documents, the gateway's GraphQL types are
derived from them, and the typed clients parse every answer into them.

A field a service renames shows up here first: the committed module is stale; once regenerated, the derived
GraphQL type no longer finds the field (at import for `strawberry.auto`, in the derivation test for the rest).
"""

from __future__ import annotations

import copy
import importlib
import inspect
import json
import logging
import sys
import types
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
import strawberry
from graphql import build_schema as build_sdl
from graphql import find_breaking_changes, find_dangerous_changes
from strawberry.experimental.pydantic.exceptions import AutoFieldsNotInBaseModelError

import gateway.coaching
import gateway.community
import gateway.fidelity
import gateway.readiness
from devtools import upstream
from gateway.clients import Inputs, ServiceClient, UpstreamError, UpstreamShapeError, from_model, rest_body
from gateway.schema import build_schema
from gateway.settings import GatewaySettings
from gateway.upstream import coaching as coaching_rest
from gateway.upstream import fidelity as fidelity_rest
from trellis.service import installed_services

REPO = Path(__file__).resolve().parents[2]
UPSTREAM = REPO / "gateway" / "upstream"
BASELINE = Path(__file__).with_name("gateway_schema_baseline.graphql")
STALE = "gateway/upstream no longer matches the services' OpenAPI documents: run `make upstream` and commit the result"
GATEWAY_MODULES = (gateway.readiness, gateway.fidelity, gateway.coaching, gateway.community)


@pytest.fixture(scope="module")
def documents() -> dict[str, dict[str, Any]]:
    return upstream.openapi_documents()


@pytest.fixture(scope="module")
def generated(documents: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {f"{name}.py": upstream.render(name, doc) for name, doc in documents.items()}


# ---- staleness ---------------------------------------------------------------------------------


def test_committed_modules_are_current(generated: dict[str, str]) -> None:
    differ = [f for f, text in generated.items() if not (UPSTREAM / f).exists() or (UPSTREAM / f).read_text() != text]
    stale = sorted(p.name for p in UPSTREAM.glob("*.py") if p.name != "__init__.py" and p.name not in generated)
    assert not differ and not stale, f"{STALE} (differs or missing: {differ}; no longer generated: {stale})"


def test_one_module_per_installed_service(generated: dict[str, str]) -> None:
    assert sorted(generated) == sorted(f"{name}.py" for name in installed_services())
    assert {"readiness.py", "fidelity.py", "coaching.py"} <= set(generated)


def test_the_command_writes_what_the_test_compares(tmp_path: Path, generated: dict[str, str]) -> None:
    assert upstream.main([str(tmp_path)]) == 0
    assert {p.name: p.read_text() for p in tmp_path.glob("*.py")} == generated
    assert upstream.main([]) == 2  # usage


def test_a_renamed_field_makes_the_committed_module_stale(documents: dict[str, dict[str, Any]],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    doc = copy.deepcopy(documents["fidelity"])
    props = doc["components"]["schemas"]["ObservationOut"]["properties"]
    props["total"] = props.pop("score")
    doc["components"]["schemas"]["ObservationOut"]["required"] = [
        "total" if r == "score" else r for r in doc["components"]["schemas"]["ObservationOut"]["required"]]
    renamed = upstream.render("fidelity", doc)
    assert renamed != (UPSTREAM / "fidelity.py").read_text()

    # Once regenerated, the graph's Observation (its fields as the gateway declares them) no longer finds the
    # field: the gateway's import fails.
    module = types.ModuleType("renamed_fidelity")
    monkeypatch.setitem(sys.modules, module.__name__, module)  # pydantic looks its generics up there
    exec(compile(renamed, "renamed_fidelity.py", "exec"), module.__dict__)  # our own generated code
    declared = {f.python_name: strawberry.auto for f in gateway.fidelity.Observation.__strawberry_definition__.fields
                if f.base_resolver is None}
    assert "score" in declared
    with pytest.raises(AutoFieldsNotInBaseModelError, match="score"):
        from_model(model=module.ObservationOut)(type("Observation", (), {"__annotations__": declared}))


def test_generated_models_resolve_every_annotation() -> None:
    """strawberry reads the models' annotations: a forward reference it cannot resolve breaks the schema."""
    for name in ("readiness", "fidelity", "coaching"):
        mod = importlib.import_module(f"gateway.upstream.{name}")
        for model in vars(mod).values():
            if inspect.isclass(model) and model.__module__ == mod.__name__ and hasattr(model, "model_fields"):
                for field, info in model.model_fields.items():
                    assert "ForwardRef" not in repr(info.annotation), f"{name}.{model.__name__}.{field}"


def test_the_score_list_is_part_of_the_fidelity_contract() -> None:
    body = {"practitioner_id": "0190a000-0000-7000-8000-0000000000a1",
            "instrument_id": "0190a000-0000-7000-8000-000000000001", "observed_on": "2026-11-02",
            "setting": "office", "notes": ""}
    listed = fidelity_rest.ObservationIn.model_validate({**body, "scores": [{"item": "family_voice", "score": 2}]})
    assert isinstance(listed.scores, fidelity_rest.ScoreList)
    as_object = fidelity_rest.ObservationIn.model_validate({**body, "scores": {"family_voice": 2}})
    assert as_object.scores == {"family_voice": 2}
    for model in (fidelity_rest.AmendmentIn, fidelity_rest.CalibrationIn, fidelity_rest.ReferenceIn):
        assert "ScoreList" in str(model.model_fields["scores"].annotation), model


# ---- derivation --------------------------------------------------------------------------------


def derived_types() -> list[Any]:
    found = []
    for module in GATEWAY_MODULES:
        for value in vars(module).values():
            if inspect.isclass(value) and hasattr(value, "_pydantic_type") and hasattr(
                    value, "__strawberry_definition__"):
                found.append(value)
    return found


def test_every_plain_field_of_a_derived_type_comes_from_its_model() -> None:
    """Fields where GraphQL differs from REST are resolvers over the model; every other field must be the
    model's, so a rename (even of a field typed by hand, such as an ID) cannot slip through."""
    types_ = derived_types()
    assert len(types_) >= 35
    for t in types_:
        model = t._pydantic_type
        for f in t.__strawberry_definition__.fields:
            if f.base_resolver is None:
                assert f.python_name in model.model_fields, f"{t.__name__}.{f.python_name} is not in {model.__name__}"


def test_the_schema_stays_backward_compatible() -> None:
    """Against the SDL as it was before the types were derived: no field, argument or type lost or changed,
    and every description kept."""
    before = build_sdl(BASELINE.read_text())
    after = build_sdl(build_schema(GatewaySettings()).as_str())
    assert find_breaking_changes(before, after) == []
    assert find_dangerous_changes(before, after) == []
    for name, old in before.type_map.items():
        if name.startswith("__"):
            continue
        new = after.type_map[name]
        assert old.description == new.description, name
        for field, f in getattr(old, "fields", {}).items():
            assert f.description == new.fields[field].description, f"{name}.{field}"


def test_no_resolver_reads_a_service_answer_by_key() -> None:
    """Answers are parsed into the generated models (and CloudEvents into the kernel's Envelope): no
    hand-written `from_rest(dict)` reads `row["key"]`, and no resolver parses dates itself."""
    for module in (*GATEWAY_MODULES, importlib.import_module("gateway.schema")):
        source = inspect.getsource(module)
        assert "def from_rest" not in source, module.__name__
        assert "fromisoformat(" not in source, module.__name__


# ---- typed clients -----------------------------------------------------------------------------

TASK = {"id": "t1", "agency_id": "a", "practitioner_id": "p", "kind": "observation_debrief", "status": "open",
        "due_on": "2026-11-09", "observation_id": None, "title": "Debrief", "opened_by": None,
        "created_at": "2026-11-02T10:00:00+00:00"}


def client(handler: Any) -> ServiceClient:
    return ServiceClient("coaching", "http://coaching", httpx.AsyncClient(transport=httpx.MockTransport(handler)),
                         "Bearer x")


async def test_an_answer_is_parsed_into_its_model() -> None:
    c = client(lambda r: httpx.Response(200, json=TASK))
    task = await c.get("/v1/tasks/t1", into=coaching_rest.TaskOut)
    assert isinstance(task, coaching_rest.TaskOut) and task.due_on == date(2026, 11, 9)
    gql = gateway.coaching.CoachingTask.from_rest(task)
    assert (gql.id, gql.due_on, gql.observation_id) == ("t1", date(2026, 11, 9), None)


async def test_every_page_of_a_list_is_parsed() -> None:
    pages = {None: {"items": [TASK], "next": "c1"}, "c1": {"items": [{**TASK, "id": "t2"}], "next": None}}
    c = client(lambda r: httpx.Response(200, json=pages[r.url.params.get("after")]))
    tasks = await c.get_all("/v1/tasks", [], page=coaching_rest.TaskPage)
    assert [t.id for t in tasks] == ["t1", "t2"] and all(isinstance(t, coaching_rest.TaskOut) for t in tasks)


async def test_an_answer_in_an_unknown_shape_is_refused_without_its_values(caplog: pytest.LogCaptureFixture) -> None:
    renamed = {**{k: v for k, v in TASK.items() if k != "title"}, "heading": "Private Person's debrief"}
    c = client(lambda r: httpx.Response(200, json=renamed))
    with caplog.at_level(logging.ERROR), pytest.raises(UpstreamShapeError) as got:
        await c.get("/v1/tasks/t1", into=coaching_rest.TaskOut)
    assert got.value.extensions == {"code": "UPSTREAM_SHAPE", "service": "coaching"}
    assert "title" in caplog.text and "Private Person" not in caplog.text


async def test_a_refusal_names_the_graphql_inputs_beside_the_rest_fields() -> None:
    problem = {"type": "urn:trellis:problem:validation-error", "title": "Unprocessable content", "status": 422,
               "detail": "The observation has 3 problem(s); nothing was recorded.", "errors": [
                   {"field": "body.scores.family_voice", "pointer": "#/scores/family_voice", "message": "too high"},
                   {"field": "body.scores.needs_met", "pointer": "#/scores/needs_met", "message": "required"},
                   {"field": "body.observed_on", "pointer": "#/observed_on", "message": "future",
                    "code": "in-future"}]}
    c = client(lambda r: httpx.Response(422, json=problem))
    with pytest.raises(UpstreamError) as got:
        await c.post("/v1/observations", {}, into=fidelity_rest.ObservationOut,
                     inputs=Inputs("input", scores=["team_process", "family_voice"]))
    ext = got.value.extensions
    assert ext["problem"] == problem and ext["code"] == "BAD_USER_INPUT"  # the service's own words, unchanged
    assert ext["errors"] == [{"path": "input.scores[1].score", "message": "too high"},
                             {"path": "input.scores", "message": "required"},
                             {"path": "input.observedOn", "message": "future", "code": "in-future"}]


@pytest.mark.parametrize(("inputs", "field", "path"), [
    (Inputs("input", scores=["a", "b", "c"]), "body.scores.c", "input.scores[2].score"),
    (Inputs("input", scores=["a"]), "body.scores.b", "input.scores"),  # not given: the list lacks it
    (Inputs(scores=["a", "b", "c"]), "body.scores.2.score", "scores[2].score"),  # REST's own list errors
    (Inputs(scores=["a"]), "body.scores", "scores"),
    (Inputs("input"), "body.items.0.scale_max", "input.items[0].scaleMax"),
    (Inputs("input"), "body.required_passes", "input.requiredPasses"),
    (Inputs(), "body.left_on", "leftOn"),
    (Inputs(verbatim=("answers",)), "body.answers.team_fit_2", "answers.team_fit_2"),
    (Inputs(), "query.track", None),
    (Inputs(), "body", None),
])
def test_rest_fields_become_graphql_input_paths(inputs: Inputs, field: str, path: str | None) -> None:
    assert inputs.path(field) == path


def test_a_rest_body_is_checked_against_its_model() -> None:
    body = rest_body(fidelity_rest.AmendmentIn, scores=[{"item": "a", "score": 1}], reason="Miscounted",
                     notes=strawberry.UNSET)
    assert body == {"scores": [{"item": "a", "score": 1}], "reason": "Miscounted"}  # UNSET: left out
    assert rest_body(coaching_rest.FollowUpIn, practitioner_id=strawberry.ID("p"), due_on=date(2026, 11, 9),
                     title="x") == {"practitioner_id": "p", "due_on": "2026-11-09", "title": "x"}
    with pytest.raises(TypeError, match="AmendmentIn has no field comment"):
        rest_body(fidelity_rest.AmendmentIn, comment="renamed in the service")


def test_the_upstream_documents_are_produced_offline(documents: dict[str, dict[str, Any]]) -> None:
    """Built from the apps, not fetched: no server needed, and the same twice."""
    again = upstream.openapi_documents()
    assert json.dumps(again, sort_keys=True) == json.dumps(documents, sort_keys=True)
