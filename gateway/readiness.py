"""The readiness service in the graph: agencies, their roster, readiness rounds, the plan and stages.

Types are derived from the generated models of the service's REST bodies (gateway.upstream.readiness):
a field the service renames fails at import, not in a resolver. Nested fields are resolvers, so a field
that is not asked for costs no upstream call. Inputs stay hand-written: the service validates bodies, and
GraphQL's differ (IDs, fields left out of a patch)."""

from __future__ import annotations

from datetime import date
from typing import Annotated
from urllib.parse import quote

import strawberry
from strawberry.dataloader import DataLoader
from strawberry.scalars import JSON

from gateway.clients import BATCH, FromRest, Inputs, UpstreamError, from_model, rest_body
from gateway.context import Ctx
from gateway.fidelity import (
    SHARE_HISTORY_DESCRIPTION,
    CertifiedSharePoint,
    FidelitySummary,
    certified_share_history,
    fidelity_summary,
)
from gateway.upstream import readiness as rest

IdempotencyKey = Annotated[str | None, strawberry.argument(
    description="Makes a retried mutation safe (the service honours it on POST)")]


def agency_path(agency_id: str) -> str:
    return f"/v1/agencies/{quote(str(agency_id), safe='')}"  # an id cannot reach another route


# REST's enums (Literal) are Strings in the graph, as they have always been; ids are IDs.


@from_model(model=rest.ClearanceOut, all_fields=True)
class TrainingClearance(FromRest):
    pass


@from_model(model=rest.PolicyOut, all_fields=True)
class ReadinessPolicy(FromRest):
    pass


@from_model(model=rest.TeamOut)
class Team(FromRest):
    id: strawberry.ID
    agency_id: strawberry.ID
    name: strawberry.auto
    created_at: strawberry.auto


@from_model(model=rest.StaffOut)
class StaffMember(FromRest):
    id: strawberry.ID
    agency_id: strawberry.ID
    name: strawberry.auto
    email: strawberry.auto
    team_id: strawberry.ID | None
    roles: strawberry.auto
    hire_date: strawberry.auto
    status: str = strawberry.field(description="active or left")
    left_on: strawberry.auto


@from_model(model=rest.ImportOut, all_fields=True)
class ImportResult(FromRest):
    pass


@from_model(model=rest.DomainResultOut)
class ReadinessDomainResult(FromRest):
    key: strawberry.auto
    status: str = strawberry.field(description="ok, gap, or insufficient (too few respondents to show figures)")
    respondents: strawberry.auto
    mean: strawberry.auto
    spread: strawberry.auto
    agreement: strawberry.auto = strawberry.field(
        description="rwg(J), 0-1; 0.7 or more is usually read as agreement")


@from_model(model=rest.DomainOut)
class ReadinessDomain(FromRest):
    key: strawberry.auto
    label: strawberry.auto
    description: strawberry.auto


@from_model(model=rest.StatementOut)
class ReadinessStatement(FromRest):
    key: strawberry.auto = strawberry.field(description="The key its answer is given under")
    domain: strawberry.auto = strawberry.field(description="The key of the domain it measures")
    text: strawberry.auto


@from_model(model=rest.InstrumentOut)
class ReadinessInstrument(FromRest):
    id: strawberry.ID
    name: strawberry.auto
    version: strawberry.auto
    status: strawberry.auto
    scale_min: strawberry.auto = strawberry.field(description="Every statement is answered on this scale")
    scale_max: strawberry.auto
    domains: strawberry.auto
    items: strawberry.auto


@from_model(model=rest.AnswersOut)
class ReadinessAnswers(FromRest):
    round_id: strawberry.ID
    answers: JSON = strawberry.field(description="Item key → 1-5")
    submitted_at: strawberry.auto
    updated_at: strawberry.auto


def instruments_loader(info: Ctx) -> DataLoader[str, rest.InstrumentOut | None]:
    """Readiness instruments are few and shared by every agency: one list call serves every round asked for."""

    async def load(ids: list[str]) -> list[rest.InstrumentOut | None]:
        rows = await info.context.readiness.get_all("/v1/readiness-instruments", [], page=rest.InstrumentPage)
        got = {r.id: r for r in rows}
        return [got.get(i) for i in ids]

    return DataLoader(load_fn=load, max_batch_size=BATCH)


