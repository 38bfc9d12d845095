"""Readiness REST API (thin: check access, call the domain, write in one transaction)."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy import String, cast, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from uuid6 import uuid7

from contracts import readiness as events
from services.readiness import domain
from services.readiness.models import (
    Agency,
    InstrumentRow,
    Plan,
    PlanAction,
    PlanComment,
    Round,
    Staff,
    StageEntry,
    Team,
)
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
from services.readiness.workflows import emit, enter_stage, refresh_stage
from trellis.auth import Principal, require_roles
from trellis.db import Database, discard, utcnow
from trellis.envelope import EventPayload
from trellis.pagination import PageParams, page_of, paged
from trellis.problems import Problem, field_error

router = APIRouter(prefix="/v1", tags=["readiness"])
ADMINS = ("agency_admin", "platform_admin")
STAFF_READERS = ("agency_admin", "supervisor", "coach", "observer", "platform_admin")
MEMBERS = ("agency_admin", "supervisor", "coach", "practitioner", "observer", "facilitator", "partner",
           "platform_admin")


def db_of(request: Request) -> Database:
    return request.app.state.db  # type: ignore[no-any-return]


DB = Annotated[Database, Depends(db_of)]
Admin = Annotated[Principal, require_roles(*ADMINS)]
Member = Annotated[Principal, require_roles(*MEMBERS)]
StaffReader = Annotated[Principal, require_roles(*STAFF_READERS)]
Page = Annotated[PageParams, Depends()]


def scoped(agency_id: UUID, principal: Principal) -> str:
    """The agency a request acts on: the caller's own, or any for the implementation partner."""
    agency = str(agency_id)
    if agency != principal.agency and not principal.has("platform_admin"):
        raise Problem(403, "You can only see or change your own agency.", slug="other-agency")
    return agency


def invalid(errors: list[dict[str, Any]], what: str = "The request") -> Problem:
    return Problem(422, f"{what} has {len(errors)} problem(s); nothing was changed.", slug="validation-error",
                   errors=errors)


async def load_agency(s: AsyncSession, agency: str, *, lock: bool = False) -> Agency:
    stmt = select(Agency).where(Agency.id == agency)
    row = (await s.scalars(stmt.with_for_update() if lock else stmt)).one_or_none()
    if row is None:
        raise Problem(404, f"No agency {agency}.")
    return row


async def load(s: AsyncSession, model: Any, id_: UUID | str, what: str, *, lock: bool = False) -> Any:
    stmt = select(model).where(model.id == str(id_))
    row = (await s.scalars(stmt.with_for_update() if lock else stmt)).one_or_none()
    if row is None:
        raise Problem(404, f"No {what} {id_} in this agency.")
    return row


async def agency_out(s: AsyncSession, a: Agency) -> AgencyOut:
    latest = (await s.scalars(select(Round).where(Round.status == "closed").order_by(Round.closed_at.desc())
                              .limit(1))).first()
    plan = (await s.scalars(select(Plan))).one_or_none()
    approved = plan is not None and plan.approved
    level = domain.Level(latest.level) if latest is not None and latest.level else None
    gate = domain.training_clearance(level, approved)
    return AgencyOut(
        id=a.id, name=a.name, region=a.region, programs=a.programs, stage=domain.Stage(a.stage),
        stage_entered_on=a.stage_entered_on, readiness_level=level, plan_approved=approved,
        training_clearance={"cleared": gate.cleared, "reasons": list(gate.reasons)},  # type: ignore[arg-type]
        policy={"ready_at": a.ready_at, "conditions_at": a.conditions_at,  # type: ignore[arg-type]
                "min_respondents": a.min_respondents},
        created_at=a.created_at,
    )


# ---- agencies ----------------------------------------------------------------------------------

@router.post("/agencies", status_code=201, response_model=AgencyOut, summary="Register an agency (platform admins)")
async def register_agency(body: AgencyIn, db: DB, response: Response,
                          principal: Annotated[Principal, require_roles("platform_admin")]) -> AgencyOut:
    agency_id = str(body.id or uuid7())
    today, now = date.today(), utcnow()
    t = domain.Thresholds()
    async with db.unit_of_work(agency=agency_id) as s:
        if (await s.scalars(select(Agency).where(Agency.id == agency_id))).first() is not None:
            raise Problem(409, f"Agency {agency_id} is already registered.", slug="already-registered")
        agency = Agency(id=agency_id, agency_id=agency_id, name=body.name, region=body.region,
                        programs=body.programs, stage=domain.Stage.EXPLORATION, stage_entered_on=today,
                        ready_at=t.ready_at, conditions_at=t.conditions_at, min_respondents=t.min_respondents,
                        created_at=now)
        s.add(agency)
        s.add(Plan(id=str(uuid7()), agency_id=agency_id, approved_revision=0, changed_at=now, created_at=now))
        await emit(s, events.AgencyRegistered(agency_id=agency_id, agency_name=body.name, region=body.region,
                                              programs=body.programs), agency=agency_id, subject=agency_id)
        await enter_stage(s, agency, domain.Stage.EXPLORATION, "the agency was registered", today, None, None)
        out = await agency_out(s, agency)
    response.headers["Location"] = f"/v1/agencies/{agency_id}"
    return out


