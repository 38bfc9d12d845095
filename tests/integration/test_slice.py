"""Observation → outbox → JetStream → coaching handler, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from pathlib import Path

from tests.conftest import make_settings
from tests.stack import eventually, observation, running_stack
from tests.support import NatsServer


async def test_observation_opens_exactly_one_debrief_task(nats_server: NatsServer, make_db_url, tmp_path: Path):
    settings = make_settings(nats_server.url, tmp_path)
    urls = {"fidelity": make_db_url("fidelity"), "coaching": make_db_url("coaching")}
    agency, practitioner = str(uuid.uuid4()), str(uuid.uuid4())
    async with running_stack(settings, urls) as st:
        await st.enrol(agency, practitioner)
        r = await st.fidelity.post("/v1/observations", json=observation(practitioner, value=2),
                                   headers=await st.observer(agency))
        assert r.status_code == 201, r.text
        obs = r.json()
        assert obs["score"] == 100.0
        coach = st.token(agency, "coach")

        async def task_exists() -> bool:
            r = await st.coaching.get("/v1/tasks", params={"practitioner_id": practitioner}, headers=coach)
            return len(r.json()["items"]) == 1

        await eventually(task_exists)
        task = (await st.coaching.get("/v1/tasks", params={"practitioner_id": practitioner}, headers=coach)).json()
        t = task["items"][0]
        assert t["kind"] == "observation_debrief"
        assert t["observation_id"] == obs["id"]
        assert t["due_on"] == "2026-11-08"
        assert t["status"] == "open"
