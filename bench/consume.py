"""2. JetStream consume: raw nats-py pull `fetch` + `ack` (the physical limit), then the real coaching app
(kernel batch consumer + inbox + batch-aware handler + outbox) turning N observations into tasks, and the
roster propagation: a 5,000-row CSV import in readiness until every person is on fidelity's and coaching's
rosters.

The anchor runs before and after the coaching app and their mean is used, so load that drifts during the
run (a shared 2-core box) skews the ratio less. A decomposition runs the kernel's group commit with the
real handler on in-memory messages: the cost without NATS.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from asgi_lifespan import LifespanManager
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
from services.coaching.models import ROSTER as COACHING_ROSTER
from services.coaching.models import Task
from services.fidelity.models import ROSTER as FIDELITY_ROSTER
from tests.stack import running_stack
from trellis import telemetry
from trellis.auth import mint_dev_token
from trellis.bus import ConsumerContext, GroupCommit, consumer_name, ensure_streams
from trellis.db import Database
from trellis.envelope import Envelope
from trellis.metrics import Metrics
from trellis.migrate import upgrade_async
from trellis.outbox import OutboxRelay
from trellis.settings import Settings

BENCH = "2 consume"
DURABLE = consumer_name("coaching", "open-debrief-task")
TIMEOUT_S = 120.0  # bounds a stuck anchor run; the coaching run has its own budget
POLL_S = 0.05  # reading the Prometheus registry is not free; 50 ms is <1% of a multi-second run
ROSTER_ROWS = 5000
ROSTER_GOAL_S = 3.0
ROSTER_BUDGET_S = 90.0


async def prepublish(js: JetStreamContext, items: list[tuple[str, bytes, str]]) -> None:
    """(subject, body, msg id) triples, pipelined; not timed."""
    for i in range(0, len(items), PIPELINE):
        await asyncio.gather(*(
            js.publish(subject, body, headers={"Nats-Msg-Id": msg_id, "content-type": "application/cloudevents+json"})
            for subject, body, msg_id in items[i:i + PIPELINE]
        ))


async def raw_fetch_ack(url: str, n: int, durable: str, batch: int) -> Sample:
    """The physical limit: nats-py pulls `batch` at a time and acks each message, nothing else."""
    async with nats_client(url) as (_, js):
        # Same consumer shape as trellis.bus.register_handlers, minus FastStream and the kernel's work.
        psub = await js.pull_subscribe("rawc.>", durable=durable, stream="RAWC", config=ConsumerConfig(
            ack_wait=30.0, max_deliver=-1, max_ack_pending=max(1000, 2 * batch)))

        async def consume() -> int:
            seen, deadline = 0, time.perf_counter() + TIMEOUT_S
            while seen < n and time.perf_counter() < deadline:
                try:
                    msgs = await psub.fetch(batch=batch, timeout=1.0)
                except TimeoutError:
                    continue
                for m in msgs:
                    await m.ack()
                seen += len(msgs)
            return seen

        try:
            return await measure(consume())
        finally:
            await psub.unsubscribe()


@contextlib.contextmanager
def relay_held_back() -> Iterator[None]:
    """The outbox relay idles until shutdown (which still publishes what was staged): what the
    consumer, inbox and handler cost without republishing each task's event in the same process."""
    real = OutboxRelay.run

    async def idle(self: OutboxRelay) -> None:
        while not self._stopping:
            await asyncio.sleep(0.1)

    OutboxRelay.run = idle  # type: ignore[method-assign]
    try:
        yield
    finally:
        OutboxRelay.run = real  # type: ignore[method-assign]


async def coaching_consume(settings: Settings, url: str, n: int, budget_s: float,
                           relay: bool = True) -> tuple[Sample, float, int]:
    """(rate, startup s, tasks in the database) for the real coaching app draining up to n events
    in at most budget_s (a slow backend is measured on fewer events, not waited for)."""
    await upgrade_async("coaching", url)
    app = coaching_app(settings=settings, database_url=url)
    t_start = time.perf_counter()
    async with contextlib.AsyncExitStack() as stack:
        if not relay:
            stack.enter_context(relay_held_back())
        await stack.enter_async_context(LifespanManager(app, startup_timeout=60, shutdown_timeout=60))
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
class _Seq:
    stream: int = 0


@dataclass
class _Meta:
    num_delivered: int = 1
    stream: str = "FIDELITY"
    sequence: _Seq = field(default_factory=_Seq)