@router.get("/agencies", response_model=AgencyPage,
            summary="Agencies: every agency for platform admins, your own for everyone else")
async def list_agencies(db: DB, principal: Member, page: Page) -> dict[str, object]:
    everyone = principal.has("platform_admin")
    async with db.reader(agency=principal.agency, all_agencies=everyone) as s:
        rows = list((await s.scalars(paged(select(Agency), Agency.id, page))).all())
    shown: dict[str, AgencyOut] = {}
    for a in rows[: page.limit]:
        async with db.reader(agency=a.id) as s:  # each agency's figures under its own tenant scope
            shown[a.id] = await agency_out(s, a)
    return page_of(rows, page, lambda a: shown[a.id], lambda a: a.id)


@router.get("/agencies/{agency_id}", response_model=AgencyOut)
async def get_agency(agency_id: UUID, db: DB, principal: Member) -> AgencyOut:
    agency = scoped(agency_id, principal)
    async with db.reader(agency=agency) as s:
        return await agency_out(s, await load_agency(s, agency))


@router.patch("/agencies/{agency_id}", response_model=AgencyOut,
              summary="Change an agency's details; readiness thresholds are for platform admins")
async def patch_agency(agency_id: UUID, body: AgencyPatch, db: DB, principal: Admin) -> AgencyOut:
    agency = scoped(agency_id, principal)
    policy = {k: v for k, v in body.model_dump(exclude_unset=True).items()
              if k in ("ready_at", "conditions_at", "min_respondents")}
    if policy and not principal.has("platform_admin"):
        raise Problem(403, "Only platform admins change readiness thresholds.", slug="missing-role")
    async with db.unit_of_work(agency=agency) as s:
        a = await load_agency(s, agency)
        changes = body.model_dump(exclude_unset=True, exclude_none=True)
        merged = domain.Thresholds(changes.get("ready_at", a.ready_at), changes.get("conditions_at", a.conditions_at),
                                   changes.get("min_respondents", a.min_respondents))
        if problems := merged.problems():
            raise invalid([field_error(f"body.{f}", m) for f, m in problems])
        for key, value in changes.items():
            setattr(a, key, value)
        return await agency_out(s, a)


# ---- teams and staff ---------------------------------------------------------------------------

@router.post("/agencies/{agency_id}/teams", status_code=201, response_model=TeamOut)
async def create_team(agency_id: UUID, body: TeamIn, db: DB, principal: Admin) -> TeamOut:
    agency = scoped(agency_id, principal)
    name = body.name.strip()
    async with db.unit_of_work(agency=agency) as s:
        await load_agency(s, agency)
        teams = (await s.scalars(select(Team))).all()
        if not name or any(t.name.casefold() == name.casefold() for t in teams):
            raise invalid([field_error("body.name", f"the agency already has a team called '{name}'" if name
                                       else "name is blank")])
        team = Team(id=str(uuid7()), agency_id=agency, name=name, created_at=utcnow())
        s.add(team)
    return TeamOut.model_validate(team, from_attributes=True)


@router.get("/agencies/{agency_id}/teams", response_model=TeamPage)
async def list_teams(agency_id: UUID, db: DB, principal: Member, page: Page) -> dict[str, object]:
    agency = scoped(agency_id, principal)
    async with db.reader(agency=agency) as s:
        rows = list((await s.scalars(paged(select(Team), Team.id, page))).all())
    return page_of(rows, page, lambda t: TeamOut.model_validate(t, from_attributes=True), lambda t: t.id)


def staff_out(m: Staff) -> StaffOut:
    return StaffOut.model_validate(m, from_attributes=True)


def joined(m: Staff) -> events.StaffMemberJoined:
    return events.StaffMemberJoined(staff_id=m.id, display_name=m.name, team_id=m.team_id, roles=m.roles,
                                    hire_date=m.hire_date)


def role_changed(m: Staff, before_roles: list[str], before_team: str | None) -> events.StaffRoleChanged:
    return events.StaffRoleChanged(staff_id=m.id, roles=m.roles, previous_roles=before_roles, team_id=m.team_id,
                                   previous_team_id=before_team)


async def roster_changed(s: AsyncSession, agency: str, m: Staff, payload: EventPayload) -> None:
    """A roster change's event; the stage rules run again, since the practitioner count may have moved."""
    await emit(s, payload, agency=agency, subject=m.id)
    await refresh_stage(s, agency, date.today())


async def team_problem(s: AsyncSession, team_id: UUID | None) -> list[dict[str, Any]]:
    if team_id is not None and (await s.scalars(select(Team).where(Team.id == str(team_id)))).first() is None:
        return [field_error("body.team_id", f"no team {team_id} in this agency")]
    return []


