"""3. POST /v1/observations on a real uvicorn: the fidelity service started as `make run` starts
it (`python -m services.fidelity`, uvloop + httptools), in its own process so the load generator
does not share its event loop.

Anchors, measured in the same run by the same client:
- GET /healthz on the same server, for throughput at 8 concurrent;
- a plain write: a bench-only app built with the kernel's `create_service` whose one route checks
  the same token and parses the same body, then inserts one row and stages one event with
  `uow.emit` (what a write cost before calibration, certification and drift), for sequential p50.

Then a decomposition, in-process (so an engine event can see each statement): statements per POST
by table, their database time, and the token check's cost.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import httpx
import nats
from asgi_lifespan import LifespanManager
from fastapi import APIRouter, FastAPI
from sqlalchemy import JSON, Column, Date, MetaData, String, Table, event
from sqlalchemy.engine import Engine
from uuid6 import uuid7

from bench.common import (
    Config,
    Figure,
    backends,
    bench_settings,
    db_url,
    fmt_ms,
    fmt_rate,
    nats_server,
    per_s,
    percentile,
    ratio,
    say,
)
from contracts.fidelity import ObservationRecorded
from services.fidelity.domain import MIIWRAP_PRACTICE_V1, SEEDED_REFERENCES, score
from services.fidelity.schemas import ObservationIn
from tests.stack import observation, publish_joined
from tests.support import free_port
from trellis.auth import Principal, TokenVerifier, mint_dev_token, require_roles
from trellis.bus import jetstream
from trellis.db import UTCDateTime, utcnow
from trellis.deps import DB
from trellis.migrate import upgrade_async
from trellis.service import create_service

BENCH = "3 HTTP"
WARMUP = 50
SEQ_ROUNDS = 4  # sequential figures alternate anchor and POST in rounds, so load drifts hit both alike
SEQ_GOAL, CONC_GOAL = 1.5, 0.25

Call = Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]

# ---- the plain-write anchor (bench only) ------------------------------------------------------------

_anchor_meta = MetaData()
ANCHOR_ROWS = Table(
    "bench_plain_writes", _anchor_meta,
    Column("id", String(36), primary_key=True),
    Column("agency_id", String(36), nullable=False),
    Column("practitioner_id", String(36), nullable=False),
    Column("observer_id", String(36), nullable=False),
    Column("instrument_id", String(36), nullable=False),
    Column("observed_on", Date, nullable=False),
    Column("setting", String(32), nullable=False),
    Column("scores", JSON, nullable=False),
    Column("notes", String, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)
ANCHOR_PATH = "/v1/plain-writes"


def anchor_router() -> APIRouter:
    r = APIRouter()

    @r.post(ANCHOR_PATH, status_code=201)
    async def plain_write(body: ObservationIn, db: DB,
                          principal: Annotated[Principal, require_roles("observer")]) -> dict[str, Any]:
        """One row and one outbox row in one unit of work: the floor under any authenticated write."""
        scored = score(MIIWRAP_PRACTICE_V1, body.scores)
        row = {"id": str(uuid7()), "agency_id": principal.agency, "practitioner_id": str(body.practitioner_id),
               "observer_id": principal.sub, "instrument_id": str(body.instrument_id),
               "observed_on": body.observed_on, "setting": body.setting, "scores": dict(body.scores),
               "notes": body.notes, "created_at": utcnow()}
        async with db.unit_of_work(agency=principal.agency) as uow:
            await uow.execute(ANCHOR_ROWS.insert(), row)
            await uow.emit(ObservationRecorded(
                observation_id=row["id"], practitioner_id=row["practitioner_id"], observer_id=principal.sub,
                instrument_id=row["instrument_id"], instrument_version=MIIWRAP_PRACTICE_V1.version,
                observed_on=body.observed_on, setting=body.setting, total_score=scored.total,
                competency_scores=scored.competencies, passed=scored.passed), subject=row["id"])
        return {**row, "score": scored.total, "passed": scored.passed}

    return r


async def _create_anchor_table(app: FastAPI) -> None:
    async with app.state.db.engine.begin() as conn:
        await conn.run_sync(_anchor_meta.create_all)


def anchor_app() -> FastAPI:
    """uvicorn factory: the kernel's service (as fidelity's settings say) with only the plain-write route."""
    return create_service("fidelity", router=anchor_router(), title="bench: plain insert + outbox",
                          on_startup=_create_anchor_table)


# ---- driving ---------------------------------------------------------------------------------


async def drive(client: httpx.AsyncClient, call: Call, total: int, concurrency: int) -> tuple[float, list[float],
                                                                                                Counter[int]]:
    """`total` calls from `concurrency` workers. Returns (requests/s, latencies, status counts)."""
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    next_i = 0

    async def worker() -> None:
        nonlocal next_i
        while next_i < total:
            i = next_i
            next_i += 1
            t = time.perf_counter()
            r = await call(client, i)
            latencies.append(time.perf_counter() - t)
            statuses[r.status_code] += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return per_s(total, time.perf_counter() - t0), latencies, statuses


async def wait_ready(base: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=base, timeout=2) as c:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args} exited with {proc.returncode} before it was ready")
            try:
                if (await c.get("/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError(f"{base} not ready after {timeout}s")


def start_server(root: Path, nats_url: str, url: str, port: int, argv: list[str], log: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_EXPORTER_OTLP")}
    env.update({
        "TRELLIS_NATS_URL": nats_url, "TRELLIS_VAR_DIR": str(root), "TRELLIS_LOG_LEVEL": "WARNING",
        "TRELLIS_FIDELITY_DATABASE_URL": url, "TRELLIS_FIDELITY_HOST": "127.0.0.1",
        "TRELLIS_FIDELITY_PORT": str(port),
    })
    out = open(root / log, "ab")  # noqa: SIM115 - handed to the child
    try:
        return subprocess.Popen([sys.executable, *argv], env=env, stdout=out, stderr=out,
                                cwd=Path(__file__).resolve().parent.parent)
    finally:
        out.close()


def start_fidelity(root: Path, nats_url: str, url: str, port: int) -> subprocess.Popen[bytes]:
    return start_server(root, nats_url, url, port, ["-m", "services.fidelity"], "fidelity.log")


def start_anchor(root: Path, nats_url: str, url: str, port: int) -> subprocess.Popen[bytes]:
    # Served as services are (uvicorn factory, uvloop + httptools, no access log).
    return start_server(root, nats_url, url, port,
                        ["-m", "uvicorn", "bench.http_api:anchor_app", "--factory", "--host", "127.0.0.1",
                         "--port", str(port), "--no-access-log", "--log-level", "warning"], "anchor.log")


async def calibrate(c: httpx.AsyncClient, headers: dict[str, str]) -> None:
    ref = SEEDED_REFERENCES[0]  # the observer calibrates first, as every rater must
    r = await c.post("/v1/calibrations", json={"reference_id": ref.id, "scores": ref.scores}, headers=headers)
    r.raise_for_status()


async def until_rostered(c: httpx.AsyncClient, people: list[str], headers: dict[str, str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for p in people:
            r = await c.post("/v1/observations", json=observation(p), headers=headers)
            if r.status_code != 201:
                break
        else:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError("the practitioners never reached fidelity's roster")


async def rostered(nats_url: str, base: str, agency: str, people: list[str], headers: dict[str, str]) -> None:
    """Put the practitioners on fidelity's roster (StaffMemberJoined) and wait until it accepts them."""
    nc = await nats.connect(nats_url)
    try:
        await publish_joined(nc.jetstream(), agency, people)
    finally:
        await nc.close()
    async with httpx.AsyncClient(base_url=base, timeout=10) as c:
        await calibrate(c, headers)
        await until_rostered(c, people, headers)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _ok(statuses: Counter[int], total: int) -> str:
    ok = statuses.get(201, 0)
    return f"{ok}/{total} x 201" + ("" if ok == total else f"; statuses {dict(statuses)}")


