"""8. Registration under contention: N people register for ONE session at once.

Every registration takes the session's row lock (SELECT ... FOR UPDATE on PostgreSQL), counts the
seats held, takes the next position and stages its event; so on one session they run one after
another whatever the concurrency. The anchor is what the database does without any of that: the
same number of single-row INSERT transactions into the registrations table, at the same concurrency,
on the same database, in the same run. Anchor and use case alternate `rounds` times; the ratio is
the median of per-round ratios, so load that comes and goes on a shared box cancels out.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, insert, select

from bench.common import Config, Figure, Sample, backends, db_url, fmt_rate, measure, median, say
from services.community.models import ROSTER, Program, Registration, Session
from services.community.usecases import registration as uc
from trellis.auth import Principal
from trellis.db import Database
from trellis.migrate import upgrade_async

BENCH = "8 registration"
REGISTRANTS = 300  # per round, all on one session
CONCURRENCY = 50  # in flight at once (more than the pool: the rest wait for a connection, as in a service)
REGISTRATIONS = Registration.__table__
NOW = datetime.now(UTC)


async def session_with_roster(db: Database, agency: str, people: list[str], capacity: int) -> str:
    program_id, session_id = str(uuid.uuid4()), str(uuid.uuid4())
    starts = NOW + timedelta(days=7)
    async with db.unit_of_work() as uow:
        uow.add(Program(id=program_id, title="Bench", owner_id=str(uuid.uuid4()), owner_agency=agency,
                        open_to_all=True, agencies=[], timezone="UTC", dtstart="2027-01-05T10:00:00",
                        rrule="FREQ=WEEKLY;COUNT=1", duration_minutes=60, capacity=capacity,
                        created_at=NOW, updated_at=NOW))
        uow.add(Session(id=session_id, program_id=program_id, title="Bench", starts_at=starts,
                        ends_at=starts + timedelta(hours=1), timezone="UTC", capacity=capacity,
                        created_at=NOW, updated_at=NOW))
        if people:
            await uow.execute(insert(ROSTER.t), [
                {"agency_id": agency, "person_id": p, "roles": ["practitioner"], "team_id": None, "status": "active",
                 "status_event_id": str(uuid.uuid4()), "roles_event_id": str(uuid.uuid4()), "updated_at": NOW}
                for p in people])
    return session_id


async def bounded(jobs: list, limit: int) -> None:  # type: ignore[type-arg]
    gate = asyncio.Semaphore(limit)

    async def one(job) -> None:  # type: ignore[no-untyped-def]
        async with gate:
            await job()

    await asyncio.gather(*(one(j) for j in jobs))


async def plain_inserts(db: Database, session_id: str, n: int) -> int:
    """The anchor: n single-row INSERT transactions, no lock, no count, no event."""

    def job(i: int):  # type: ignore[no-untyped-def]
        async def run() -> None:
            async with db.unit_of_work() as uow:
                await uow.execute(insert(REGISTRATIONS).values(
                    id=str(uuid.uuid4()), session_id=session_id, program_id="anchor", person_id=str(uuid.uuid4()),
                    agency_id="anchor", status="confirmed", position=i, via="direct", registered_by="anchor",
                    created_at=NOW, updated_at=NOW))
        return run

    await bounded([job(i) for i in range(n)], CONCURRENCY)
    return n


async def registrations(db: Database, agency: str, people: list[str], capacity: int) -> int:
    """n registrations through the use case, all on one fresh session of `capacity` seats."""
    sid = await session_with_roster(db, agency, people, capacity)

    def job(person: str):  # type: ignore[no-untyped-def]
        async def run() -> None:
            async with db.unit_of_work() as uow:
                await uc.register(uow, uc.Register(Principal(person, agency, frozenset({"practitioner"})), sid))
        return run

    await bounded([job(p) for p in people], CONCURRENCY)
    async with db.reader() as uow:  # the point of the lock: capacity held, every position unique
        held, positions, distinct = (await uow.execute(select(
            func.count().filter(Registration.status == "confirmed"), func.count(),
            func.count(func.distinct(Registration.position))).where(Registration.session_id == sid))).one()
    assert held == capacity and positions == distinct == len(people), (held, positions, distinct)
    return len(people)


async def run(cfg: Config) -> list[Figure]:
    figures: list[Figure] = []
    n = min(REGISTRANTS, cfg.n)
    for backend in backends(cfg):
        if backend == "sqlite" and cfg.pg is not None:
            continue  # one process per SQLite file in production: contention across replicas is PostgreSQL's
        url = db_url(cfg, cfg.root / "registration", "community", backend)
        await upgrade_async("community", url)
        db = Database(url)
        anchor_id = await session_with_roster(db, str(uuid.uuid4()), [], 1)
        anchors: list[Sample] = []
        regs: list[Sample] = []
        ratios: list[float] = []
        try:
            for _ in range(cfg.rounds):
                anchors.append(await measure(plain_inserts(db, anchor_id, n)))
                agency = str(uuid.uuid4())
                people = [str(uuid.uuid4()) for _ in range(n)]
                regs.append(await measure(registrations(db, agency, people, n // 2)))
                ratios.append(regs[-1].rate / anchors[-1].rate)
        finally:
            await db.dispose()
        a, r, x = median([s.rate for s in anchors]), median([s.rate for s in regs]), median(ratios)
        say(f"  {backend}: anchor {fmt_rate(a, 'ins/s')}, registrations {fmt_rate(r, 'reg/s')} ({x:.2f}x)")
        figures += [
            Figure(BENCH, f"Anchor: plain single-row INSERT transactions, {backend} ({CONCURRENCY} concurrent)",
                   fmt_rate(a, "rows/s"), "anchor"),
            Figure(BENCH, f"Registrations on ONE session, {backend} ({n} people, {CONCURRENCY} concurrent, "
                          f"{n // 2} seats; row lock + count + position + event)",
                   fmt_rate(r, "reg/s"), f"{x:.2f}x anchor", "capacity held, positions unique (checked)"),
        ]
    return figures
