"""Readiness tables (SQLAlchemy 2, typed)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.readiness import domain
from trellis.db import NAMING, TenantScoped, UTCDateTime


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Agency(TenantScoped, Base):
    """An agency is its own tenant: `agency_id` equals `id`, so tenant scoping covers it too."""

    __tablename__ = "agencies"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    region: Mapped[str] = mapped_column(String(200))
    programs: Mapped[list[str]] = mapped_column(JSON)
    stage: Mapped[str] = mapped_column(String(32))
    stage_entered_on: Mapped[date] = mapped_column(Date)
    ready_at: Mapped[float] = mapped_column(Float)
    conditions_at: Mapped[float] = mapped_column(Float)
    min_respondents: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    @property
    def thresholds(self) -> domain.Thresholds:
        return domain.Thresholds(self.ready_at, self.conditions_at, self.min_respondents)


class Team(TenantScoped, Base):
    __tablename__ = "teams"
    __table_args__ = (UniqueConstraint("agency_id", "name", name="uq_teams_agency_name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Staff(TenantScoped, Base):
    __tablename__ = "staff"
    # Keyed per agency: one person (one identity-provider subject) may be staff of several agencies,
    # and an id in use elsewhere must not be refused, which would reveal that it exists there.
    __table_args__ = (PrimaryKeyConstraint("agency_id", "id", name="pk_staff"),
                      UniqueConstraint("agency_id", "email", name="uq_staff_agency_email"))

    id: Mapped[str] = mapped_column(String(36))
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320))
    team_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    roles: Mapped[list[str]] = mapped_column(JSON)
    hire_date: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16))
    left_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class InstrumentRow(Base):
    """A readiness instrument version; never edited once active."""

    __tablename__ = "readiness_instruments"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    scale_min: Mapped[int] = mapped_column(Integer)
    scale_max: Mapped[int] = mapped_column(Integer)
    domains: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    def to_domain(self) -> domain.ReadinessInstrument:
        return domain.ReadinessInstrument(
            id=self.id, name=self.name, version=self.version, status=self.status, scale_min=self.scale_min,
            scale_max=self.scale_max, domains=tuple(domain.ReadinessDomain(**d) for d in self.domains),
            items=tuple(domain.Statement(**i) for i in self.items),
        )


class Round(TenantScoped, Base):
    """A readiness assessment round: open for answers, then closed with results."""

    __tablename__ = "readiness_rounds"
    __table_args__ = (Index("ix_readiness_rounds_agency", "agency_id", "id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    instrument_id: Mapped[str] = mapped_column(String(36))
    title: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    opened_by: Mapped[str] = mapped_column(String(36))
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ready_at: Mapped[float] = mapped_column(Float)
    conditions_at: Mapped[float] = mapped_column(Float)
    min_respondents: Mapped[int] = mapped_column(Integer)
    respondents: Mapped[int] = mapped_column(Integer, default=0)
    level: Mapped[str | None] = mapped_column(String(32), nullable=True)
    reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    results: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)


class Response(TenantScoped, Base):
    """One respondent's answers; only they can read them back, results are aggregates only."""

    __tablename__ = "readiness_responses"
    __table_args__ = (UniqueConstraint("round_id", "respondent_id", name="uq_readiness_responses_round_respondent"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    round_id: Mapped[str] = mapped_column(String(36), index=True)
    respondent_id: Mapped[str] = mapped_column(String(36))
    answers: Mapped[dict[str, int]] = mapped_column(JSON)
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Plan(TenantScoped, Base):
    __tablename__ = "plans"
    __table_args__ = (UniqueConstraint("agency_id", name="uq_plans_agency"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    approved_revision: Mapped[int] = mapped_column(Integer, default=0)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    approved_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    @property
    def approved(self) -> bool:
        return self.approved_at is not None

    @property
    def changed_since_approval(self) -> bool:
        return self.approved_at is not None and self.changed_at > self.approved_at


class PlanAction(TenantScoped, Base):
    __tablename__ = "plan_actions"
    __table_args__ = (Index("ix_plan_actions_agency_plan", "agency_id", "plan_id", "id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    plan_id: Mapped[str] = mapped_column(String(36))
    title: Mapped[str] = mapped_column(String(300))
    readiness_domain: Mapped[str | None] = mapped_column(String(64), nullable=True)
    owner_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    due_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    origin: Mapped[str] = mapped_column(String(16))  # manual | suggested
    round_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    completed_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PlanComment(TenantScoped, Base):
    __tablename__ = "plan_comments"
    __table_args__ = (Index("ix_plan_comments_agency_plan", "agency_id", "plan_id", "id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    plan_id: Mapped[str] = mapped_column(String(36))
    action_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    author_id: Mapped[str] = mapped_column(String(36))
    author_kind: Mapped[str] = mapped_column(String(16))  # agency | partner (the implementation partner)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class StageEntry(TenantScoped, Base):
    """The date each implementation stage was entered, like the SIC measure records it."""

    __tablename__ = "stage_history"
    __table_args__ = (Index("ix_stage_history_agency", "agency_id", "id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    stage: Mapped[str] = mapped_column(String(32))
    previous_stage: Mapped[str | None] = mapped_column(String(32), nullable=True)
    entered_on: Mapped[date] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(Text)
    certified_share: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Certification(TenantScoped, Base):
    """Read model of fidelity's certifications; `revision` keeps redelivery order harmless."""

    __tablename__ = "certifications"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    practitioner_id: Mapped[str] = mapped_column(String(36), index=True)
    track: Mapped[str] = mapped_column(String(16))
    current: Mapped[bool] = mapped_column(Boolean)
    revision: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
