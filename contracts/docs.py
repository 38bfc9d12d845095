"""Partner-facing docs for the event catalog: JSON Schemas, an AsyncAPI 3.0 document and a Markdown table.

`make docs` runs `python -m contracts.docs docs`. The output has no timestamps and sorted keys, so a
unit test can insist that the committed files match the contracts.
"""

from __future__ import annotations

import inspect
import json
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

from contracts import DOMAINS, catalog
from trellis.envelope import EventPayload

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID_PREFIX = "urn:trellis:event:"
EVENTS_DIR = "events"
ASYNCAPI_FILE = "asyncapi.yaml"
CATALOG_FILE = "events.md"
CONTENT_TYPE = "application/cloudevents+json"  # structured-mode CloudEvents, as the outbox relay labels them
DEV_NATS_HOST = "127.0.0.1:4222"
# Mirrors trellis.bus, which contracts may not import (it pulls in the broker and database stack);
# tests/unit/test_contracts_docs.py checks the two agree.
DLQ_STREAM = "DLQ"
DLQ_HEADERS: dict[str, str] = {
    "Nats-Msg-Id": "`<consumer>:<original Nats-Msg-Id>` (or the original stream sequence when the message had "
    "none), so a retried dead-lettering is stored once.",
    "Trellis-Consumer": "The durable consumer that gave up, `<service>--<handler>`.",
    "Trellis-Original-Subject": "The subject the message was published on.",
    "Trellis-Original-Stream": "The stream the message was read from, e.g. `FIDELITY`.",
    "Trellis-Original-Sequence": "The message's sequence in the original stream, as a decimal string.",
    "Trellis-Deliveries": "How many times the message was delivered before it was dead-lettered.",
    "Trellis-Error": "`<ExceptionType>: <message>` of the last failure, at most 4000 characters.",
    "Trellis-Error-Trace": "The formatted exception of the last failure (last 2000 characters).",
}
HEADER_DESCRIPTION = "NATS message headers."


def stream_name(event: type[EventPayload]) -> str:
    return event.domain.upper()


def schema_path(event: type[EventPayload]) -> str:
    """Where an event's schema lives, relative to the docs directory."""
    return f"{EVENTS_DIR}/{event.event_type()}.json"


def _docstring(event: type[EventPayload]) -> str:
    # The class's own docstring only: inspect.getdoc would fall back to EventPayload's.
    doc = event.__dict__.get("__doc__")
    if not doc or not doc.strip():
        raise ValueError(f"{event.__qualname__} needs a docstring: it is the event's public description")
    return inspect.cleandoc(doc)


def _summary(event: type[EventPayload]) -> str:
    return " ".join(_docstring(event).split("\n\n", 1)[0].split())


def _checked_catalog() -> list[type[EventPayload]]:
    events = sorted(catalog(), key=lambda e: e.event_type())
    types = [e.event_type() for e in events]
    if len(set(types)) != len(types):
        raise ValueError(f"duplicate event types in the catalog: {types}")
    for e in events:
        if e.domain not in DOMAINS:
            raise ValueError(f"{e.event_type()}: unknown domain {e.domain!r}")
    return events


