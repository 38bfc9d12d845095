"""Coaching tables (SQLAlchemy 2, typed)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, Index, MetaData, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from readmodels.roster import Roster, roster_table
from trellis.db import NAMING, TenantScoped, UTCDateTime


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Task(TenantScoped, Base):
    __tablename__ = "tasks"
    __table_args__ = (
        # Belt and braces next to the inbox: one debrief per observation, ever.
        UniqueConstraint("agency_id", "kind", "observation_id", name="uq_tasks_observation_kind"),
        Index("ix_tasks_agency_practitioner", "agency_id", "practitioner_id", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    practitioner_id: Mapped[str] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    due_on: Mapped[date] = mapped_column(Date)
    observation_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    title: Mapped[str] = mapped_column(String(200), default="")
    opened_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


# Who is active staff of which agency, kept from readiness's events.
ROSTER = Roster(roster_table(Base.metadata))
