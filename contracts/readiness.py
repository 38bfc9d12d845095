"""Events published by the readiness service: the agency, its roster, readiness and implementation.

Readiness is the source of truth for who works where; other services keep their roster from
these events. Staff emails never travel in events.
"""

from datetime import date
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from trellis.envelope import EventPayload

Stage = Literal["exploration", "installation", "initial_implementation", "full_implementation", "sustainment"]
Level = Literal["not_ready", "ready_with_conditions", "ready"]


class AgencyRegistered(EventPayload):
    """A platform admin registered an agency; it starts in Exploration."""

    domain: ClassVar[str] = "readiness"
    name: ClassVar[str] = "AgencyRegistered"

    agency_id: str
    agency_name: str
    region: str
    programs: list[str]


class StaffMemberJoined(EventPayload):
    """A person joined the agency's roster (or rejoined it), with their roles."""

    domain: ClassVar[str] = "readiness"
    name: ClassVar[str] = "StaffMemberJoined"

    staff_id: str = Field(description="The person's id, the `sub` of their token")
    display_name: str
    team_id: str | None
    roles: list[str]
    hire_date: date


class StaffMemberLeft(EventPayload):
    """A person left the agency; they are no longer active staff."""

    domain: ClassVar[str] = "readiness"
    name: ClassVar[str] = "StaffMemberLeft"

    staff_id: str
    left_on: date


class StaffRoleChanged(EventPayload):
    """A staff member's roles or team changed; `roles` and `team_id` are the new values."""

    domain: ClassVar[str] = "readiness"
    name: ClassVar[str] = "StaffRoleChanged"

    staff_id: str
    roles: list[str]
    previous_roles: list[str]
    team_id: str | None
    previous_team_id: str | None


class DomainResult(BaseModel):
    """One readiness domain of a closed round, inside ReadinessAssessed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str
    status: Literal["ok", "gap", "insufficient"] = Field(
        description="insufficient: fewer respondents than the privacy floor, so no figures are given")
    respondents: int
    mean: float | None = Field(default=None, description="Mean of respondents' domain scores, 1-5")
    spread: float | None = Field(default=None, description="Standard deviation of respondents' domain scores")
    agreement: float | None = Field(default=None, description="rwg(J) within-group agreement, 0-1")


class ReadinessAssessed(EventPayload):
    """A readiness round closed; results per domain (never per person) and the overall level."""

    domain: ClassVar[str] = "readiness"
    name: ClassVar[str] = "ReadinessAssessed"

    round_id: str
    instrument_id: str
    instrument_version: int
    closed_on: date
    respondents: int
    level: Level
    domains: list[DomainResult]


class ImplementationPlanApproved(EventPayload):
    """An agency admin approved the co-created implementation plan."""

    domain: ClassVar[str] = "readiness"
    name: ClassVar[str] = "ImplementationPlanApproved"

    plan_id: str
    approved_by: str
    approved_on: date
    revision: int = Field(description="1 for the first approval, then one more per re-approval")
    actions: int


class PlanActionCompleted(EventPayload):
    """An action of the implementation plan was marked done."""

    domain: ClassVar[str] = "readiness"
    name: ClassVar[str] = "PlanActionCompleted"

    plan_id: str
    action_id: str
    title: str
    readiness_domain: str | None
    completed_on: date
    due_on: date | None


class ImplementationStageChanged(EventPayload):
    """The agency entered an implementation stage (forward, or back when certification falls)."""

    domain: ClassVar[str] = "readiness"
    name: ClassVar[str] = "ImplementationStageChanged"

    stage: Stage
    previous_stage: Stage | None
    entered_on: date
    reason: str
    certified_share: float | None = Field(
        default=None, description="Share of active practitioners holding a current certification, 0-1")
