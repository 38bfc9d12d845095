"""Inbox: a handler's effect and the record that it ran commit together, so it runs once."""

from __future__ import annotations

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from trellis.db import inbox, utcnow

# Built once: generating a statement per message costs more than executing it.
_CLAIM = {
    "postgresql": postgresql.insert(inbox).on_conflict_do_nothing(),
    "sqlite": sqlite.insert(inbox).on_conflict_do_nothing(),
}


# executemany with RETURNING: SQLAlchemy sends it as multi-row INSERTs ("insertmanyvalues") from one
# cached compiled statement; `.values(rows)` would compile a new statement for every batch.
_CLAIM_MANY = {dialect: stmt.returning(inbox.c.event_id) for dialect, stmt in _CLAIM.items()}


async def claim_many(session: AsyncSession, consumer: str, event_ids: list[str]) -> set[str]:
    """Record many event ids at once; returns those not processed before."""
    if not event_ids:
        return set()
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    now = utcnow()
    rows = [{"consumer": consumer, "event_id": e, "processed_at": now} for e in event_ids]
    return set((await session.execute(_CLAIM_MANY[dialect], rows)).scalars().all())


async def claim(session: AsyncSession, consumer: str, event_id: str) -> bool:
    """Record (consumer, event id) in the current transaction; False if already processed."""
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    params = {"consumer": consumer, "event_id": event_id, "processed_at": utcnow()}
    result = await session.execute(_CLAIM[dialect], params)
    return bool(result.rowcount)  # type: ignore[attr-defined]
