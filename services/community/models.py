"""Community tables (SQLAlchemy 2, typed).

The community is cross-agency by design: programs and sessions belong to the platform, and rows
about a person carry that person's agency (`agency_id`) without being tenant-scoped, because a
session's roll call spans agencies. Access rules live in the use cases.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Date, Float, Index, Integer, MetaData, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from readmodels.roster import Roster, roster_table
from trellis.db import NAMING, UTCDateTime


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


# ---- directory: names and competencies kept from other services' events ---------------------------


class Person(Base):
    """Display names from readiness (StaffMemberJoined): certificates and the screening's name list."""

    __tablename__ = "people"

    person_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    agency_id: Mapped[str] = mapped_column(String(36), index=True)
    display_name: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Agency(Base):
    __tablename__ = "agencies"

    agency_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Competency(Base):
    """Competencies of fidelity's instruments, learnt from ObservationRecorded: the session tags allowed."""

    __tablename__ = "competencies"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)


# ---- programs and sessions ------------------------------------------------------------------------


class Program(Base):
    __tablename__ = "programs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    owner_id: Mapped[str] = mapped_column(String(36))  # the facilitator who created it
    owner_agency: Mapped[str] = mapped_column(String(36))
    open_to_all: Mapped[bool] = mapped_column(Boolean, default=True)
    agencies: Mapped[list[str]] = mapped_column(JSON, default=list)  # when not open to all
    timezone: Mapped[str] = mapped_column(String(64))
    # RFC 5545: DTSTART as local wall time in `timezone`, and the RRULE value (without "RRULE:").
    dtstart: Mapped[str] = mapped_column(String(19))  # local wall time, ISO "2027-01-05T10:00:00"
    rrule: Mapped[str] = mapped_column(String(500))
    duration_minutes: Mapped[int] = mapped_column(Integer)
    capacity: Mapped[int] = mapped_column(Integer)
    session_title: Mapped[str] = mapped_column(String(200), default="")
    topic: Mapped[str] = mapped_column(String(500), default="")
    competencies: Mapped[list[str]] = mapped_column(JSON, default=list)
    meeting_url: Mapped[str] = mapped_column(String(1000), default="")
    materials: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    attendance_threshold: Mapped[float] = mapped_column(Float, default=0.75)
    offer_hours: Mapped[int] = mapped_column(Integer, default=24)
    ce_rule: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    revision: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class HubMember(Base):
    """A program's hub team: facilitators and subject-matter experts, from any agency."""

    __tablename__ = "hub_members"

    program_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    person_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    agency_id: Mapped[str] = mapped_column(String(36))
    role: Mapped[str] = mapped_column(String(16))  # facilitator | expert