@router.post("/agencies/{agency_id}/staff", status_code=201, response_model=StaffOut,
             summary="Add a person to the roster")
async def add_staff(agency_id: UUID, body: StaffIn, db: DB, principal: Admin, response: Response) -> StaffOut:
    agency = scoped(agency_id, principal)
    today, now = date.today(), utcnow()
    hired = body.hire_date or today
    errors = [field_error("body.hire_date", "the hire date is in the future")] if hired > today else []
    async with db.unit_of_work(agency=agency) as s:
        await load_agency(s, agency)
        errors += await team_problem(s, body.team_id)
        if errors:
            raise invalid(errors)
        email = body.email.lower()
        if (await s.scalars(select(Staff).where(Staff.email == email))).first() is not None:
            raise Problem(409, f"{email} is already on this agency's roster.", slug="already-on-roster")
        person = str(body.id or uuid7())
        # Ids are per agency (the key is agency and id): one in use elsewhere is no business of this
        # caller, so only this agency's roster is asked.
        if (await s.scalars(select(Staff).where(Staff.id == person))).first() is not None:
            raise Problem(409, f"Staff id {person} is already on this agency's roster.", slug="already-on-roster")
        m = Staff(id=person, agency_id=agency, name=body.name.strip(), email=email,
                  team_id=str(body.team_id) if body.team_id else None, roles=sorted(set(body.roles)),
                  hire_date=hired, status="active", left_on=None, created_at=now, updated_at=now)
        s.add(m)
        await roster_changed(s, agency, m, joined(m))
    response.headers["Location"] = f"/v1/agencies/{agency}/staff/{m.id}"
    return staff_out(m)


@router.get("/agencies/{agency_id}/staff", response_model=StaffPage)
async def list_staff(
    agency_id: UUID, db: DB, principal: StaffReader, page: Page,
    status: Annotated[str | None, Query(pattern="^(active|left)$")] = None,
    team_id: UUID | None = None, role: StaffRole | None = None,
) -> dict[str, object]:
    agency = scoped(agency_id, principal)
    stmt = select(Staff)
    if status:
        stmt = stmt.where(Staff.status == status)
    if team_id:
        stmt = stmt.where(Staff.team_id == str(team_id))
    if role:  # a JSON list on both backends; the role is one of a fixed set, so no wildcards
        stmt = stmt.where(cast(Staff.roles, String).like(f'%"{role}"%'))
    async with db.reader(agency=agency) as s:
        rows = list((await s.scalars(paged(stmt, Staff.id, page))).all())
    return page_of(rows, page, staff_out, lambda m: m.id)


@router.get("/agencies/{agency_id}/staff/{staff_id}", response_model=StaffOut)
async def get_staff(agency_id: UUID, staff_id: UUID, db: DB, principal: Member) -> StaffOut:
    agency = scoped(agency_id, principal)
    if not principal.has(*STAFF_READERS) and str(staff_id) != principal.sub:
        raise Problem(403, "You can only see your own roster entry.", slug="not-your-record")
    async with db.reader(agency=agency) as s:
        return staff_out(await load(s, Staff, staff_id, "staff member"))


@router.patch("/agencies/{agency_id}/staff/{staff_id}", response_model=StaffOut,
              summary="Change a staff member's name, roles or team")
async def patch_staff(agency_id: UUID, staff_id: UUID, body: StaffPatch, db: DB, principal: Admin) -> StaffOut:
    agency = scoped(agency_id, principal)
    changes = body.model_dump(exclude_unset=True)
    async with db.unit_of_work(agency=agency) as s:
        m: Staff = await load(s, Staff, staff_id, "staff member")
        if m.status != "active":
            raise Problem(409, f"{m.name} has left the agency; their record is closed.", slug="staff-left")
        if errors := await team_problem(s, body.team_id):
            raise invalid(errors)
        before_roles, before_team = list(m.roles), m.team_id
        if body.name is not None:
            m.name = body.name.strip()
        if body.roles is not None:
            m.roles = sorted(set(body.roles))
        if "team_id" in changes:
            m.team_id = str(body.team_id) if body.team_id else None
        if m.roles != before_roles or m.team_id != before_team:
            m.updated_at = utcnow()
            await roster_changed(s, agency, m, role_changed(m, before_roles, before_team))
    return staff_out(m)


@router.post("/agencies/{agency_id}/staff/{staff_id}/leave", response_model=StaffOut,
             summary="Record that a staff member left the agency")
async def staff_left(agency_id: UUID, staff_id: UUID, body: LeaveIn, db: DB, principal: Admin) -> StaffOut:
    agency = scoped(agency_id, principal)
    today = date.today()
    left_on = body.left_on or today
    async with db.unit_of_work(agency=agency) as s:
        m: Staff = await load(s, Staff, staff_id, "staff member")
        if m.status != "active":
            raise Problem(409, f"{m.name} already left on {m.left_on}.", slug="staff-left")
        if not m.hire_date <= left_on <= today:
            raise invalid([field_error("body.left_on", f"must be between the hire date {m.hire_date} and today")])
        m.status, m.left_on, m.updated_at = "left", left_on, utcnow()
        await roster_changed(s, agency, m, events.StaffMemberLeft(staff_id=m.id, left_on=left_on))
    return staff_out(m)


