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


async def claim_many(session: AsyncSession, consumer: str, event_ids: list[str]) -> set[str]:
    """Record many event ids in one statement; returns those not processed before."""
    if not event_ids:
        return set()
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    now = utcnow()
    rows = [{"consumer": consumer, "event_id": e, "processed_at": now} for e in event_ids]
    stmt = _CLAIM[dialect].values(rows).returning(inbox.c.event_id)
    return set((await session.execute(stmt)).scalars().all())


async def claim(session: AsyncSession, consumer: str, event_id: str) -> bool:
    """Record (consumer, event id) in the current transaction; False if already processed."""
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    params = {"consumer": consumer, "event_id": event_id, "processed_at": utcnow()}
    result = await session.execute(_CLAIM[dialect], params)
    return bool(result.rowcount)  # type: ignore[attr-defined]