@from_model(model=rest.RoundOut)
class ReadinessRound(FromRest):
    id: strawberry.ID
    agency_id: strawberry.ID
    instrument_id: strawberry.ID
    title: strawberry.auto
    status: str = strawberry.field(description="open or closed")
    opened_at: strawberry.auto
    closed_at: strawberry.auto
    respondents: strawberry.auto
    level: str | None = strawberry.field(description="not_ready, ready_with_conditions or ready, once closed")
    reasons: strawberry.auto
    results: strawberry.auto
    policy: strawberry.auto

    @strawberry.field(description="The instrument it asks: its statements, their domains and the answer scale")
    async def instrument(self, info: Ctx) -> ReadinessInstrument | None:
        loader = info.context.loaders.get("readiness_instruments", lambda: instruments_loader(info))
        got = await loader.load(str(self.instrument_id))
        return ReadinessInstrument.from_rest(got) if got is not None else None

    @strawberry.field(description="Your own answers to this round, null until you answer (nobody else's "
                                  "answers are ever shown)")
    async def my_answers(self, info: Ctx) -> ReadinessAnswers | None:
        path = f"{agency_path(self.agency_id)}/readiness-rounds/{quote(str(self.id), safe='')}/responses/me"
        try:
            got = await info.context.readiness.get(path, into=rest.AnswersOut)
        except UpstreamError as e:
            if (e.extensions or {}).get("status") == 404:
                return None  # the round was just read, so 404 means not answered yet
            raise
        return ReadinessAnswers.from_rest(got)


@from_model(model=rest.ActionOut)
class PlanAction(FromRest):
    id: strawberry.ID
    plan_id: strawberry.ID
    title: strawberry.auto
    readiness_domain: strawberry.auto
    owner_id: strawberry.ID | None
    due_on: strawberry.auto
    status: str = strawberry.field(description="open, in_progress, done or dropped")
    origin: str = strawberry.field(description="manual, or suggested by a readiness round's gaps")
    round_id: strawberry.ID | None
    completed_on: strawberry.auto
    overdue: strawberry.auto
    created_at: strawberry.auto


@from_model(model=rest.CommentOut)
class PlanComment(FromRest):
    id: strawberry.ID
    plan_id: strawberry.ID
    action_id: strawberry.ID | None
    author_id: strawberry.ID
    author_kind: str = strawberry.field(description="agency, or partner (the implementation partner)")
    body: strawberry.auto
    created_at: strawberry.auto


@from_model(model=rest.PlanOut)
class Plan(FromRest):
    id: strawberry.ID
    agency_id: strawberry.ID
    approved: strawberry.auto
    approved_at: strawberry.auto
    approved_by: strawberry.ID | None
    approved_revision: strawberry.auto
    changed_since_approval: strawberry.auto
    actions: strawberry.auto
    open_actions: strawberry.auto
    overdue_actions: strawberry.auto

    @strawberry.field(description="Comments on the plan and its actions, oldest first")
    async def comments(self, info: Ctx) -> list[PlanComment]:
        rows = await info.context.readiness.get_all(f"{agency_path(self.agency_id)}/plan/comments", [],
                                                    page=rest.CommentPage)
        return [PlanComment.from_rest(c) for c in rows]


@from_model(model=rest.StageOut)
class StageEntry(FromRest):
    stage: str
    previous_stage: str | None
    entered_on: strawberry.auto
    reason: strawberry.auto
    certified_share: strawberry.auto


@from_model(model=rest.TurnoverFigures)
class TurnoverFigures(FromRest):
    active: strawberry.auto
    joined_12m: strawberry.auto
    left_12m: strawberry.auto
    new_staff_share: strawberry.auto = strawberry.field(
        description="Share of active staff under 6 months' tenure")
    turnover_rate: strawberry.auto = strawberry.field(description="Left in 12 months / average headcount")