@router.post("/agencies/{agency_id}/staff/{staff_id}/rejoin", response_model=StaffOut,
             summary="Someone who left comes back: active again, with a new hire date")
async def staff_rejoined(agency_id: UUID, staff_id: UUID, body: RejoinIn, db: DB, principal: Admin) -> StaffOut:
    agency = scoped(agency_id, principal)
    today = date.today()
    hired = body.hire_date or today
    async with db.unit_of_work(agency=agency) as s:
        m: Staff = await load(s, Staff, staff_id, "staff member")
        if m.status == "active":
            raise Problem(409, f"{m.name} is already active staff.", slug="staff-active")
        errors = await team_problem(s, body.team_id)
        if m.left_on is not None and not m.left_on <= hired <= today:
            errors.append(field_error("body.hire_date", f"must be between their leaving date {m.left_on} and today"))
        if errors:
            raise invalid(errors)
        m.status, m.left_on, m.hire_date, m.updated_at = "active", None, hired, utcnow()
        if body.roles is not None:
            m.roles = sorted(set(body.roles))
        if "team_id" in body.model_fields_set:
            m.team_id = str(body.team_id) if body.team_id else None
        await roster_changed(s, agency, m, joined(m))
    return staff_out(m)


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
    today, now = date.today(), utcnow()
    async with db.unit_of_work(agency=agency) as s:
        await load_agency(s, agency)
        teams = {t.name.casefold(): t.id for t in (await s.scalars(select(Team))).all()}
        existing = {m.email: m for m in (await s.scalars(select(Staff))).all()}
        by_id = {m.id: m for m in existing.values()}
        known = {e: domain.Known(m.id, m.status == "active") for e, m in existing.items()}
        parsed = domain.parse_roster(text, teams, known, today)
        errors = list(parsed.errors)
        for row in parsed.rows:
            if row.id and row.id.lower() in by_id and by_id[row.id.lower()].email != row.email:
                errors.append(domain.RowError(row.line, "id", f"id {row.id} belongs to another staff member"))
        if errors:
            raise Problem(422, f"{len(errors)} problem(s) in the file; nothing was imported.",
                          slug="validation-error", errors=[
                              {"field": f"line {e.line}" + (f", {e.column}" if e.column else ""),
                               "pointer": f"#/line/{e.line}", "line": e.line, "column": e.column,
                               "message": e.message} for e in sorted(errors, key=lambda e: e.line)])
        created = updated = 0
        for row in parsed.rows:
            m = existing.get(row.email)
            if m is None:
                created += 1
                m = Staff(id=(row.id or str(uuid7())).lower(), agency_id=agency, name=row.name, email=row.email,
                          team_id=row.team, roles=list(row.roles), hire_date=row.hire_date, status="active",
                          left_on=None, created_at=now, updated_at=now)
                s.add(m)
                await emit(s, joined(m), agency=agency, subject=m.id)
            elif (m.name, m.team_id, m.roles) != (row.name, row.team, list(row.roles)):
                updated += 1
                before_roles, before_team = list(m.roles), m.team_id
                m.name, m.team_id, m.roles, m.updated_at = row.name, row.team, list(row.roles), now
                if (before_roles, before_team) != (m.roles, m.team_id):
                    await emit(s, role_changed(m, before_roles, before_team), agency=agency, subject=m.id)
        try:
            await s.flush()  # the database's own checks, in a dry run exactly as in a real one
        except IntegrityError:
            raise Problem(409, "The roster changed while the file was being imported; nothing was imported. "
                               "Try again.", slug="roster-changed") from None
        if dry_run:
            discard(s)
        elif created or updated:
            await refresh_stage(s, agency, today)
    return ImportOut(dry_run=dry_run, rows=len(parsed.rows), created=created, updated=updated,
                     unchanged=len(parsed.rows) - created - updated)


@router.get("/agencies/{agency_id}/turnover", response_model=TurnoverOut,
            summary="Joined and left in the trailing 12 months, and the share of staff under 6 months' tenure")
async def get_turnover(agency_id: UUID, db: DB, principal: StaffReader) -> dict[str, object]:
    agency = scoped(agency_id, principal)
    today = date.today()
    async with db.reader(agency=agency) as s:
        await load_agency(s, agency)
        staff = (await s.scalars(select(Staff))).all()
        teams = {t.id: t.name for t in (await s.scalars(select(Team))).all()}
    grouped: dict[str | None, list[domain.Tenure]] = defaultdict(list)
    for m in staff:
        grouped[m.team_id].append(domain.Tenure(m.hire_date, m.left_on))
    per_team = [{"team_id": tid, "team_name": teams.get(tid, "No team") if tid else "No team",
                 **vars(domain.turnover(grouped.get(tid, []), today))}
                for tid in [*teams, *([None] if None in grouped else [])]]
    everyone = domain.turnover((domain.Tenure(m.hire_date, m.left_on) for m in staff), today)
    return {"as_of": today, "agency": vars(everyone), "teams": per_team}


