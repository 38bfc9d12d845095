"""Community request and response bodies: attendance, report imports, adjustments and certificates."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from services.community.schemas.inputs import In
from trellis.inputs import Bool, Int

AttendanceSource = Literal["check_in", "import", "adjustment"]


class SegmentOut(BaseModel):
    joined_at: datetime
    left_at: datetime


class AttendanceOut(BaseModel):
    session_id: str
    person_id: str
    agency_id: str
    display_name: str = Field(description="From the roster's names; the person id when not known yet")
    attended: bool
    minutes_present: int
    share: float = Field(description="Share of the session the person was present for, 0..1")
    source: AttendanceSource
    segments: list[SegmentOut] = Field(description="Merged join/leave segments, clipped to the session (UTC)")
    revision: int
    recorded_at: datetime


class AttendanceList(BaseModel):
    items: list[AttendanceOut]
    threshold: float = Field(description="The program's share of a session that counts as attended")


class CheckInIn(In):
    """The hub marks a person present for the whole session."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "person_id": "0190a000-0000-7000-8000-0000000000a1", "walk_in": False}]})

    person_id: UUID
    walk_in: Bool = Field(False, description="Record someone who did not register")


class ImportIn(In):
    """A video platform's participant report, as CSV text."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "csv": "Name (Original Name),User Email,Join Time,Leave Time,Duration (Minutes),Guest\n"
               "Ana Ruiz,ana@example.org,01/05/2027 10:02:13 AM,01/05/2027 11:00:00 AM,58,No\n",
        "format": "auto", "mapping": {}, "dry_run": True}]})

    csv: str = Field(min_length=1, max_length=900_000)
    format: Literal["auto", "zoom", "bbb"] = "auto"
    mapping: dict[str, UUID] = Field(default_factory=dict, max_length=2000,
                                     description="Participant name or email → person id, before matching by name")
    dry_run: Bool = Field(False, description="Show what would be recorded, and record nothing")


class MatchedOut(BaseModel):
    name: str
    email: str | None
    person_id: str
    minutes: int
    kept_adjustment: bool = Field(description="The person's attendance was adjusted by hand and is kept")


class UnmatchedOut(BaseModel):
    name: str
    email: str | None
    minutes: int


class ImportOut(BaseModel):
    format: Literal["zoom", "bbb"]
    imported: int = Field(description="Attendance rows written or changed (would be, on a dry run)")
    dry_run: bool
    matched: list[MatchedOut]
    unmatched: list[UnmatchedOut]
    attendance: list[AttendanceOut]


class AdjustIn(In):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "attended": True, "reason": "Joined by phone; the report missed the dial-in"}]})

    attended: Bool | None = None
    minutes_present: Int | None = Field(None, ge=0, le=24 * 60, description="At most the longest session")
    reason: str = Field(min_length=1, max_length=2000)


class AdjustmentOut(BaseModel):
    id: str
    adjusted_by: str
    adjusted_at: datetime
    reason: str
    before: dict[str, Any] | None
    after: dict[str, Any]


class AdjustmentList(BaseModel):
    items: list[AdjustmentOut]


class SessionLine(BaseModel):
    id: str
    title: str
    starts_at: datetime
    hours: float


class CertificateOut(BaseModel):
    id: str
    program_id: str
    program_title: str
    person_id: str
    person_name: str
    agency_id: str
    agency_name: str
    cycle: str = Field(description="The calendar year, in the program's time zone, the rule was met for")
    sessions: list[SessionLine]
    hours: float
    verification_code: str = Field(description="12 characters (Crockford base32); shown as XXXX-XXXX-XXXX")
    issued_on: date


class CertificatePage(BaseModel):
    items: list[CertificateOut]
    next: str | None


class VerificationOut(BaseModel):
    valid: bool
    person_name: str
    agency_name: str
    program_title: str
    cycle: str
    hours: float
    sessions: list[SessionLine]
    issued_on: date
