"""The outbox relay with a fake publisher: order per aggregate, backlog, poison rows, outages, leadership."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nats import errors as nats_errors
from sqlalchemy import insert, select

from trellis.db import Database, kernel_metadata, outbox, utcnow
from trellis.outbox import OutboxRelay, parked_rows, retry_parked


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/k.db")
    async with database.engine.begin() as conn:
        await conn.run_sync(kernel_metadata.create_all)
    yield database
    await database.dispose()


async def stage(db: Database, *events: tuple[str, str]) -> None:
    """(event id, aggregate) pairs, committed together in this order."""
    rows = [{"event_id": e, "subject": f"fidelity.Test.{agg}", "event_type": "fidelity.Test.v1", "aggregate": agg,
             "body": e.encode(), "headers": {}, "created_at": utcnow()} for e, agg in events]
    async with db.unit_of_work() as s:
        await s.execute(insert(outbox), rows)
        s.info["outbox_dirty"] = True


class FakeNats:
    def __init__(self) -> None:
        self.published: list[str] = []
        self.poison: set[str] = set()
        self.down = False

    async def publish(self, subject: str, body: bytes, headers: dict[str, str]) -> None:
        await asyncio.sleep(0)
        if self.down:
            raise nats_errors.ConnectionClosedError
        if headers["Nats-Msg-Id"] in self.poison:
            raise nats_errors.MaxPayloadError
        self.published.append(headers["Nats-Msg-Id"])


class FlippableLeadership:
    def __init__(self) -> None:
        self.ours = True

    async def acquire(self) -> bool:
        return self.ours

    async def held(self) -> bool:
        return self.ours

    async def release(self) -> None:
        return None


@contextlib.asynccontextmanager
async def running(relay: OutboxRelay) -> AsyncIterator[None]:
    task = asyncio.create_task(relay.run())
    try:
        yield
    finally:
        relay.stop()
        await asyncio.wait_for(task, 5)


async def until(check, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, "condition not met"
        await asyncio.sleep(0.01)


async def unsent(db: Database) -> set[str]:
    async with db.reader() as s:
        return set((await s.scalars(select(outbox.c.event_id).where(outbox.c.sent_at.is_(None)))).all())


async def test_one_aggregates_events_go_out_in_one_pass_and_in_order(db: Database):
    nats = FakeNats()
    await stage(db, *[(f"a{i}", "A") for i in range(5)], ("b0", "B"), ("a5", "A"))
    relay = OutboxRelay(db, nats.publish)
    done = await relay.drain_once()
    assert done.sent == 7 and done.failed == 0
    assert [e for e in nats.published if e.startswith("a")] == [f"a{i}" for i in range(6)]
    assert await unsent(db) == set()


async def test_a_backlog_larger_than_a_batch_drains_without_waiting_for_the_poll(db: Database):
    nats = FakeNats()
    await stage(db, *[(f"e{i}", f"agg{i % 7}") for i in range(1000)])
    relay = OutboxRelay(db, nats.publish, batch=64, poll_s=60)  # a wait for the poll would time the test out
    async with running(relay):
        await until(lambda: len(nats.published) == 1000)
    for agg in range(7):
        mine = [e for e in nats.published if int(e[1:]) % 7 == agg]
        assert mine == sorted(mine, key=lambda e: int(e[1:]))


async def test_a_poison_row_is_parked_and_slows_no_other_aggregate(db: Database, caplog):
    nats = FakeNats()
    nats.poison = {"p1"}
    await stage(db, ("p1", "P"), ("p2", "P"), *[(f"h{i}", f"H{i}") for i in range(5)])
    relay = OutboxRelay(db, nats.publish, poll_s=0.05, max_attempts=3)
    async with running(relay):
        await until(lambda: len(nats.published) == 5)  # the healthy ones at once
        parked: list = []

        async def is_parked() -> bool:
            parked[:] = await parked_rows(db, 3)
            return bool(parked)

        for _ in range(200):
            if await is_parked():
                break
            await asyncio.sleep(0.02)
        assert [r.event_id for r in parked] == ["p1"] and parked[0].attempts == 3
        assert "MaxPayloadError" in parked[0].last_error
        assert "parked event p1" in caplog.text
        # Order holds: the aggregate's later event waits behind its parked one.
        await stage(db, ("h-late", "H-late"))
        await until(lambda: "h-late" in nats.published)
        assert "p2" not in nats.published
        # An operator fixes the cause and retries: both go out, in order.
        nats.poison = set()
        assert await retry_parked(db, parked[0].id)
        await until(lambda: "p2" in nats.published)
    assert nats.published[-2:] == ["p1", "p2"]
    assert not await retry_parked(db, parked[0].id)  # sent now: nothing to retry


async def test_an_outage_parks_nothing_and_a_reconnect_resumes_at_once(db: Database):
    nats = FakeNats()
    nats.down = True
    await stage(db, *[(f"e{i}", "A") for i in range(3)])
    relay = OutboxRelay(db, nats.publish, poll_s=60, max_backoff_s=60, max_attempts=2)
    async with running(relay):
        await asyncio.sleep(0.5)  # many failed tries: far more than max_attempts
        assert await parked_rows(db, 2) == []
        nats.down = False
        relay.wake()  # what the broker's reconnected callback does
        await until(lambda: len(nats.published) == 3, timeout=2)  # far below the 60 s backoff
    assert nats.published == ["e0", "e1", "e2"]


async def test_a_relay_that_loses_leadership_stops_publishing(db: Database):
    nats = FakeNats()
    leader = FlippableLeadership()
    relay = OutboxRelay(db, nats.publish, poll_s=0.05, leadership=leader)
    async with running(relay):
        await stage(db, ("e1", "A"))
        await until(lambda: nats.published == ["e1"])
        leader.ours = False  # e.g. its lock connection dropped and another replica took over
        await asyncio.sleep(0.2)
        await stage(db, ("e2", "A"))
        await asyncio.sleep(0.5)
        assert nats.published == ["e1"]
        leader.ours = True
        await until(lambda: nats.published == ["e1", "e2"])


async def test_flush_publishes_what_is_staged(db: Database):
    nats = FakeNats()
    await stage(db, *[(f"e{i}", f"A{i % 3}") for i in range(600)])
    relay = OutboxRelay(db, nats.publish, batch=100)
    await relay.flush(timeout=10)
    assert len(nats.published) == 600 and await unsent(db) == set()