# ---- readiness instruments and rounds ----------------------------------------------------------

def instrument_out(row: InstrumentRow) -> InstrumentOut:
    return InstrumentOut(id=row.id, name=row.name, version=row.version, status=row.status, scale_min=row.scale_min,
                         scale_max=row.scale_max, domains=row.domains, items=row.items)  # type: ignore[arg-type]


@router.get("/readiness-instruments", response_model=InstrumentPage)
async def list_instruments(db: DB, _: Member, page: Page) -> dict[str, object]:
    async with db.reader() as s:
        rows = list((await s.scalars(paged(select(InstrumentRow), InstrumentRow.id, page))).all())
    return page_of(rows, page, instrument_out, lambda r: r.id)


def round_out(r: Round) -> RoundOut:
    return RoundOut(
        id=r.id, agency_id=r.agency_id, instrument_id=r.instrument_id, title=r.title, status=r.status,  # type: ignore[arg-type]
        opened_at=r.opened_at, closed_at=r.closed_at, respondents=r.respondents,
        level=domain.Level(r.level) if r.level else None, reasons=r.reasons, results=r.results,  # type: ignore[arg-type]
        policy={"ready_at": r.ready_at, "conditions_at": r.conditions_at,  # type: ignore[arg-type]
                "min_respondents": r.min_respondents},
    )


@router.post("/agencies/{agency_id}/readiness-rounds", status_code=201, response_model=RoundOut,
             summary="Open a readiness assessment round (one open round at a time)")
async def open_round(agency_id: UUID, body: RoundIn, db: DB, principal: Admin, response: Response) -> RoundOut:
    agency = scoped(agency_id, principal)
    async with db.unit_of_work(agency=agency) as s:
        a = await load_agency(s, agency, lock=True)  # so two admins cannot open two rounds at once
        if body.instrument_id is None:
            inst = (await s.scalars(select(InstrumentRow).where(InstrumentRow.status == "active")
                                    .order_by(InstrumentRow.version.desc()))).first()
        else:
            inst = await s.get(InstrumentRow, str(body.instrument_id))
        if inst is None or inst.status != "active":
            raise invalid([field_error("body.instrument_id", "no active readiness instrument with that id")])
        if (await s.scalars(select(Round).where(Round.status == "open"))).first() is not None:
            raise Problem(409, "This agency already has an open readiness round; close it first.",
                          slug="round-open")
        r = Round(id=str(uuid7()), agency_id=agency, instrument_id=inst.id, title=body.title.strip(), status="open",
                  opened_by=principal.sub, opened_at=utcnow(), ready_at=a.ready_at, conditions_at=a.conditions_at,
                  min_respondents=a.min_respondents, respondents=0, reasons=[], results=[])
        s.add(r)
    response.headers["Location"] = f"/v1/agencies/{agency}/readiness-rounds/{r.id}"
    return round_out(r)


@router.get("/agencies/{agency_id}/readiness-rounds", response_model=RoundPage)
async def list_rounds(agency_id: UUID, db: DB, principal: Member, page: Page) -> dict[str, object]:
    agency = scoped(agency_id, principal)
    async with db.reader(agency=agency) as s:
        rows = list((await s.scalars(paged(select(Round), Round.id, page))).all())
    return page_of(rows, page, round_out, lambda r: r.id)


@router.get("/agencies/{agency_id}/readiness-rounds/compare", response_model=ComparisonOut,
            summary="Two closed rounds of the agency, domain by domain")
async def compare_rounds(agency_id: UUID, base: UUID, other: UUID, db: DB, principal: Member) -> ComparisonOut:
    agency = scoped(agency_id, principal)
    async with db.reader(agency=agency) as s:
        a: Round = await load(s, Round, base, "readiness round")
        b: Round = await load(s, Round, other, "readiness round")
    if a.status != "closed" or b.status != "closed":
        raise Problem(409, "Only closed rounds have results to compare.", slug="round-open")

    def results(r: Round) -> list[domain.DomainResult]:
        return [domain.DomainResult(**d) for d in r.results]

    rows = domain.compare(results(a), results(b))
    return ComparisonOut(base=a.id, other=b.id, base_level=a.level, other_level=b.level,  # type: ignore[arg-type]
                         domains=[{"key": c.key, "base": vars(c.base) if c.base else None,  # type: ignore[misc]
                                   "other": vars(c.other) if c.other else None, "change": c.change} for c in rows])


@router.get("/agencies/{agency_id}/readiness-rounds/{round_id}", response_model=RoundOut)
async def get_round(agency_id: UUID, round_id: UUID, db: DB, principal: Member) -> RoundOut:
    agency = scoped(agency_id, principal)
    async with db.reader(agency=agency) as s:
        return round_out(await load(s, Round, round_id, "readiness round"))


