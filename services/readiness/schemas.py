"""Readiness request and response bodies."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.readiness.domain import STAFF_ROLES, ActionStatus, Level, Stage
from trellis.inputs import Day, Int, Number

StaffRole = Literal[STAFF_ROLES]  # type: ignore[valid-type]
Name = Field(min_length=1, max_length=200)


class In(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _strip(v: object) -> object:
    return v.strip() if isinstance(v, str) else v


class AgencyIn(In):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "name": "Riverside Family Services", "region": "North County", "programs": ["High-fidelity wraparound"]}]})

    name: str = Name
    region: str = Field(default="", max_length=200)
    programs: list[str] = Field(default_factory=list, max_length=50)
    id: UUID | None = Field(default=None, description="Optional: the agency id your identity provider uses")

    _s = field_validator("name", "region", mode="before")(_strip)

    @field_validator("name")
    @classmethod
    def not_blank(cls, v: str) -> str:
        if not v:
            raise ValueError("must not be blank")
        return v


class AgencyPatch(In):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    region: str | None = Field(default=None, max_length=200)
    programs: list[str] | None = Field(default=None, max_length=50)
    ready_at: Number | None = Field(default=None, ge=1, le=5, description="Platform admins only")
    conditions_at: Number | None = Field(default=None, ge=1, le=5, description="Platform admins only")
    min_respondents: Int | None = Field(default=None, ge=5, le=1000, description="Platform admins only")


class ClearanceOut(BaseModel):
    cleared: bool
    reasons: list[str]


class PolicyOut(BaseModel):
    ready_at: float
    conditions_at: float
    min_respondents: int


class AgencyOut(BaseModel):
    id: str
    name: str
    region: str
    programs: list[str]
    stage: Stage
    stage_entered_on: date
    readiness_level: Level | None = Field(description="Level of the latest closed readiness round")
    plan_approved: bool
    training_clearance: ClearanceOut
    policy: PolicyOut
    created_at: datetime


class AgencyPage(BaseModel):
    items: list[AgencyOut]
    next: str | None


class TeamIn(In):
    name: str = Field(min_length=1, max_length=120)


class TeamOut(BaseModel):
    id: str
    agency_id: str
    name: str
    created_at: datetime


class TeamPage(BaseModel):
    items: list[TeamOut]
    next: str | None


class StaffIn(In):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "name": "Ana Ruiz", "email": "ana.ruiz@example.org", "roles": ["practitioner"], "hire_date": "2026-03-02"}]})

    name: str = Name
    email: str = Field(pattern=r"^[^@\s,;]+@[^@\s,;]+\.[^@\s,;]+$", max_length=320)
    roles: list[StaffRole] = Field(min_length=1, max_length=len(STAFF_ROLES))
    team_id: UUID | None = None
    hire_date: Day | None = Field(default=None, description="Default: today")
    id: UUID | None = Field(default=None, description="The person's identity-provider subject, if it is a UUID")


class StaffPatch(In):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    roles: list[StaffRole] | None = Field(default=None, min_length=1, max_length=len(STAFF_ROLES))
    team_id: UUID | None = None


class LeaveIn(In):
    left_on: Day | None = Field(default=None, description="Default: today")


class RejoinIn(In):
    hire_date: Day | None = Field(default=None, description="The new hire date; default today")
    roles: list[StaffRole] | None = Field(default=None, min_length=1, max_length=len(STAFF_ROLES),
                                          description="Default: the roles they had")
    team_id: UUID | None = None


class StaffOut(BaseModel):
    id: str
    agency_id: str
    name: str
    email: str
    team_id: str | None
    roles: list[str]
    hire_date: date
    status: Literal["active", "left"]
    left_on: date | None


class StaffPage(BaseModel):
    items: list[StaffOut]
    next: str | None


class ImportOut(BaseModel):
    dry_run: bool
    rows: int
    created: int
    updated: int
    unchanged: int


class TurnoverFigures(BaseModel):
    active: int
    joined_12m: int
    left_12m: int
    new_staff_share: float | None = Field(description="Share of active staff with under 6 months' tenure")
    turnover_rate: float | None = Field(description="Left in 12 months / average headcount (now and a year ago)")


class TeamTurnover(TurnoverFigures):
    team_id: str | None
    team_name: str


class TurnoverOut(BaseModel):
    as_of: date
    agency: TurnoverFigures
    teams: list[TeamTurnover]


class DomainOut(BaseModel):
    key: str
    label: str
    description: str


class StatementOut(BaseModel):
    key: str
    domain: str
    text: str


class InstrumentOut(BaseModel):
    id: str
    name: str
    version: int
    status: str
    scale_min: int
    scale_max: int
    domains: list[DomainOut]
    items: list[StatementOut]


class InstrumentPage(BaseModel):
    items: list[InstrumentOut]
    next: str | None


class RoundIn(In):
    title: str = Field(min_length=1, max_length=200)
    instrument_id: UUID | None = Field(default=None, description="Default: the active readiness instrument")


class DomainResultOut(BaseModel):
    key: str
    status: Literal["ok", "gap", "insufficient"]
    respondents: int
    mean: float | None
    spread: float | None
    agreement: float | None = Field(description="rwg(J), 0-1; 0.7 or more is usually read as agreement")


class RoundOut(BaseModel):
    id: str
    agency_id: str
    instrument_id: str
    title: str
    status: Literal["open", "closed"]
    opened_at: datetime
    closed_at: datetime | None
    respondents: int
    level: Level | None
    reasons: list[str]
    results: list[DomainResultOut]
    policy: PolicyOut


class RoundPage(BaseModel):
    items: list[RoundOut]
    next: str | None


class AnswersIn(In):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "answers": {"leadership_commitment_1": 4, "change_efficacy_2": 3}}]})

    answers: dict[str, Int] = Field(description="Item key → 1-5; leave out items you cannot judge", max_length=500)


class AnswersOut(BaseModel):
    round_id: str
    answers: dict[str, int]
    submitted_at: datetime
    updated_at: datetime


class ComparisonRow(BaseModel):
    key: str
    base: DomainResultOut | None
    other: DomainResultOut | None
    change: float | None


class ComparisonOut(BaseModel):
    base: str
    other: str
    base_level: Level | None
    other_level: Level | None
    domains: list[ComparisonRow]


class ActionIn(In):
    title: str = Field(min_length=1, max_length=300)
    readiness_domain: str | None = Field(default=None, max_length=64)
    owner_id: UUID | None = None
    due_on: Day | None = None


class ActionPatch(In):
    title: str | None = Field(default=None, min_length=1, max_length=300)
    owner_id: UUID | None = None
    due_on: Day | None = None
    status: ActionStatus | None = None


class ActionOut(BaseModel):
    id: str
    plan_id: str
    title: str
    readiness_domain: str | None
    owner_id: str | None
    due_on: date | None
    status: ActionStatus
    origin: Literal["manual", "suggested"]
    round_id: str | None
    completed_on: date | None
    overdue: bool
    created_at: datetime


class ActionPage(BaseModel):
    items: list[ActionOut]
    next: str | None


class PlanOut(BaseModel):
    id: str
    agency_id: str
    approved: bool
    approved_at: datetime | None
    approved_by: str | None
    approved_revision: int
    changed_since_approval: bool
    actions: list[ActionOut]
    open_actions: int
    overdue_actions: int


class CommentIn(In):
    body: str = Field(min_length=1, max_length=5000)
    action_id: UUID | None = None


class CommentOut(BaseModel):
    id: str
    plan_id: str
    action_id: str | None
    author_id: str
    author_kind: Literal["agency", "partner"]
    body: str
    created_at: datetime


class CommentPage(BaseModel):
    items: list[CommentOut]
    next: str | None


class StageOut(BaseModel):
    stage: Stage
    previous_stage: Stage | None
    entered_on: date
    reason: str
    certified_share: float | None


class StageHistory(BaseModel):
    current: Stage
    entered_on: date
    history: list[StageOut]
