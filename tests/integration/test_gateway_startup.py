"""The gateway starts without NATS as the services do: it serves /healthz, is not ready, says what it waits for,
becomes ready when NATS comes (a Kubernetes probe relies on this; stopping on SIGTERM meanwhile is in
test_startup.py)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from gateway.app import create_app
from tests.conftest import make_settings
from tests.support import NatsServer


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
