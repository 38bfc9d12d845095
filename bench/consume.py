"""2. JetStream consume: a raw FastStream pull subscriber that only counts, then the real
coaching app (kernel group commit + inbox + handler + outbox) turning N observations into tasks.

The anchor runs before and after the coaching app and their mean is used, so load that
drifts during the run (a shared 2-core box) skews the ratio less. A decomposition runs the
kernel's group commit with the real handler on in-memory messages: the cost without NATS.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any

from asgi_lifespan import LifespanManager
from faststream import AckPolicy
from faststream.nats import JStream, NatsBroker, PullSub
from faststream.nats.annotations import NatsMessage
from nats.js.api import ConsumerConfig
from nats.js.client import JetStreamContext
from sqlalchemy import func, select

from bench.common import (
    PIPELINE,
    Config,
    Figure,
    Sample,
    anchor_stream,
    backends,
    bench_settings,
    db_url,
    fmt_rate,
    goal,
    measure,
    median,
    nats_client,
    nats_server,
    observation_envelope,
    per_s,
    ratio,
    say,
)
from services.coaching.app import create_app as coaching_app
from services.coaching.handlers import handlers as coaching_handlers
from services.coaching.models import Task
from trellis import telemetry
from trellis.bus import ConsumerContext, GroupCommit, consumer_name, ensure_streams
from trellis.db import Database
from trellis.envelope import Envelope
from trellis.metrics import Metrics
from trellis.migrate import upgrade_async
from trellis.settings import Settings

BENCH = "2 consume"
DURABLE = consumer_name("coaching", "open-debrief-task")
TIMEOUT_S = 120.0  # bounds a stuck anchor run; the coaching run has its own budget
POLL_S = 0.05  # reading the Prometheus registry is not free; 50 ms is <1% of a multi-second run


async def prepublish(js: JetStreamContext, items: list[tuple[str, bytes, str]]) -> None:
    """(subject, body, msg id) triples, pipelined; not timed."""
    for i in range(0, len(items), PIPELINE):
        await asyncio.gather(*(
            js.publish(subject, body, headers={"Nats-Msg-Id": msg_id, "content-type": "application/cloudevents+json"})
            for subject, body, msg_id in items[i:i + PIPELINE]
        ))


async def raw_consume(url: str, n: int, durable: str) -> Sample:
    """One FastStream pull subscriber that counts and acks n messages."""
    broker = NatsBroker(url, logger=None)  # no per-message log lines: the anchor is the bare consume path
    seen = 0
    done = asyncio.Event()

    # Same consumer shape as trellis.bus.register_handlers, minus the kernel's work.
    @broker.subscriber("rawc.>", stream=JStream("RAWC", declare=False), durable=durable,
                       config=ConsumerConfig(ack_wait=30.0, max_deliver=-1, max_ack_pending=1000),
                       pull_sub=PullSub(batch_size=32, timeout=1.0), ack_policy=AckPolicy.ACK)
    async def count(msg: NatsMessage) -> None:
        nonlocal seen
        seen += 1
        if seen >= n:
            done.set()

    async def consume() -> int:
        await broker.start()
        await asyncio.wait_for(done.wait(), TIMEOUT_S)
        return seen

    try:
        return await measure(consume())
    finally:
        await broker.stop()


async def coaching_consume(settings: Settings, url: str, n: int, budget_s: float) -> tuple[Sample, float, int]:
    """(rate, startup s, tasks in the database) for the real coaching app draining up to n events
    in at most budget_s (a slow backend is measured on fewer events, not waited for)."""
    await upgrade_async("coaching", url)
    app = coaching_app(settings=settings, database_url=url)
    t_start = time.perf_counter()
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60):
        registry = app.state.metrics.registry
        labels = {"consumer": DURABLE, "outcome": "handled"}

        def handled() -> int:
            return int(registry.get_sample_value("trellis_events_consumed_total", labels) or 0)

        # Consumption starts inside startup; count only what is handled after it.
        t0, cpu0 = time.perf_counter(), time.process_time()
        startup, before = t0 - t_start, handled()
        deadline = t0 + budget_s
        while handled() < n and time.perf_counter() < deadline:
            await asyncio.sleep(POLL_S)
        done, elapsed, cpu = handled(), time.perf_counter() - t0, time.process_time() - cpu0
        async with app.state.db.reader(all_agencies=True) as s:
            tasks = int((await s.execute(select(func.count()).select_from(Task))).scalar_one())
    count = max(done - before, 1)
    return Sample(per_s(count, elapsed), cpu / count * 1e6), startup, tasks


@dataclass
class _Meta:
    num_delivered: int = 1


@dataclass
class _Raw:
    data: bytes
    subject: str
    metadata: _Meta
    headers: dict[str, str]


class FakeMessage:
    """Just enough of FastStream's NatsMessage for the kernel's consumer."""

    def __init__(self, env: Envelope) -> None:
        self.raw_message = _Raw(env.to_bytes(), env.nats_subject, _Meta(), {"Nats-Msg-Id": env.id})
        self.acked = False

    async def ack(self) -> None:
        self.acked = True

    async def nack(self, delay: float | None = None) -> None:
        return None


async def process_without_nats(settings: Settings, url: str, envelopes: list[Envelope]) -> Sample:
    """Kernel group commit + the real coaching handler, 64 at a time as FastStream dispatches a fetch."""
    await upgrade_async("coaching", url)
    db = Database(url)
    telemetry.instrument_engine(db.engine, telemetry.tracer_provider("coaching"))  # as the service does
    broker: Any = None  # only dead_letter() uses it, and nothing here fails
    ctx = ConsumerContext(service="coaching", db=db, broker=broker, settings=settings, metrics=Metrics("coaching"))
    spec = coaching_handlers.specs[0]
    messages = [FakeMessage(e) for e in envelopes]
    group = GroupCommit(ctx, spec, DURABLE)

    async def run() -> int:
        for i in range(0, len(messages), 32):
            await asyncio.gather(*(group.submit(m) for m in messages[i:i + 64]))
        return sum(m.acked for m in messages)

    try:
        return await measure(run())
    finally:
        await db.dispose()


async def run(cfg: Config) -> list[Figure]:
    root = cfg.root / "consume"
    figures: list[Figure] = []
    n = cfg.n
    for backend in backends(cfg):
        broot = root / backend
        with nats_server(broot) as server:
            settings = bench_settings(server.url, broot)
            agencies = [str(uuid.uuid4()) for _ in range(10)]
            envelopes = [observation_envelope(agencies[i % len(agencies)]) for i in range(n)]
            async with nats_client(server.url) as (_, js):
                await ensure_streams(js, settings)
                await js.add_stream(anchor_stream(settings, "RAWC", "rawc"))
                await prepublish(js, [(f"rawc.ObservationRecorded.{e.agency}", e.to_bytes(), f"raw-{e.id}")
                                      for e in envelopes])
                await prepublish(js, [(e.nats_subject, e.to_bytes(), e.id) for e in envelopes])

            before = await raw_consume(server.url, n, "bench-raw-1")
            say(f"  [{backend}] raw FastStream pull consume (batch 32, ack), before: {fmt_rate(before.rate)}, "
                f"{before.cpu_us:,.0f} µs CPU/msg")
            app, startup, tasks = await coaching_consume(settings, db_url(cfg, broot, "coaching", backend), n,
                                                         cfg.consume_budget_s)
            after = await raw_consume(server.url, n, "bench-raw-2")
            say(f"  [{backend}] raw FastStream pull consume (batch 32, ack), after: {fmt_rate(after.rate)}, "
                f"{after.cpu_us:,.0f} µs CPU/msg")
            raw, raw_cpu = (before.rate + after.rate) / 2, median([before.cpu_us, after.cpu_us])
            say(f"  [{backend}] coaching handler + inbox: {fmt_rate(app.rate, 'tasks/s')}, "
                f"{app.cpu_us:,.0f} µs CPU/task (startup {startup:.2f} s; {tasks} of {n} tasks in the database); "
                f"{app.rate / raw:.2f}x raw")
            bare = await process_without_nats(settings, db_url(cfg, broot, "coaching-bare", backend),
                                              envelopes[:min(n, 1000)])
            say(f"  [{backend}] kernel group commit + handler without NATS: {fmt_rate(bare.rate, 'tasks/s')}, "
                f"{bare.cpu_us:,.0f} µs CPU/task; {bare.rate / raw:.2f}x raw")
            figures += [
                Figure(BENCH, f"Anchor: raw FastStream pull consume ({backend} run; mean of before/after)",
                       f"{fmt_rate(raw)} ({raw_cpu:,.0f} µs CPU/msg)",
                       f"anchor (before {before.rate:,.0f}, after {after.rate:,.0f})"),
                Figure(BENCH, f"Coaching handler + inbox, {backend} ({tasks}/{n} tasks)",
                       f"{fmt_rate(app.rate, 'tasks/s')} ({app.cpu_us:,.0f} µs CPU/task)",
                       ratio(app.rate, raw, "raw consume"), goal(app.rate, raw, 0.5)),
                Figure(BENCH, f"  decomposition: kernel group commit + handler, {backend}, no NATS (64 per fetch)",
                       f"{fmt_rate(bare.rate, 'tasks/s')} ({bare.cpu_us:,.0f} µs CPU/task)",
                       ratio(bare.rate, raw, "raw consume")),
            ]
    return figures
