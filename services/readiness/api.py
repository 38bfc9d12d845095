"""Readiness REST API: each route checks access, calls one use case in one unit of work, shapes the answer."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response
from uuid6 import uuid7

from services.readiness import domain
from services.readiness import usecases as uc
from services.readiness.models import InstrumentRow, Round, Staff
from services.readiness.models import Response as Answers
from services.readiness.schemas import (
    ActionIn,
    ActionOut,
    ActionPage,
    ActionPatch,
    AgencyIn,
    AgencyOut,
    AgencyPage,
    AgencyPatch,
    AnswersIn,
    AnswersOut,
    CommentIn,
    CommentOut,
    CommentPage,
    ComparisonOut,
    ImportOut,
    InstrumentOut,
    InstrumentPage,
    LeaveIn,
    PlanOut,
    RejoinIn,
    RoundIn,
    RoundOut,
    RoundPage,
    StaffIn,
    StaffOut,
    StaffPage,
    StaffPatch,
    StaffRole,
    StageHistory,
    TeamIn,
    TeamOut,
    TeamPage,
    TurnoverOut,
)
from trellis.auth import Principal, require_roles
from trellis.deps import DB, Admin, Page, PlatformAdmin, scoped
from trellis.pagination import page_of
from trellis.problems import Problem, field_error, invalid

router = APIRouter(prefix="/v1", tags=["readiness"])
STAFF_READERS = ("agency_admin", "supervisor", "coach", "observer", "platform_admin")
MEMBERS = ("agency_admin", "supervisor", "coach", "practitioner", "observer", "facilitator", "partner",
           "platform_admin")
Member = Annotated[Principal, require_roles(*MEMBERS)]
StaffReader = Annotated[Principal, require_roles(*STAFF_READERS)]
AgencyAdmin = Annotated[Principal, require_roles("agency_admin")]


# ---- shaping answers----------------------------------------------------------------------------

def agency_out(v: uc.AgencyView) -> AgencyOut:
    a = v.agency
    return AgencyOut(
        id=a.id, name=a.name, region=a.region, programs=a.programs, stage=domain.Stage(a.stage),
        stage_entered_on=a.stage_entered_on, readiness_level=v.level, plan_approved=v.plan_approved,
        training_clearance={"cleared": v.clearance.cleared, "reasons": list(v.clearance.reasons)},  # type: ignore[arg-type]
        policy={"ready_at": a.ready_at, "conditions_at": a.conditions_at,  # type: ignore[arg-type]
                "min_respondents": a.min_respondents},
        created_at=a.created_at,
    )


def staff_out(m: Staff) -> StaffOut:
    return StaffOut.model_validate(m, from_attributes=True)


def instrument_out(row: InstrumentRow) -> InstrumentOut:
    return InstrumentOut(id=row.id, name=row.name, version=row.version, status=row.status, scale_min=row.scale_min,
                         scale_max=row.scale_max, domains=row.domains, items=row.items)  # type: ignore[arg-type]


def round_out(r: Round) -> RoundOut:
    return RoundOut(
        id=r.id, agency_id=r.agency_id, instrument_id=r.instrument_id, title=r.title, status=r.status,  # type: ignore[arg-type]
        opened_at=r.opened_at, closed_at=r.closed_at, respondents=r.respondents,
        level=domain.Level(r.level) if r.level else None, reasons=r.reasons, results=r.results,  # type: ignore[arg-type]
        policy={"ready_at": r.ready_at, "conditions_at": r.conditions_at,  # type: ignore[arg-type]
                "min_respondents": r.min_respondents},
    )


def answers_out(mine: Answers) -> AnswersOut:
    return AnswersOut(round_id=mine.round_id, answers=mine.answers, submitted_at=mine.submitted_at,
                      updated_at=mine.updated_at)


def action_out(v: uc.ActionView) -> ActionOut:
    a = v.action
    return ActionOut(id=a.id, plan_id=a.plan_id, title=a.title, readiness_domain=a.readiness_domain,
                     owner_id=a.owner_id, due_on=a.due_on, status=domain.ActionStatus(a.status),
                     origin=a.origin, round_id=a.round_id, completed_on=a.completed_on,  # type: ignore[arg-type]
                     overdue=v.overdue, created_at=a.created_at)


def plan_out(v: uc.PlanView) -> PlanOut:
    p, actions = v.plan, [action_out(a) for a in v.actions]
    return PlanOut(id=p.id, agency_id=p.agency_id, approved=p.approved, approved_at=p.approved_at,
                   approved_by=p.approved_by, approved_revision=p.approved_revision,
                   changed_since_approval=p.changed_since_approval, actions=actions,
                   open_actions=sum(a.status in ("open", "in_progress") for a in actions),
                   overdue_actions=sum(a.overdue for a in actions))


# ---- agencies ----------------------------------------------------------------------------------

@router.post("/agencies", status_code=201, response_model=AgencyOut, summary="Register an agency (platform admins)")
async def register_agency(body: AgencyIn, db: DB, response: Response, principal: PlatformAdmin) -> AgencyOut:
    agency = str(body.id or uuid7())
    async with db.unit_of_work(agency=agency) as uow:
        view = await uc.register_agency(uow, body)
    response.headers["Location"] = f"/v1/agencies/{agency}"
    return agency_out(view)


@router.get("/agencies", response_model=AgencyPage,
            summary="Agencies: every agency for platform admins, your own for everyone else")
async def list_agencies(db: DB, principal: Member, page: Page) -> dict[str, object]:
    async with db.reader(agency=principal.agency, all_agencies=principal.has("platform_admin")) as uow:
        views = await uc.list_agencies(uow, page)
    return page_of(views, page, agency_out, lambda v: v.agency.id)


@router.get("/agencies/{agency_id}", response_model=AgencyOut)
async def get_agency(agency_id: UUID, db: DB, principal: Member) -> AgencyOut:
    async with db.reader(agency=scoped(agency_id, principal)) as uow:
        return agency_out(await uc.get_agency(uow))


@router.patch("/agencies/{agency_id}", response_model=AgencyOut,
              summary="Change an agency's details; readiness thresholds are for platform admins")
async def patch_agency(agency_id: UUID, body: AgencyPatch, db: DB, principal: Admin) -> AgencyOut:
    async with db.unit_of_work(agency=scoped(agency_id, principal)) as uow:
        return agency_out(await uc.change_agency(uow, uc.ChangeAgency(body, principal.has("platform_admin"))))


# ---- teams and staff ---------------------------------------------------------------------------

@router.post("/agencies/{agency_id}/teams", status_code=201, response_model=TeamOut)
async def create_team(agency_id: UUID, body: TeamIn, db: DB, principal: Admin) -> TeamOut:
    async with db.unit_of_work(agency=scoped(agency_id, principal)) as uow:
        team = await uc.create_team(uow, body)
    return TeamOut.model_validate(team, from_attributes=True)


@router.get("/agencies/{agency_id}/teams", response_model=TeamPage)
async def list_teams(agency_id: UUID, db: DB, principal: Member, page: Page) -> dict[str, object]:
    async with db.reader(agency=scoped(agency_id, principal)) as uow:
        rows = await uc.list_teams(uow, page)
    return page_of(rows, page, lambda t: TeamOut.model_validate(t, from_attributes=True), lambda t: t.id)


@router.post("/agencies/{agency_id}/staff", status_code=201, response_model=StaffOut,
             summary="Add a person to the roster")
async def add_staff(agency_id: UUID, body: StaffIn, db: DB, principal: Admin, response: Response) -> StaffOut:
    agency = scoped(agency_id, principal)
    async with db.unit_of_work(agency=agency) as uow:
        m = await uc.add_staff(uow, body)
    response.headers["Location"] = f"/v1/agencies/{agency}/staff/{m.id}"
    return staff_out(m)


@router.get("/agencies/{agency_id}/staff", response_model=StaffPage)
async def list_staff(
    agency_id: UUID, db: DB, principal: StaffReader, page: Page,
    status: Annotated[str | None, Query(pattern="^(active|left)$")] = None,
    team_id: UUID | None = None, role: StaffRole | None = None,
) -> dict[str, object]:
    async with db.reader(agency=scoped(agency_id, principal)) as uow:
        rows = await uc.list_staff(uow, uc.StaffQuery(page, status, team_id, role))
    return page_of(rows, page, staff_out, lambda m: m.id)


@router.get("/agencies/{agency_id}/staff/{staff_id}", response_model=StaffOut)
async def get_staff(agency_id: UUID, staff_id: UUID, db: DB, principal: Member) -> StaffOut:
    agency = scoped(agency_id, principal)
    if not principal.has(*STAFF_READERS) and str(staff_id) != principal.sub:
        raise Problem(403, "You can only see your own roster entry.", slug="not-your-record")
    async with db.reader(agency=agency) as uow:
        return staff_out(await uc.get_staff(uow, staff_id))


@router.patch("/agencies/{agency_id}/staff/{staff_id}", response_model=StaffOut,
              summary="Change a staff member's name, roles or team")
async def patch_staff(agency_id: UUID, staff_id: UUID, body: StaffPatch, db: DB, principal: Admin) -> StaffOut:
    async with db.unit_of_work(agency=scoped(agency_id, principal)) as uow:
        return staff_out(await uc.change_staff(uow, uc.ChangeStaff(staff_id, body)))


@router.post("/agencies/{agency_id}/staff/{staff_id}/leave", response_model=StaffOut,
             summary="Record that a staff member left the agency")
async def staff_left(agency_id: UUID, staff_id: UUID, body: LeaveIn, db: DB, principal: Admin) -> StaffOut:
    async with db.unit_of_work(agency=scoped(agency_id, principal)) as uow:
        return staff_out(await uc.record_leaving(uow, uc.RecordLeaving(staff_id, body.left_on)))


@router.post("/agencies/{agency_id}/staff/{staff_id}/rejoin", response_model=StaffOut,
             summary="Someone who left comes back: active again, with a new hire date")
async def staff_rejoined(agency_id: UUID, staff_id: UUID, body: RejoinIn, db: DB, principal: Admin) -> StaffOut:
    async with db.unit_of_work(agency=scoped(agency_id, principal)) as uow:
        return staff_out(await uc.record_rejoining(uow, uc.RecordRejoining(staff_id, body)))


@router.post(
    "/agencies/{agency_id}/staff/import", response_model=ImportOut,
    summary="Import the roster from CSV: all rows valid, or nothing is written",
    description="Columns: name, email, roles (separated by ';'), and optionally team (by name), hire_date "
                "(YYYY-MM-DD) and id. Rows are matched by email, so importing the same file again changes "
                "nothing. Send `Content-Type: text/csv`; `?dry_run=true` validates without writing.",
    openapi_extra={"requestBody": {"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}}},
)
async def import_roster(agency_id: UUID, request: Request, db: DB, principal: Admin,
                        dry_run: bool = False) -> ImportOut:
    agency = scoped(agency_id, principal)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in ("text/csv", "text/plain", "application/csv"):
        raise Problem(415, "Send the roster as CSV with 'Content-Type: text/csv'.")
    raw = await request.body()  # at most TRELLIS_MAX_CSV_BODY_BYTES: trellis/limits.py refused anything larger
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise invalid([field_error("body", "the file is not UTF-8 text")], "The file") from None
    async with db.unit_of_work(agency=agency) as uow:
        r = await uc.import_roster(uow, uc.ImportRoster(text, dry_run))
    return ImportOut(dry_run=dry_run, rows=r.rows, created=r.created, updated=r.updated,
                     unchanged=r.rows - r.created - r.updated)


@router.get("/agencies/{agency_id}/turnover", response_model=TurnoverOut,
            summary="Joined and left in the trailing 12 months, and the share of staff under 6 months' tenure")
async def get_turnover(agency_id: UUID, db: DB, principal: StaffReader) -> dict[str, object]:
    async with db.reader(agency=scoped(agency_id, principal)) as uow:
        t = await uc.turnover(uow)
    return {"as_of": t.as_of, "agency": vars(t.agency),
            "teams": [{"team_id": f.team_id, "team_name": f.team_name, **vars(f.figures)} for f in t.teams]}


# ---- readiness instruments and rounds ----------------------------------------------------------

@router.get("/readiness-instruments", response_model=InstrumentPage)
async def list_instruments(db: DB, _: Member, page: Page) -> dict[str, object]:
    async with db.reader() as uow:
        rows = await uc.list_instruments(uow, page)
    return page_of(rows, page, instrument_out, lambda r: r.id)


@router.get("/readiness-instruments/{instrument_id}", response_model=InstrumentOut,
            summary="One readiness instrument: its domains and statements, and the answer scale")
async def get_instrument(instrument_id: UUID, db: DB, _: Member) -> InstrumentOut:
    async with db.reader() as uow:
        return instrument_out(await uc.get_instrument(uow, instrument_id))


@router.post("/agencies/{agency_id}/readiness-rounds", status_code=201, response_model=RoundOut,
             summary="Open a readiness assessment round (one open round at a time)")
async def open_round(agency_id: UUID, body: RoundIn, db: DB, principal: Admin, response: Response) -> RoundOut:
    agency = scoped(agency_id, principal)
    async with db.unit_of_work(agency=agency) as uow:
        r = await uc.open_round(uow, uc.OpenRound(body.title, body.instrument_id, principal.sub))
    response.headers["Location"] = f"/v1/agencies/{agency}/readiness-rounds/{r.id}"
    return round_out(r)


@router.get("/agencies/{agency_id}/readiness-rounds", response_model=RoundPage)
async def list_rounds(agency_id: UUID, db: DB, principal: Member, page: Page) -> dict[str, object]:
    async with db.reader(agency=scoped(agency_id, principal)) as uow:
        rows = await uc.list_rounds(uow, page)
    return page_of(rows, page, round_out, lambda r: r.id)


@router.get("/agencies/{agency_id}/readiness-rounds/compare", response_model=ComparisonOut,
            summary="Two closed rounds of the agency, domain by domain")
async def compare_rounds(agency_id: UUID, base: UUID, other: UUID, db: DB, principal: Member) -> ComparisonOut:
    async with db.reader(agency=scoped(agency_id, principal)) as uow:
        c = await uc.compare_rounds(uow, (base, other))
    return ComparisonOut(base=c.base.id, other=c.other.id, base_level=c.base.level,  # type: ignore[arg-type]
                         other_level=c.other.level,  # type: ignore[arg-type]
                         domains=[{"key": d.key, "base": vars(d.base) if d.base else None,  # type: ignore[misc]
                                   "other": vars(d.other) if d.other else None, "change": d.change}
                                  for d in c.domains])


@router.get("/agencies/{agency_id}/readiness-rounds/{round_id}", response_model=RoundOut)
async def get_round(agency_id: UUID, round_id: UUID, db: DB, principal: Member) -> RoundOut:
    async with db.reader(agency=scoped(agency_id, principal)) as uow:
        return round_out(await uc.get_round(uow, round_id))


@router.put("/agencies/{agency_id}/readiness-rounds/{round_id}/responses/me", response_model=AnswersOut,
            summary="Give or change your own answers while the round is open")
async def answer_round(agency_id: UUID, round_id: UUID, body: AnswersIn, db: DB, principal: Member,
                       response: Response) -> AnswersOut:
    async with db.unit_of_work(agency=scoped(agency_id, principal)) as uow:
        mine, new = await uc.answer_round(uow, uc.Answer(round_id, principal.sub, principal.agency, body.answers))
    if new:
        response.status_code = 201
    return answers_out(mine)


@router.get("/agencies/{agency_id}/readiness-rounds/{round_id}/responses/me", response_model=AnswersOut,
            summary="Your own answers (nobody else's answers are ever shown)")
async def my_answers(agency_id: UUID, round_id: UUID, db: DB, principal: Member) -> AnswersOut:
    async with db.reader(agency=scoped(agency_id, principal)) as uow:
        return answers_out(await uc.my_answers(uow, uc.Respondent(round_id, principal.sub, principal.agency)))


@router.post("/agencies/{agency_id}/readiness-rounds/{round_id}/close", response_model=RoundOut,
             summary="Close the round: results per domain, the level, and suggested plan actions for gaps")
async def close_round(agency_id: UUID, round_id: UUID, db: DB, principal: Admin) -> RoundOut:
    async with db.unit_of_work(agency=scoped(agency_id, principal)) as uow:
        return round_out(await uc.close_round(uow, round_id))


# ---- the implementation plan -------------------------------------------------------------------

@router.get("/agencies/{agency_id}/plan", response_model=PlanOut, summary="The implementation plan and its actions")
async def get_plan(agency_id: UUID, db: DB, principal: Member) -> PlanOut:
    async with db.reader(agency=scoped(agency_id, principal)) as uow:
        return plan_out(await uc.get_plan(uow))


@router.get("/agencies/{agency_id}/plan/actions", response_model=ActionPage)
async def list_actions(agency_id: UUID, db: DB, principal: Member, page: Page,
                       status: domain.ActionStatus | None = None,
                       overdue: Annotated[bool | None, Query(description="Only overdue actions")] = None,
                       ) -> dict[str, object]:
    async with db.reader(agency=scoped(agency_id, principal)) as uow:
        views = await uc.list_actions(uow, uc.ActionQuery(page, status, overdue))
    return page_of(views, page, action_out, lambda v: v.action.id)


@router.post("/agencies/{agency_id}/plan/actions", status_code=201, response_model=ActionOut)
async def add_action(agency_id: UUID, body: ActionIn, db: DB, principal: Admin, response: Response) -> ActionOut:
    agency = scoped(agency_id, principal)
    async with db.unit_of_work(agency=agency) as uow:
        view = await uc.add_action(uow, body)
    response.headers["Location"] = f"/v1/agencies/{agency}/plan/actions/{view.action.id}"
    return action_out(view)


@router.patch("/agencies/{agency_id}/plan/actions/{action_id}", response_model=ActionOut,
              summary="Change an action; marking it done publishes PlanActionCompleted")
async def patch_action(agency_id: UUID, action_id: UUID, body: ActionPatch, db: DB, principal: Admin) -> ActionOut:
    async with db.unit_of_work(agency=scoped(agency_id, principal)) as uow:
        return action_out(await uc.change_action(uow, uc.ChangeAction(action_id, body)))


@router.post("/agencies/{agency_id}/plan/comments", status_code=201, response_model=CommentOut,
             summary="Comment on the plan or one of its actions (agency staff and the implementation partner)")
async def add_comment(agency_id: UUID, body: CommentIn, db: DB, principal: Member) -> CommentOut:
    agency = scoped(agency_id, principal)
    if principal.roles == {"partner"}:
        raise Problem(403, "Partner systems have read-only access.", slug="missing-role")
    kind = "partner" if principal.has("platform_admin") else "agency"
    async with db.unit_of_work(agency=agency) as uow:
        c = await uc.add_comment(uow, uc.AddComment(body.body, body.action_id, principal.sub, kind))
    return CommentOut.model_validate(c, from_attributes=True)


@router.get("/agencies/{agency_id}/plan/comments", response_model=CommentPage)
async def list_comments(agency_id: UUID, db: DB, principal: Member, page: Page,
                        action_id: UUID | None = None) -> dict[str, object]:
    async with db.reader(agency=scoped(agency_id, principal)) as uow:
        rows = await uc.list_comments(uow, uc.CommentQuery(page, action_id))
    return page_of(rows, page, lambda c: CommentOut.model_validate(c, from_attributes=True), lambda c: c.id)


@router.post("/agencies/{agency_id}/plan/approve", response_model=PlanOut,
             summary="Approve the co-created plan (the agency's own admins)")
async def approve_plan(agency_id: UUID, db: DB, principal: AgencyAdmin) -> PlanOut:
    agency = scoped(agency_id, principal)
    if principal.agency != agency:
        raise Problem(403, "The agency's own leadership approves its plan.", slug="other-agency")
    async with db.unit_of_work(agency=agency) as uow:
        return plan_out(await uc.approve_plan(uow, principal.sub))


# ---- implementation stages ---------------------------------------------------------------------

@router.get("/agencies/{agency_id}/stages", response_model=StageHistory,
            summary="The implementation stage and the date each stage was entered")
async def stage_history(agency_id: UUID, db: DB, principal: Member) -> dict[str, object]:
    async with db.reader(agency=scoped(agency_id, principal)) as uow:
        a, rows = await uc.stage_history(uow)
    return {"current": a.stage, "entered_on": a.stage_entered_on,
            "history": [{"stage": e.stage, "previous_stage": e.previous_stage, "entered_on": e.entered_on,
                         "reason": e.reason, "certified_share": e.certified_share} for e in rows]}