class FakeRaw:
    """Just enough of a nats-py JetStream message for the kernel's consumer."""

    def __init__(self, env: Envelope) -> None:
        self.data, self.subject = env.to_bytes(), env.nats_subject
        self.headers = {"Nats-Msg-Id": env.id}
        self.metadata = _Meta()
        self._ackd = False

    async def ack(self) -> None:
        self._ackd = True

    async def nak(self, delay: float | None = None) -> None:
        self._ackd = True

    async def in_progress(self) -> None:
        return None


async def process_without_nats(settings: Settings, url: str, envelopes: list[Envelope]) -> Sample:
    """Kernel group commit + the real coaching handler, a batch at a time as FastStream hands over a fetch."""
    await upgrade_async("coaching", url)
    db = Database(url, source="trellis/coaching")
    telemetry.instrument_engine(db.engine, telemetry.tracer_provider("coaching"))  # as the service does
    broker: Any = None  # only dead_letter() uses it, and nothing here fails
    ctx = ConsumerContext(service="coaching", db=db, broker=broker, settings=settings, metrics=Metrics("coaching"))
    spec = next(s for s in coaching_handlers.specs if s.name == "open-debrief-task")
    raws = [FakeRaw(e) for e in envelopes]
    group = GroupCommit(ctx, spec, DURABLE)
    size = settings.consumer_batch_size

    async def run() -> int:
        for i in range(0, len(raws), size):
            await group.handle(raws[i:i + size])
        return sum(r._ackd for r in raws)

    try:
        return await measure(run())
    finally:
        await db.dispose()


def roster_csv(rows: int) -> str:
    lines = ["name,email,roles,hire_date"]
    lines += [f"Person {i},person{i}@example.org,practitioner,2025-01-06" for i in range(rows)]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Propagation:
    import_s: float  # the POST, until it returned
    visible_s: float | None  # from its return until every row is on both rosters; None: not within the budget
    per_service: dict[str, float]


async def roster_propagation(cfg: Config, root: Any, backend: str, rows: int) -> Propagation:
    """POST a CSV of `rows` new staff to readiness; time until fidelity and coaching both list them all."""
    with nats_server(root) as server:
        settings = bench_settings(server.url, root)
        urls = {name: db_url(cfg, root, f"roster-{name}", backend) for name in ("readiness", "fidelity", "coaching")}
        async with running_stack(settings, urls) as st:
            platform = mint_dev_token(settings, sub=str(uuid.uuid4()), agency=str(uuid.uuid4()),
                                      roles=["platform_admin"])
            r = await st.readiness.post("/v1/agencies", headers={"Authorization": f"Bearer {platform}"},
                                        json={"name": "Bench agency", "region": "North"})
            assert r.status_code == 201, r.text
            agency = r.json()["id"]
            admin = mint_dev_token(settings, sub=str(uuid.uuid4()), agency=agency, roles=["agency_admin"])
            rosters = {"fidelity": FIDELITY_ROSTER, "coaching": COACHING_ROSTER}
            t0 = time.perf_counter()
            r = await st.clients["readiness"].post(
                f"/v1/agencies/{agency}/staff/import", content=roster_csv(rows),
                headers={"Authorization": f"Bearer {admin}", "content-type": "text/csv"}, timeout=120)
            returned = time.perf_counter()
            assert r.status_code == 200 and r.json()["created"] == rows, r.text
            seen: dict[str, float] = {}
            while len(seen) < len(rosters) and time.perf_counter() < returned + ROSTER_BUDGET_S:
                for name, roster in rosters.items():
                    if name in seen:
                        continue
                    async with st.apps[name].state.db.reader() as s:
                        # A count, not active_ids(): loading 5,000 rows every poll would slow what it measures.
                        t = roster.t
                        active = (await s.execute(select(func.count()).select_from(t).where(
                            t.c.agency_id == agency, t.c.status == "active"))).scalar_one()
                    if active >= rows:
                        seen[name] = time.perf_counter() - returned
                await asyncio.sleep(POLL_S)
    visible = max(seen.values()) if len(seen) == len(rosters) else None
    return Propagation(returned - t0, visible, seen)