def _rebase_refs(node: Any, old: str, new: str) -> Any:
    """Rewrite local `$ref`s that start with `old`; the schema moves inside a bigger document."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        rebased = {k: _rebase_refs(v, old, new) for k, v in node.items()}
        if isinstance(ref, str) and ref.startswith(old):
            rebased["$ref"] = new + ref[len(old) :]
        return rebased
    if isinstance(node, list):
        return [_rebase_refs(v, old, new) for v in node]
    return node


def event_schema(event: type[EventPayload]) -> dict[str, Any]:
    """JSON Schema (2020-12) of the whole CloudEvent as Trellis publishes it, `data` included."""
    # Serialization mode: `data` is model_dump(mode="json") output, so describe what is sent.
    data = event.model_json_schema(mode="serialization")
    defs = data.pop("$defs", {})  # nested models; "#/$defs/..." refs then resolve from the root
    schema: dict[str, Any] = {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": f"{SCHEMA_ID_PREFIX}{event.event_type()}",
        "title": _summary(event),
        "description": _docstring(event),
        "type": "object",
        "properties": {
            "specversion": {"type": "string", "const": "1.0", "description": "CloudEvents specification version."},
            "id": {
                "type": "string",
                "minLength": 1,
                "description": "Unique event id, a time-ordered UUID (v7). It is also the `Nats-Msg-Id` header, so "
                "JetStream drops duplicates within the stream's duplicate window; consumers deduplicate on it.",
            },
            "source": {
                "type": "string",
                "format": "uri-reference",
                "minLength": 1,
                "description": "The publishing service, `trellis/<service>`.",
                "examples": [f"trellis/{event.domain}"],
            },
            "type": {
                "const": event.event_type(),
                "description": "`<domain>.<EventName>.v<major>`. A breaking change is a new major version, "
                "published beside this one until consumers move.",
            },
            "time": {
                "type": "string",
                "format": "date-time",
                "description": "When the publisher created the event (RFC 3339).",
            },
            "subject": {
                "type": "string",
                "minLength": 1,
                "description": "The id of the entity the event is about.",
            },
            "datacontenttype": {"const": "application/json", "description": "`data` is JSON."},
            "agency": {
                "type": "string",
                "minLength": 1,
                "pattern": r"^[^.*>\s]+$",
                "description": "CloudEvents extension attribute: the tenant (agency id) the event concerns, or "
                "`platform` for platform-wide events. It is also the last token of the NATS subject, so a "
                "subscriber or a partner's NATS permissions can filter by tenant.",
            },
            "data": data,
        },
        "required": ["specversion", "id", "source", "type", "time", "subject", "datacontenttype", "agency", "data"],
        "additionalProperties": False,
    }
    if defs:
        schema["$defs"] = defs
    return schema


def _event_headers() -> dict[str, Any]:
    return {
        "type": "object",
        "description": HEADER_DESCRIPTION,
        "properties": {
            "Nats-Msg-Id": {"type": "string", "description": "The CloudEvent `id`; JetStream deduplicates on it."},
            "content-type": {"const": CONTENT_TYPE},
            "traceparent": {"type": "string", "description": "W3C trace context, when tracing is enabled."},
            "tracestate": {"type": "string", "description": "W3C trace context, when tracing is enabled."},
        },
        "required": ["Nats-Msg-Id", "content-type"],
        "additionalProperties": {"type": "string"},
    }


def asyncapi() -> dict[str, Any]:
    """AsyncAPI 3.0 description of what Trellis sends: one channel per event, plus the DLQ."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    # v1 and v2 of an event share a subject, so a channel is keyed by event name and holds one message per major.
    by_name: dict[str, list[type[EventPayload]]] = {}
    for e in _checked_catalog():
        by_name.setdefault(f"{e.domain}.{e.name}", []).append(e)

    for channel_id, versions in sorted(by_name.items()):
        first = versions[0]
        messages: dict[str, Any] = {}
        for e in versions:
            key = e.event_type()
            component = event_schema(e)
            # Inside AsyncAPI the schema is not its own document: drop the dialect and id, re-point $defs refs.
            del component["$schema"], component["$id"]
            schemas[key] = _rebase_refs(component, "#/$defs/", f"#/components/schemas/{key}/$defs/")
            messages[key] = {
                "name": key,
                "title": key,
                "summary": _summary(e),
                "description": f"{_docstring(e)}\n\nJSON Schema: `{schema_path(e)}`.",
                "contentType": CONTENT_TYPE,
                "headers": _event_headers(),
                "payload": {"$ref": f"#/components/schemas/{key}"},
                "tags": [{"name": e.domain}],
            }
        channels[channel_id] = {
            "address": first.nats_subject("{agency}"),
            "title": channel_id,
            "description": f"Published by the {first.domain} service; stored in the JetStream stream "
            f"`{stream_name(first)}` (subjects `{first.domain}.>`), retained long enough for a new partner to "
            "replay. Consume with a durable consumer and deduplicate on the CloudEvent `id`.",
            "parameters": {
                "agency": {
                    "description": "The tenant (agency id), or `platform`; the same value as the `agency` attribute.",
                    "location": "$message.payload#/agency",
                }
            },
            "messages": messages,
        }
        operations[channel_id] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "summary": f"Trellis publishes {channel_id} events; partners receive them.",
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/{e.event_type()}"} for e in versions],
        }

    channels["dlq"] = {
        "address": "dlq.{consumer}",
        "title": "Dead letters",
        "description": "Messages a consumer could not handle: permanent failures (malformed, or a payload that "
        "does not match its type) at once, others after the last retry. Stored in the JetStream stream "
        f"`{DLQ_STREAM}` (subjects `dlq.>`); the body is the original message, byte for byte, and the headers "
        "say what failed.",
        "parameters": {"consumer": {"description": "The durable consumer that gave up, `<service>--<handler>`."}},
        "messages": {
            "deadLetter": {
                "name": "deadLetter",
                "title": "Dead letter",
                "summary": "The original message with the failure in Trellis-* headers.",
                "contentType": "application/octet-stream",
                "headers": {
                    "type": "object",
                    "description": f"{HEADER_DESCRIPTION} The original message's headers are kept, except "
                    "`Nats-Msg-Id`, which is replaced.",
                    "properties": {k: {"type": "string", "description": v} for k, v in DLQ_HEADERS.items()},
                    "required": sorted(DLQ_HEADERS),
                    "additionalProperties": {"type": "string"},
                },
                "payload": {
                    "description": "The original message body, unchanged: usually a Trellis CloudEvent, but a "
                    "malformed message is kept as it arrived."
                },
            }
        },
    }
    operations["dlq"] = {
        "action": "send",
        "channel": {"$ref": "#/channels/dlq"},
        "summary": "Trellis consumers dead-letter messages they cannot handle; operators receive them.",
        "messages": [{"$ref": "#/channels/dlq/messages/deadLetter"}],
    }

    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Trellis domain events",
            "version": version("trellis"),
            "description": "Domain events are CloudEvents 1.0 in structured JSON mode with the extension "
            "attribute `agency` (the tenant), published on `<domain>.<EventName>.<agency>` through a "
            "transactional outbox: at-least-once, in order per aggregate, never lost. Each domain has a "
            "JetStream stream named after it in upper case.",
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            "dev": {
                "host": DEV_NATS_HOST,
                "protocol": "nats",
                "description": "The local NATS server with JetStream that `make run` starts. Deployments give "
                "partners their own URL and credentials.",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas},
    }


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def events_markdown() -> str:
    lines = [
        "# Event catalog",
        "",
        "<!-- Generated by `make docs` (python -m contracts.docs docs) from contracts/; do not edit. -->",
        "",
        "Every event is a CloudEvent 1.0 in structured JSON mode with the extension attribute `agency` "
        "(the tenant). The machine-readable description is [asyncapi.yaml](asyncapi.yaml).",
        "",
        "| Type | Subject | Stream | Publisher | Description | Schema |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for e in _checked_catalog():
        lines.append(
            f"| `{e.event_type()}` | `{e.nats_subject('<agency>')}` | `{stream_name(e)}` | {e.domain} service "
            f"| {_cell(_summary(e))} | [{e.event_type()}.json]({schema_path(e)}) |"
        )
    lines += [
        "",
        "## Dead letters",
        "",
        f"A message a consumer cannot handle is republished unchanged on `dlq.<consumer>` (stream `{DLQ_STREAM}`) "
        "with these headers:",
        "",
        "| Header | Meaning |",
        "| --- | --- |",
    ]
    lines += [f"| `{k}` | {_cell(v)} |" for k, v in DLQ_HEADERS.items()]
    return "\n".join(lines) + "\n"


def _json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render() -> dict[str, str]:
    """Every generated file, keyed by its path relative to the docs directory."""
    files = {schema_path(e): _json(event_schema(e)) for e in _checked_catalog()}
    # JSON is valid YAML, and this keeps PyYAML out of the dependencies.
    files[ASYNCAPI_FILE] = "# Generated by `make docs` from contracts/; do not edit.\n" + _json(asyncapi())
    files[CATALOG_FILE] = events_markdown()
    return files


def write(out: Path) -> list[Path]:
    files = render()
    (out / EVENTS_DIR).mkdir(parents=True, exist_ok=True)
    # The events directory is ours: a schema whose event left the catalog must not linger.
    for stale in (out / EVENTS_DIR).glob("*.json"):
        if f"{EVENTS_DIR}/{stale.name}" not in files:
            stale.unlink()
    written = []
    for rel, text in sorted(files.items()):
        path = out / rel
        path.write_text(text, encoding="utf-8", newline="\n")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m contracts.docs <docs-dir>", file=sys.stderr)
        return 2
    for path in write(Path(args[0])):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
