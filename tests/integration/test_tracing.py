"""One trace spans POST /v1/observations → outbox relay → NATS → coaching handler."""

from __future__ import annotations

import uuid
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tests.conftest import make_settings
from tests.stack import eventually, observation, running_stack
from tests.support import NatsServer


async def test_one_trace_from_request_to_handler(nats_server: NatsServer, tmp_path: Path):
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    settings = make_settings(nats_server.url, tmp_path)
    urls = {"fidelity": f"sqlite+aiosqlite:///{tmp_path}/f.db", "coaching": f"sqlite+aiosqlite:///{tmp_path}/c.db"}
    agency, practitioner = str(uuid.uuid4()), str(uuid.uuid4())
    async with running_stack(settings, urls, tracer_provider=provider) as st:
        await st.enrol(agency, practitioner)
        r = await st.fidelity.post("/v1/observations", json=observation(practitioner),
                                   headers=await st.observer(agency))
        assert r.status_code == 201

        def spans_named(fragment: str, kind: SpanKind) -> list:
            return [s for s in exporter.get_finished_spans() if fragment in s.name and s.kind == kind]

        async def handled() -> bool:
            return bool(spans_named("ObservationRecorded", SpanKind.CONSUMER))

        await eventually(handled)
        server = [s for s in exporter.get_finished_spans()
                  if s.kind == SpanKind.SERVER and s.attributes.get("http.route") == "/v1/observations"]
        assert len(server) == 1
        trace_id = server[0].context.trace_id
        in_trace = [s for s in exporter.get_finished_spans() if s.context.trace_id == trace_id]
        producers = [s for s in in_trace if s.kind == SpanKind.PRODUCER and "ObservationRecorded" in s.name]
        consumers = [s for s in in_trace if s.kind == SpanKind.CONSUMER and "ObservationRecorded" in s.name]
        assert producers, "the relay's publish span is not in the request's trace"
        assert consumers, "the coaching consumer span is not in the request's trace"
        # The handler's own database work (the task insert) belongs to the same trace.
        inserts = [s for s in in_trace if s.kind == SpanKind.CLIENT and "INSERT" in s.name
                   and "tasks" in str(s.attributes.get("db.statement", ""))]
        assert inserts, [s.name for s in in_trace]
        assert consumers[0].parent is not None
