"""OpenTelemetry tracing (OTLP when configured) and structured JSON logs."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from pythonjsonlogger.json import JsonFormatter

_configured_logging = False


def tracer_provider(service: str) -> trace.TracerProvider:
    """The process's provider: an SDK one exporting over OTLP when the endpoint is set.

    Without an endpoint the global no-op provider stays: spans nobody exports would cost about
    half the message throughput, and incoming trace context still passes through untouched.
    """
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider) or not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return current
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    provider = TracerProvider(resource=Resource.create({"service.name": f"trellis-{service}"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return provider


def instrument_app(app: Any, provider: trace.TracerProvider) -> None:
    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider, excluded_urls="healthz,readyz,metrics")


def instrument_engine(engine: Any, provider: trace.TracerProvider) -> None:
    if not isinstance(provider, TracerProvider):
        return  # nothing records: per-statement hooks would only cost time
    # Per engine, not SQLAlchemyInstrumentor(): that is a process-wide singleton and would
    # skip the second service's engine when several share a process (tests, benchmarks).
    tracer = provider.get_tracer("opentelemetry.instrumentation.sqlalchemy")
    usage = metrics.get_meter("opentelemetry.instrumentation.sqlalchemy").create_up_down_counter(
        "db.client.connections.usage", unit="connections")
    EngineTracer(tracer, engine.sync_engine, usage)


def instrument_httpx(provider: trace.TracerProvider) -> None:
    HTTPXClientInstrumentor().instrument(tracer_provider=provider)


def setup_logging(level: str = "INFO") -> None:
    global _configured_logging
    if _configured_logging:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
    )
    root = logging.getLogger()
    # Replace plain console handlers (basicConfig's); keep others, such as a test's log capture.
    root.handlers[:] = [h for h in root.handlers if type(h) is not logging.StreamHandler] + [handler]
    root.setLevel(level)
    logging.getLogger("trellis.faststream").setLevel(logging.WARNING)
    _configured_logging = True