@from_model(model=rest.TeamTurnover)
class TeamTurnover(FromRest):
    active: strawberry.auto
    joined_12m: strawberry.auto
    left_12m: strawberry.auto
    new_staff_share: strawberry.auto = strawberry.field(
        description="Share of active staff under 6 months' tenure")
    turnover_rate: strawberry.auto = strawberry.field(description="Left in 12 months / average headcount")
    team_id: strawberry.ID | None
    team_name: strawberry.auto


@from_model(model=rest.TurnoverOut, all_fields=True)
class Turnover(FromRest):
    pass


@from_model(model=rest.AgencyOut)
class Agency(FromRest):
    id: strawberry.ID
    name: strawberry.auto
    region: strawberry.auto
    programs: strawberry.auto
    stage: str = strawberry.field(description="The implementation stage, e.g. exploration or installation")
    stage_entered_on: strawberry.auto
    readiness_level: str | None = strawberry.field(description="Level of the latest closed readiness round")
    plan_approved: strawberry.auto
    training_clearance: strawberry.auto
    policy: strawberry.auto
    created_at: strawberry.auto

    @strawberry.field
    async def teams(self, info: Ctx) -> list[Team]:
        rows = await info.context.readiness.get_all(f"{agency_path(self.id)}/teams", [], page=rest.TeamPage)
        return [Team.from_rest(t) for t in rows]

    @strawberry.field(description="The roster (not for practitioners); status is active or left, default both; "
                                  "role keeps only the people who have it, e.g. practitioner for an observer's "
                                  "picker")
    async def staff(self, info: Ctx, status: str | None = None, role: str | None = None) -> list[StaffMember]:
        params = [(k, v) for k, v in (("status", status), ("role", role)) if v]
        rows = await info.context.readiness.get_all(f"{agency_path(self.id)}/staff", params, page=rest.StaffPage)
        return [StaffMember.from_rest(m) for m in rows]

    @strawberry.field(description="Readiness rounds, oldest first")
    async def readiness_rounds(self, info: Ctx) -> list[ReadinessRound]:
        rows = await info.context.readiness.get_all(f"{agency_path(self.id)}/readiness-rounds", [],
                                                    page=rest.RoundPage)
        return [ReadinessRound.from_rest(r) for r in rows]

    @strawberry.field(description="The implementation plan and its actions")
    async def plan(self, info: Ctx) -> Plan:
        return Plan.from_rest(await info.context.readiness.get(f"{agency_path(self.id)}/plan", into=rest.PlanOut))

    @strawberry.field(description="Every implementation stage entered, oldest first")
    async def stage_history(self, info: Ctx) -> list[StageEntry]:
        got = await info.context.readiness.get(f"{agency_path(self.id)}/stages", into=rest.StageHistory)
        return [StageEntry.from_rest(e) for e in got.history]

    @strawberry.field(description="Joined and left in the trailing 12 months, for the agency and per team")
    async def turnover(self, info: Ctx) -> Turnover:
        return Turnover.from_rest(await info.context.readiness.get(f"{agency_path(self.id)}/turnover",
                                                                   into=rest.TurnoverOut))

    @strawberry.field(description="From the fidelity service, per agency and team: certified, in the "
                                  "recertification window, lapsed, fidelity over 90 days, drifting")
    async def fidelity_summary(self, info: Ctx, track: str = "practitioner") -> FidelitySummary:
        return await fidelity_summary(info, str(self.id), track)

    @strawberry.field(description=SHARE_HISTORY_DESCRIPTION)
    async def certified_share_history(self, info: Ctx, track: str = "practitioner",
                                      months: int = 12) -> list[CertifiedSharePoint]:
        return await certified_share_history(info, str(self.id), track, months)


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
        return Agency.from_rest(await info.context.readiness.get(agency_path(id), into=rest.AgencyOut))

    @strawberry.field(description="Every agency for platform admins, your own for everyone else")
    async def agencies(self, info: Ctx) -> list[Agency]:
        rows = await info.context.readiness.get_all("/v1/agencies", [], page=rest.AgencyPage)
        return [Agency.from_rest(a) for a in rows]

    @strawberry.field(description="Readiness instruments (shared by every agency), with their statements")
    async def readiness_instruments(self, info: Ctx) -> list[ReadinessInstrument]:
        rows = await info.context.readiness.get_all("/v1/readiness-instruments", [], page=rest.InstrumentPage)
        return [ReadinessInstrument.from_rest(r) for r in rows]

    @strawberry.field(description="One readiness instrument, with its statements and answer scale")
    async def readiness_instrument(self, info: Ctx, id: strawberry.ID) -> ReadinessInstrument | None:
        return ReadinessInstrument.from_rest(await info.context.readiness.get(
            f"/v1/readiness-instruments/{quote(str(id), safe='')}", into=rest.InstrumentOut))


