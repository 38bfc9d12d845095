"""Shared pieces: a throwaway nats-server, settings, realistic events, timing and figures."""

from __future__ import annotations

import contextlib
import math
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

import nats
from nats.aio.client import Client as NatsClient
from nats.js.api import StreamConfig
from nats.js.client import JetStreamContext
from uuid6 import uuid7

from contracts.fidelity import ObservationRecorded
from services.fidelity.domain import MIIWRAP_PRACTICE_V1, score
from tests.stack import full_scores
from tests.support import NatsServer, PgCluster
from trellis.bus import stream_configs
from trellis.envelope import Envelope
from trellis.settings import Settings

PIPELINE = 256  # the relay's default batch (Settings.outbox_batch), so pipelined figures compare like for like


@dataclass
class Config:
    root: Path
    n: int = 5000
    http_requests: int = 1000
    http_concurrency: int = 8
    e2e_samples: int = 100
    e2e_budget_s: float = 40.0
    rounds: int = 3
    consume_budget_s: float = 45.0
    pg: PgCluster | None = None


@dataclass(frozen=True)
class Figure:
    bench: str
    name: str
    value: str
    vs: str = ""
    goal: str = ""


@contextlib.contextmanager
def nats_server(root: Path) -> Iterator[NatsServer]:
    server = NatsServer(root / "nats")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.asynccontextmanager
async def nats_client(url: str) -> AsyncIterator[tuple[NatsClient, JetStreamContext]]:
    nc = await nats.connect(url, max_reconnect_attempts=0)
    try:
        yield nc, nc.jetstream()
    finally:
        await nc.close()


def bench_settings(nats_url: str, var_dir: Path) -> Settings:
    # Production defaults except where things live and how loud they are.
    return Settings(nats_url=nats_url, var_dir=var_dir, log_level="WARNING")


def sqlite_url(root: Path, name: str) -> str:
    return f"sqlite+aiosqlite:///{root / f'{name}.db'}"


def db_url(cfg: Config, root: Path, name: str, backend: str) -> str:
    if backend == "sqlite":
        root.mkdir(parents=True, exist_ok=True)  # Alembic runs before Database() would create it
        return sqlite_url(root, name)
    assert cfg.pg is not None
    return cfg.pg.create_database(f"{name}_{uuid.uuid4().hex[:10]}")


def backends(cfg: Config) -> list[str]:
    return ["sqlite", "postgres"] if cfg.pg is not None else ["sqlite"]


def anchor_stream(settings: Settings, name: str, prefix: str) -> StreamConfig:
    """A stream configured exactly like the domain streams, for the raw anchors."""
    return replace(stream_configs(settings)[0], name=name, subjects=[f"{prefix}.>"])


_SCORED = score(MIIWRAP_PRACTICE_V1, full_scores(2))


def observation_envelope(agency: str) -> Envelope:
    """What fidelity stages for one POST /v1/observations; its aggregate is the observation."""
    obs_id = str(uuid7())
    payload = ObservationRecorded(
        observation_id=obs_id, practitioner_id=str(uuid.uuid4()), observer_id=str(uuid.uuid4()),
        instrument_id=MIIWRAP_PRACTICE_V1.id, instrument_version=MIIWRAP_PRACTICE_V1.version,
        observed_on=date(2026, 11, 1), setting="team_meeting", total_score=_SCORED.total,
        competency_scores=_SCORED.competencies, passed=_SCORED.passed,
    )
    return Envelope.wrap(payload, source="trellis/fidelity", subject=obs_id, agency=agency)


@dataclass(frozen=True)
class Sample:
    rate: float  # items/s, wall clock
    cpu_us: float  # this process's CPU (all threads) per item: steadier than wall time on a shared box


async def measure(run: Awaitable[int]) -> Sample:
    """Time `run`, which returns how many items it processed."""
    cpu, wall = time.process_time(), time.perf_counter()
    count = await run
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return Sample(per_s(count, wall), cpu / max(count, 1) * 1e6)


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs)


def percentile(samples: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (no interpolation: every value printed was observed)."""
    ordered = sorted(samples)
    k = max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))
    return ordered[k]


def per_s(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def fmt_rate(x: float, unit: str = "msg/s") -> str:
    return f"{x:,.0f} {unit}"


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms"


def ratio(x: float, anchor: float, label: str) -> str:
    return f"{x / anchor:.2f}x {label}"


def goal(x: float, anchor: float, target: float) -> str:
    return f">= {target}x: {'met' if x / anchor >= target else 'NOT met'}"


def say(msg: str) -> None:
    print(msg, flush=True)
