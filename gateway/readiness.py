"""The readiness service in the graph: agencies, their roster, readiness rounds, the plan and stages.

Nested fields are resolvers, so a field that is not asked for costs no upstream call."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any
from urllib.parse import quote

import strawberry
from strawberry.scalars import JSON

from gateway.context import Ctx
from gateway.fidelity import FidelitySummary, fidelity_summary

IdempotencyKey = Annotated[str | None, strawberry.argument(
    description="Makes a retried mutation safe (the service honours it on POST)")]


def agency_path(agency_id: str) -> str:
    return f"/v1/agencies/{quote(str(agency_id), safe='')}"  # an id cannot reach another route


def opt_date(v: str | None) -> date | None:
    return date.fromisoformat(v) if v else None


def opt_datetime(v: str | None) -> datetime | None:
    return datetime.fromisoformat(v) if v else None


def body_of(**fields: Any) -> dict[str, Any]:
    """A REST body: dates as ISO text; UNSET fields are left out so the service keeps their value."""
    return {k: v.isoformat() if isinstance(v, date) else v for k, v in fields.items() if v is not strawberry.UNSET}


@strawberry.type
class TrainingClearance:
    cleared: bool
    reasons: list[str]


@strawberry.type
class ReadinessPolicy:
    ready_at: float
    conditions_at: float
    min_respondents: int

    @classmethod
    def from_rest(cls, p: dict[str, Any]) -> ReadinessPolicy:
        return cls(ready_at=p["ready_at"], conditions_at=p["conditions_at"], min_respondents=p["min_respondents"])


@strawberry.type
class Team:
    id: strawberry.ID
    agency_id: strawberry.ID
    name: str
    created_at: datetime

    @classmethod
    def from_rest(cls, t: dict[str, Any]) -> Team:
        return cls(id=t["id"], agency_id=t["agency_id"], name=t["name"],
                   created_at=datetime.fromisoformat(t["created_at"]))


@strawberry.type
class StaffMember:
    id: strawberry.ID
    agency_id: strawberry.ID
    name: str
    email: str
    team_id: strawberry.ID | None
    roles: list[str]
    hire_date: date
    status: str = strawberry.field(description="active or left")
    left_on: date | None

    @classmethod
    def from_rest(cls, m: dict[str, Any]) -> StaffMember:
        return cls(id=m["id"], agency_id=m["agency_id"], name=m["name"], email=m["email"], team_id=m["team_id"],
                   roles=m["roles"], hire_date=date.fromisoformat(m["hire_date"]), status=m["status"],
                   left_on=opt_date(m["left_on"]))


@strawberry.type
class ImportResult:
    dry_run: bool
    rows: int
    created: int
    updated: int
    unchanged: int


@strawberry.type
class ReadinessDomainResult:
    key: str
    status: str = strawberry.field(description="ok, gap, or insufficient (too few respondents to show figures)")
    respondents: int
    mean: float | None
    spread: float | None
    agreement: float | None = strawberry.field(description="rwg(J), 0-1; 0.7 or more is usually read as agreement")


@strawberry.type
class ReadinessRound:
    id: strawberry.ID
    agency_id: strawberry.ID
    instrument_id: strawberry.ID
    title: str
    status: str = strawberry.field(description="open or closed")
    opened_at: datetime
    closed_at: datetime | None
    respondents: int
    level: str | None = strawberry.field(description="not_ready, ready_with_conditions or ready, once closed")
    reasons: list[str]
    results: list[ReadinessDomainResult]
    policy: ReadinessPolicy

    @classmethod
    def from_rest(cls, r: dict[str, Any]) -> ReadinessRound:
        return cls(id=r["id"], agency_id=r["agency_id"], instrument_id=r["instrument_id"], title=r["title"],
                   status=r["status"], opened_at=datetime.fromisoformat(r["opened_at"]),
                   closed_at=opt_datetime(r["closed_at"]), respondents=r["respondents"], level=r["level"],
                   reasons=r["reasons"], results=[ReadinessDomainResult(**d) for d in r["results"]],
                   policy=ReadinessPolicy.from_rest(r["policy"]))


@strawberry.type
class ReadinessAnswers:
    round_id: strawberry.ID
    answers: JSON = strawberry.field(description="Item key → 1-5")
    submitted_at: datetime
    updated_at: datetime


@strawberry.type
class PlanAction:
    id: strawberry.ID
    plan_id: strawberry.ID
    title: str
    readiness_domain: str | None
    owner_id: strawberry.ID | None
    due_on: date | None
    status: str = strawberry.field(description="open, in_progress, done or dropped")
    origin: str = strawberry.field(description="manual, or suggested by a readiness round's gaps")
    round_id: strawberry.ID | None
    completed_on: date | None
    overdue: bool
    created_at: datetime

    @classmethod
    def from_rest(cls, a: dict[str, Any]) -> PlanAction:
        return cls(id=a["id"], plan_id=a["plan_id"], title=a["title"], readiness_domain=a["readiness_domain"],
                   owner_id=a["owner_id"], due_on=opt_date(a["due_on"]), status=a["status"], origin=a["origin"],
                   round_id=a["round_id"], completed_on=opt_date(a["completed_on"]), overdue=a["overdue"],
                   created_at=datetime.fromisoformat(a["created_at"]))


@strawberry.type
class PlanComment:
    id: strawberry.ID
    plan_id: strawberry.ID
    action_id: strawberry.ID | None
    author_id: strawberry.ID
    author_kind: str = strawberry.field(description="agency, or partner (the implementation partner)")
    body: str
    created_at: datetime

    @classmethod
    def from_rest(cls, c: dict[str, Any]) -> PlanComment:
        return cls(id=c["id"], plan_id=c["plan_id"], action_id=c["action_id"], author_id=c["author_id"],
                   author_kind=c["author_kind"], body=c["body"], created_at=datetime.fromisoformat(c["created_at"]))


@strawberry.type
class Plan:
    id: strawberry.ID
    agency_id: strawberry.ID
    approved: bool
    approved_at: datetime | None
    approved_by: strawberry.ID | None
    approved_revision: int
    changed_since_approval: bool
    actions: list[PlanAction]
    open_actions: int
    overdue_actions: int

    @classmethod
    def from_rest(cls, p: dict[str, Any]) -> Plan:
        return cls(id=p["id"], agency_id=p["agency_id"], approved=p["approved"],
                   approved_at=opt_datetime(p["approved_at"]), approved_by=p["approved_by"],
                   approved_revision=p["approved_revision"], changed_since_approval=p["changed_since_approval"],
                   actions=[PlanAction.from_rest(a) for a in p["actions"]], open_actions=p["open_actions"],
                   overdue_actions=p["overdue_actions"])

    @strawberry.field(description="Comments on the plan and its actions, oldest first")
    async def comments(self, info: Ctx) -> list[PlanComment]:
        rows = await info.context.readiness.get_all(f"{agency_path(self.agency_id)}/plan/comments", [])
        return [PlanComment.from_rest(c) for c in rows]


@strawberry.type
class StageEntry:
    stage: str
    previous_stage: str | None
    entered_on: date
    reason: str
    certified_share: float | None


@strawberry.type
class TurnoverFigures:
    active: int
    joined_12m: int
    left_12m: int
    new_staff_share: float | None = strawberry.field(description="Share of active staff under 6 months' tenure")
    turnover_rate: float | None = strawberry.field(description="Left in 12 months / average headcount")


@strawberry.type
class TeamTurnover(TurnoverFigures):
    team_id: strawberry.ID | None
    team_name: str


@strawberry.type
class Turnover:
    as_of: date
    agency: TurnoverFigures
    teams: list[TeamTurnover]


@strawberry.type
class Agency:
    id: strawberry.ID
    name: str
    region: str
    programs: list[str]
    stage: str = strawberry.field(description="The implementation stage, e.g. exploration or installation")
    stage_entered_on: date
    readiness_level: str | None = strawberry.field(description="Level of the latest closed readiness round")
    plan_approved: bool
    training_clearance: TrainingClearance
    policy: ReadinessPolicy
    created_at: datetime

    @classmethod
    def from_rest(cls, a: dict[str, Any]) -> Agency:
        return cls(id=a["id"], name=a["name"], region=a["region"], programs=a["programs"], stage=a["stage"],
                   stage_entered_on=date.fromisoformat(a["stage_entered_on"]), readiness_level=a["readiness_level"],
                   plan_approved=a["plan_approved"], training_clearance=TrainingClearance(**a["training_clearance"]),
                   policy=ReadinessPolicy.from_rest(a["policy"]), created_at=datetime.fromisoformat(a["created_at"]))

    @strawberry.field
    async def teams(self, info: Ctx) -> list[Team]:
        rows = await info.context.readiness.get_all(f"{agency_path(self.id)}/teams", [])
        return [Team.from_rest(t) for t in rows]

    @strawberry.field(description="The roster (not for practitioners); status is active or left, default both")
    async def staff(self, info: Ctx, status: str | None = None) -> list[StaffMember]:
        rows = await info.context.readiness.get_all(f"{agency_path(self.id)}/staff",
                                                    [("status", status)] if status else [])
        return [StaffMember.from_rest(m) for m in rows]

    @strawberry.field(description="Readiness rounds, oldest first")
    async def readiness_rounds(self, info: Ctx) -> list[ReadinessRound]:
        rows = await info.context.readiness.get_all(f"{agency_path(self.id)}/readiness-rounds", [])
        return [ReadinessRound.from_rest(r) for r in rows]

    @strawberry.field(description="The implementation plan and its actions")
    async def plan(self, info: Ctx) -> Plan:
        return Plan.from_rest(await info.context.readiness.get(f"{agency_path(self.id)}/plan"))

    @strawberry.field(description="Every implementation stage entered, oldest first")
    async def stage_history(self, info: Ctx) -> list[StageEntry]:
        got = await info.context.readiness.get(f"{agency_path(self.id)}/stages")
        return [StageEntry(stage=e["stage"], previous_stage=e["previous_stage"],
                           entered_on=date.fromisoformat(e["entered_on"]), reason=e["reason"],
                           certified_share=e["certified_share"]) for e in got["history"]]

    @strawberry.field(description="Joined and left in the trailing 12 months, for the agency and per team")
    async def turnover(self, info: Ctx) -> Turnover:
        t = await info.context.readiness.get(f"{agency_path(self.id)}/turnover")
        return Turnover(as_of=date.fromisoformat(t["as_of"]), agency=TurnoverFigures(**t["agency"]),
                        teams=[TeamTurnover(**row) for row in t["teams"]])

    @strawberry.field(description="From the fidelity service, per agency and team: certified, in the "
                                  "recertification window, lapsed, fidelity over 90 days, drifting")
    async def fidelity_summary(self, info: Ctx, track: str = "practitioner") -> FidelitySummary:
        return await fidelity_summary(info, str(self.id), track)


@strawberry.input
class RegisterAgencyInput:
    name: str
    region: str = ""
    programs: list[str] = strawberry.field(default_factory=list)


@strawberry.input
class AddStaffMemberInput:
    name: str
    email: str
    roles: list[str]
    team_id: strawberry.ID | None = None
    hire_date: date | None = strawberry.field(default=None, description="Default: today")


@strawberry.input
class AddPlanActionInput:
    title: str
    readiness_domain: str | None = None
    owner_id: strawberry.ID | None = None
    due_on: date | None = None


@strawberry.input(description="Only the fields given change; null clears the owner or the due date")
class UpdatePlanActionInput:
    title: str | None = strawberry.UNSET
    owner_id: strawberry.ID | None = strawberry.UNSET
    due_on: date | None = strawberry.UNSET
    status: str | None = strawberry.UNSET


@strawberry.type
class ReadinessQuery:
    @strawberry.field(description="One agency (your own, or any for platform admins)")
    async def agency(self, info: Ctx, id: strawberry.ID) -> Agency | None:
        return Agency.from_rest(await info.context.readiness.get(agency_path(id)))

    @strawberry.field(description="Every agency for platform admins, your own for everyone else")
    async def agencies(self, info: Ctx) -> list[Agency]:
        return [Agency.from_rest(a) for a in await info.context.readiness.get_all("/v1/agencies", [])]


@strawberry.type
class ReadinessMutation:
    @strawberry.mutation(description="Register an agency (platform admins)")
    async def register_agency(self, info: Ctx, input: RegisterAgencyInput,
                              idempotency_key: IdempotencyKey = None) -> Agency:
        body = body_of(name=input.name, region=input.region, programs=input.programs)
        return Agency.from_rest(await info.context.readiness.post("/v1/agencies", body, idempotency_key))

    @strawberry.mutation(description="Add a team (agency admins)")
    async def add_team(self, info: Ctx, agency_id: strawberry.ID, name: str,
                       idempotency_key: IdempotencyKey = None) -> Team:
        row = await info.context.readiness.post(f"{agency_path(agency_id)}/teams", {"name": name}, idempotency_key)
        return Team.from_rest(row)

    @strawberry.mutation(description="Add a person to the roster (agency admins)")
    async def add_staff_member(self, info: Ctx, agency_id: strawberry.ID, input: AddStaffMemberInput,
                               idempotency_key: IdempotencyKey = None) -> StaffMember:
        body = body_of(name=input.name, email=input.email, roles=input.roles, team_id=input.team_id,
                       hire_date=input.hire_date)
        return StaffMember.from_rest(await info.context.readiness.post(f"{agency_path(agency_id)}/staff", body,
                                                                       idempotency_key))

    @strawberry.mutation(description="Import the roster from CSV (name, email, roles separated by ';', and optionally "
                                     "team, hire_date, id): every row valid, or nothing is written")
    async def import_roster(self, info: Ctx, agency_id: strawberry.ID, csv: str, dry_run: bool = False,
                            idempotency_key: IdempotencyKey = None) -> ImportResult:
        got = await info.context.readiness.send(
            "POST", f"{agency_path(agency_id)}/staff/import", content=csv, content_type="text/csv",
            params={"dry_run": str(dry_run).lower()}, idempotency_key=idempotency_key)
        return ImportResult(**got)

    @strawberry.mutation(description="Record that a staff member left the agency (default: today)")
    async def record_staff_left(self, info: Ctx, agency_id: strawberry.ID, staff_id: strawberry.ID,
                                left_on: date | None = None,
                                idempotency_key: IdempotencyKey = None) -> StaffMember:
        path = f"{agency_path(agency_id)}/staff/{quote(str(staff_id), safe='')}/leave"
        return StaffMember.from_rest(await info.context.readiness.post(path, body_of(left_on=left_on),
                                                                       idempotency_key))

    @strawberry.mutation(description="Someone who left comes back: active again, with a new hire date")
    async def record_staff_rejoined(self, info: Ctx, agency_id: strawberry.ID, staff_id: strawberry.ID,
                                    hire_date: date | None = None, roles: list[str] | None = None,
                                    idempotency_key: IdempotencyKey = None) -> StaffMember:
        path = f"{agency_path(agency_id)}/staff/{quote(str(staff_id), safe='')}/rejoin"
        body = body_of(hire_date=hire_date, **({"roles": roles} if roles is not None else {}))
        return StaffMember.from_rest(await info.context.readiness.post(path, body, idempotency_key))

    @strawberry.mutation(description="Open a readiness round (default: the active instrument)")
    async def open_readiness_round(self, info: Ctx, agency_id: strawberry.ID, title: str,
                                   instrument_id: strawberry.ID | None = None,
                                   idempotency_key: IdempotencyKey = None) -> ReadinessRound:
        row = await info.context.readiness.post(f"{agency_path(agency_id)}/readiness-rounds",
                                                body_of(title=title, instrument_id=instrument_id), idempotency_key)
        return ReadinessRound.from_rest(row)

    @strawberry.mutation(description="Give or change your own answers while the round is open")
    async def submit_readiness_response(self, info: Ctx, agency_id: strawberry.ID, round_id: strawberry.ID,
                                        answers: JSON,
                                        idempotency_key: IdempotencyKey = None) -> ReadinessAnswers:
        path = f"{agency_path(agency_id)}/readiness-rounds/{quote(str(round_id), safe='')}/responses/me"
        got = await info.context.readiness.send("PUT", path, json={"answers": answers},
                                                idempotency_key=idempotency_key)
        return ReadinessAnswers(round_id=got["round_id"], answers=got["answers"],
                                submitted_at=datetime.fromisoformat(got["submitted_at"]),
                                updated_at=datetime.fromisoformat(got["updated_at"]))

    @strawberry.mutation(description="Close the round: results per domain, the level, suggested actions for gaps")
    async def close_readiness_round(self, info: Ctx, agency_id: strawberry.ID, round_id: strawberry.ID,
                                    idempotency_key: IdempotencyKey = None) -> ReadinessRound:
        path = f"{agency_path(agency_id)}/readiness-rounds/{quote(str(round_id), safe='')}/close"
        return ReadinessRound.from_rest(await info.context.readiness.send("POST", path,
                                                                          idempotency_key=idempotency_key))

    @strawberry.mutation(description="Add an action to the implementation plan")
    async def add_plan_action(self, info: Ctx, agency_id: strawberry.ID, input: AddPlanActionInput,
                              idempotency_key: IdempotencyKey = None) -> PlanAction:
        body = body_of(title=input.title, readiness_domain=input.readiness_domain, owner_id=input.owner_id,
                       due_on=input.due_on)
        return PlanAction.from_rest(await info.context.readiness.post(f"{agency_path(agency_id)}/plan/actions",
                                                                      body, idempotency_key))

    @strawberry.mutation(description="Change a plan action; status done completes it")
    async def update_plan_action(self, info: Ctx, agency_id: strawberry.ID, action_id: strawberry.ID,
                                 input: UpdatePlanActionInput,
                                 idempotency_key: IdempotencyKey = None) -> PlanAction:
        path = f"{agency_path(agency_id)}/plan/actions/{quote(str(action_id), safe='')}"
        body = body_of(title=input.title, owner_id=input.owner_id, due_on=input.due_on, status=input.status)
        return PlanAction.from_rest(await info.context.readiness.send("PATCH", path, json=body,
                                                                      idempotency_key=idempotency_key))

    @strawberry.mutation(description="Comment on the plan, or on one of its actions")
    async def comment_on_plan(self, info: Ctx, agency_id: strawberry.ID, body: str,
                              action_id: strawberry.ID | None = None,
                              idempotency_key: IdempotencyKey = None) -> PlanComment:
        row = await info.context.readiness.post(f"{agency_path(agency_id)}/plan/comments",
                                                body_of(body=body, action_id=action_id), idempotency_key)
        return PlanComment.from_rest(row)

    @strawberry.mutation(description="Approve the plan (the agency's own admins)")
    async def approve_plan(self, info: Ctx, agency_id: strawberry.ID,
                           idempotency_key: IdempotencyKey = None) -> Plan:
        path = f"{agency_path(agency_id)}/plan/approve"
        return Plan.from_rest(await info.context.readiness.send("POST", path, idempotency_key=idempotency_key))
