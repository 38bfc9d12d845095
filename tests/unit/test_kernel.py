"""Kernel pieces that need no broker: tenancy in the data layer, settings, cursors."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from services.coaching.models import Task
from trellis.db import Database, TenancyError, utcnow
from trellis.migrate import upgrade_async
from trellis.pagination import decode_cursor, encode_cursor
from trellis.problems import Problem
from trellis.settings import Settings, service_settings


async def test_queries_are_scoped_to_the_sessions_agency_and_fail_closed(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/c.db"
    await upgrade_async("coaching", url)
    db = Database(url)
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    for agency in (a, b):
        async with db.unit_of_work(agency=agency) as s:
            s.add(Task(id=str(uuid.uuid4()), practitioner_id="p", kind="k", status="open",
                       due_on=utcnow().date(), created_at=utcnow()))
    async with db.reader(agency=a) as s:
        rows = (await s.scalars(select(Task))).all()
        assert [t.agency_id for t in rows] == [a]
        # Even an explicit filter for another agency cannot widen the scope.
        assert (await s.scalars(select(Task).where(Task.agency_id == b))).all() == []
    with pytest.raises(TenancyError):
        async with db.reader() as s:
            await s.scalars(select(Task))
    with pytest.raises(TenancyError):
        async with db.unit_of_work(agency=a) as s:
            s.add(Task(id="x", agency_id=b, practitioner_id="p", kind="k", status="open",
                       due_on=utcnow().date(), created_at=utcnow()))
    async with db.reader(all_agencies=True) as s:
        assert len((await s.scalars(select(Task))).all()) == 2
    await db.dispose()


def test_per_service_settings_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TRELLIS_FIDELITY_DATABASE_URL", "postgresql+asyncpg://u@db/fidelity")
    monkeypatch.setenv("TRELLIS_FIDELITY_PORT", "9100")
    monkeypatch.setenv("TRELLIS_SERVICES", '["fidelity","coaching","readiness"]')
    platform = Settings(var_dir=tmp_path)
    fid = service_settings("fidelity", platform)
    assert fid.database_url == "postgresql+asyncpg://u@db/fidelity" and fid.url == "http://127.0.0.1:9100"
    coach = service_settings("coaching", platform)
    assert coach.database_url == f"sqlite+aiosqlite:///{tmp_path / 'coaching.db'}" and coach.port == 8003
    assert platform.services == ["fidelity", "coaching", "readiness"]


def test_nats_url_may_list_a_clusters_seeds() -> None:
    settings = Settings(nats_url="nats://n1:4222, nats://n2:4222,nats://n3:4222")
    assert settings.nats_servers == ["nats://n1:4222", "nats://n2:4222", "nats://n3:4222"]
    assert Settings(nats_url="nats://127.0.0.1:4222").nats_servers == ["nats://127.0.0.1:4222"]


def test_cursors_round_trip_and_refuse_garbage() -> None:
    cursor = encode_cursor("0190a000-0000-7000-8000-000000000001")
    assert decode_cursor(cursor) == "0190a000-0000-7000-8000-000000000001"
    for bad in ("!!!", "", "a" * 200):
        with pytest.raises(Problem):
            decode_cursor(bad)


async def test_housekeeping_purges_only_what_has_expired(tmp_path: Path) -> None:
    from datetime import timedelta

    from sqlalchemy import func, insert

    from trellis.db import idempotency, inbox, outbox
    from trellis.housekeeping import purge_once

    url = f"sqlite+aiosqlite:///{tmp_path}/f.db"
    await upgrade_async("fidelity", url)
    db = Database(url)
    now = utcnow()
    old, recent = now - timedelta(days=8), now - timedelta(days=1)

    def row(n: int, sent: object) -> dict[str, object]:
        return {"event_id": f"e{n}", "subject": "s", "event_type": "t", "aggregate": "a", "body": b"{}",
                "headers": {}, "created_at": old, "sent_at": sent}

    async with db.unit_of_work() as s:
        await s.execute(insert(outbox), [row(1, old), row(2, recent), row(3, None)])  # unsent: never purged
        await s.execute(insert(idempotency), [
            {"key": k, "principal": "p", "method": "POST", "path": "/", "request_hash": "h", "created_at": t}
            for k, t in (("old", now - timedelta(hours=25)), ("new", now - timedelta(hours=1)))])
        # Inbox rows go once the outbox retention (7 days) plus the margin (7 days) has passed.
        await s.execute(insert(inbox), [{"consumer": "c", "event_id": e, "processed_at": now - timedelta(days=d)}
                                        for e, d in (("i-old", 15), ("i-kept", 13))])
    assert await purge_once(db, Settings()) == (1, 1, 1)
    async with db.reader() as s:
        assert set((await s.scalars(select(outbox.c.event_id))).all()) == {"e2", "e3"}
        assert (await s.execute(select(func.count()).select_from(idempotency))).scalar_one() == 1
        assert set((await s.scalars(select(inbox.c.event_id))).all()) == {"i-kept"}
    await db.dispose()
