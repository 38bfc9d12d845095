"""3. POST /v1/observations on a real uvicorn: the fidelity service started as `make run` starts
it (`python -m services.fidelity`, uvloop + httptools), in its own process so the load
generator does not share its event loop. Anchor: GET /healthz on the same server and client.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import nats

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
from services.fidelity.domain import SEEDED_REFERENCES
from tests.stack import observation, publish_joined
from tests.support import free_port
from trellis.auth import mint_dev_token
from trellis.migrate import upgrade_async

BENCH = "3 HTTP"
WARMUP = 50

Call = Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]


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
                raise RuntimeError(f"fidelity exited with {proc.returncode} before it was ready")
            try:
                if (await c.get("/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError(f"fidelity not ready after {timeout}s")


def start_fidelity(root: Path, nats_url: str, url: str, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_EXPORTER_OTLP")}
    env.update({
        "TRELLIS_NATS_URL": nats_url, "TRELLIS_VAR_DIR": str(root), "TRELLIS_LOG_LEVEL": "WARNING",
        "TRELLIS_FIDELITY_DATABASE_URL": url, "TRELLIS_FIDELITY_HOST": "127.0.0.1",
        "TRELLIS_FIDELITY_PORT": str(port),
    })
    log = open(root / "fidelity.log", "ab")  # noqa: SIM115 - handed to the child
    try:
        return subprocess.Popen([sys.executable, "-m", "services.fidelity"], env=env, stdout=log, stderr=log,
                                cwd=Path(__file__).resolve().parent.parent)
    finally:
        log.close()


async def rostered(nats_url: str, base: str, agency: str, people: list[str], headers: dict[str, str]) -> None:
    """Put the practitioners on fidelity's roster (StaffMemberJoined) and wait until it accepts them."""
    nc = await nats.connect(nats_url)
    try:
        await publish_joined(nc.jetstream(), agency, people)
    finally:
        await nc.close()
    async with httpx.AsyncClient(base_url=base, timeout=10) as c:
        ref = SEEDED_REFERENCES[0]  # the observer calibrates first, as every rater must
        r = await c.post("/v1/calibrations", json={"reference_id": ref.id, "scores": ref.scores}, headers=headers)
        r.raise_for_status()
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


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def run_backend(cfg: Config, root: Path, backend: str) -> list[Figure]:
    total, conc = cfg.http_requests, cfg.http_concurrency
    with nats_server(root) as server:
        settings = bench_settings(server.url, root)
        url = db_url(cfg, root, "fidelity", backend)
        await upgrade_async("fidelity", url)
        port = free_port()
        proc = start_fidelity(root, server.url, url, port)
        try:
            base = f"http://127.0.0.1:{port}"
            await wait_ready(base, proc)
            agency = str(uuid.uuid4())
            token = mint_dev_token(settings, sub=str(uuid.uuid4()), agency=agency, roles=["observer"])
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            practitioners = [str(uuid.uuid4()) for _ in range(20)]
            await rostered(server.url, base, agency, practitioners, headers)
            # Bodies encoded up front: the client's JSON work is not the server's throughput.
            bodies = [json.dumps(observation(practitioners[i % 20])).encode() for i in range(total + WARMUP)]
            limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
            async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:

                async def healthz(c: httpx.AsyncClient, i: int) -> httpx.Response:
                    return await c.get("/healthz")

                async def post(c: httpx.AsyncClient, i: int) -> httpx.Response:
                    return await c.post("/v1/observations", content=bodies[i], headers=headers)

                await drive(client, healthz, WARMUP, conc)
                anchor, alat, _ = await drive(client, healthz, total, conc)
                await drive(client, post, WARMUP, conc)

                async def post_measured(c: httpx.AsyncClient, i: int) -> httpx.Response:
                    return await post(c, WARMUP + i)

                rps, lat, statuses = await drive(client, post_measured, total, conc)
                # The same POSTs with an Idempotency-Key: key, effects and stored response in one transaction.
                keyed_bodies = [json.dumps(observation(practitioners[i % 20])).encode() for i in range(total)]

                async def post_keyed(c: httpx.AsyncClient, i: int) -> httpx.Response:
                    return await c.post("/v1/observations", content=keyed_bodies[i],
                                        headers=headers | {"Idempotency-Key": f"bench-{i}"})

                krps, klat, kstatuses = await drive(client, post_keyed, total, conc)
        finally:
            stop(proc)
    p50, p99 = percentile(lat, 50), percentile(lat, 99)
    ok = statuses.get(201, 0)
    say(f"  [{backend}] GET /healthz: {fmt_rate(anchor, 'req/s')} (p50 {fmt_ms(percentile(alat, 50))}, "
        f"p99 {fmt_ms(percentile(alat, 99))})")
    say(f"  [{backend}] POST /v1/observations: {fmt_rate(rps, 'req/s')}, p50 {fmt_ms(p50)}, p99 {fmt_ms(p99)} "
        f"({ok}/{total} answered 201{'' if ok == total else f'; statuses {dict(statuses)}'}); "
        f"{rps / anchor:.2f}x /healthz")
    kok = kstatuses.get(201, 0)
    say(f"  [{backend}] POST /v1/observations with Idempotency-Key: {fmt_rate(krps, 'req/s')}, "
        f"p50 {fmt_ms(percentile(klat, 50))}, p99 {fmt_ms(percentile(klat, 99))} ({kok}/{total} answered 201); "
        f"{krps / rps:.2f}x without a key")
    return [
        Figure(BENCH, f"Anchor: GET /healthz, {backend} run ({conc} concurrent)", fmt_rate(anchor, "req/s"),
               f"anchor (p50 {fmt_ms(percentile(alat, 50))}, p99 {fmt_ms(percentile(alat, 99))})"),
        Figure(BENCH, f"POST /v1/observations, {backend} ({conc} concurrent, {ok}/{total} x 201)",
               f"{fmt_rate(rps, 'req/s')}; p50 {fmt_ms(p50)}, p99 {fmt_ms(p99)}", ratio(rps, anchor, "/healthz")),
        Figure(BENCH, f"POST /v1/observations with Idempotency-Key, {backend} ({kok}/{total} x 201)",
               f"{fmt_rate(krps, 'req/s')}; p50 {fmt_ms(percentile(klat, 50))}, p99 {fmt_ms(percentile(klat, 99))}",
               ratio(krps, rps, "the same POST without a key")),
    ]


async def run(cfg: Config) -> list[Figure]:
    figures: list[Figure] = []
    for backend in backends(cfg):
        figures += await run_backend(cfg, cfg.root / "http" / backend, backend)
    return figures
