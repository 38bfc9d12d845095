"""A service starts without NATS: it says so, answers /healthz, is not ready, and stops on a signal."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from services.fidelity.app import create_app
from tests.conftest import make_settings
from tests.support import NatsServer, free_port
from trellis.migrate import upgrade_async


async def test_without_nats_it_serves_health_waits_and_connects_when_nats_comes(tmp_path: Path, caplog):
    nats = NatsServer(tmp_path / "nats")  # not started yet
    settings = make_settings(nats.url, tmp_path, nats_connect_grace_s=0.2)
    url = f"sqlite+aiosqlite:///{tmp_path}/f.db"
    await upgrade_async("fidelity", url)
    app = create_app(settings=settings, database_url=url)
    caplog.set_level(logging.INFO)
    try:
        async with LifespanManager(app, startup_timeout=10, shutdown_timeout=15), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://fidelity") as c:
            assert (await c.get("/healthz")).status_code == 200
            ready = await c.get("/readyz")
            assert ready.status_code == 503 and ready.json()["checks"]["nats"] != "ok"
            await asyncio.sleep(1.2)
            assert f"waiting for NATS at {nats.url}" in caplog.text
            nats.start()
            for _ in range(100):
                if (await c.get("/readyz")).status_code == 200:
                    break
                await asyncio.sleep(0.1)
            assert (await c.get("/readyz")).status_code == 200
    finally:
        nats.stop()


@pytest.mark.parametrize("name", ["fidelity", "gateway"])
def test_a_process_waiting_for_nats_stops_on_sigterm(tmp_path: Path, name: str):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRELLIS_")} | {
        "TRELLIS_NATS_URL": f"nats://127.0.0.1:{free_port()}", "TRELLIS_VAR_DIR": str(tmp_path),
        f"TRELLIS_{name.upper()}_PORT": str(port), "TRELLIS_NATS_CONNECT_GRACE_S": "0.5"}
    module = "gateway"
    if name != "gateway":
        env[f"TRELLIS_{name.upper()}_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path}/{name}.db"
        subprocess.run([sys.executable, "-m", "ops.cli", "migrate", name], env=env, check=True, capture_output=True)
        module = f"services.{name}"
    log = (tmp_path / f"{name}.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", module], env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, (tmp_path / f"{name}.log").read_text()[-2000:]
            time.sleep(0.1)
        assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 503
        while "waiting for NATS" not in (tmp_path / f"{name}.log").read_text():
            assert time.monotonic() < deadline, "no log line says what the service waits for"
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal it caught as its exit status.
        assert proc.wait(timeout=15) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = (tmp_path / f"{name}.log").read_text()
    assert "Traceback" not in output


async def test_not_ready_until_its_streams_and_consumers_have_started(tmp_path: Path, monkeypatch) -> None:
    """Connected to NATS is not ready: a JetStream cluster electing leaders leaves streams undeclared a while."""
    import trellis.service

    nats = NatsServer(tmp_path / "nats")
    nats.start()
    declared = asyncio.Event()
    real = trellis.service.ensure_streams

    async def slow_streams(js, settings):  # JetStream answering late, as a cluster mid-election does
        await declared.wait()
        await real(js, settings)

    monkeypatch.setattr(trellis.service, "ensure_streams", slow_streams)
    settings = make_settings(nats.url, tmp_path, nats_connect_grace_s=0.2)
    url = f"sqlite+aiosqlite:///{tmp_path}/f.db"
    await upgrade_async("fidelity", url)
    app = create_app(settings=settings, database_url=url)
    try:
        async with LifespanManager(app, startup_timeout=10, shutdown_timeout=15), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://fidelity") as c:
            await asyncio.sleep(0.3)
            ready = await c.get("/readyz")
            assert ready.status_code == 503, ready.text
            assert ready.json()["checks"]["nats"] == "error: streams and consumers not started yet"
            declared.set()
            for _ in range(100):
                if (await c.get("/readyz")).status_code == 200:
                    break
                await asyncio.sleep(0.1)
            assert (await c.get("/readyz")).json()["checks"] == {"database": "ok", "nats": "ok"}
    finally:
        nats.stop()
