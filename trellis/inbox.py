"""Inbox: a handler's effect and the record that it ran commit together, so it runs once."""

from __future__ import annotations

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from trellis.db import inbox, utcnow


async def claim(session: AsyncSession, consumer: str, event_id: str) -> bool:
    """Record (consumer, event id) in the current transaction; False if already processed."""
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    ins = postgresql.insert(inbox) if dialect == "postgresql" else sqlite.insert(inbox)
    stmt = ins.values(consumer=consumer, event_id=event_id, processed_at=utcnow()).on_conflict_do_nothing()
    result = await session.execute(stmt)
    return bool(result.rowcount)  # type: ignore[attr-defined]