async def run_backend(cfg: Config, root: Path, backend: str) -> list[Figure]:
    total, conc = cfg.http_requests, cfg.http_concurrency
    seq_total = max(SEQ_ROUNDS, min(total, 400) // SEQ_ROUNDS * SEQ_ROUNDS)
    with nats_server(root) as server:
        settings = bench_settings(server.url, root)
        url, anchor_url = db_url(cfg, root, "fidelity", backend), db_url(cfg, root, "plainwrite", backend)
        await upgrade_async("fidelity", url)
        await upgrade_async("fidelity", anchor_url)  # the kernel tables (outbox) the anchor writes to
        port, anchor_port = free_port(), free_port()
        proc = start_fidelity(root, server.url, url, port)
        anchor_proc = start_anchor(root, server.url, anchor_url, anchor_port)
        try:
            base, anchor_base = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{anchor_port}"
            await asyncio.gather(wait_ready(base, proc), wait_ready(anchor_base, anchor_proc))
            agency = str(uuid.uuid4())
            token = mint_dev_token(settings, sub=str(uuid.uuid4()), agency=agency, roles=["observer"])
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            practitioners = [str(uuid.uuid4()) for _ in range(20)]
            await rostered(server.url, base, agency, practitioners, headers)
            # Bodies encoded up front: the client's JSON work is not the server's throughput.
            n_bodies = WARMUP + max(total, seq_total)
            bodies = [json.dumps(observation(practitioners[i % 20])).encode() for i in range(n_bodies)]
            limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
            async with (httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client,
                        httpx.AsyncClient(base_url=anchor_base, limits=limits, timeout=30) as anchor_client):

                async def healthz(c: httpx.AsyncClient, i: int) -> httpx.Response:
                    return await c.get("/healthz")

                async def post(c: httpx.AsyncClient, i: int) -> httpx.Response:
                    return await c.post("/v1/observations", content=bodies[i], headers=headers)

                async def plain(c: httpx.AsyncClient, i: int) -> httpx.Response:
                    return await c.post(ANCHOR_PATH, content=bodies[i], headers=headers)

                await drive(client, healthz, WARMUP, conc)
                await drive(client, post, WARMUP, conc)
                await drive(anchor_client, plain, WARMUP, conc)

                # Sequential: one request at a time, anchor and POST alternating in rounds.
                slat: list[float] = []
                plat: list[float] = []
                sstat: Counter[int] = Counter()
                pstat: Counter[int] = Counter()
                chunk = seq_total // SEQ_ROUNDS
                for r in range(SEQ_ROUNDS):
                    offset = r * chunk

                    async def plain_at(c: httpx.AsyncClient, i: int, o: int = offset) -> httpx.Response:
                        return await plain(c, o + i)

                    async def post_at(c: httpx.AsyncClient, i: int, o: int = offset) -> httpx.Response:
                        return await post(c, WARMUP + o + i)

                    _, lat, st = await drive(anchor_client, plain_at, chunk, 1)
                    plat += lat
                    pstat += st
                    _, lat, st = await drive(client, post_at, chunk, 1)
                    slat += lat
                    sstat += st

                # Concurrent: /healthz, then the plain write and the POST, each `conc` at a time.
                anchor, alat, _ = await drive(client, healthz, total, conc)
                prps, _, pcstat = await drive(anchor_client, plain, total, conc)
                rps, lat, statuses = await drive(client, post, total, conc)
                # The same POSTs with an Idempotency-Key: key, effects and stored response in one transaction.
                keyed_bodies = [json.dumps(observation(practitioners[i % 20])).encode() for i in range(total)]

                async def post_keyed(c: httpx.AsyncClient, i: int) -> httpx.Response:
                    return await c.post("/v1/observations", content=keyed_bodies[i],
                                        headers=headers | {"Idempotency-Key": f"bench-{i}"})

                krps, klat, kstatuses = await drive(client, post_keyed, total, conc)
        finally:
            stop(proc)
            stop(anchor_proc)
        parts = await decompose(cfg, root, server.url, backend)
    s50, p50 = percentile(slat, 50), percentile(plat, 50)
    seq_ratio, conc_ratio = s50 / p50, rps / anchor
    say(f"  [{backend}] plain insert + outbox, sequential: p50 {fmt_ms(p50)}, p99 {fmt_ms(percentile(plat, 99))} "
        f"({_ok(pstat, seq_total)}); {conc} concurrent: {fmt_rate(prps, 'req/s')} ({_ok(pcstat, total)})")
    say(f"  [{backend}] POST /v1/observations, sequential: p50 {fmt_ms(s50)}, p99 {fmt_ms(percentile(slat, 99))} "
        f"({_ok(sstat, seq_total)}); {seq_ratio:.2f}x the plain write (goal <= {SEQ_GOAL}x)")
    say(f"  [{backend}] GET /healthz, {conc} concurrent: {fmt_rate(anchor, 'req/s')} "
        f"(p50 {fmt_ms(percentile(alat, 50))}, p99 {fmt_ms(percentile(alat, 99))})")
    say(f"  [{backend}] POST /v1/observations, {conc} concurrent: {fmt_rate(rps, 'req/s')}, "
        f"p50 {fmt_ms(percentile(lat, 50))}, p99 {fmt_ms(percentile(lat, 99))} ({_ok(statuses, total)}); "
        f"{conc_ratio:.2f}x /healthz (goal >= {CONC_GOAL}x on PostgreSQL)")
    say(f"  [{backend}] POST /v1/observations with Idempotency-Key: {fmt_rate(krps, 'req/s')}, "
        f"p50 {fmt_ms(percentile(klat, 50))}, p99 {fmt_ms(percentile(klat, 99))} ({_ok(kstatuses, total)}); "
        f"{krps / rps:.2f}x without a key")
    for line in parts.lines:
        say(f"  [{backend}] {line}")
    conc_goal = (f">= {CONC_GOAL}x: {'met' if conc_ratio >= CONC_GOAL else 'NOT met'}" if backend == "postgres"
                 else f"(>= {CONC_GOAL}x is for PostgreSQL)")
    return [
        Figure(BENCH, f"Anchor: plain insert + outbox POST, {backend} (sequential)",
               f"p50 {fmt_ms(p50)}, p99 {fmt_ms(percentile(plat, 99))}",
               f"anchor ({conc} concurrent: {fmt_rate(prps, 'req/s')})"),
        Figure(BENCH, f"POST /v1/observations, {backend} (sequential, {_ok(sstat, seq_total)})",
               f"p50 {fmt_ms(s50)}, p99 {fmt_ms(percentile(slat, 99))}", f"{seq_ratio:.2f}x the plain write's p50",
               f"<= {SEQ_GOAL}x: {'met' if seq_ratio <= SEQ_GOAL else 'NOT met'}"),
        Figure(BENCH, f"  decomposition: {parts.summary}", parts.value, parts.vs),
        Figure(BENCH, f"Anchor: GET /healthz, {backend} run ({conc} concurrent)", fmt_rate(anchor, "req/s"),
               f"anchor (p50 {fmt_ms(percentile(alat, 50))}, p99 {fmt_ms(percentile(alat, 99))})"),
        Figure(BENCH, f"POST /v1/observations, {backend} ({conc} concurrent, {_ok(statuses, total)})",
               f"{fmt_rate(rps, 'req/s')}; p50 {fmt_ms(percentile(lat, 50))}, p99 {fmt_ms(percentile(lat, 99))}",
               ratio(rps, anchor, "/healthz"), conc_goal),
        Figure(BENCH, f"POST /v1/observations with Idempotency-Key, {backend} ({_ok(kstatuses, total)})",
               f"{fmt_rate(krps, 'req/s')}; p50 {fmt_ms(percentile(klat, 50))}, p99 {fmt_ms(percentile(klat, 99))}",
               ratio(krps, rps, "the same POST without a key")),
    ]


# ---- decomposition (in-process) --------------------------------------------------------------------

_VERB = re.compile(r"^\s*(SELECT|INSERT INTO|UPDATE|DELETE FROM)\b", re.IGNORECASE)


def statement_kind(sql: str) -> str:
    """'SELECT roster', 'INSERT drift_points', ... : the verb and the first table it names."""
    flat = " ".join(sql.split())
    m = _VERB.match(flat)
    if m is None:
        return flat.split(" ", 1)[0].upper()
    verb = m.group(1).split()[0].upper()
    rest = flat[m.end():]
    found = re.search(r"\bFROM\s+(\w+)", rest, re.IGNORECASE) if verb == "SELECT" else re.match(r"\s*(\w+)", rest)
    lock = " FOR UPDATE" if verb == "SELECT" and flat.upper().endswith("FOR UPDATE") else ""
    return f"{verb} {found.group(1) if found else '?'}{lock}"


@contextmanager
def statements(engine: Engine) -> Iterator[list[tuple[str, float]]]:
    """Every statement `engine` runs meanwhile, with its time from before to after the cursor call."""
    seen: list[tuple[str, float]] = []
    started: dict[int, float] = {}

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        started[id(conn)] = time.perf_counter()

    def after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append((statement, time.perf_counter() - started.pop(id(conn), time.perf_counter())))

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)


