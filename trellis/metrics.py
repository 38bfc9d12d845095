"""Prometheus metrics, one registry per service app (several apps may share a process in tests)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry()
        labels = {"service": service}
        self.http_requests = Counter(
            "trellis_http_requests", "HTTP requests", ["method", "route", "status"], registry=self.registry
        )
        self.http_latency = Histogram(
            "trellis_http_request_seconds", "HTTP request latency", ["method", "route"], registry=self.registry
        )
        self.outbox_unsent = Gauge("trellis_outbox_unsent", "Outbox rows not yet published", registry=self.registry)
        self.outbox_oldest_age = Gauge(
            "trellis_outbox_oldest_unsent_age_seconds", "Age of the oldest unpublished outbox row",
            registry=self.registry,
        )
        self.outbox_parked = Gauge("trellis_outbox_parked", "Outbox rows parked after too many failed publishes",
                                   registry=self.registry)
        self.outbox_parked_total = Counter("trellis_outbox_parked_events", "Outbox rows the relay has parked",
                                           registry=self.registry)
        self.events_published = Counter(
            "trellis_events_published", "Events published by the outbox relay", registry=self.registry
        )
        self.events_consumed = Counter(
            "trellis_events_consumed", "Events handled by consumers", ["consumer", "outcome"], registry=self.registry
        )
        self.consumer_lag = Gauge(
            "trellis_consumer_lag", "Messages pending or unacked for a durable consumer", ["consumer"],
            registry=self.registry,
        )
        self.dlq_depth = Gauge("trellis_dlq_depth", "Messages in this service's dead-letter subjects",
                               ["consumer"], registry=self.registry)
        self.info = Gauge("trellis_service_info", "Service identity", list(labels), registry=self.registry)
        self.info.labels(**labels).set(1)
