"""The roster read model: who is active staff of which agency, kept from readiness's events.

Readiness owns the roster. Every service that acts on people (fidelity, coaching, ...) keeps
this copy so it can refuse work about someone who is not active staff of the caller's agency.
It lives in the kernel because it is the same table and the same three handlers everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, MetaData, String, Table, and_, bindparam, case, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.readiness import StaffMemberJoined, StaffMemberLeft, StaffRoleChanged
from trellis.bus import Batch, Handlers
from trellis.db import UTCDateTime, utcnow
from trellis.envelope import Envelope
from trellis.problems import field_error

TABLE = "roster"


def roster_table(metadata: MetaData) -> Table:
    """Adds the roster table to a service's metadata (so its migrations and models agree)."""
    return Table(
        TABLE, metadata,
        Column("agency_id", String(36), primary_key=True),
        Column("person_id", String(36), primary_key=True),
        Column("roles", JSON, nullable=False),
        Column("team_id", String(36), nullable=True),
        Column("status", String(16), nullable=False),
        # Events about one person may reach separate consumers out of order: per aspect, the newest
        # event (highest UUIDv7) wins, so a late Joined neither revives a leaver nor undoes a role change.
        Column("status_event_id", String(36), nullable=False),
        Column("roles_event_id", String(36), nullable=False),
        Column("updated_at", UTCDateTime, nullable=False),
    )


@dataclass(frozen=True)
class Member:
    person_id: str
    roles: frozenset[str]
    team_id: str | None
    active: bool


# What each kind of event says about a person, and the columns that carry it.
ASPECTS: dict[str, tuple[str, ...]] = {"status": ("status",), "roles": ("roles", "team_id")}


class Roster:
    def __init__(self, table: Table) -> None:
        self.t = table
        self._statements: dict[tuple[str, tuple[str, ...]], Any] = {}

    def _key(self, agency: str, person: str) -> Any:
        return and_(self.t.c.agency_id == agency, self.t.c.person_id == person)

    async def member(self, session: AsyncSession, agency: str, person: str, *, lock: bool = False) -> Member | None:
        """`lock`: also take the person's row lock (FOR UPDATE), in the same round trip."""
        stmt = select(self.t).where(self._key(agency, person))
        row = (await session.execute(stmt.with_for_update() if lock else stmt)).mappings().one_or_none()
        if row is None:
            return None
        return Member(row["person_id"], frozenset(row["roles"]), row["team_id"], row["status"] == "active")

    async def active_ids(self, session: AsyncSession, agency: str, role: str | None = None) -> list[str]:
        rows = (await session.execute(
            select(self.t.c.person_id, self.t.c.roles).where(self.t.c.agency_id == agency, self.t.c.status == "active")
        )).all()
        return [p for p, roles in rows if role is None or role in roles]

    async def check_active(
        self, session: AsyncSession, agency: str, person: str, field: str, *, what: str = "person",
        lock: bool = False,
    ) -> list[dict[str, Any]]:
        """[] when `person` is active staff of `agency`, else one field error saying why."""
        m = await self.member(session, agency, person, lock=lock)
        if m is None:
            msg = (f"{person} is not on your agency's roster (if they were added in the last few seconds, "
                   "try again shortly)")
        elif not m.active:
            msg = f"{person} has left your agency"
        else:
            return []
        return [field_error(field, f"the {what} must be active staff of your agency: {msg}", code="not-active-staff")]

    def _upsert(self, dialect: str, aspects: tuple[str, ...]) -> Any:
        """Built once per (dialect, aspects) with bound parameters: building it per event costs more
        than running it."""
        key = (dialect, aspects)
        if key not in self._statements:
            stmt = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(self.t).values(
                {c.name: bindparam(c.name) for c in self.t.columns})
            changes: dict[str, Any] = {"updated_at": stmt.excluded.updated_at}
            for aspect in aspects:
                stamp = f"{aspect}_event_id"
                newer = self.t.c[stamp] < stmt.excluded[stamp]
                for column in [*ASPECTS[aspect], stamp]:  # SET sees the old row: every CASE tests the old stamp
                    changes[column] = case((newer, stmt.excluded[column]), else_=self.t.c[column])
            self._statements[key] = stmt.on_conflict_do_update(
                index_elements=[self.t.c.agency_id, self.t.c.person_id], set_=changes)
        return self._statements[key]

    def _row(self, env: Envelope, person: str, values: dict[str, Any], aspects: tuple[str, ...],
             now: datetime) -> dict[str, Any]:
        row: dict[str, Any] = {"agency_id": env.agency, "person_id": person, "roles": [], "team_id": None,
                               "status": "active", "status_event_id": "", "roles_event_id": "",
                               "updated_at": now, **values}
        return row | {f"{a}_event_id": env.id for a in aspects}

    async def apply(self, session: AsyncSession, env: Envelope, person: str, values: dict[str, Any]) -> None:
        """Upsert what `env` says about `person`, per aspect (status; roles with team), unless a newer
        event already shaped that aspect. One statement, so concurrent consumers cannot collide."""
        await self.apply_many(session, [(env, person, values)])

    async def apply_many(self, session: AsyncSession, changes: list[tuple[Envelope, str, dict[str, Any]]]) -> None:
        """apply() for a whole batch: one executemany upsert per kind of change.

        Within the batch only the newest event per person and kind is kept (the same rule the
        statement applies against the stored row), so one statement never touches a row twice.
        """
        newest: dict[tuple[tuple[str, ...], str, str], tuple[Envelope, str, dict[str, Any]]] = {}
        for env, person, values in changes:
            aspects = tuple(a for a, columns in ASPECTS.items() if columns[0] in values)
            key = (aspects, env.agency, person)
            if key not in newest or newest[key][0].id < env.id:
                newest[key] = (env, person, values)
        by_aspects: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        now = utcnow()
        for (aspects, _, _), (env, person, values) in newest.items():
            by_aspects.setdefault(aspects, []).append(self._row(env, person, values, aspects, now))
        dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
        for aspects, rows in by_aspects.items():
            await session.execute(self._upsert(dialect, aspects), rows)

    def register(self, handlers: Handlers) -> None:
        # Batch-aware: a 5,000-person import arrives as a few fetches, each one upsert statement.
        @handlers.on_batch(StaffMemberJoined, "roster-joined")
        async def joined(uow: AsyncSession, events: Batch[StaffMemberJoined]) -> None:
            await self.apply_many(uow, [(env, e.staff_id, {"status": "active", "roles": sorted(e.roles),
                                                           "team_id": e.team_id}) for env, e in events])

        @handlers.on_batch(StaffMemberLeft, "roster-left")
        async def left(uow: AsyncSession, events: Batch[StaffMemberLeft]) -> None:
            await self.apply_many(uow, [(env, e.staff_id, {"status": "left"}) for env, e in events])

        @handlers.on_batch(StaffRoleChanged, "roster-roles")
        async def roles_changed(uow: AsyncSession, events: Batch[StaffRoleChanged]) -> None:
            await self.apply_many(uow, [(env, e.staff_id, {"roles": sorted(e.roles), "team_id": e.team_id})
                                        for env, e in events])
