"""Fidelity tables (SQLAlchemy 2, typed)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Date, Float, Index, Integer, MetaData, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from readmodels.roster import Roster, roster_table
from services.fidelity import domain
from trellis.db import NAMING, BigId, TenantScoped, UTCDateTime


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class InstrumentRow(Base):
    """A published instrument version; never edited once active."""

    __tablename__ = "instruments"

    __table_args__ = (UniqueConstraint("family", "version"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    family: Mapped[str] = mapped_column(String(64), server_default="miiwrap-practice")
    kind: Mapped[str] = mapped_column(String(32), server_default="practice_observation")
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, server_default="")
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    pass_threshold: Mapped[float] = mapped_column(Float)
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    def to_domain(self) -> domain.Instrument:
        return domain.Instrument(
            id=self.id, name=self.name, version=self.version, status=self.status, family=self.family,
            kind=self.kind, pass_threshold=self.pass_threshold, items=tuple(domain.Item(**i) for i in self.items),
        )


class Observation(TenantScoped, Base):
    __tablename__ = "observations"
    __table_args__ = (Index("ix_observations_agency_practitioner", "agency_id", "practitioner_id", "id"),
                      Index("ix_observations_agency_observer", "agency_id", "observer_id", "id"))

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    practitioner_id: Mapped[str] = mapped_column(String(36))
    observer_id: Mapped[str] = mapped_column(String(36))
    instrument_id: Mapped[str] = mapped_column(String(36))
    instrument_version: Mapped[int] = mapped_column(Integer)
    observed_on: Mapped[date] = mapped_column(Date)
    setting: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(32), server_default="live_observation")
    instrument_family: Mapped[str] = mapped_column(String(64), server_default="miiwrap-practice")
    amendments: Mapped[int] = mapped_column(Integer, server_default="0")
    # The service clock's date when recorded: the amendment window counts from it (null before 0003).
    recorded_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    notes: Mapped[str] = mapped_column(Text, default="")
    item_scores: Mapped[dict[str, int]] = mapped_column(JSON)
    total_score: Mapped[float] = mapped_column(Float)
    competency_scores: Mapped[dict[str, float]] = mapped_column(JSON)
    passed: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Amendment(TenantScoped, Base):
    """An observation's scores before and after one amendment: the history is never rewritten."""

    __tablename__ = "observation_amendments"
    __table_args__ = (UniqueConstraint("observation_id", "number"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    observation_id: Mapped[str] = mapped_column(String(36), index=True)
    number: Mapped[int] = mapped_column(Integer)
    amended_by: Mapped[str] = mapped_column(String(36))
    reason: Mapped[str] = mapped_column(Text)
    previous_scores: Mapped[dict[str, int]] = mapped_column(JSON)
    previous_total: Mapped[float] = mapped_column(Float)
    previous_passed: Mapped[bool] = mapped_column(Boolean)
    scores: Mapped[dict[str, int]] = mapped_column(JSON)
    total_score: Mapped[float] = mapped_column(Float)
    passed: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PolicyRow(TenantScoped, Base):
    """An agency's certification policy; an agency without a row uses the defaults."""

    __tablename__ = "certification_policies"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # the agency id
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_by: Mapped[str] = mapped_column(String(36))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CourseCompletion(TenantScoped, Base):
    """Kept from learning's CourseCompleted events."""

    __tablename__ = "course_completions"
    __table_args__ = (UniqueConstraint("agency_id", "person_id", "course_key"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    person_id: Mapped[str] = mapped_column(String(36))
    course_key: Mapped[str] = mapped_column(String(64))
    course_id: Mapped[str] = mapped_column(String(36))
    completed_on: Mapped[date] = mapped_column(Date)


class Certification(TenantScoped, Base):
    """One certification from its grant to its lapse or revocation; renewals extend it.

    A lapsed or revoked certification is never revived: certifying again starts a new one.
    """

    __tablename__ = "certifications"
    __table_args__ = (Index("ix_certifications_person", "agency_id", "person_id", "track"),
                      Index("ix_certifications_live", "status", "expires_on"))

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    person_id: Mapped[str] = mapped_column(String(36))
    track: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(24))
    certified_on: Mapped[date] = mapped_column(Date)
    expires_on: Mapped[date] = mapped_column(Date)
    window_opens_on: Mapped[date] = mapped_column(Date)
    revision: Mapped[int] = mapped_column(Integer)
    evidence: Mapped[list[str]] = mapped_column(JSON)
    ended_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    def to_domain(self) -> domain.Cert:
        return domain.Cert(domain.CertStatus(self.status), self.certified_on, self.expires_on, self.revision)


class TimelineEntry(TenantScoped, Base):
    """Every state a certification passed through, and why (one row per revision)."""

    __tablename__ = "certification_timeline"
    __table_args__ = (UniqueConstraint("certification_id", "revision"),
                      Index("ix_certification_timeline_person", "agency_id", "person_id", "track"))

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    certification_id: Mapped[str] = mapped_column(String(36))
    person_id: Mapped[str] = mapped_column(String(36))
    track: Mapped[str] = mapped_column(String(16))
    revision: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(24))
    on: Mapped[date] = mapped_column(Date)
    expires_on: Mapped[date] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(Text)
    observation_ids: Mapped[list[str]] = mapped_column(JSON)
    actor: Mapped[str | None] = mapped_column(String(36), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CalibrationReference(Base):
    """A master-coded observation raters calibrate against: platform-wide (agency_id null), such as a
    reference video, or an agency's own."""

    __tablename__ = "calibration_references"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    agency_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    instrument_id: Mapped[str] = mapped_column(String(36))
    title: Mapped[str] = mapped_column(String(200))
    reference_rater: Mapped[str] = mapped_column(String(200))
    scores: Mapped[dict[str, int]] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Calibration(TenantScoped, Base):
    __tablename__ = "calibrations"
    __table_args__ = (Index("ix_calibrations_rater", "agency_id", "rater_id", "family", "calibrated_on"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    rater_id: Mapped[str] = mapped_column(String(36))
    family: Mapped[str] = mapped_column(String(64))
    instrument_id: Mapped[str] = mapped_column(String(36))
    reference_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    observation_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    scores: Mapped[dict[str, int]] = mapped_column(JSON)
    agreement: Mapped[float] = mapped_column(Float)
    total_difference: Mapped[float] = mapped_column(Float)
    items_compared: Mapped[int] = mapped_column(Integer)
    mismatched: Mapped[list[str]] = mapped_column(JSON)
    calibrated_on: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class DriftSeries(TenantScoped, Base):
    """The running state of one EWMA series: constant size, updated once per observation."""

    __tablename__ = "drift_series"
    __table_args__ = (UniqueConstraint("agency_id", "person_id", "family", "metric"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    person_id: Mapped[str] = mapped_column(String(36))
    family: Mapped[str] = mapped_column(String(64))
    metric: Mapped[str] = mapped_column(String(200))
    state: Mapped[dict[str, Any]] = mapped_column(JSON)
    flagged: Mapped[str | None] = mapped_column(String(24), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class DriftPoint(TenantScoped, Base):
    """One observation on one series' chart, with the state after it (an amendment replays from here)."""

    __tablename__ = "drift_points"
    __table_args__ = (Index("ix_drift_points_series", "agency_id", "person_id", "family", "metric", "seq"),
                      Index("ix_drift_points_observation", "observation_id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(String(36))
    family: Mapped[str] = mapped_column(String(64))
    metric: Mapped[str] = mapped_column(String(200))
    seq: Mapped[int] = mapped_column(Integer)
    observation_id: Mapped[str] = mapped_column(String(36))
    observed_on: Mapped[date] = mapped_column(Date)
    certified: Mapped[bool] = mapped_column(Boolean)
    score: Mapped[float] = mapped_column(Float)
    ewma: Mapped[float] = mapped_column(Float)
    centre: Mapped[float] = mapped_column(Float)
    lower_limit: Mapped[float] = mapped_column(Float)
    upper_limit: Mapped[float] = mapped_column(Float)
    pass_threshold: Mapped[float] = mapped_column(Float)
    flagged: Mapped[str | None] = mapped_column(String(24), nullable=True)
    state: Mapped[dict[str, Any]] = mapped_column(JSON)


# Who is active staff of which agency, kept from readiness's events.
ROSTER = Roster(roster_table(Base.metadata))
