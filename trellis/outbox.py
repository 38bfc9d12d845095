"""Transactional outbox: events are rows committed with the domain change, then relayed.

The relay publishes unsent rows in id order with `Nats-Msg-Id` = event id, waits for each
PubAck and marks the rows sent. Within an aggregate each publish waits for the previous one's
PubAck, so a failed publish can never let a later event of the same aggregate overtake it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from nats import errors as nats_errors
from nats.js import errors as js_errors
from opentelemetry import propagate, trace
from sqlalchemy import func, select, text, update

from trellis.db import Database, outbox, utcnow

log = logging.getLogger("trellis.outbox")

Publish = Callable[[str, bytes, dict[str, str]], Awaitable[Any]]
# A lost leadership lock is noticed within this long (plus one drain); the next leader's copies of
# anything published twice meanwhile are dropped by JetStream's duplicate window (Nats-Msg-Id).
LEADERSHIP_RECHECK_S = 0.1


@dataclass
class OutboxStats:
    unsent: int
    oldest_age_s: float
    parked: int = 0


async def outbox_stats(db: Database, max_attempts: int = 10) -> OutboxStats:
    async with db.reader() as s:
        row = (
            await s.execute(select(func.count(), func.min(outbox.c.created_at)).where(outbox.c.sent_at.is_(None)))
        ).one()
        parked = (await s.execute(select(func.count()).where(_parked(max_attempts)))).scalar_one()
    oldest = row[1]  # a UTCDateTime column: always timezone-aware
    age = (utcnow() - oldest).total_seconds() if oldest is not None else 0.0
    return OutboxStats(unsent=int(row[0]), oldest_age_s=max(age, 0.0), parked=int(parked))


def _parked(max_attempts: int) -> Any:
    return outbox.c.sent_at.is_(None) & (outbox.c.attempts >= max_attempts)


async def parked_rows(db: Database, max_attempts: int, limit: int = 100) -> list[Any]:
    """Rows the relay gave up on (oldest first): they and their aggregate's later events wait."""
    async with db.reader() as s:
        return list((await s.execute(
            select(outbox.c.id, outbox.c.event_id, outbox.c.event_type, outbox.c.aggregate, outbox.c.created_at,
                   outbox.c.attempts, outbox.c.last_error)
            .where(_parked(max_attempts)).order_by(outbox.c.id).limit(limit))).all())


async def retry_parked(db: Database, row_id: int) -> bool:
    """Give a parked (or failing) row a fresh set of attempts; False if no such unsent row."""
    async with db.unit_of_work() as s:
        done = await s.execute(update(outbox).where(outbox.c.id == row_id, outbox.c.sent_at.is_(None))
                               .values(attempts=0))
        s.info["outbox_dirty"] = True
    return bool(done.rowcount)  # type: ignore[attr-defined]


# NATS is away (not this row's fault): back off the whole relay, count no attempt, wake on reconnect.
_OUTAGE = (TimeoutError, OSError, nats_errors.ConnectionClosedError, nats_errors.ConnectionReconnectingError,
           nats_errors.ConnectionDrainingError, nats_errors.NoServersError, nats_errors.StaleConnectionError,
           nats_errors.OutboundBufferLimitError, js_errors.ServiceUnavailableError)


@dataclass
class Drained:
    fetched: int = 0
    sent: int = 0
    failed: int = 0
    outage: bool = False


class Leadership(Protocol):
    """Who may relay: only one relay per database publishes, so per-aggregate order holds."""

    async def acquire(self) -> bool: ...
    async def held(self) -> bool: ...
    async def release(self) -> None: ...