async def active_member(s: AsyncSession, principal: Principal, agency: str) -> Staff:
    me = (await s.scalars(select(Staff).where(Staff.id == principal.sub))).first()
    if principal.agency != agency or me is None or me.status != "active":
        raise Problem(403, "Only the agency's active staff answer its readiness rounds.", slug="not-a-respondent")
    return me


@router.put("/agencies/{agency_id}/readiness-rounds/{round_id}/responses/me", response_model=AnswersOut,
            summary="Give or change your own answers while the round is open")
async def answer_round(agency_id: UUID, round_id: UUID, body: AnswersIn, db: DB, principal: Member,
                       response: Response) -> AnswersOut:
    agency = scoped(agency_id, principal)
    async with db.unit_of_work(agency=agency) as s:
        await active_member(s, principal, agency)
        # Locked: answers and the close of one round take turns, so counts and the close agree.
        r: Round = await load(s, Round, round_id, "readiness round", lock=True)
        if r.status != "open":
            raise Problem(409, "This round is closed; answers can no longer change.", slug="round-closed")
        inst = (await s.get(InstrumentRow, r.instrument_id))
        assert inst is not None
        if problems := domain.answer_problems(inst.to_domain(), body.answers):
            raise invalid([field_error(f"body.{f}", m) for f, m in problems], "The answers")
        mine = (await s.scalars(select(Answers).where(Answers.round_id == r.id,
                                                      Answers.respondent_id == principal.sub))).first()
        now = utcnow()
        if mine is None:
            mine = Answers(id=str(uuid7()), agency_id=agency, round_id=r.id, respondent_id=principal.sub,
                           answers=dict(body.answers), submitted_at=now, updated_at=now)
            s.add(mine)
            r.respondents += 1
            response.status_code = 201
        else:
            mine.answers, mine.updated_at = dict(body.answers), now
    return AnswersOut(round_id=r.id, answers=mine.answers, submitted_at=mine.submitted_at, updated_at=mine.updated_at)


@router.get("/agencies/{agency_id}/readiness-rounds/{round_id}/responses/me", response_model=AnswersOut,
            summary="Your own answers (nobody else's answers are ever shown)")
async def my_answers(agency_id: UUID, round_id: UUID, db: DB, principal: Member) -> AnswersOut:
    agency = scoped(agency_id, principal)
    async with db.reader(agency=agency) as s:
        mine = (await s.scalars(select(Answers).where(Answers.round_id == str(round_id),
                                                      Answers.respondent_id == principal.sub))).first()
    if mine is None:
        raise Problem(404, "You have not answered this round.")
    return AnswersOut(round_id=mine.round_id, answers=mine.answers, submitted_at=mine.submitted_at,
                      updated_at=mine.updated_at)


@router.post("/agencies/{agency_id}/readiness-rounds/{round_id}/close", response_model=RoundOut,
             summary="Close the round: results per domain, the level, and suggested plan actions for gaps")
async def close_round(agency_id: UUID, round_id: UUID, db: DB, principal: Admin) -> RoundOut:
    agency = scoped(agency_id, principal)
    today, now = date.today(), utcnow()
    async with db.unit_of_work(agency=agency) as s:
        r: Round = await load(s, Round, round_id, "readiness round", lock=True)
        if r.status != "open":
            raise Problem(409, "This round is already closed.", slug="round-closed")
        inst = await s.get(InstrumentRow, r.instrument_id)
        assert inst is not None
        answers = [a.answers for a in (await s.scalars(select(Answers).where(Answers.round_id == r.id))).all()]
        result = domain.assess(inst.to_domain(), answers,
                               domain.Thresholds(r.ready_at, r.conditions_at, r.min_respondents))
        r.status, r.closed_at, r.level, r.reasons = "closed", now, result.level.value, list(result.reasons)
        r.respondents, r.results = result.respondents, [vars(d) for d in result.domains]
        await emit(s, events.ReadinessAssessed(
            round_id=r.id, instrument_id=inst.id, instrument_version=inst.version, closed_on=today,
            respondents=result.respondents, level=result.level.value,
            domains=[events.DomainResult(**vars(d)) for d in result.domains]), agency=agency, subject=r.id)
        plan = (await s.scalars(select(Plan))).one()
        actions = (await s.scalars(select(PlanAction))).all()
        suggestions = domain.suggested_actions(result.gaps, [a.title for a in actions if a.status != "dropped"])
        for t in suggestions:
            s.add(PlanAction(id=str(uuid7()), agency_id=agency, plan_id=plan.id, title=t.title,
                             readiness_domain=t.domain, owner_id=None, due_on=today + timedelta(days=t.due_in_days),
                             status=domain.ActionStatus.OPEN, origin="suggested", round_id=r.id, completed_on=None,
                             created_at=now, updated_at=now))
        if suggestions:
            plan.changed_at = now
    return round_out(r)


# ---- the implementation plan -------------------------------------------------------------------

