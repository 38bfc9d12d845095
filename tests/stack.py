"""In-process services on a real nats-server and real databases, for integration tests."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from services.coaching.app import create_app as coaching_app
from services.fidelity.app import create_app as fidelity_app
from trellis.auth import mint_dev_token
from trellis.migrate import upgrade_async
from trellis.settings import Settings

INSTRUMENT = "0190a000-0000-7000-8000-000000000001"


@dataclass
class Stack:
    settings: Settings
    fidelity: httpx.AsyncClient
    coaching: httpx.AsyncClient
    apps: dict[str, FastAPI]

    def token(self, agency: str, *roles: str, sub: str | None = None) -> dict[str, str]:
        import uuid

        tok = mint_dev_token(self.settings, sub=sub or str(uuid.uuid4()), agency=agency, roles=list(roles))
        return {"Authorization": f"Bearer {tok}"}


@contextlib.asynccontextmanager
async def running_stack(settings: Settings, urls: dict[str, str], **kw: Any) -> AsyncIterator[Stack]:
    for name, url in urls.items():
        await upgrade_async(name, url)
    apps = {
        "fidelity": fidelity_app(settings=settings, database_url=urls["fidelity"], **kw),
        "coaching": coaching_app(settings=settings, database_url=urls["coaching"], **kw),
    }
    async with contextlib.AsyncExitStack() as stack:
        clients = {}
        for name, app in apps.items():
            await stack.enter_async_context(LifespanManager(app, startup_timeout=30, shutdown_timeout=30))
            clients[name] = await stack.enter_async_context(
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{name}")
            )
        yield Stack(settings=settings, fidelity=clients["fidelity"], coaching=clients["coaching"], apps=apps)


def full_scores(value: int = 2) -> dict[str, int]:
    from services.fidelity.domain import MIIWRAP_PRACTICE_V1

    return {i.key: value for i in MIIWRAP_PRACTICE_V1.items}


def observation(practitioner: str, *, value: int = 2, observed_on: str = "2026-11-01", **extra: Any) -> dict[str, Any]:
    return {"practitioner_id": practitioner, "instrument_id": INSTRUMENT, "observed_on": observed_on,
            "setting": "team_meeting", "scores": full_scores(value), "notes": "", **extra}


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 20.0, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if await check():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)
