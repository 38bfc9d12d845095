"""Fidelity tables (SQLAlchemy 2, typed)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Date, Float, Index, Integer, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.fidelity import domain
from trellis.db import NAMING, TenantScoped, UTCDateTime
from trellis.roster import Roster, roster_table


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class InstrumentRow(Base):
    """A published instrument version; never edited once active."""

    __tablename__ = "instruments"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    pass_threshold: Mapped[float] = mapped_column(Float)
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    def to_domain(self) -> domain.Instrument:
        return domain.Instrument(
            id=self.id, name=self.name, version=self.version, status=self.status,
            pass_threshold=self.pass_threshold, items=tuple(domain.Item(**i) for i in self.items),
        )


class Observation(TenantScoped, Base):
    __tablename__ = "observations"
    __table_args__ = (Index("ix_observations_agency_practitioner", "agency_id", "practitioner_id", "id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    practitioner_id: Mapped[str] = mapped_column(String(36))
    observer_id: Mapped[str] = mapped_column(String(36))
    instrument_id: Mapped[str] = mapped_column(String(36))
    instrument_version: Mapped[int] = mapped_column(Integer)
    observed_on: Mapped[date] = mapped_column(Date)
    setting: Mapped[str] = mapped_column(String(32))
    notes: Mapped[str] = mapped_column(Text, default="")
    item_scores: Mapped[dict[str, int]] = mapped_column(JSON)
    total_score: Mapped[float] = mapped_column(Float)
    competency_scores: Mapped[dict[str, float]] = mapped_column(JSON)
    passed: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


# Who is active staff of which agency, kept from readiness's events.
ROSTER = Roster(roster_table(Base.metadata))
