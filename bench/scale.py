"""7. Scale-out: coaching consumer throughput with 1 replica against 2, on the 3-node cluster.

The pieces the scale-out test runs (tests/cluster.py): a 3-node nats-server JetStream cluster from
the manifests' nats.conf (R3 streams, `sync_interval: always`), PostgreSQL, and `python -m
services.coaching` processes sharing one database and one durable consumer. Each round starts its
replicas, waits until they are ready, publishes 4N ObservationRecorded events (pipelined, as the
relay would) and times until that many new tasks are in the database. The 1-replica round is the anchor;
it runs before and after the 2-replica round and the mean is used, so drifting load skews less.

The machine's CPU use over each round is read from /proc/stat: on 2 cores the 3 nats-servers,
PostgreSQL and the replicas already share the same two cores, so a second replica adds no CPU,
only overlap of waits. This figure shows what that overlap buys here, not what more machines buy.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import nats
from sqlalchemy import func, select

from bench.common import Config, Figure, fmt_rate, observation_envelope, per_s, ratio, say
from bench.consume import prepublish
from services.coaching.models import Task
from tests.cluster import Replica, running_cluster, streams_declared
from trellis.bus import consumer_name
from trellis.db import Database
from trellis.migrate import upgrade_async

BENCH = "7 scale-out"
DEBRIEF = consumer_name("coaching", "open-debrief-task")
POLL_S = 0.05
BUDGET_S = 120.0


def cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine since boot."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


@dataclass(frozen=True)
class Round:
    replicas: int
    rate: float  # tasks/s from the first publish until the last task is committed
    publish_s: float  # of which publishing the events took this long
    busy: float  # the machine's CPU use over the round, 0..1 of all cores
    split: dict[str, int]  # events each replica handled


async def one_round(cluster_urls: list[str], env: dict[str, str], db: Database, home: Path, k: int,
                    n: int) -> Round:
    replicas = [Replica("coaching", i, env, home) for i in range(k)]
    for r in replicas:
        r.start()
    try:
        await asyncio.gather(*(r.ready() for r in replicas))
        nc = await nats.connect(cluster_urls)
        try:
            js = nc.jetstream()
            await streams_declared(js, replicas=3)
            async with db.reader(all_agencies=True) as s:
                before = int((await s.execute(select(func.count()).select_from(Task))).scalar_one())
            agencies = [str(uuid.uuid4()) for _ in range(10)]
            envelopes = [observation_envelope(agencies[i % len(agencies)]) for i in range(n)]
            busy0, total0 = cpu_ticks()
            t0 = time.perf_counter()
            await prepublish(js, [(e.nats_subject, e.to_bytes(), e.id) for e in envelopes])
            published = time.perf_counter() - t0
            done = before
            while done - before < n and time.perf_counter() - t0 < BUDGET_S:
                await asyncio.sleep(POLL_S)
                async with db.reader(all_agencies=True) as s:
                    done = int((await s.execute(select(func.count()).select_from(Task))).scalar_one())
            elapsed = time.perf_counter() - t0
            busy1, total1 = cpu_ticks()
        finally:
            await nc.close()
        if done - before < n:
            raise AssertionError(f"{k} replica(s): {done - before} of {n} tasks within {BUDGET_S:.0f} s")
        split = {r.name: int(await r.metric("trellis_events_consumed_total", consumer=DEBRIEF, outcome="handled"))
                 for r in replicas}
    finally:
        for r in replicas:
            r.stop()
    return Round(k, per_s(n, elapsed), published, (busy1 - busy0) / max(total1 - total0, 1), split)


async def run(cfg: Config) -> list[Figure]:
    if cfg.pg is None:
        raise RuntimeError("needs PostgreSQL: two replicas share one database (run with --pg on)")
    root = cfg.root / "scale"
    root.mkdir(parents=True, exist_ok=True)
    n = 4 * cfg.n  # 20,000 by default: a round of a few seconds, not one dominated by its first fetch
    with running_cluster(root / "nats") as cluster:
        url = cfg.pg.create_database(f"coaching_scale_{uuid.uuid4().hex[:8]}")
        await upgrade_async("coaching", url)
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRELLIS_")} | {
            "TRELLIS_NATS_URL": cluster.url, "TRELLIS_STREAM_REPLICAS": "3", "TRELLIS_VAR_DIR": str(root),
            "TRELLIS_COACHING_DATABASE_URL": url, "TRELLIS_LOG_LEVEL": "WARNING"}
        db = Database(url)
        rounds: list[Round] = []
        try:
            for k in (1, 2, 1):
                r = await one_round(cluster.urls, env, db, root, k, n)
                rounds.append(r)
                say(f"  {k} coaching replica(s): {fmt_rate(r.rate, 'tasks/s')} ({n:,} events; publishing them took "
                    f"{r.publish_s:.2f} s); machine CPU {r.busy:.0%} of {os.cpu_count()} cores; split {r.split}")
        finally:
            await db.dispose()
    one = (rounds[0].rate + rounds[2].rate) / 2
    two = rounds[1]
    cores = os.cpu_count() or 0
    share = ", ".join(f"{v:,}" for v in two.split.values())
    return [
        Figure(BENCH, f"Anchor: 1 coaching replica (process) on the 3-node R3 cluster, PostgreSQL, {n:,} events; "
                      "mean of before/after",
               f"{fmt_rate(one, 'tasks/s')} (CPU {max(rounds[0].busy, rounds[2].busy):.0%} of {cores} cores)",
               f"anchor (before {rounds[0].rate:,.0f}, after {rounds[2].rate:,.0f})"),
        Figure(BENCH, f"2 coaching replicas sharing the durable consumer and the database (split {share})",
               f"{fmt_rate(two.rate, 'tasks/s')} (CPU {two.busy:.0%} of {cores} cores)",
               ratio(two.rate, one, "1 replica"),
               f"bound by {cores} cores shared with 3 nats-servers and PostgreSQL"),
    ]
