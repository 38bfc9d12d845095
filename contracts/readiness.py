"""Events published by the readiness service: the agency, its roster, readiness and implementation.

Readiness is the source of truth for who works where; other services keep their roster from
these events. Staff emails never travel in events.
"""

from datetime import date, datetime
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


class ReadinessRoundOpened(EventPayload):
    """An agency admin opened a readiness round; the agency's staff may now answer it.

    One round is open per agency at a time. The subject is the round id, so this event, the round's
    ReadinessResponseRecorded events and its ReadinessAssessed keep their order.
    """

    domain: ClassVar[str] = "readiness"
    name: ClassVar[str] = "ReadinessRoundOpened"

    round_id: str
    title: str
    instrument_id: str
    instrument_version: int
    opened_at: datetime


class ReadinessResponseRecorded(EventPayload):
    """Someone answered an open readiness round for the first time: only the new respondents count.

    Answers are never shown individually, so this event carries nothing that identifies the person or
    their answers: no staff id, no answers, no answer time of its own; its subject (and ordering key) is
    the round, never the respondent. It is published once per respondent, in the transaction that
    counts them. Changing one's answers publishes nothing: the count is unchanged, and an event would
    only tell subscribers that somebody revised theirs.
    """

    domain: ClassVar[str] = "readiness"
    name: ClassVar[str] = "ReadinessResponseRecorded"

    round_id: str
    respondents: int = Field(ge=1, description="How many people have answered the round, this response included")


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


ActionOrigin = Literal["manual", "suggested"]
ActionStatus = Literal["open", "in_progress", "done", "dropped"]
ActionField = Literal["title", "owner_id", "due_on", "status"]


class PlanActionAdded(EventPayload):
    """An action was added to the implementation plan: by an agency admin, or suggested for a gap of a closed round.

    The subject is the plan, as for the other plan events, so a plan's events keep their order.
    """

    domain: ClassVar[str] = "readiness"
    name: ClassVar[str] = "PlanActionAdded"

    plan_id: str
    action_id: str
    title: str
    readiness_domain: str | None
    owner_id: str | None = Field(description="The staff member who owns the action, if anyone does yet")
    due_on: date | None
    origin: ActionOrigin = Field(description="manual: added by a person; suggested: for a gap of a closed round")
    round_id: str | None = Field(default=None, description="The closed round whose gap suggested the action")


class PlanActionUpdated(EventPayload):
    """An action's title, owner, due date or status changed, other than being marked done (PlanActionCompleted).

    Carries the action as it is now and which fields changed. A change that sets the same values
    publishes nothing.
    """

    domain: ClassVar[str] = "readiness"
    name: ClassVar[str] = "PlanActionUpdated"

    plan_id: str
    action_id: str
    title: str
    readiness_domain: str | None
    owner_id: str | None
    due_on: date | None
    status: ActionStatus
    changed: list[ActionField] = Field(description="The fields this change moved; never empty")


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