def action_out(a: PlanAction, today: date) -> ActionOut:
    return ActionOut(id=a.id, plan_id=a.plan_id, title=a.title, readiness_domain=a.readiness_domain,
                     owner_id=a.owner_id, due_on=a.due_on, status=domain.ActionStatus(a.status),
                     origin=a.origin, round_id=a.round_id, completed_on=a.completed_on,  # type: ignore[arg-type]
                     overdue=domain.is_overdue(a.status, a.due_on, today), created_at=a.created_at)


@router.get("/agencies/{agency_id}/plan", response_model=PlanOut, summary="The implementation plan and its actions")
async def get_plan(agency_id: UUID, db: DB, principal: Member) -> PlanOut:
    agency = scoped(agency_id, principal)
    today = date.today()
    async with db.reader(agency=agency) as s:
        await load_agency(s, agency)
        plan = (await s.scalars(select(Plan))).one()
        actions = [action_out(a, today) for a in (await s.scalars(select(PlanAction).order_by(PlanAction.id))).all()]
    return PlanOut(id=plan.id, agency_id=plan.agency_id, approved=plan.approved, approved_at=plan.approved_at,
                   approved_by=plan.approved_by, approved_revision=plan.approved_revision,
                   changed_since_approval=plan.changed_since_approval, actions=actions,
                   open_actions=sum(a.status in ("open", "in_progress") for a in actions),
                   overdue_actions=sum(a.overdue for a in actions))


@router.get("/agencies/{agency_id}/plan/actions", response_model=ActionPage)
async def list_actions(agency_id: UUID, db: DB, principal: Member, page: Page,
                       status: domain.ActionStatus | None = None,
                       overdue: Annotated[bool | None, Query(description="Only overdue actions")] = None,
                       ) -> dict[str, object]:
    agency = scoped(agency_id, principal)
    today = date.today()
    stmt = select(PlanAction)
    if status:
        stmt = stmt.where(PlanAction.status == status.value)
    if overdue:
        stmt = stmt.where(PlanAction.due_on < today, PlanAction.status.in_(["open", "in_progress"]))
    async with db.reader(agency=agency) as s:
        rows = list((await s.scalars(paged(stmt, PlanAction.id, page))).all())
    return page_of(rows, page, lambda a: action_out(a, today), lambda a: a.id)


async def owner_problem(s: AsyncSession, owner: UUID | None) -> list[dict[str, Any]]:
    if owner is None:
        return []
    m = (await s.scalars(select(Staff).where(Staff.id == str(owner)))).first()
    if m is None or m.status != "active":
        return [field_error("body.owner_id", "the owner must be active staff of the agency")]
    return []


DOMAIN_KEYS = frozenset(domain.ACTION_CATALOG)


@router.post("/agencies/{agency_id}/plan/actions", status_code=201, response_model=ActionOut)
async def add_action(agency_id: UUID, body: ActionIn, db: DB, principal: Admin, response: Response) -> ActionOut:
    agency = scoped(agency_id, principal)
    today, now = date.today(), utcnow()
    errors = []
    if body.readiness_domain is not None and body.readiness_domain not in DOMAIN_KEYS:
        errors.append(field_error("body.readiness_domain", f"unknown domain; one of {', '.join(sorted(DOMAIN_KEYS))}"))
    if body.due_on is not None and body.due_on < today:
        errors.append(field_error("body.due_on", "a new action cannot be due in the past"))
    async with db.unit_of_work(agency=agency) as s:
        await load_agency(s, agency)
        errors += await owner_problem(s, body.owner_id)
        if errors:
            raise invalid(errors)
        plan = (await s.scalars(select(Plan))).one()
        a = PlanAction(id=str(uuid7()), agency_id=agency, plan_id=plan.id, title=body.title.strip(),
                       readiness_domain=body.readiness_domain, owner_id=str(body.owner_id) if body.owner_id else None,
                       due_on=body.due_on, status=domain.ActionStatus.OPEN, origin="manual", round_id=None,
                       completed_on=None, created_at=now, updated_at=now)
        s.add(a)
        plan.changed_at = now
    response.headers["Location"] = f"/v1/agencies/{agency}/plan/actions/{a.id}"
    return action_out(a, today)


@router.patch("/agencies/{agency_id}/plan/actions/{action_id}", response_model=ActionOut,
              summary="Change an action; marking it done publishes PlanActionCompleted")
