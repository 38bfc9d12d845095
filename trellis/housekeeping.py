"""Periodic purge of kernel rows that have done their job: sent outbox rows, old idempotency keys,
and inbox rows old enough that no redelivery of their event can still come.

An inbox row is what makes a late redelivery harmless. A redelivery comes from a relay
re-publishing an unacknowledged row (bounded by the outbox's retention) or from JetStream
redelivering an unacked message (minutes), so rows older than the outbox retention plus a
margin protect nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy import delete

from trellis.db import Database, idempotency, inbox, outbox, utcnow
from trellis.settings import Settings

log = logging.getLogger("trellis.housekeeping")

# A service's own periodic task: safe to run on every replica, and more than once.
Chore = Callable[[Database], Awaitable[object]]


async def purge_once(db: Database, settings: Settings, now: datetime | None = None) -> tuple[int, int, int]:
    """Delete what has expired; returns (outbox rows, idempotency keys, inbox rows) removed."""
    now = now or utcnow()
    sent_before = now - timedelta(days=settings.outbox_retention_days)
    keys_before = now - timedelta(hours=settings.idempotency_ttl_hours)
    seen_before = now - timedelta(days=settings.outbox_retention_days + settings.inbox_retention_margin_days)
    async with db.unit_of_work() as s:
        sent = await s.execute(delete(outbox).where(outbox.c.sent_at.is_not(None), outbox.c.sent_at < sent_before))
        keys = await s.execute(delete(idempotency).where(idempotency.c.created_at < keys_before))
        seen = await s.execute(delete(inbox).where(inbox.c.processed_at < seen_before))
    return tuple(int(r.rowcount or 0) for r in (sent, keys, seen))  # type: ignore[return-value,attr-defined]


async def run(db: Database, settings: Settings) -> None:
    async def purge(db: Database) -> None:
        removed = await purge_once(db, settings)
        if any(removed):
            log.info("purged %d sent outbox rows, %d idempotency keys and %d inbox rows", *removed)

    await repeat("housekeeping", purge, db, settings.housekeeping_every_s)


async def repeat(name: str, chore: Chore, db: Database, every_s: float) -> None:
    while True:
        try:
            await chore(db)
        except Exception:
            log.exception("%s failed; trying again later", name)
        await asyncio.sleep(every_s)
