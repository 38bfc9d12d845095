"""4. Observation → coaching task, end to end: POST (commit + outbox) → relay → JetStream →
coaching pull consumer → inbox + handler → task row. Both services in-process (tests.stack),
one observation at a time, so each sample is pure latency, never queueing behind another.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from sqlalchemy import select

from bench.common import (
    Config,
    Figure,
    backends,
    bench_settings,
    db_url,
    fmt_ms,
    nats_server,
    percentile,
    say,
)
from services.coaching.models import Task
from tests.stack import observation, running_stack
from trellis.db import Database

BENCH = "4 end to end"
POLL_S = 0.001  # the figure's resolution; a poll is one indexed SELECT on the coaching DB
SAMPLE_TIMEOUT_S = 10.0
WARMUP = 5


async def task_appears(db: Database, agency: str, observation_id: str, deadline: float) -> bool:
    while time.perf_counter() < deadline:
        async with db.reader(agency=agency) as s:
            if (await s.execute(select(Task.id).where(Task.observation_id == observation_id))).first():
                return True
        await asyncio.sleep(POLL_S)
    return False


async def run_backend(cfg: Config, backend: str) -> list[Figure]:
    root = cfg.root / "e2e" / backend
    with nats_server(root) as server:
        settings = bench_settings(server.url, root)
        urls = {name: db_url(cfg, root, name, backend) for name in ("fidelity", "coaching")}
        async with running_stack(settings, urls) as st:
            agency = str(uuid.uuid4())
            practitioners = await st.staffed(agency, 20)
            observer = await st.observer(agency)
            coaching_db: Database = st.apps["coaching"].state.db
            total: list[float] = []
            posts: list[float] = []
            misses = 0
            budget_end = time.perf_counter() + cfg.e2e_budget_s
            for i in range(WARMUP + cfg.e2e_samples):
                if time.perf_counter() > budget_end:
                    break
                t0 = time.perf_counter()
                body = observation(practitioners[i % 20])
                r = await st.fidelity.post("/v1/observations", json=body, headers=observer)
                t_post = time.perf_counter()
                if r.status_code != 201:
                    misses += 1
                    continue
                found = await task_appears(coaching_db, agency, r.json()["id"], t0 + SAMPLE_TIMEOUT_S)
                if i < WARMUP:
                    continue
                if not found:
                    misses += 1
                    continue
                total.append(time.perf_counter() - t0)
                posts.append(t_post - t0)
    n = len(total)
    if n == 0:
        say(f"  [{backend}] no samples ({misses} misses)")
        return [Figure(BENCH, f"Observation → task, {backend}", "no samples", goal=f"{misses} misses")]
    p50, p99 = percentile(total, 50), percentile(total, 99)
    post50 = percentile(posts, 50)
    say(f"  [{backend}] observation → task: p50 {fmt_ms(p50)}, p99 {fmt_ms(p99)}, max {fmt_ms(max(total))} "
        f"over {n} samples ({misses} misses); the POST itself p50 {fmt_ms(post50)}")
    return [Figure(BENCH, f"Observation → task, {backend} ({n} sequential samples)",
                   f"p50 {fmt_ms(p50)}, p99 {fmt_ms(p99)}",
                   f"of which POST p50 {fmt_ms(post50)}; after POST p50 {fmt_ms(p50 - post50)}",
                   "" if misses == 0 else f"{misses} misses")]


async def run(cfg: Config) -> list[Figure]:
    figures: list[Figure] = []
    for backend in backends(cfg):
        figures += await run_backend(cfg, backend)
    return figures
