"""A retried request never runs twice: the key's outcome commits with the request's effects."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from services.coaching.models import Task
from tests.conftest import make_settings
from tests.stack import Stack, eventually, observation, running_stack
from tests.support import NatsServer
from trellis import idempotency as idem
from trellis.db import idempotency


async def observations_of(st: Stack, agency: str) -> list[str]:
    r = await st.fidelity.get("/v1/observations", params={"limit": 500}, headers=st.token(agency, "supervisor"))
    assert r.status_code == 200, r.text
    return [o["id"] for o in r.json()["items"]]


async def tasks_of(st: Stack, agency: str) -> int:
    async with st.apps["coaching"].state.db.reader(agency=agency) as s:
        return int((await s.execute(select(func.count()).select_from(Task))).scalar_one())


async def test_a_crash_between_commit_and_response_is_replayed_not_rerun(st: Stack, monkeypatch):
    agency = str(uuid.uuid4())
    (person,) = await st.staffed(agency)
    headers = (await st.observer(agency)) | {"Idempotency-Key": "crash-after-commit"}
    real_respond = idem.respond
    crashes = 0

    async def crash_once(send, messages):  # the process dies after the commit, before answering
        nonlocal crashes
        if crashes == 0 and any(m.get("status") == 201 for m in messages):
            crashes += 1
            raise ConnectionResetError("process died before the response left")
        await real_respond(send, messages)

    monkeypatch.setattr(idem, "respond", crash_once)
    with pytest.raises(ConnectionResetError):
        await st.fidelity.post("/v1/observations", json=observation(person), headers=headers)
    assert crashes == 1
    # The retry comes at once: no "in flight" window to wait out, and no second effect.
    retry = await st.fidelity.post("/v1/observations", json=observation(person), headers=headers)
    assert retry.status_code == 201, retry.text
    assert retry.headers.get("idempotent-replayed") == "true"
    (only,) = await observations_of(st, agency)
    assert retry.json()["id"] == only
    again = await st.fidelity.post("/v1/observations", json=observation(person), headers=headers)
    assert again.json() == retry.json()

    async def debriefed() -> bool:
        return await tasks_of(st, agency) >= 1

    await eventually(debriefed)
    await asyncio.sleep(0.5)
    assert await tasks_of(st, agency) == 1


async def test_a_failure_before_commit_leaves_a_clean_slate(st: Stack, monkeypatch):
    """The route's effects and the key roll back together: the retry runs once, on a clean slate."""
    agency = str(uuid.uuid4())
    (person,) = await st.staffed(agency)
    headers = (await st.observer(agency)) | {"Idempotency-Key": "crash-before-commit"}
    from services.fidelity import usecases

    real = usecases.consequences

    async def boom(*a, **kw):
        await real(*a, **kw)  # the observation and its event are staged, then the process fails
        raise RuntimeError("injected failure before commit")

    monkeypatch.setattr(usecases, "consequences", boom)
    with pytest.raises(RuntimeError):
        await st.fidelity.post("/v1/observations", json=observation(person), headers=headers)
    assert await observations_of(st, agency) == []
    monkeypatch.setattr(usecases, "consequences", real)
    retry = await st.fidelity.post("/v1/observations", json=observation(person), headers=headers)
    assert retry.status_code == 201 and "idempotent-replayed" not in retry.headers
    assert await observations_of(st, agency) == [retry.json()["id"]]


async def test_every_acknowledged_key_has_its_outcome_stored(st: Stack):
    """Once the client has its 201, the key's outcome is already durable (no window after the response)."""
    agency = str(uuid.uuid4())
    people = await st.staffed(agency, 4)
    headers = await st.observer(agency)
    db = st.apps["fidelity"].state.db

    async def post(i: int) -> None:
        r = await st.fidelity.post("/v1/observations", json=observation(people[i % 4]),
                                   headers=headers | {"Idempotency-Key": f"k-{i}"})
        assert r.status_code == 201, r.text
        async with db.reader() as s:
            row = (await s.execute(select(idempotency.c.status).where(idempotency.c.key == f"k-{i}"))).one()
        assert row.status == 201

    await asyncio.gather(*(post(i) for i in range(12)))


async def test_a_non_utf8_header_byte_is_not_a_server_error(st: Stack):
    agency = str(uuid.uuid4())
    (person,) = await st.staffed(agency)
    headers = (await st.observer(agency)) | {"Idempotency-Key": "latin-1"}
    raw = [(k.encode(), v.encode()) for k, v in headers.items()] + [(b"User-Agent", b"caf\xe9 client")]
    r = await st.fidelity.post("/v1/observations", json=observation(person), headers=raw)
    assert r.status_code == 201, r.text
    bad = [(k.encode(), v.encode()) for k, v in headers.items() if k != "Idempotency-Key"]
    r = await st.fidelity.post("/v1/observations", json=observation(person),
                               headers=[*bad, (b"Idempotency-Key", b"cl\xe9")])
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/problem+json")


@pytest.mark.postgres
async def test_concurrent_requests_with_one_key_have_one_effect(nats_server: NatsServer, pg_cluster, tmp_path: Path):
    settings = make_settings(nats_server.url, tmp_path)
    urls = {"fidelity": pg_cluster.create_database(f"fid_{uuid.uuid4().hex[:8]}"),
            "coaching": pg_cluster.create_database(f"coa_{uuid.uuid4().hex[:8]}")}
    async with running_stack(settings, urls) as st:
        agency = str(uuid.uuid4())
        (person,) = await st.staffed(agency)
        headers = (await st.observer(agency)) | {"Idempotency-Key": "same-key"}
        answers = await asyncio.gather(*(st.fidelity.post("/v1/observations", json=observation(person),
                                                          headers=headers) for _ in range(8)))
        assert {r.status_code for r in answers} == {201}, [r.text for r in answers]
        assert len({r.json()["id"] for r in answers}) == 1
        assert sum(r.headers.get("idempotent-replayed") == "true" for r in answers) == 7
        assert len(await observations_of(st, agency)) == 1
