"""Community request and response bodies: programs, their recurrence and their sessions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, StrictFloat

from services.community.schemas.inputs import In, Instant
from services.community.schemas.registration import RegistrationOut
from trellis.inputs import Bool, Int, Number

Tag = Annotated[str, Field(min_length=1, max_length=100)]
# StrictFloat: ints yes, bools and numeric strings no (as trellis.inputs.Number), with its bounds in the schema.
Share = Annotated[StrictFloat, Field(gt=0, le=1)]


class Material(In):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=200)
    url: HttpUrl


class MaterialOut(BaseModel):
    title: str
    url: str


class RecurrenceIn(In):
    """RFC 5545: DTSTART as local wall time in the program's time zone, and an RRULE value."""

    model_config = ConfigDict(extra="forbid")

    dtstart: str = Field(description="Local wall time without offset, e.g. 2027-01-05T10:00:00", max_length=19)
    rrule: str = Field(min_length=1, max_length=500,
                       description="e.g. FREQ=WEEKLY;INTERVAL=2;BYDAY=TU;UNTIL=20270629T235959Z")


class ShareRule(In):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["share"] = "share"
    min_share: Number = Field(0.8, gt=0, le=1, description="Share of a cycle's sessions attended")


class CountRule(In):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["count"] = "count"
    sessions: Int = Field(ge=1, le=500)


CERule = Annotated[ShareRule | CountRule, Field(discriminator="kind")]


class HubMemberIn(In):
    model_config = ConfigDict(extra="forbid")

    person_id: UUID
    agency_id: UUID
    role: Literal["facilitator", "expert"] = "expert"


class HubMemberOut(BaseModel):
    person_id: str
    agency_id: str
    role: str


_EXAMPLE = {
    "title": "MiiWrap ECHO: family team meetings", "timezone": "America/Chicago",
    "recurrence": {"dtstart": "2027-01-05T10:00:00", "rrule": "FREQ=WEEKLY;INTERVAL=2;BYDAY=TU;UNTIL=20270629T235959Z"},
    "duration_minutes": 90, "capacity": 20, "topic": "Needs statements", "competencies": ["engagement"],
    "meeting_url": "https://meet.example.org/echo", "ce_rule": {"kind": "share", "min_share": 0.8},
}


class ProgramIn(In):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_EXAMPLE]})

    title: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=5000)
    open_to_all: Bool = True
    agencies: list[UUID] = Field(default_factory=list, max_length=500)
    timezone: str = Field(min_length=1, max_length=64, description="IANA time zone, e.g. America/Chicago")
    recurrence: RecurrenceIn
    duration_minutes: Int = Field(ge=1, le=24 * 60)
    capacity: Int = Field(ge=1, le=10_000)
    session_title: str = Field("", max_length=200)
    topic: str = Field("", max_length=500)
    competencies: list[Tag] = Field(default_factory=list, max_length=50)
    meeting_url: HttpUrl | Literal[""] = ""
    materials: list[Material] = Field(default_factory=list, max_length=50)
    attendance_threshold: Share | None = Field(None, description="Default TRELLIS_COMMUNITY_ATTENDANCE_THRESHOLD")
    offer_hours: Int | None = Field(None, ge=1, le=24 * 14, description="Default TRELLIS_COMMUNITY_OFFER_HOURS")
    ce_rule: CERule = Field(default_factory=ShareRule)
    hub: list[HubMemberIn] = Field(default_factory=list, max_length=50)


class ProgramPatch(In):
    """Any ProgramIn field; recurrence and session fields apply to future, non-detached sessions only."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"recurrence": {"dtstart": "2027-01-05T11:00:00", "rrule": "FREQ=WEEKLY;BYDAY=TU;COUNT=10"}},
        {"capacity": 25}]})

    title: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=5000)
    open_to_all: Bool | None = None
    agencies: list[UUID] | None = Field(None, max_length=500)
    timezone: str | None = Field(None, min_length=1, max_length=64)
    recurrence: RecurrenceIn | None = None
    duration_minutes: Int | None = Field(None, ge=1, le=24 * 60)
    capacity: Int | None = Field(None, ge=1, le=10_000)
    session_title: str | None = Field(None, max_length=200)
    topic: str | None = Field(None, max_length=500)
    competencies: list[Tag] | None = Field(None, max_length=50)
    meeting_url: HttpUrl | Literal[""] | None = None
    materials: list[Material] | None = Field(None, max_length=50)
    attendance_threshold: Share | None = None
    offer_hours: Int | None = Field(None, ge=1, le=24 * 14)
    ce_rule: CERule | None = None


class ProgramOut(BaseModel):
    id: str
    title: str
    description: str
    owner_id: str
    open_to_all: bool
    agencies: list[str]
    timezone: str
    recurrence: RecurrenceIn
    duration_minutes: int
    capacity: int
    session_title: str
    topic: str
    competencies: list[str]
    meeting_url: str | None = Field(description="Only for the hub team")
    materials: list[MaterialOut]
    attendance_threshold: float
    offer_hours: int
    ce_rule: dict[str, object]
    revision: int
    hub: list[HubMemberOut]
    session_count: int = Field(description="Scheduled sessions, past and future")
    next_session_at: datetime | None
    is_hub: bool
    created_at: datetime
    updated_at: datetime


class ProgramPage(BaseModel):
    items: list[ProgramOut]
    next: str | None


class SessionOut(BaseModel):
    id: str
    program_id: str
    program_title: str
    title: str
    topic: str
    starts_at: datetime
    ends_at: datetime
    timezone: str
    capacity: int
    seats_taken: int = Field(description="Confirmed and offered seats")
    waiting: int
    materials: list[MaterialOut]
    competencies: list[str]
    meeting_url: str | None = Field(description="Only for confirmed registrants and the hub team")
    status: Literal["scheduled", "cancelled"]
    detached: bool = Field(description="Moved or edited alone: recurrence edits leave it as it is")
    registration_open: bool
    my_registration: RegistrationOut | None
    is_hub: bool
    revision: int


class SessionPage(BaseModel):
    items: list[SessionOut]
    next: str | None


class SessionPatch(In):
    """Move or edit one session: it is detached from the recurrence from then on."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"starts_at": "2027-01-12T17:00:00Z", "ends_at": "2027-01-12T18:30:00Z"}, {"capacity": 30}]})

    title: str | None = Field(None, min_length=1, max_length=200)
    topic: str | None = Field(None, max_length=500)
    starts_at: Instant | None = Field(None, description="With an offset (UTC 'Z' or local)")
    ends_at: Instant | None = None
    capacity: Int | None = Field(None, ge=1, le=10_000)
    materials: list[Material] | None = Field(None, max_length=50)
    competencies: list[Tag] | None = Field(None, max_length=50)
    meeting_url: HttpUrl | Literal[""] | None = None


class CancelIn(In):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field("", max_length=500)


class CompetencyList(BaseModel):
    items: list[str]
