"""Counts and times each GraphQL operation into the app's GatewayMetrics (gateway/metrics.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator

from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from gateway.metrics import GatewayMetrics


class RequestMetrics(SchemaExtension):
    """A factory per app: `partial(RequestMetrics, metrics)`. Labels: query, mutation, subscription, or
    unknown for a document that does not parse; ok, or error when the result carries any error."""

    def __init__(self, metrics: GatewayMetrics) -> None:
        self.metrics = metrics
        self.subscription = False

    def on_execute(self) -> Iterator[None]:
        # The document is parsed by now; for a subscription, on_operation spans the client's whole listening.
        if self.execution_context.operation_type is OperationType.SUBSCRIPTION:
            self.subscription = True
            self.metrics.live_subscribers.inc()
        yield

    def on_operation(self) -> Iterator[None]:
        start = time.perf_counter()
        raised = False
        try:
            yield
        except Exception:
            raised = True  # a refusal before execution (RequestGuard): strawberry turns it into an error result
            raise
        finally:
            ec = self.execution_context
            try:
                kind = ec.operation_type.value
            except Exception:  # noqa: BLE001 - unparsable, or an operation name the document lacks
                kind = "unknown"
            failed = raised or bool(ec.pre_execution_errors) or bool(ec.result is not None and ec.result.errors)
            self.metrics.graphql_requests.labels(kind, "error" if failed else "ok").inc()
            if self.subscription:
                self.metrics.live_subscribers.dec()
            else:
                self.metrics.graphql_latency.observe(time.perf_counter() - start)
