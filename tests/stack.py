"""In-process services on a real nats-server and real databases, for integration tests."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from contracts.readiness import StaffMemberJoined
from services.coaching.app import create_app as coaching_app
from services.coaching.models import ROSTER as COACHING_ROSTER
from services.community.app import create_app as community_app
from services.community.models import ROSTER as COMMUNITY_ROSTER
from services.fidelity.app import create_app as fidelity_app
from services.fidelity.models import ROSTER as FIDELITY_ROSTER
from services.readiness.app import create_app as readiness_app
from trellis.auth import mint_dev_token
from trellis.bus import jetstream
from trellis.db import Database
from trellis.envelope import Envelope
from trellis.migrate import upgrade_async
from trellis.settings import Settings

INSTRUMENT = "0190a000-0000-7000-8000-000000000001"


class Clock:
    """The services' today (`running_stack(..., clock=Clock(...))`), moved by the test."""

    def __init__(self, today: date) -> None:
        self.today = today

    def __call__(self) -> date:
        return self.today

    def move(self, days: int) -> date:
        self.today += timedelta(days=days)
        return self.today


class Instant:
    """The services' instant (`running_stack(..., now=Instant(...))`), for rules finer than a day."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def move(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now

    def today(self) -> date:
        """A date clock that follows this instant (pass as `clock=instant.today`)."""
        return self.now.date()


@contextlib.asynccontextmanager
async def service_db(service: str, tmp_path: Any, clock: Callable[[], date],
                     now: Callable[[], datetime] | None = None, url: str | None = None) -> AsyncIterator[Database]:
    """A service's own database, migrated, as its use cases see it (no HTTP, no NATS): for use-case tests."""
    url = url or f"sqlite+aiosqlite:///{tmp_path / f'{service}.db'}"
    await upgrade_async(service, url)
    db = Database(url, clock=clock, now=now, source=f"trellis/{service}")
    try:
        yield db
    finally:
        await db.dispose()


@dataclass
class Stack:
    settings: Settings
    fidelity: httpx.AsyncClient
    coaching: httpx.AsyncClient
    apps: dict[str, FastAPI]
    clients: dict[str, httpx.AsyncClient]
    observers: dict[str, str] = field(default_factory=dict)

    @property
    def readiness(self) -> httpx.AsyncClient:
        return self.clients["readiness"]

    @property
    def community(self) -> httpx.AsyncClient:
        return self.clients["community"]

    def token(self, agency: str, *roles: str, sub: str | None = None) -> dict[str, str]:
        tok = mint_dev_token(self.settings, sub=sub or str(uuid.uuid4()), agency=agency, roles=list(roles))
        return {"Authorization": f"Bearer {tok}"}


    async def observer(self, agency: str, *, fresh: bool = False, sub: str | None = None) -> dict[str, str]:
        """Headers of an observer calibrated on the practice instrument (the seeded reference, scored exactly).

        One per agency; `fresh` calibrates another person, who then serves the agency from here on.
        """
        from services.fidelity.domain import SEEDED_REFERENCES

        if sub is None and not fresh and agency in self.observers:
            return self.token(agency, "observer", sub=self.observers[agency])
        who = sub or str(uuid.uuid4())
        headers = self.token(agency, "observer", sub=who)
        ref = SEEDED_REFERENCES[0]
        r = await self.fidelity.post("/v1/calibrations", json={"reference_id": ref.id, "scores": ref.scores},
                                     headers=headers)
        assert r.status_code == 201, r.text
        if sub is None:
            self.observers[agency] = who
        return headers

    async def enrol(self, agency: str, *people: str, roles: tuple[str, ...] = ("practitioner",),
                    names: dict[str, str] | None = None) -> None:
        """Put people on the agency's roster the way readiness does: StaffMemberJoined over NATS."""
        await publish_joined(jetstream(next(iter(self.apps.values())).state.broker), agency, people, roles, names)
        rosters = [(self.apps[n], r) for n, r in (("fidelity", FIDELITY_ROSTER), ("coaching", COACHING_ROSTER),
                                                   ("community", COMMUNITY_ROSTER)) if n in self.apps]

        async def on_every_roster() -> bool:
            for app, roster in rosters:
                async with app.state.db.reader() as s:
                    if len(set(people) & set(await roster.active_ids(s, agency))) < len(set(people)):
                        return False
            return True

        await eventually(on_every_roster)

    async def staffed(self, agency: str, n: int = 1) -> list[str]:
        """n new practitioners on the agency's roster."""
        people = [str(uuid.uuid4()) for _ in range(n)]
        await self.enrol(agency, *people)
        return people


async def publish_joined(js: Any, agency: str, people: Any, roles: tuple[str, ...] = ("practitioner",),
                         names: dict[str, str] | None = None) -> None:
    """StaffMemberJoined for each person, on a JetStream context, as readiness would publish it."""
    for person in people:
        joined = StaffMemberJoined(staff_id=person, display_name=(names or {}).get(person, "Test Person"),
                                   team_id=None, roles=list(roles), hire_date=date(2025, 1, 6))
        env = Envelope.wrap(joined, source="tests", subject=person, agency=agency)
        await js.publish(env.nats_subject, env.to_bytes(), headers={"Nats-Msg-Id": env.id}, stream="READINESS")


@contextlib.asynccontextmanager
async def running_stack(settings: Settings, urls: dict[str, str], **kw: Any) -> AsyncIterator[Stack]:
    for name, url in urls.items():
        await upgrade_async(name, url)
    factories = {"readiness": readiness_app, "fidelity": fidelity_app, "coaching": coaching_app,
                 "community": community_app}
    apps = {name: factories[name](settings=settings, database_url=url, **kw) for name, url in urls.items()}
    async with contextlib.AsyncExitStack() as stack:
        clients = {}
        for name, app in apps.items():
            await stack.enter_async_context(LifespanManager(app, startup_timeout=30, shutdown_timeout=30))
            clients[name] = await stack.enter_async_context(
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{name}")
            )
        yield Stack(settings=settings, fidelity=clients.get("fidelity"), coaching=clients.get("coaching"),  # type: ignore[arg-type]
                    apps=apps, clients=clients)


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


def problem(r: Any, status: int) -> dict[str, Any]:
    """The problem+json body of `r`, which must have `status`."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    return r.json()  # type: ignore[no-any-return]