class Session(Base):
    __tablename__ = "sessions"
    __table_args__ = (
        # One session per occurrence of the recurrence: expanding twice (two replicas) adds nothing.
        UniqueConstraint("program_id", "occurrence", name="uq_sessions_program_occurrence"),
        Index("ix_sessions_starts_at", "starts_at"),
        Index("ix_sessions_program_starts", "program_id", "starts_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    program_id: Mapped[str] = mapped_column(String(36))
    # The recurrence instance this session came from (RFC 5545 RECURRENCE-ID, UTC); None for one-offs.
    occurrence: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    title: Mapped[str] = mapped_column(String(200))
    topic: Mapped[str] = mapped_column(String(500), default="")
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    timezone: Mapped[str] = mapped_column(String(64))
    capacity: Mapped[int] = mapped_column(Integer)
    materials: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    competencies: Mapped[list[str]] = mapped_column(JSON, default=list)
    meeting_url: Mapped[str] = mapped_column(String(1000), default="")
    status: Mapped[str] = mapped_column(String(16), default="scheduled")  # scheduled | cancelled
    detached: Mapped[bool] = mapped_column(Boolean, default=False)  # moved or edited alone: recurrence edits skip it
    revision: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


# ---- registration, waiting list, reminders, calendars ---------------------------------------------


class Registration(Base):
    __tablename__ = "registrations"
    __table_args__ = (
        UniqueConstraint("session_id", "person_id", name="uq_registrations_session_person"),
        Index("ix_registrations_session_status", "session_id", "status", "position"),
        Index("ix_registrations_person", "person_id"),
        Index("ix_registrations_offer_expiry", "status", "offer_expires_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    session_id: Mapped[str] = mapped_column(String(36))
    program_id: Mapped[str] = mapped_column(String(36))
    person_id: Mapped[str] = mapped_column(String(36))
    agency_id: Mapped[str] = mapped_column(String(36))
    status: Mapped[str] = mapped_column(String(16))  # confirmed | waiting | offered | cancelled
    # First come, first served: a per-session counter taken under the session's lock.
    position: Mapped[int] = mapped_column(Integer)
    via: Mapped[str] = mapped_column(String(16), default="direct")  # direct | series | waitlist
    offered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    offer_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    registered_by: Mapped[str] = mapped_column(String(36))
    cancel_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SeriesRegistration(Base):
    """A registration for a whole program: sessions created later (the expansion chore, a recurrence
    edit) seat the person too, until it is cancelled or they leave their agency."""

    __tablename__ = "series_registrations"
    __table_args__ = (Index("ix_series_registrations_person", "person_id"),)

    program_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    person_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    agency_id: Mapped[str] = mapped_column(String(36))
    registered_by: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)  # when (re)registered: first come, first served
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ReminderSent(Base):
    """Exactly once per registrant, lead and start: the sweep inserts here with the event, or finds it
    done. A moved session's reminders are due again for its new start."""

    __tablename__ = "reminders_sent"

    session_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    person_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    lead: Mapped[str] = mapped_column(String(8), primary_key=True)  # 24h | 1h
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)  # the start it reminded of
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CalendarFeed(Base):
    """A revocable secret URL for a person's or a program's iCalendar feed."""

    __tablename__ = "calendar_feeds"
    __table_args__ = (Index("ix_calendar_feeds_owner", "owner_kind", "owner_id"),)

    token: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner_kind: Mapped[str] = mapped_column(String(16))  # person | program
    owner_id: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


# ---- attendance and continuing education ----------------------------------------------------------


class Attendance(Base):
    __tablename__ = "attendance"

    session_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    person_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    program_id: Mapped[str] = mapped_column(String(36), index=True)
    agency_id: Mapped[str] = mapped_column(String(36))
    attended: Mapped[bool] = mapped_column(Boolean)
    minutes_present: Mapped[int] = mapped_column(Integer)
    share: Mapped[float] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(16))  # check_in | import | adjustment
    segments: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)  # merged [{join, leave}] UTC
    revision: Mapped[int] = mapped_column(Integer, default=1)
    recorded_by: Mapped[str] = mapped_column(String(36))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AttendanceAdjustment(Base):
    """The audit of a manual change: who, when, why, before and after."""

    __tablename__ = "attendance_adjustments"
    __table_args__ = (Index("ix_attendance_adjustments_session", "session_id", "person_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    session_id: Mapped[str] = mapped_column(String(36))
    person_id: Mapped[str] = mapped_column(String(36))
    adjusted_by: Mapped[str] = mapped_column(String(36))
    adjusted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str] = mapped_column(Text)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    after: Mapped[dict[str, Any]] = mapped_column(JSON)


class Certificate(Base):
    __tablename__ = "certificates"
    __table_args__ = (UniqueConstraint("program_id", "person_id", "cycle", name="uq_certificates_program_person_cycle"),
                      Index("ix_certificates_person", "person_id"))

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    program_id: Mapped[str] = mapped_column(String(36))
    person_id: Mapped[str] = mapped_column(String(36))
    agency_id: Mapped[str] = mapped_column(String(36))
    cycle: Mapped[str] = mapped_column(String(64))
    person_name: Mapped[str] = mapped_column(String(200))
    agency_name: Mapped[str] = mapped_column(String(200))
    program_title: Mapped[str] = mapped_column(String(200))
    sessions: Mapped[list[dict[str, Any]]] = mapped_column(JSON)  # [{id, title, starts_at, hours}]
    hours: Mapped[float] = mapped_column(Float)
    verification_code: Mapped[str] = mapped_column(String(32), unique=True)
    issued_on: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


# ---- case consultation ----------------------------------------------------------------------------


class Case(Base):
    __tablename__ = "cases"
    __table_args__ = (Index("ix_cases_session", "session_id"), Index("ix_cases_presenter", "presenter_id"),
                      Index("ix_cases_state", "state"))

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    session_id: Mapped[str] = mapped_column(String(36))
    program_id: Mapped[str] = mapped_column(String(36))
    presenter_id: Mapped[str] = mapped_column(String(36))
    presenter_agency: Mapped[str] = mapped_column(String(36))
    title: Mapped[str] = mapped_column(String(200))
    # The template's free-text fields: strengths, needs, tried, question (and any the template adds).
    fields: Mapped[dict[str, str]] = mapped_column(JSON)
    findings: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)  # [{field, start, end, kind, text}]
    justifications: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)  # [{field, start, end, reason}]
    state: Mapped[str] = mapped_column(String(24))
    hub_comments: Mapped[str] = mapped_column(Text, default="")
    recommendations: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    follow_up_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    follow_up_report: Mapped[str] = mapped_column(Text, default="")
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    redacted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revision: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Secret per case, never shown: finding ids are keyed with it, so a fixed identifier cannot be
    # recovered by hashing guesses (a ZIP code, a name) against its finding's id.
    finding_key: Mapped[str | None] = mapped_column(String(64), nullable=True)


class CaseRead(Base):
    """Every read of a case, by whom and in which state: the audit log."""

    __tablename__ = "case_reads"
    __table_args__ = (Index("ix_case_reads_case", "case_id", "read_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    case_id: Mapped[str] = mapped_column(String(36))
    reader_id: Mapped[str] = mapped_column(String(36))
    reader_agency: Mapped[str] = mapped_column(String(36))
    reader_roles: Mapped[list[str]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(24))
    read_at: Mapped[datetime] = mapped_column(UTCDateTime)


# Who is active staff of which agency (all agencies), kept from readiness's events.
ROSTER = Roster(roster_table(Base.metadata))
