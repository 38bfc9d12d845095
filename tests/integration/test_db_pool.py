"""TRELLIS_DB_POOL_SIZE + TRELLIS_DB_MAX_OVERFLOW bound the PostgreSQL connections of one process.

deploy/k8s sizes each database's max_connections from them (tests/unit/test_k8s.py), so the bound must
hold in the service (create_app) and in `trellis sweep` (a Database built without explicit sizes).
"""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from asgi_lifespan import LifespanManager
from pydantic import ValidationError
from sqlalchemy import text

from services.fidelity.app import create_app
from tests.conftest import make_settings
from tests.support import NatsServer, PgCluster
from trellis.db import Database
from trellis.migrate import upgrade_async
from trellis.settings import Settings, get_settings

pytestmark = pytest.mark.postgres


async def backends(probe: Database) -> int:
    """Connections the server holds to the probe's (fresh, unshared) database, the probe's own aside."""
    async with probe.engine.connect() as conn:
        return int((await conn.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ))).scalar_one())


async def test_the_pool_never_opens_more_than_pool_size_plus_overflow(pg_cluster: PgCluster) -> None:
    url = pg_cluster.create_database(f"pool_{uuid.uuid4().hex[:10]}")
    db, probe = Database(url, pool_size=2, max_overflow=1), Database(url, pool_size=1, max_overflow=0)
    db.engine.pool._timeout = 0.5  # type: ignore[attr-defined]  # a starved checkout fails fast here
    release, inside = asyncio.Event(), []

    async def hold() -> None:
        async with db.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            inside.append(1)
            await release.wait()

    try:
        holders = [asyncio.create_task(hold()) for _ in range(3)]
        async with asyncio.timeout(10):
            while len(inside) < 3:
                await asyncio.sleep(0.01)
        assert await backends(probe) == 3
        with pytest.raises(Exception, match="QueuePool limit of size 2 overflow 1 reached"):
            async with db.engine.connect():
                pass
        assert await backends(probe) == 3
        release.set()
        await asyncio.gather(*holders)
    finally:
        await db.dispose()
        await probe.dispose()


async def test_a_database_without_explicit_sizes_reads_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """`trellis sweep` builds Database(url): the ConfigMap's TRELLIS_DB_* still apply."""
    monkeypatch.setenv("TRELLIS_DB_POOL_SIZE", "3")
    monkeypatch.setenv("TRELLIS_DB_MAX_OVERFLOW", "2")
    get_settings.cache_clear()
    try:
        db = Database("postgresql+asyncpg://u:p@127.0.0.1:1/none")  # nothing connects until used
        assert (db.engine.pool.size(), db.engine.pool._max_overflow) == (3, 2)  # type: ignore[attr-defined]
        await db.dispose()
        db = Database("postgresql+asyncpg://u:p@127.0.0.1:1/none", pool_size=7, max_overflow=0)
        assert (db.engine.pool.size(), db.engine.pool._max_overflow) == (7, 0)  # type: ignore[attr-defined]
        await db.dispose()
    finally:
        get_settings.cache_clear()
    with pytest.raises(ValidationError):
        Settings(db_pool_size=0)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        Settings(db_max_overflow=-1)  # type: ignore[call-arg]


async def test_a_service_sizes_its_pool_from_its_settings(pg_cluster: PgCluster, nats_server: NatsServer,
                                                          tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = pg_cluster.create_database(f"poolsvc_{uuid.uuid4().hex[:10]}")
    await upgrade_async("fidelity", url)
    settings = make_settings(nats_server.url, tmp_path, db_pool_size=2, db_max_overflow=1)
    app = create_app(settings=settings, database_url=url)
    async with LifespanManager(app, startup_timeout=20, shutdown_timeout=20), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://fidelity") as c:
        pool = app.state.db.engine.pool
        assert (pool.size(), pool._max_overflow) == (2, 1)
        # Ready: the relay and the consumers hold their connections from this pool, and it still serves.
        async with asyncio.timeout(15):
            while (await c.get("/readyz")).status_code != 200:
                await asyncio.sleep(0.1)
        assert pool.checkedout() <= 3
