"""Fault injection: the fidelity process is SIGKILLed three times while keyed observations are posted.

Afterwards every key, acknowledged or not, is retried at once: each retry answers 201 (the stored
response, or a first run on a clean slate), acknowledged keys replay exactly what their client
saw, and there is exactly one observation per key.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from services.fidelity.domain import SEEDED_REFERENCES
from services.fidelity.models import ROSTER, Observation
from tests.stack import observation, publish_joined
from tests.support import NatsServer, free_port
from trellis.auth import mint_dev_token
from trellis.db import Database, outbox
from trellis.migrate import upgrade_async
from trellis.settings import Settings

pytestmark = pytest.mark.postgres
TOTAL = 240
WORKERS = 4
KILLS_AT = (40, 110, 180)


class Fidelity:
    """`python -m services.fidelity` as operations run it, with a kill switch."""

    def __init__(self, env: dict[str, str], port: int, log: Path) -> None:
        self.env, self.port, self.log = env, port, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"http://127.0.0.1:{port}"

    async def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "services.fidelity"], env=self.env,
                                         stdout=out, stderr=subprocess.STDOUT)
        async with httpx.AsyncClient() as c:
            for _ in range(300):
                try:
                    if (await c.get(f"{self.url}/readyz", timeout=1)).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError(f"fidelity did not become ready: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


async def test_sigkilled_fidelity_never_runs_a_retried_request_twice(nats_server: NatsServer, pg_cluster,
                                                                    tmp_path: Path):
    url = pg_cluster.create_database(f"fidkill_{uuid.uuid4().hex[:8]}")
    await upgrade_async("fidelity", url)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRELLIS_")} | {
        "TRELLIS_NATS_URL": nats_server.url, "TRELLIS_VAR_DIR": str(tmp_path),
        "TRELLIS_FIDELITY_DATABASE_URL": url, "TRELLIS_FIDELITY_PORT": str(port), "TRELLIS_LOG_LEVEL": "WARNING"}
    settings = Settings(nats_url=nats_server.url, var_dir=tmp_path)
    fidelity = Fidelity(env, port, tmp_path / "fidelity.log")
    agency, observer = str(uuid.uuid4()), str(uuid.uuid4())
    people = [str(uuid.uuid4()) for _ in range(8)]
    auth = {"Authorization": "Bearer " + mint_dev_token(settings, sub=observer, agency=agency, roles=["observer"])}
    db = Database(url)
    await fidelity.start()
    try:
        import nats

        nc = await nats.connect(nats_server.url)
        await publish_joined(nc.jetstream(), agency, people)
        await nc.close()
        for _ in range(200):
            async with db.reader() as s:
                if len(await ROSTER.active_ids(s, agency)) == len(people):
                    break
            await asyncio.sleep(0.1)
        async with httpx.AsyncClient(base_url=fidelity.url, timeout=10) as c:
            ref = SEEDED_REFERENCES[0]
            r = await c.post("/v1/calibrations", json={"reference_id": ref.id, "scores": ref.scores}, headers=auth)
            assert r.status_code == 201, r.text

        acknowledged: dict[str, str] = {}  # key -> the observation id its client was told
        posted = 0
        restarting = asyncio.Lock()

        async def poster(worker: int) -> None:
            nonlocal posted
            async with httpx.AsyncClient(base_url=fidelity.url, timeout=10) as c:
                for i in range(worker, TOTAL, WORKERS):
                    key = f"kill-{i}"
                    try:
                        async with restarting:
                            pass
                        r = await c.post("/v1/observations", json=observation(people[i % len(people)]),
                                         headers=auth | {"Idempotency-Key": key})
                    except httpx.HTTPError:
                        continue  # the process died under us: this key is retried below
                    posted += 1
                    if r.status_code == 201:
                        acknowledged[key] = r.json()["id"]

        async def chaos() -> None:
            for threshold in KILLS_AT:
                while posted < threshold:
                    await asyncio.sleep(0.005)
                async with restarting:
                    fidelity.kill()
                    await fidelity.start()

        await asyncio.gather(chaos(), *(poster(w) for w in range(WORKERS)))
        assert 0 < len(acknowledged) < TOTAL or len(acknowledged) == TOTAL

        # Every key again, at once: no in-flight window to wait out, and nothing runs twice.
        final: dict[str, str] = {}
        async with httpx.AsyncClient(base_url=fidelity.url, timeout=10) as c:
            for i in range(TOTAL):
                key = f"kill-{i}"
                r = await c.post("/v1/observations", json=observation(people[i % len(people)]),
                                 headers=auth | {"Idempotency-Key": key})
                assert r.status_code == 201, (key, r.status_code, r.text)
                final[key] = r.json()["id"]
        assert all(final[k] == v for k, v in acknowledged.items())
        async with db.reader(agency=agency) as s:
            ids = set((await s.scalars(select(Observation.id))).all())
            events = (await s.execute(select(func.count()).select_from(outbox).where(
                outbox.c.event_type == "fidelity.ObservationRecorded.v1"))).scalar_one()
        assert len(ids) == TOTAL and ids == set(final.values())
        assert events == TOTAL
    finally:
        fidelity.stop()
        await db.dispose()
