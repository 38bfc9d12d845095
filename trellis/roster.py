"""The roster read model: who is active staff of which agency, kept from readiness's events.

Readiness owns the roster. Every service that acts on people (fidelity, coaching, ...) keeps
this copy so it can refuse work about someone who is not active staff of the caller's agency.
It lives in the kernel because it is the same table and the same three handlers everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON, Column, MetaData, String, Table, and_, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.readiness import StaffMemberJoined, StaffMemberLeft, StaffRoleChanged
from trellis.bus import Handlers
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
        # Events about one person may reach separate consumers out of order; the newest wins.
        Column("last_event_id", String(36), nullable=False),
        Column("updated_at", UTCDateTime, nullable=False),
    )


@dataclass(frozen=True)
class Member:
    person_id: str
    roles: frozenset[str]
    team_id: str | None
    active: bool


class Roster:
    def __init__(self, table: Table) -> None:
        self.t = table

    def _key(self, agency: str, person: str) -> Any:
        return and_(self.t.c.agency_id == agency, self.t.c.person_id == person)

    async def member(self, session: AsyncSession, agency: str, person: str) -> Member | None:
        row = (await session.execute(select(self.t).where(self._key(agency, person)))).mappings().one_or_none()
        if row is None:
            return None
        return Member(row["person_id"], frozenset(row["roles"]), row["team_id"], row["status"] == "active")

    async def active_ids(self, session: AsyncSession, agency: str, role: str | None = None) -> list[str]:
        rows = (await session.execute(
            select(self.t.c.person_id, self.t.c.roles).where(self.t.c.agency_id == agency, self.t.c.status == "active")
        )).all()
        return [p for p, roles in rows if role is None or role in roles]

    async def check_active(
        self, session: AsyncSession, agency: str, person: str, field: str, *, what: str = "person"
    ) -> list[dict[str, Any]]:
        """[] when `person` is active staff of `agency`, else one field error saying why."""
        m = await self.member(session, agency, person)
        if m is None:
            msg = (f"{person} is not on your agency's roster (if they were added in the last few seconds, "
                   "try again shortly)")
        elif not m.active:
            msg = f"{person} has left your agency"
        else:
            return []
        return [field_error(field, f"the {what} must be active staff of your agency: {msg}", code="not-active-staff")]

    async def apply(self, session: AsyncSession, env: Envelope, values: dict[str, Any]) -> None:
        """Upsert one person's row unless a newer event (higher UUIDv7 id) already shaped it."""
        person = values["person_id"]
        current = (await session.execute(
            select(self.t.c.last_event_id).where(self._key(env.agency, person))
        )).scalar_one_or_none()
        stamp = {"last_event_id": env.id, "updated_at": utcnow()}
        if current is None:
            row = {"agency_id": env.agency, "roles": [], "team_id": None, "status": "active", **values, **stamp}
            await session.execute(insert(self.t).values(**row))
        elif current < env.id:
            changes = {k: v for k, v in values.items() if k != "person_id"}
            await session.execute(update(self.t).where(self._key(env.agency, person)).values(**changes, **stamp))

    def register(self, handlers: Handlers) -> None:
        @handlers.on(StaffMemberJoined, "roster-joined")
        async def joined(env: Envelope, e: StaffMemberJoined, session: AsyncSession) -> None:
            await self.apply(session, env, {"person_id": e.staff_id, "roles": sorted(e.roles), "team_id": e.team_id,
                                            "status": "active"})

        @handlers.on(StaffMemberLeft, "roster-left")
        async def left(env: Envelope, e: StaffMemberLeft, session: AsyncSession) -> None:
            await self.apply(session, env, {"person_id": e.staff_id, "status": "left"})

        @handlers.on(StaffRoleChanged, "roster-roles")
        async def roles_changed(env: Envelope, e: StaffRoleChanged, session: AsyncSession) -> None:
            await self.apply(session, env, {"person_id": e.staff_id, "roles": sorted(e.roles), "team_id": e.team_id})