async def run(cfg: Config) -> list[Figure]:
    root = cfg.root / "consume"
    figures: list[Figure] = []
    n = cfg.n
    for backend in backends(cfg):
        broot = root / backend
        with nats_server(broot) as server:
            settings = bench_settings(server.url, broot)
            batch = settings.consumer_batch_size
            agencies = [str(uuid.uuid4()) for _ in range(10)]
            envelopes = [observation_envelope(agencies[i % len(agencies)]) for i in range(n)]
            async with nats_client(server.url) as (_, js):
                await ensure_streams(js, settings)
                await js.add_stream(anchor_stream(settings, "RAWC", "rawc"))
                await prepublish(js, [(f"rawc.ObservationRecorded.{e.agency}", e.to_bytes(), f"raw-{e.id}")
                                      for e in envelopes])
                await prepublish(js, [(e.nats_subject, e.to_bytes(), e.id) for e in envelopes])

            before = await raw_fetch_ack(server.url, n, "bench-raw-1", batch)
            say(f"  [{backend}] raw nats-py pull fetch({batch}) + ack, before: {fmt_rate(before.rate)}, "
                f"{before.cpu_us:,.0f} µs CPU/msg")
            app, startup, tasks = await coaching_consume(settings, db_url(cfg, broot, "coaching", backend), n,
                                                         cfg.consume_budget_s)
            async with nats_client(server.url) as (_, js):
                await js.delete_consumer("FIDELITY", DURABLE)  # the next run reads the same events again
            held, _, held_tasks = await coaching_consume(settings, db_url(cfg, broot, "coaching-held", backend), n,
                                                         cfg.consume_budget_s, relay=False)
            after = await raw_fetch_ack(server.url, n, "bench-raw-2", batch)
            say(f"  [{backend}] raw nats-py pull fetch({batch}) + ack, after: {fmt_rate(after.rate)}, "
                f"{after.cpu_us:,.0f} µs CPU/msg")
            raw, raw_cpu = (before.rate + after.rate) / 2, median([before.cpu_us, after.cpu_us])
            say(f"  [{backend}] coaching consumer + inbox + handler: {fmt_rate(app.rate, 'tasks/s')}, "
                f"{app.cpu_us:,.0f} µs CPU/task (startup {startup:.2f} s; {tasks} of {n} tasks in the database); "
                f"{app.rate / raw:.2f}x raw")
            say(f"  [{backend}] the same, relay held back: {fmt_rate(held.rate, 'tasks/s')}, "
                f"{held.cpu_us:,.0f} µs CPU/task; {held.rate / raw:.2f}x raw")
            bare = await process_without_nats(settings, db_url(cfg, broot, "coaching-bare", backend),
                                              envelopes[:min(n, 2000)])
            say(f"  [{backend}] kernel group commit + handler without NATS: {fmt_rate(bare.rate, 'tasks/s')}, "
                f"{bare.cpu_us:,.0f} µs CPU/task; {bare.rate / raw:.2f}x raw")
        prop = await roster_propagation(cfg, broot / "roster", backend, ROSTER_ROWS)
        shown = (f"{prop.visible_s:.2f} s after the import returned" if prop.visible_s is not None
                 else f"not within {ROSTER_BUDGET_S:.0f} s")
        detail = ", ".join(f"{k} {v:.2f} s" for k, v in sorted(prop.per_service.items()))
        say(f"  [{backend}] roster import of {ROSTER_ROWS:,} rows: returned in {prop.import_s:.2f} s; "
            f"on both rosters {shown} ({detail})")
        met = prop.visible_s is not None and prop.visible_s <= ROSTER_GOAL_S
        figures += [
            Figure(BENCH, f"Anchor: raw nats-py pull fetch({batch}) + ack ({backend} run; mean of before/after)",
                   f"{fmt_rate(raw)} ({raw_cpu:,.0f} µs CPU/msg)",
                   f"anchor (before {before.rate:,.0f}, after {after.rate:,.0f})"),
            Figure(BENCH, f"Coaching consumer + inbox + handler, relay republishing, {backend} ({tasks}/{n} tasks)",
                   f"{fmt_rate(app.rate, 'tasks/s')} ({app.cpu_us:,.0f} µs CPU/task)",
                   ratio(app.rate, raw, "raw fetch+ack"), goal(app.rate, raw, 0.5)),
            Figure(BENCH, f"  decomposition: the same with the relay held back (no republish), {backend} "
                          f"({held_tasks}/{n} tasks)",
                   f"{fmt_rate(held.rate, 'tasks/s')} ({held.cpu_us:,.0f} µs CPU/task)",
                   ratio(held.rate, raw, "raw fetch+ack"), goal(held.rate, raw, 0.5)),
            Figure(BENCH, f"  decomposition: kernel group commit + handler, {backend}, no NATS ({batch} per fetch)",
                   f"{fmt_rate(bare.rate, 'tasks/s')} ({bare.cpu_us:,.0f} µs CPU/task)",
                   ratio(bare.rate, raw, "raw fetch+ack")),
            Figure(BENCH, f"Roster import of {ROSTER_ROWS:,} rows → on fidelity's and coaching's rosters, {backend}",
                   shown, f"import returned in {prop.import_s:.2f} s ({detail})",
                   f"<= {ROSTER_GOAL_S:.0f} s: {'met' if met else 'NOT met'}"),
        ]
    return figures
