"""Fault injection: nats-server is SIGKILLed twice while 2,000 observations are posted.

Afterwards there are exactly 2,000 observations and exactly 2,000 debrief tasks: an outage
delays events, it never loses or duplicates them.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from sqlalchemy import func, select

from services.coaching.models import Task
from services.fidelity.models import Observation
from tests.conftest import make_settings
from tests.stack import eventually, observation, running_stack
from tests.support import NatsServer

TOTAL = 2000
CONCURRENCY = 8


async def test_two_sigkills_lose_and_duplicate_nothing(nats_server: NatsServer, make_db_url, tmp_path: Path):
    settings = make_settings(nats_server.url, tmp_path, consumer_max_deliver=50, consumer_backoff_s=[0.2, 0.5, 1.0])
    urls = {"fidelity": make_db_url("fidelity"), "coaching": make_db_url("coaching")}
    agency = str(uuid.uuid4())
    practitioners = [str(uuid.uuid4()) for _ in range(20)]
    posted = 0
    kills: list[int] = []
    async with running_stack(settings, urls) as st:
        await st.enrol(agency, *practitioners)
        headers = await st.observer(agency)

        async def poster(worker: int) -> None:
            nonlocal posted
            for i in range(worker, TOTAL, CONCURRENCY):
                body = observation(practitioners[i % len(practitioners)])
                r = await st.fidelity.post("/v1/observations", json=body,
                                           headers=headers | {"Idempotency-Key": f"fault-{i}"})
                assert r.status_code == 201, r.text
                posted += 1

        async def chaos() -> None:
            for threshold in (TOTAL // 4, TOTAL * 3 // 5):
                while posted < threshold:
                    await asyncio.sleep(0.01)
                nats_server.kill()
                kills.append(posted)
                await asyncio.sleep(1.5)  # long enough for publishes and fetches to fail
                nats_server.start()

        await asyncio.gather(chaos(), *(poster(w) for w in range(CONCURRENCY)))
        assert len(kills) == 2 and kills[0] < kills[1] < TOTAL, kills

        fdb, cdb = st.apps["fidelity"].state.db, st.apps["coaching"].state.db

        async def all_tasks_opened() -> bool:
            async with cdb.reader(agency=agency) as s:
                return int((await s.execute(select(func.count()).select_from(Task))).scalar_one()) >= TOTAL

        await eventually(all_tasks_opened, timeout=120, interval=0.5)
        await asyncio.sleep(1.0)  # let any straggling duplicate show itself
        async with fdb.reader(agency=agency) as s:
            observations = set((await s.scalars(select(Observation.id))).all())
        async with cdb.reader(agency=agency) as s:
            linked = list((await s.scalars(select(Task.observation_id))).all())
        assert len(observations) == TOTAL
        assert len(linked) == TOTAL
        assert set(linked) == observations