class OutboxRelay:
    """Publishes committed events; one relay per database is active at a time.

    Each batch takes unsent rows in id order; rows of one aggregate go out one after another
    (each waits for the previous PubAck), different aggregates concurrently. A row that fails for
    its own reason (too large, no stream) counts an attempt; after `max_attempts` it is parked
    with its error, and only its aggregate's later events wait behind it. An outage of NATS
    counts nothing and backs the relay off until the connection comes back.
    """

    def __init__(
        self,
        db: Database,
        publish: Publish,
        *,
        batch: int = 256,
        poll_s: float = 1.0,
        linger_s: float = 0.0,
        max_backoff_s: float = 1.0,
        max_attempts: int = 10,
        on_published: Callable[[int], None] | None = None,
        on_parked: Callable[[int], None] | None = None,
        tracer_provider: trace.TracerProvider | None = None,
        leadership: Leadership | None = None,
    ) -> None:
        self.db = db
        self.tracer = trace.get_tracer("trellis.outbox", tracer_provider=tracer_provider)
        self.publish = publish
        self.batch = batch
        self.poll_s = poll_s
        self.linger_s = linger_s
        self.max_backoff_s = max_backoff_s
        self.max_attempts = max_attempts
        self.on_published = on_published
        self.on_parked = on_parked
        self.leadership = leadership or (AlwaysLeader() if db.is_sqlite else PgLeadership(db))
        self._stopping = False
        self._checked_at = float("-inf")

    async def run(self) -> None:
        backoff = 0.05
        while not self._stopping:
            try:
                if not await self.leadership.acquire():
                    await self._wait(self.poll_s)
                    continue
                try:
                    # Leadership is rechecked as the relay goes: a lost lock (dropped connection) stops it.
                    while not self._stopping and await self._still_leader():
                        done = await self.drain_once()
                        if done.outage:
                            await self._wait(backoff)  # a reconnect or a commit wakes it early
                            backoff = min(backoff * 2, self.max_backoff_s)
                            continue
                        backoff = 0.05
                        if done.fetched < self.batch:  # drained; else more rows wait: go again at once
                            await self._wait_for_commit()
                finally:
                    with contextlib.suppress(Exception):
                        await self.leadership.release()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay error; retrying in %.1fs", backoff)
                await self._wait(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)

    async def _still_leader(self) -> bool:
        """At most one check per LEADERSHIP_RECHECK_S: a check per drain was a round trip per request."""
        now = asyncio.get_running_loop().time()
        if now - self._checked_at < LEADERSHIP_RECHECK_S:
            return True
        held = await self.leadership.held()
        self._checked_at = now if held else float("-inf")
        return held

    def stop(self) -> None:
        self._stopping = True
        self.db.outbox_signal.set()

    def wake(self) -> None:
        """Something changed (NATS reconnected, a row was retried): look again now."""
        self.db.outbox_signal.set()

    async def flush(self, timeout: float) -> None:
        """Publish what is staged, for a clean shutdown; gives up after `timeout` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            done = await self.drain_once()
            if done.fetched == 0 or done.outage:
                return

    async def _wait(self, seconds: float) -> None:
        signal = self.db.outbox_signal
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(signal.wait(), timeout=seconds)
        signal.clear()

    async def _wait_for_commit(self) -> None:
        signal = self.db.outbox_signal
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(signal.wait(), timeout=self.poll_s)
        if self.linger_s and signal.is_set():
            await asyncio.sleep(self.linger_s)  # let concurrent commits join this batch
        signal.clear()

    async def drain_once(self) -> Drained:
        """Publish one batch of unsent rows, in order per aggregate."""
        self.db.outbox_signal.clear()
        blocked = select(outbox.c.aggregate).where(_parked(self.max_attempts))
        async with self.db.reader() as s:
            rows = (
                await s.execute(
                    select(outbox.c.id, outbox.c.event_id, outbox.c.subject, outbox.c.aggregate,
                           outbox.c.body, outbox.c.headers, outbox.c.attempts)
                    .where(outbox.c.sent_at.is_(None), outbox.c.attempts < self.max_attempts,
                           outbox.c.aggregate.not_in(blocked))
                    .order_by(outbox.c.id)
                    .limit(self.batch)
                )
            ).all()
        if not rows:
            return Drained()
        chains: dict[str, list[Any]] = {}
        for row in rows:
            chains.setdefault(row.aggregate, []).append(row)
        results = await asyncio.gather(*(self._publish_chain(c) for c in chains.values()))
        ok = [i for sent, _ in results for i in sent]
        bad = [failure for _, failure in results if failure is not None]
        outage = any(isinstance(err, _OUTAGE) for _, err in bad)
        parked = 0
        async with self.db.unit_of_work() as s:
            if ok:
                await s.execute(update(outbox).where(outbox.c.id.in_(ok)).values(sent_at=utcnow()))
            for row, err in bad:
                counts = not isinstance(err, _OUTAGE)
                await s.execute(update(outbox).where(outbox.c.id == row.id).values(
                    attempts=outbox.c.attempts + (1 if counts else 0), last_error=repr(err)[:2000]))
                if counts and row.attempts + 1 >= self.max_attempts:
                    parked += 1
                    log.error("outbox: parked event %s (row %d, aggregate %s) after %d attempts: %r; later events "
                              "of that aggregate wait. `trellis outbox retry %d` retries it.",
                              row.event_id, row.id, row.aggregate, row.attempts + 1, err, row.id)
        if ok and self.on_published:
            self.on_published(len(ok))
        if parked and self.on_parked:
            self.on_parked(parked)
        if bad:
            log.warning("outbox: %d of %d publishes failed: %r", len(bad), len(rows), bad[0][1])
        return Drained(fetched=len(rows), sent=len(ok), failed=len(bad), outage=outage)

    async def _publish_chain(self, rows: list[Any]) -> tuple[list[int], tuple[Any, BaseException] | None]:
        """One aggregate's rows in order; the first failure stops the chain (later rows wait)."""
        sent = []
        for row in rows:
            try:
                await self._publish_row(row)
            except Exception as e:  # noqa: BLE001 - recorded on the row, retried later
                return sent, (row, e)
            sent.append(row.id)
        return sent, None

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


class AlwaysLeader:
    """SQLite: one process owns the file, so its relay is always the one."""

    async def acquire(self) -> bool:
        return True

    async def held(self) -> bool:
        return True

    async def release(self) -> None:
        return None


class PgLeadership:
    """Only the replica holding the advisory lock relays; the lock lives on one held connection."""

    KEY = 0x7E11150  # arbitrary, stable

    def __init__(self, db: Database) -> None:
        self.db = db
        self.conn: Any = None

    async def acquire(self) -> bool:
        await self.release()
        # Autocommit: a session-level lock needs no transaction, and each check is one round trip.
        self.conn = await (await self.db.engine.connect()).execution_options(isolation_level="AUTOCOMMIT")
        got = (await self.conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.KEY})).scalar()
        if not got:
            await self.release()
        return bool(got)

    async def held(self) -> bool:
        """Still ours? A dropped connection (a restarted PostgreSQL, a killed backend) loses the lock."""
        if self.conn is None:
            return False
        try:
            mine = (await self.conn.execute(text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
                " AND classid = 0 AND objid = :k AND objsubid = 1 AND granted"), {"k": self.KEY})).scalar()
        except Exception as e:  # noqa: BLE001 - any failure means the lock cannot be vouched for
            log.warning("outbox relay: leadership lost (%r)", e)
            return False
        return bool(mine)

    async def release(self) -> None:
        conn, self.conn = self.conn, None
        if conn is None:
            return
        try:
            with contextlib.suppress(Exception):
                await conn.execute(text("SELECT pg_advisory_unlock_all()"))
        finally:
            with contextlib.suppress(Exception):
                await conn.close()
