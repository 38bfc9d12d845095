"""Relay leadership on PostgreSQL: one holder of the advisory lock, and a lost lock is noticed."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text

from trellis.db import Database
from trellis.outbox import PgLeadership

pytestmark = pytest.mark.postgres


async def test_a_terminated_lock_connection_loses_leadership_and_another_takes_over(pg_cluster):
    url = pg_cluster.create_database(f"lead_{uuid.uuid4().hex[:8]}")
    a_db, b_db = Database(url), Database(url)
    a, b = PgLeadership(a_db), PgLeadership(b_db)
    try:
        assert await a.acquire() and await a.held()
        assert not await b.acquire()  # one relay per database
        holder = (await a.conn.execute(text("SELECT pg_backend_pid()"))).scalar()
        await a.conn.commit()
        async with b_db.engine.connect() as admin:  # e.g. a failover or an idle-session kill
            await admin.execute(text("SELECT pg_terminate_backend(:p)"), {"p": holder})
            await admin.commit()
        assert not await a.held()
        assert await b.acquire() and await b.held()
    finally:
        await a.release()
        await b.release()
        await a_db.dispose()
        await b_db.dispose()
