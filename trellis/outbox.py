"""Transactional outbox: events are rows committed with the domain change, then relayed.

The relay publishes unsent rows in id order with `Nats-Msg-Id` = event id, waits for each
PubAck and marks the rows sent. A batch holds at most one event per aggregate, so a failed
publish can never let a later event of the same aggregate overtake it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from opentelemetry import propagate, trace
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from trellis.db import Database, outbox, utcnow
from trellis.envelope import Envelope

log = logging.getLogger("trellis.outbox")

Publish = Callable[[str, bytes, dict[str, str]], Awaitable[Any]]
_STAGE = insert(outbox)  # built once; per-call .values() costs more than the insert itself


async def add_event(session: AsyncSession, event: Envelope, *, aggregate: str | None = None) -> None:
    """Stage `event` in the caller's transaction; it is published after commit."""
    headers: dict[str, str] = {}
    propagate.inject(headers)  # the trace continues in the relay and the consumers
    row = {
        "event_id": event.id, "subject": event.nats_subject, "event_type": event.type,
        "aggregate": aggregate or event.subject, "body": event.to_bytes(), "headers": headers,
        "created_at": utcnow(),
    }
    info = session.sync_session.info
    buffer = info.get("outbox_buffer")
    if buffer is not None:
        buffer.append(row)  # group commit: written in one statement by flush_staged()
    else:
        await session.execute(_STAGE, row)
    info["outbox_dirty"] = True


def buffer_events(session: AsyncSession) -> None:
    """From now on add_event() collects rows; flush_staged() writes them in one statement."""
    session.sync_session.info["outbox_buffer"] = []


async def flush_staged(session: AsyncSession) -> None:
    rows = session.sync_session.info.pop("outbox_buffer", None)
    if rows:
        await session.execute(_STAGE, rows)


@dataclass
class OutboxStats:
    unsent: int
    oldest_age_s: float


async def outbox_stats(db: Database) -> OutboxStats:
    async with db.reader() as s:
        row = (
            await s.execute(select(func.count(), func.min(outbox.c.created_at)).where(outbox.c.sent_at.is_(None)))
        ).one()
    oldest = row[1]  # a UTCDateTime column: always timezone-aware
    age = (utcnow() - oldest).total_seconds() if oldest is not None else 0.0
    return OutboxStats(unsent=int(row[0]), oldest_age_s=max(age, 0.0))


class OutboxRelay:
    """Publishes committed events; one relay per database is active at a time."""

    def __init__(
        self,
        db: Database,
        publish: Publish,
        *,
        batch: int = 256,
        poll_s: float = 1.0,
        linger_s: float = 0.0,
        max_backoff_s: float = 10.0,
        on_published: Callable[[int], None] | None = None,
        tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
        self.db = db
        self.tracer = trace.get_tracer("trellis.outbox", tracer_provider=tracer_provider)
        self.publish = publish
        self.batch = batch
        self.poll_s = poll_s
        self.linger_s = linger_s
        self.max_backoff_s = max_backoff_s
        self.on_published = on_published
        self._stopping = False

    async def run(self) -> None:
        backoff = 0.1
        while not self._stopping:
            try:
                async with self._leadership() as leader:
                    if not leader:
                        await asyncio.sleep(self.poll_s)
                        continue
                    while not self._stopping:
                        sent, failed = await self.drain_once()
                        if failed:
                            await asyncio.sleep(backoff)
                            backoff = min(backoff * 2, self.max_backoff_s)
                            continue
                        backoff = 0.1
                        if sent < self.batch:  # drained; a commit since then has set the signal
                            await self._wait_for_commit()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay error; retrying in %.1fs", backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)

    def stop(self) -> None:
        self._stopping = True
        self.db.outbox_signal.set()

    async def _wait_for_commit(self) -> None:
        signal = self.db.outbox_signal
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(signal.wait(), timeout=self.poll_s)
        if self.linger_s and signal.is_set():
            await asyncio.sleep(self.linger_s)  # let concurrent commits join this batch
        signal.clear()

    def _leadership(self) -> Any:
        return _PgLeadership(self.db) if not self.db.is_sqlite else _AlwaysLeader()

    async def drain_once(self) -> tuple[int, int]:
        """Publish one batch. Returns (sent, failed)."""
        self.db.outbox_signal.clear()
        async with self.db.reader() as s:
            rows = (
                await s.execute(
                    select(outbox.c.id, outbox.c.event_id, outbox.c.subject, outbox.c.aggregate,
                           outbox.c.body, outbox.c.headers)
                    .where(outbox.c.sent_at.is_(None))
                    .order_by(outbox.c.id)
                    .limit(self.batch * 4)
                )
            ).all()
        if not rows:
            return 0, 0
        seen: set[str] = set()
        chosen = []
        for row in rows:
            if row.aggregate in seen:
                continue
            seen.add(row.aggregate)
            chosen.append(row)
            if len(chosen) >= self.batch:
                break
        results = await asyncio.gather(*(self._publish_row(r) for r in chosen), return_exceptions=True)
        ok = [r.id for r, res in zip(chosen, results, strict=True) if not isinstance(res, BaseException)]
        bad = [(r.id, res) for r, res in zip(chosen, results, strict=True) if isinstance(res, BaseException)]
        async with self.db.unit_of_work() as s:
            if ok:
                await s.execute(update(outbox).where(outbox.c.id.in_(ok)).values(sent_at=utcnow()))
            for row_id, err in bad:
                await s.execute(
                    update(outbox)
                    .where(outbox.c.id == row_id)
                    .values(attempts=outbox.c.attempts + 1, last_error=repr(err)[:2000])
                )
        if ok and self.on_published:
            self.on_published(len(ok))
        if bad:
            log.warning("outbox: %d of %d publishes failed: %r", len(bad), len(chosen), bad[0][1])
        return len(ok), len(bad)

    async def _publish_row(self, row: Any) -> Any:
        headers = {str(k): str(v) for k, v in (row.headers or {}).items()}
        # The publish span continues the trace of the request that staged the event.
        with self.tracer.start_as_current_span(
            f"{row.subject} publish", context=propagate.extract(headers), kind=trace.SpanKind.PRODUCER,
            attributes={"messaging.system": "nats", "messaging.destination.name": row.subject,
                        "messaging.message.id": row.event_id},
        ):
            propagate.inject(headers)
            headers["Nats-Msg-Id"] = row.event_id
            headers["content-type"] = "application/cloudevents+json"
            return await self.publish(row.subject, row.body, headers)


class _AlwaysLeader:
    async def __aenter__(self) -> bool:
        return True

    async def __aexit__(self, *exc: object) -> None:
        return None


class _PgLeadership:
    """Only the replica holding the advisory lock relays, so per-aggregate order holds."""

    KEY = 0x7E11150  # arbitrary, stable

    def __init__(self, db: Database) -> None:
        self.db = db
        self.conn: Any = None

    async def __aenter__(self) -> bool:
        self.conn = await self.db.engine.connect()
        got = (await self.conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.KEY})).scalar()
        await self.conn.commit()
        return bool(got)

    async def __aexit__(self, *exc: object) -> None:
        if self.conn is not None:
            try:
                await self.conn.execute(text("SELECT pg_advisory_unlock_all()"))
                await self.conn.commit()
            finally:
                await self.conn.close()