class Decomposition:
    def __init__(self, summary: str, value: str, vs: str, lines: list[str]) -> None:
        self.summary, self.value, self.vs, self.lines = summary, value, vs, lines


def _own(kind: str) -> bool:
    # The relay's outbox reads and marks run beside the request, not in it.
    return not (kind.startswith(("SELECT outbox", "UPDATE outbox")) or "pg_" in kind)


async def decompose(cfg: Config, root: Path, nats_url: str, backend: str, n: int = 200) -> Decomposition:
    """Statements per POST by table and their database time, measured in-process on a fresh database."""
    from services.fidelity.app import create_app

    settings = bench_settings(nats_url, root / "inproc")
    url = db_url(cfg, root / "inproc", "fidelity", backend)
    await upgrade_async("fidelity", url)
    app = create_app(settings=settings, database_url=url)
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
        agency = str(uuid.uuid4())
        token = mint_dev_token(settings, sub=str(uuid.uuid4()), agency=agency, roles=["observer"])
        headers = {"Authorization": f"Bearer {token}"}
        people = [str(uuid.uuid4()) for _ in range(5)]
        await publish_joined(jetstream(app.state.broker), agency, people)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://fidelity") as c:
            await calibrate(c, headers)
            await until_rostered(c, people, headers)
            for i in range(20):
                await c.post("/v1/observations", json=observation(people[i % 5]), headers=headers)
            by_kind: dict[str, list[float]] = defaultdict(list)
            lat: list[float] = []
            with statements(app.state.db.engine.sync_engine) as seen:
                for i in range(n):
                    seen.clear()
                    t = time.perf_counter()
                    r = await c.post("/v1/observations", json=observation(people[i % 5]), headers=headers)
                    lat.append(time.perf_counter() - t)
                    assert r.status_code == 201, r.text
                    for sql, took in list(seen):
                        if _own(kind := statement_kind(sql)):
                            by_kind[kind].append(took)
        verifier = TokenVerifier(settings)
        t = time.perf_counter()
        for _ in range(1000):
            await verifier.verify(token)
        verify_us = (time.perf_counter() - t) / 1000 * 1e6
    count = sum(len(v) for v in by_kind.values()) / n
    db_ms = sum(sum(v) for v in by_kind.values()) / n * 1000
    p50 = percentile(lat, 50)
    ranked = sorted(by_kind.items(), key=lambda kv: -sum(kv[1]))
    lines = [f"in-process POST p50 {fmt_ms(p50)}: {count:.1f} statements, {db_ms:.1f} ms in the database, "
             f"token check {verify_us:.0f} µs"]
    lines += [f"    {k:40s} {len(v) / n:4.1f}/POST  {sum(v) / n * 1000:6.2f} ms" for k, v in ranked]
    top = ", ".join(f"{k.lower()} {len(v) / n:g}" for k, v in ranked[:6])
    return Decomposition(
        f"in-process, {backend}: statements per POST and where the time goes",
        f"{count:.1f} statements, {db_ms:.1f} ms of p50 {fmt_ms(p50)} in the database",
        f"{top}; token check {verify_us:.0f} µs", lines)


async def run(cfg: Config) -> list[Figure]:
    figures: list[Figure] = []
    for backend in backends(cfg):
        figures += await run_backend(cfg, cfg.root / "http" / backend, backend)
    return figures
