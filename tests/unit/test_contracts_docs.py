"""contracts.docs: the generated schemas describe real envelopes, and the committed docs/ are current.

jsonschema is not a dependency, so a small validator below covers exactly the keywords the generated
schemas use; it fails on any other keyword rather than passing it silently.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import ValidationError

from contracts import catalog, docs
from trellis import bus
from trellis.envelope import Envelope, EventPayload

REPO_DOCS = Path(__file__).resolve().parents[2] / "docs"
STALE = "docs/ no longer matches contracts/: run `make docs` and commit the result"
EVENTS = sorted(catalog(), key=lambda e: e.event_type())
EVENT_IDS = [e.event_type() for e in EVENTS]

Schema = dict[str, Any]

# --- a minimal JSON Schema validator for the keywords contracts.docs emits --------------------------------------

_ANNOTATIONS = {"$schema", "$id", "$defs", "title", "description", "default", "examples"}
_ASSERTIONS = {
    "$ref", "type", "const", "enum", "anyOf", "properties", "required", "additionalProperties", "items",
    "minLength", "maxLength", "pattern", "format", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
}  # fmt: skip


def _is_rfc3339(v: str) -> bool:
    try:
        return datetime.fromisoformat(v).tzinfo is not None and "T" in v
    except ValueError:
        return False


def _is_date(v: str) -> bool:
    try:
        date.fromisoformat(v)
    except ValueError:
        return False
    return len(v) == 10


_FORMATS = {
    "date": _is_date,
    "date-time": _is_rfc3339,
    "uri-reference": lambda v: not re.search(r"\s", v),
}

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer()),
}


def _resolve(root: Schema, ref: str) -> Schema:
    assert ref.startswith("#/"), f"only local refs are expected, got {ref}"
    node: Any = root
    for token in ref[2:].split("/"):
        node = node[token.replace("~1", "/").replace("~0", "~")]
    return node  # type: ignore[no-any-return]


def errors(inst: Any, schema: Schema, root: Schema, at: str = "") -> list[str]:
    """Every way `inst` fails `schema`, as '<pointer>: <reason>'; empty when it is valid."""
    where = at or "/"
    unknown = set(schema) - _ANNOTATIONS - _ASSERTIONS
    assert not unknown, f"teach this test's validator {sorted(unknown)} (at {where})"
    out: list[str] = []
    if "$ref" in schema:
        out += errors(inst, _resolve(root, schema["$ref"]), root, at)
    if "type" in schema:
        allowed = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_TYPES[t](inst) for t in allowed):
            return [*out, f"{where}: {inst!r} is not of type {allowed}"]
    if "const" in schema and inst != schema["const"]:
        out.append(f"{where}: {inst!r} != {schema['const']!r}")
    if "enum" in schema and inst not in schema["enum"]:
        out.append(f"{where}: {inst!r} not in {schema['enum']}")
    if "anyOf" in schema and all(errors(inst, s, root, at) for s in schema["anyOf"]):
        out.append(f"{where}: {inst!r} matches no anyOf branch")
    if isinstance(inst, str):
        if len(inst) < schema.get("minLength", 0):
            out.append(f"{where}: shorter than {schema['minLength']}")
        if "maxLength" in schema and len(inst) > schema["maxLength"]:
            out.append(f"{where}: longer than {schema['maxLength']}")
        if "pattern" in schema and not re.search(schema["pattern"], inst):
            out.append(f"{where}: {inst!r} does not match {schema['pattern']}")
        if "format" in schema:
            assert schema["format"] in _FORMATS, f"teach this test's validator format {schema['format']}"
            if not _FORMATS[schema["format"]](inst):
                out.append(f"{where}: {inst!r} is not a {schema['format']}")
    if isinstance(inst, int | float) and not isinstance(inst, bool):
        for key, ok in (
            ("minimum", lambda b: inst >= b),
            ("maximum", lambda b: inst <= b),
            ("exclusiveMinimum", lambda b: inst > b),
            ("exclusiveMaximum", lambda b: inst < b),
        ):
            if key in schema and not ok(schema[key]):
                out.append(f"{where}: {inst} violates {key} {schema[key]}")
    if isinstance(inst, dict):
        out += [f"{where}: missing {k!r}" for k in schema.get("required", []) if k not in inst]
        props, extra = schema.get("properties", {}), schema.get("additionalProperties", True)
        for k, v in inst.items():
            if k in props:
                out += errors(v, props[k], root, f"{at}/{k}")
            elif extra is False:
                out.append(f"{where}: unexpected {k!r}")
            elif isinstance(extra, dict):
                out += errors(v, extra, root, f"{at}/{k}")
    if isinstance(inst, list) and "items" in schema:
        for i, v in enumerate(inst):
            out += errors(v, schema["items"], root, f"{at}/{i}")
    return out


def sample(schema: Schema, root: Schema) -> Any:
    """One instance of `schema`, so every catalog event gets a payload without hand-written fixtures."""
    if "$ref" in schema:
        return sample(_resolve(root, schema["$ref"]), root)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    if "anyOf" in schema:  # the non-null branch exercises more of the schema
        return sample(next(s for s in schema["anyOf"] if s.get("type") != "null"), root)
    kind = schema.get("type")
    if kind == "object":
        if props := schema.get("properties"):
            return {k: sample(v, root) for k, v in props.items()}
        extra = schema.get("additionalProperties")
        return {"key": sample(extra, root)} if isinstance(extra, dict) else {}
    if kind == "array":
        return [sample(schema.get("items", {"type": "string"}), root)]
    if kind == "string":
        return {"date": "2024-05-17", "date-time": "2024-05-17T09:30:00Z"}.get(schema.get("format", ""), "sample-1")
    if kind in ("integer", "number"):
        lo, hi = schema.get("minimum", 0), schema.get("maximum", 100)
        return (lo + hi) // 2 if kind == "integer" else (lo + hi) / 2
    if kind == "boolean":
        return True
    raise AssertionError(f"teach sample() to build {schema}")


# --- fixtures and helpers ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("docs")
    assert docs.main([str(out)]) == 0
    return out


def _schema(generated: Path, event: type[EventPayload]) -> Schema:
    return json.loads((generated / docs.schema_path(event)).read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def _envelope(event: type[EventPayload], schema: Schema) -> tuple[EventPayload, Envelope]:
    payload = event.model_validate(sample(schema["properties"]["data"], schema))
    env = Envelope.wrap(payload, source=f"trellis/{event.domain}", subject="entity-1", agency="agency-1")
    return payload, env


def _asyncapi(generated: Path) -> Schema:
    text = (generated / docs.ASYNCAPI_FILE).read_text(encoding="utf-8")
    # The YAML is JSON under a comment header; JSON is valid YAML.
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    return json.loads(body)  # type: ignore[no-any-return]


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


# --- tests ------------------------------------------------------------------------------------------------------


def test_writes_one_schema_per_event_plus_asyncapi_and_catalog(generated: Path) -> None:
    files = {p.relative_to(generated).as_posix() for p in generated.rglob("*") if p.is_file()}
    assert files == {docs.schema_path(e) for e in EVENTS} | {docs.ASYNCAPI_FILE, docs.CATALOG_FILE}


@pytest.mark.parametrize("event", EVENTS, ids=EVENT_IDS)
def test_schema_accepts_a_real_envelope(generated: Path, event: type[EventPayload]) -> None:
    schema = _schema(generated, event)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith(event.event_type())
    assert schema["properties"]["type"]["const"] == event.event_type()
    assert "extension attribute" in schema["properties"]["agency"]["description"]
    # Envelope.to_bytes always writes every attribute, so partners may rely on all of them.
    assert set(schema["required"]) == set(Envelope.model_fields) == set(schema["properties"])

    payload, env = _envelope(event, schema)
    wire = json.loads(env.to_bytes())
    assert errors(wire, schema, schema) == []
    assert Envelope.from_bytes(env.to_bytes()).payload(event) == payload


@pytest.mark.parametrize("event", EVENTS, ids=EVENT_IDS)
def test_schema_rejects_what_trellis_would_not_send(generated: Path, event: type[EventPayload]) -> None:
    schema = _schema(generated, event)
    wire = json.loads(_envelope(event, schema)[1].to_bytes())
    data_schema = schema["properties"]["data"]
    bad = {
        "another major": {**wire, "type": f"{event.domain}.{event.name}.v{event.version + 1}"},
        "no agency": {k: v for k, v in wire.items() if k != "agency"},
        "agency with a dot": {**wire, "agency": "a.b"},
        "unknown attribute": {**wire, "traceparent": "x"},
        "unknown data field": {**wire, "data": {**wire["data"], "unexpected": 1}},
    }
    if data_schema["required"]:
        first = data_schema["required"][0]
        bad["data missing a field"] = {**wire, "data": {k: v for k, v in wire["data"].items() if k != first}}
    for case, doc in bad.items():
        assert errors(doc, schema, schema), f"schema accepted: {case}"
        if doc["data"] != wire["data"]:  # the schema and pydantic must agree on what `data` is
            with pytest.raises(ValidationError):
                event.model_validate(doc["data"])


def test_asyncapi_describes_every_event_and_the_dlq(generated: Path) -> None:
    api = _asyncapi(generated)
    assert api["asyncapi"] == "3.0.0"
    dev = api["servers"]["dev"]
    assert (dev["host"], dev["protocol"]) == ("127.0.0.1:4222", "nats")
    assert dev["description"]
    for ref in _refs(api):
        _resolve(api, ref)  # raises if a reference dangles

    for event in EVENTS:
        channel_id = f"{event.domain}.{event.name}"
        channel = api["channels"][channel_id]
        assert channel["address"] == event.nats_subject("{agency}")
        assert set(channel["parameters"]) == {"agency"}
        message = channel["messages"][event.event_type()]
        # The inlined payload schema must judge a real envelope exactly as the standalone file does.
        payload = _resolve(api, message["payload"]["$ref"])
        schema = _schema(generated, event)
        wire = json.loads(_envelope(event, schema)[1].to_bytes())
        assert errors(wire, payload, api) == []
        assert errors({**wire, "agency": ""}, payload, api)
        operation = api["operations"][channel_id]
        assert operation["action"] == "send"
        assert operation["channel"] == {"$ref": f"#/channels/{channel_id}"}

    dlq = api["channels"]["dlq"]
    assert dlq["address"] == "dlq.{consumer}"
    assert set(dlq["parameters"]) == {"consumer"}
    assert set(dlq["messages"]["deadLetter"]["headers"]["properties"]) == set(docs.DLQ_HEADERS)
    assert api["operations"]["dlq"]["action"] == "send"


def test_catalog_table_links_every_schema(generated: Path) -> None:
    text = (generated / docs.CATALOG_FILE).read_text(encoding="utf-8")
    for event in EVENTS:
        row = next(line for line in text.splitlines() if line.startswith(f"| `{event.event_type()}`"))
        assert f"`{event.nats_subject('<agency>')}`" in row
        assert f"`{event.domain.upper()}`" in row
        link = re.search(r"\]\(([^)]+)\)", row)
        assert link and (generated / link.group(1)).is_file()


def test_streams_and_dlq_headers_match_the_kernel() -> None:
    assert docs.DLQ_STREAM == bus.DLQ_STREAM
    for event in EVENTS:
        assert bus.DOMAIN_STREAMS[docs.stream_name(event)] == [f"{event.domain}.>"]


async def test_documented_dlq_headers_are_the_ones_dead_letter_sets() -> None:
    published: list[dict[str, Any]] = []

    async def publish(body: bytes, **kwargs: Any) -> None:
        published.append(kwargs)

    ctx: Any = SimpleNamespace(broker=SimpleNamespace(publish=publish))
    raw = SimpleNamespace(
        data=b"{}",
        subject="fidelity.ObservationRecorded.agency-1",
        headers={"Nats-Msg-Id": "evt-1", "traceparent": "00-trace"},
        metadata=SimpleNamespace(stream="FIDELITY", sequence=SimpleNamespace(stream=7)),
    )
    await bus.dead_letter(ctx, "coaching--open_task", raw, bus.PermanentError("bad"), 1)
    [sent] = published
    assert sent["subject"] == "dlq.coaching--open_task"
    assert set(sent["headers"]) == set(docs.DLQ_HEADERS) | {"traceparent"}


def test_output_is_deterministic() -> None:
    assert docs.render() == docs.render()


def test_committed_docs_are_current(generated: Path) -> None:
    fresh = {p.relative_to(generated).as_posix(): p.read_text(encoding="utf-8") for p in generated.rglob("*.*")}
    committed_schemas = {p.relative_to(REPO_DOCS).as_posix() for p in (REPO_DOCS / docs.EVENTS_DIR).glob("*.json")}
    stale = sorted(committed_schemas - set(fresh))
    differ = sorted(
        rel
        for rel, text in fresh.items()
        if not (REPO_DOCS / rel).is_file() or (REPO_DOCS / rel).read_text(encoding="utf-8") != text
    )
    assert not differ and not stale, f"{STALE} (differs or missing: {differ}; no longer generated: {stale})"
