"""Events published by the community service: learning sessions, registration, attendance,
continuing education and ECHO-style case consultation.

Subjects carry the agency of the person an event concerns; events about a whole program or
session use `platform`. Case texts never travel in events: they stay in the community service,
screened and audited. Recommendations do, because they are written by the hub for the presenter.
"""

from datetime import date, datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, Field

from trellis.envelope import EventPayload

PLATFORM = "platform"
ReminderLead = Literal["24h", "1h"]
AttendanceSource = Literal["check_in", "import", "adjustment"]
CancelReason = Literal["cancelled", "offer_expired", "offer_declined", "session_cancelled", "left_roster"]


class SessionScheduled(EventPayload):
    """A session of a program was scheduled, or its time, capacity or topic changed (subject `platform`)."""

    domain: ClassVar[str] = "community"
    name: ClassVar[str] = "SessionScheduled"

    session_id: str
    program_id: str
    title: str
    topic: str = ""
    starts_at: datetime = Field(description="UTC")
    ends_at: datetime = Field(description="UTC")
    timezone: str = Field(description="IANA time zone the session is held in, e.g. America/Chicago")
    capacity: int = Field(ge=1)
    competencies: list[str] = Field(default_factory=list, description="Competency tags from fidelity's instruments")
    revision: int = Field(default=1, ge=1, description="Counts changes to the session; apply only a higher one")


class SessionCancelled(EventPayload):
    """A session was cancelled; its registrations are cancelled with reason `session_cancelled` (subject `platform`)."""

    domain: ClassVar[str] = "community"
    name: ClassVar[str] = "SessionCancelled"

    session_id: str
    program_id: str
    starts_at: datetime
    reason: str = ""


class RegistrationConfirmed(EventPayload):
    """A person holds a seat at a session: registered directly, for the series, or from the waiting list."""

    domain: ClassVar[str] = "community"
    name: ClassVar[str] = "RegistrationConfirmed"

    registration_id: str
    session_id: str
    program_id: str
    person_id: str
    starts_at: datetime
    via: Literal["direct", "series", "waitlist"] = "direct"


class WaitlistOffered(EventPayload):
    """A freed seat is offered to the first person waiting, until `expires_at` (then it passes on)."""

    domain: ClassVar[str] = "community"
    name: ClassVar[str] = "WaitlistOffered"

    registration_id: str
    session_id: str
    program_id: str
    person_id: str
    expires_at: datetime = Field(description="UTC; at most the session's start")


class RegistrationCancelled(EventPayload):
    """A registration, confirmed, waiting or offered, ended without attendance."""

    domain: ClassVar[str] = "community"
    name: ClassVar[str] = "RegistrationCancelled"

    registration_id: str
    session_id: str
    program_id: str
    person_id: str
    was: Literal["confirmed", "waiting", "offered"]
    reason: CancelReason = "cancelled"


class SessionReminderDue(EventPayload):
    """Published once per registrant 24 hours and once 1 hour before a session starts."""

    domain: ClassVar[str] = "community"
    name: ClassVar[str] = "SessionReminderDue"

    session_id: str
    program_id: str
    registration_id: str
    person_id: str
    lead: ReminderLead
    title: str
    starts_at: datetime = Field(description="UTC")
    timezone: str


class AttendanceRecorded(EventPayload):
    """A person's attendance at a session was recorded or changed (check-in, report import, adjustment)."""

    domain: ClassVar[str] = "community"
    name: ClassVar[str] = "AttendanceRecorded"

    session_id: str
    program_id: str
    person_id: str
    attended: bool
    minutes_present: int = Field(ge=0)
    share: float = Field(ge=0, le=1, description="Share of the session the person was present for")
    source: AttendanceSource
    revision: int = Field(default=1, ge=1, description="Counts changes to this attendance; apply only a higher one")


class ContinuingEducationEarned(EventPayload):
    """A person met a program's continuing-education rule; a certificate with a verification code exists."""

    domain: ClassVar[str] = "community"
    name: ClassVar[str] = "ContinuingEducationEarned"

    certificate_id: str
    program_id: str
    person_id: str
    cycle: str = Field(description="Which cycle of the program the rule was met for")
    sessions: list[str] = Field(description="Ids of the sessions counted")
    hours: float = Field(ge=0)
    verification_code: str
    issued_on: date


class Recommendation(BaseModel):
    id: str
    text: str
    assigned_to: str = Field(description="Person id, the presenter")
    due_on: date | None = None


class CaseRecommendationsIssued(EventPayload):
    """The hub issued written recommendations to a case's presenter (coaching can turn them into tasks)."""

    domain: ClassVar[str] = "community"
    name: ClassVar[str] = "CaseRecommendationsIssued"

    case_id: str
    session_id: str
    program_id: str
    presenter_id: str
    recommendations: list[Recommendation]
    follow_up_on: date


class CaseFollowUpReported(EventPayload):
    """At follow-up the presenter reported what happened with the recommendations."""

    domain: ClassVar[str] = "community"
    name: ClassVar[str] = "CaseFollowUpReported"

    case_id: str
    session_id: str
    program_id: str
    presenter_id: str
    reported_on: date