@strawberry.type
class ReadinessMutation:
    @strawberry.mutation(description="Register an agency (platform admins)")
    async def register_agency(self, info: Ctx, input: RegisterAgencyInput,
                              idempotency_key: IdempotencyKey = None) -> Agency:
        body = rest_body(rest.AgencyIn, name=input.name, region=input.region, programs=input.programs)
        return Agency.from_rest(await info.context.readiness.post("/v1/agencies", body, idempotency_key,
                                                                  into=rest.AgencyOut, inputs=Inputs("input")))

    @strawberry.mutation(description="Add a team (agency admins)")
    async def add_team(self, info: Ctx, agency_id: strawberry.ID, name: str,
                       idempotency_key: IdempotencyKey = None) -> Team:
        row = await info.context.readiness.post(f"{agency_path(agency_id)}/teams", rest_body(rest.TeamIn, name=name),
                                                idempotency_key, into=rest.TeamOut, inputs=Inputs())
        return Team.from_rest(row)

    @strawberry.mutation(description="Add a person to the roster (agency admins)")
    async def add_staff_member(self, info: Ctx, agency_id: strawberry.ID, input: AddStaffMemberInput,
                               idempotency_key: IdempotencyKey = None) -> StaffMember:
        body = rest_body(rest.StaffIn, name=input.name, email=input.email, roles=input.roles, team_id=input.team_id,
                         hire_date=input.hire_date)
        return StaffMember.from_rest(await info.context.readiness.post(
            f"{agency_path(agency_id)}/staff", body, idempotency_key, into=rest.StaffOut, inputs=Inputs("input")))

    @strawberry.mutation(description="Import the roster from CSV (name, email, roles separated by ';', and optionally "
                                     "team, hire_date, id): every row valid, or nothing is written")
    async def import_roster(self, info: Ctx, agency_id: strawberry.ID, csv: str, dry_run: bool = False,
                            idempotency_key: IdempotencyKey = None) -> ImportResult:
        got = await info.context.readiness.send(
            "POST", f"{agency_path(agency_id)}/staff/import", content=csv, content_type="text/csv",
            params={"dry_run": str(dry_run).lower()}, idempotency_key=idempotency_key, into=rest.ImportOut)
        return ImportResult.from_rest(got)

    @strawberry.mutation(description="Record that a staff member left the agency (default: today)")
    async def record_staff_left(self, info: Ctx, agency_id: strawberry.ID, staff_id: strawberry.ID,
                                left_on: date | None = None,
                                idempotency_key: IdempotencyKey = None) -> StaffMember:
        path = f"{agency_path(agency_id)}/staff/{quote(str(staff_id), safe='')}/leave"
        return StaffMember.from_rest(await info.context.readiness.post(
            path, rest_body(rest.LeaveIn, left_on=left_on), idempotency_key, into=rest.StaffOut, inputs=Inputs()))

    @strawberry.mutation(description="Someone who left comes back: active again, with a new hire date")
    async def record_staff_rejoined(self, info: Ctx, agency_id: strawberry.ID, staff_id: strawberry.ID,
                                    hire_date: date | None = None, roles: list[str] | None = None,
                                    idempotency_key: IdempotencyKey = None) -> StaffMember:
        path = f"{agency_path(agency_id)}/staff/{quote(str(staff_id), safe='')}/rejoin"
        body = rest_body(rest.RejoinIn, hire_date=hire_date, **({"roles": roles} if roles is not None else {}))
        return StaffMember.from_rest(await info.context.readiness.post(path, body, idempotency_key, into=rest.StaffOut,
                                                                       inputs=Inputs()))

    @strawberry.mutation(description="Open a readiness round (default: the active instrument)")
    async def open_readiness_round(self, info: Ctx, agency_id: strawberry.ID, title: str,
                                   instrument_id: strawberry.ID | None = None,
                                   idempotency_key: IdempotencyKey = None) -> ReadinessRound:
        row = await info.context.readiness.post(f"{agency_path(agency_id)}/readiness-rounds",
                                                rest_body(rest.RoundIn, title=title, instrument_id=instrument_id),
                                                idempotency_key, into=rest.RoundOut, inputs=Inputs())
        return ReadinessRound.from_rest(row)

    @strawberry.mutation(description="Give or change your own answers while the round is open")
    async def submit_readiness_response(self, info: Ctx, agency_id: strawberry.ID, round_id: strawberry.ID,
                                        answers: JSON,
                                        idempotency_key: IdempotencyKey = None) -> ReadinessAnswers:
        path = f"{agency_path(agency_id)}/readiness-rounds/{quote(str(round_id), safe='')}/responses/me"
        got = await info.context.readiness.send("PUT", path, json=rest_body(rest.AnswersIn, answers=answers),
                                                idempotency_key=idempotency_key, into=rest.AnswersOut,
                                                inputs=Inputs(verbatim=("answers",)))
        return ReadinessAnswers.from_rest(got)

    @strawberry.mutation(description="Close the round: results per domain, the level, suggested actions for gaps")
    async def close_readiness_round(self, info: Ctx, agency_id: strawberry.ID, round_id: strawberry.ID,
                                    idempotency_key: IdempotencyKey = None) -> ReadinessRound:
        path = f"{agency_path(agency_id)}/readiness-rounds/{quote(str(round_id), safe='')}/close"
        return ReadinessRound.from_rest(await info.context.readiness.send("POST", path, into=rest.RoundOut,
                                                                          idempotency_key=idempotency_key))

    @strawberry.mutation(description="Add an action to the implementation plan")
    async def add_plan_action(self, info: Ctx, agency_id: strawberry.ID, input: AddPlanActionInput,
                              idempotency_key: IdempotencyKey = None) -> PlanAction:
        body = rest_body(rest.ActionIn, title=input.title, readiness_domain=input.readiness_domain,
                         owner_id=input.owner_id, due_on=input.due_on)
        return PlanAction.from_rest(await info.context.readiness.post(
            f"{agency_path(agency_id)}/plan/actions", body, idempotency_key, into=rest.ActionOut,
            inputs=Inputs("input")))

    @strawberry.mutation(description="Change a plan action; status done completes it")
    async def update_plan_action(self, info: Ctx, agency_id: strawberry.ID, action_id: strawberry.ID,
                                 input: UpdatePlanActionInput,
                                 idempotency_key: IdempotencyKey = None) -> PlanAction:
        path = f"{agency_path(agency_id)}/plan/actions/{quote(str(action_id), safe='')}"
        body = rest_body(rest.ActionPatch, title=input.title, owner_id=input.owner_id, due_on=input.due_on,
                         status=input.status)
        return PlanAction.from_rest(await info.context.readiness.send(
            "PATCH", path, json=body, idempotency_key=idempotency_key, into=rest.ActionOut, inputs=Inputs("input")))

    @strawberry.mutation(description="Comment on the plan, or on one of its actions")
    async def comment_on_plan(self, info: Ctx, agency_id: strawberry.ID, body: str,
                              action_id: strawberry.ID | None = None,
                              idempotency_key: IdempotencyKey = None) -> PlanComment:
        row = await info.context.readiness.post(f"{agency_path(agency_id)}/plan/comments",
                                                rest_body(rest.CommentIn, body=body, action_id=action_id),
                                                idempotency_key, into=rest.CommentOut, inputs=Inputs())
        return PlanComment.from_rest(row)

    @strawberry.mutation(description="Approve the plan (the agency's own admins)")
    async def approve_plan(self, info: Ctx, agency_id: strawberry.ID,
                           idempotency_key: IdempotencyKey = None) -> Plan:
        path = f"{agency_path(agency_id)}/plan/approve"
        return Plan.from_rest(await info.context.readiness.send("POST", path, idempotency_key=idempotency_key,
                                                                into=rest.PlanOut))