async def patch_action(agency_id: UUID, action_id: UUID, body: ActionPatch, db: DB, principal: Admin) -> ActionOut:
    agency = scoped(agency_id, principal)
    today, now = date.today(), utcnow()
    changes = body.model_dump(exclude_unset=True)
    async with db.unit_of_work(agency=agency) as s:
        a: PlanAction = await load(s, PlanAction, action_id, "plan action")
        errors = await owner_problem(s, body.owner_id)
        current = domain.ActionStatus(a.status)
        if body.status is not None and (problem := domain.move_problem(current, body.status)):
            errors.append(field_error("body.status", problem))
        if current == domain.ActionStatus.DONE and set(changes) - {"status"}:
            errors.append(field_error("body", "a done action is part of the record and cannot change"))
        if errors:
            raise invalid(errors)
        plan = (await s.scalars(select(Plan))).one()
        if set(changes) & {"title", "owner_id", "due_on"} or body.status == domain.ActionStatus.DROPPED:
            plan.changed_at = now  # the plan itself changed, not just its progress
        if body.title is not None:
            a.title = body.title.strip()
        if "owner_id" in changes:
            a.owner_id = str(body.owner_id) if body.owner_id else None
        if "due_on" in changes:
            a.due_on = body.due_on
        if body.status is not None and body.status != current:
            a.status = body.status.value
            if body.status == domain.ActionStatus.DONE:
                a.completed_on = today
                await emit(s, events.PlanActionCompleted(plan_id=a.plan_id, action_id=a.id, title=a.title,
                                                         readiness_domain=a.readiness_domain, completed_on=today,
                                                         due_on=a.due_on), agency=agency, subject=plan.id)
        a.updated_at = now
    return action_out(a, today)


@router.post("/agencies/{agency_id}/plan/comments", status_code=201, response_model=CommentOut,
             summary="Comment on the plan or one of its actions (agency staff and the implementation partner)")
async def add_comment(agency_id: UUID, body: CommentIn, db: DB, principal: Member) -> CommentOut:
    agency = scoped(agency_id, principal)
    if principal.roles == {"partner"}:
        raise Problem(403, "Partner systems have read-only access.", slug="missing-role")
    async with db.unit_of_work(agency=agency) as s:
        await load_agency(s, agency)
        plan = (await s.scalars(select(Plan))).one()
        if body.action_id is not None:
            await load(s, PlanAction, body.action_id, "plan action")
        c = PlanComment(id=str(uuid7()), agency_id=agency, plan_id=plan.id,
                        action_id=str(body.action_id) if body.action_id else None, author_id=principal.sub,
                        author_kind="partner" if principal.has("platform_admin") else "agency",
                        body=body.body, created_at=utcnow())
        s.add(c)
    return CommentOut.model_validate(c, from_attributes=True)


@router.get("/agencies/{agency_id}/plan/comments", response_model=CommentPage)
async def list_comments(agency_id: UUID, db: DB, principal: Member, page: Page,
                        action_id: UUID | None = None) -> dict[str, object]:
    agency = scoped(agency_id, principal)
    stmt = select(PlanComment)
    if action_id:
        stmt = stmt.where(PlanComment.action_id == str(action_id))
    async with db.reader(agency=agency) as s:
        rows = list((await s.scalars(paged(stmt, PlanComment.id, page))).all())
    return page_of(rows, page, lambda c: CommentOut.model_validate(c, from_attributes=True), lambda c: c.id)


@router.post("/agencies/{agency_id}/plan/approve", response_model=PlanOut,
             summary="Approve the co-created plan (the agency's own admins)")
async def approve_plan(agency_id: UUID, db: DB, principal: Annotated[Principal, require_roles("agency_admin")],
                       ) -> PlanOut:
    agency = scoped(agency_id, principal)
    if principal.agency != agency:
        raise Problem(403, "The agency's own leadership approves its plan.", slug="other-agency")
    today, now = date.today(), utcnow()
    async with db.unit_of_work(agency=agency) as s:
        plan = (await s.scalars(select(Plan).with_for_update())).one()
        live = [a for a in (await s.scalars(select(PlanAction))).all() if a.status != "dropped"]
        if not live:
            raise invalid([field_error("body", "the plan has no actions to approve")], "The plan")
        if plan.approved and not plan.changed_since_approval:
            raise Problem(409, "The plan is already approved and has not changed since.", slug="already-approved")
        plan.approved_revision += 1
        plan.approved_at, plan.approved_by = now, principal.sub
        await emit(s, events.ImplementationPlanApproved(plan_id=plan.id, approved_by=principal.sub, approved_on=today,
                                                        revision=plan.approved_revision, actions=len(live)),
                   agency=agency, subject=plan.id)
        await refresh_stage(s, agency, today)
    return await get_plan(agency_id, db, principal)


# ---- implementation stages ---------------------------------------------------------------------

@router.get("/agencies/{agency_id}/stages", response_model=StageHistory,
            summary="The implementation stage and the date each stage was entered")
async def stage_history(agency_id: UUID, db: DB, principal: Member) -> dict[str, object]:
    agency = scoped(agency_id, principal)
    async with db.reader(agency=agency) as s:
        a = await load_agency(s, agency)
        rows = (await s.scalars(select(StageEntry).order_by(StageEntry.id))).all()
    return {"current": a.stage, "entered_on": a.stage_entered_on,
            "history": [{"stage": e.stage, "previous_stage": e.previous_stage, "entered_on": e.entered_on,
                         "reason": e.reason, "certified_share": e.certified_share} for e in rows]}
