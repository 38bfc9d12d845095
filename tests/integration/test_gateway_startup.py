"""The gateway starts without NATS as the services do: it serves /healthz, is not ready, says what it waits for,
becomes ready when NATS comes, and stops on a signal meanwhile (a Kubernetes probe and rollout rely on this)."""

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

from gateway.app import create_app
from tests.conftest import make_settings
from tests.support import NatsServer, free_port


async def test_without_nats_the_gateway_serves_health_and_connects_when_nats_comes(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    nats = NatsServer(tmp_path / "nats")  # not started yet
    app = create_app(settings=make_settings(nats.url, tmp_path, nats_connect_grace_s=0.2))
    caplog.set_level(logging.INFO)
    try:
        async with LifespanManager(app, startup_timeout=5, shutdown_timeout=10), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://gateway") as c:
            assert (await c.get("/healthz")).status_code == 200
            ready = await c.get("/readyz")
            assert ready.status_code == 503 and ready.json()["checks"]["nats"] == "error"
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


def test_a_gateway_waiting_for_nats_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRELLIS_")} | {
        "TRELLIS_NATS_URL": f"nats://127.0.0.1:{free_port()}", "TRELLIS_VAR_DIR": str(tmp_path),
        "TRELLIS_GATEWAY_PORT": str(port), "TRELLIS_NATS_CONNECT_GRACE_S": "0.5"}
    log = (tmp_path / "gateway.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "gateway"], env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "gateway.log").read_text()[-2000:]
            time.sleep(0.1)
        assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 503
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in (tmp_path / "gateway.log").read_text()
