"""Readiness use cases: one function per use case, `(uow, command) -> result`.

A use case loads rows, asks domain.py, writes, and emits through the unit of work. The caller (a
route, a handler, a chore) opens the unit of work for the agency the command concerns, so
`uow.agency` is the tenant and `uow.today` the service's clock. Business errors are `Problem`s,
raised before anything is written.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, TypeVar
from uuid import UUID

from sqlalchemy import String, cast, select
from sqlalchemy.exc import IntegrityError
from uuid6 import uuid7

from contracts import readiness as events
from contracts.fidelity import CertificationLapsed, CertificationRenewed, CertificationRevoked, PractitionerCertified
from services.readiness import domain
from services.readiness.models import (
    Agency,
    Base,
    Certification,
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
    ActionPatch,
    AgencyIn,
    AgencyPatch,
    RejoinIn,
    StaffIn,
    StaffPatch,
    StaffRole,
    TeamIn,
)
from trellis.db import Database, UnitOfWork, discard, utcnow
from trellis.envelope import EventPayload
from trellis.pagination import PageParams, paged
from trellis.problems import Problem, field_error, invalid

Row = TypeVar("Row", bound=Base)
DOMAIN_KEYS = frozenset(domain.ACTION_CATALOG)


def tenant(uow: UnitOfWork) -> str:
    """The agency the caller opened the unit of work for (every use case here acts on one agency)."""
    if uow.agency is None:
        raise RuntimeError("a readiness use case needs a unit of work scoped to an agency")
    return uow.agency


async def load(uow: UnitOfWork, model: type[Row], id_: UUID | str, what: str, *, lock: bool = False) -> Row:
    stmt = select(model).where(model.id == str(id_))  # type: ignore[attr-defined]
    row = (await uow.scalars(stmt.with_for_update() if lock else stmt)).one_or_none()
    if row is None:
        raise Problem(404, f"No {what} {id_} in this agency.")
    return row


async def load_agency(uow: UnitOfWork, *, lock: bool = False) -> Agency:
    agency = tenant(uow)
    stmt = select(Agency).where(Agency.id == agency)
    row = (await uow.scalars(stmt.with_for_update() if lock else stmt)).one_or_none()
    if row is None:
        raise Problem(404, f"No agency {agency}.")
    return row


# ---- agencies ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class AgencyView:
    agency: Agency
    level: domain.Level | None  # of the latest closed round
    plan_approved: bool
    clearance: domain.Clearance


async def agency_views(uow: UnitOfWork, agencies: Sequence[Agency]) -> list[AgencyView]:
    """Each agency's figures, in three queries whatever the number of agencies.

    Filtered by agency explicitly, so the answer is the same in a session scoped to one agency and in
    a platform admin's all-agencies session.
    """
    ids = [a.id for a in agencies]
    if not ids:
        return []
    latest: dict[str, str | None] = {}
    closed = await uow.execute(select(Round.agency_id, Round.level)
                               .where(Round.agency_id.in_(ids), Round.status == "closed")
                               .order_by(Round.closed_at.desc()))
    for agency_id, level in closed:
        latest.setdefault(agency_id, level)
    approved = {agency_id for agency_id, at in await uow.execute(
        select(Plan.agency_id, Plan.approved_at).where(Plan.agency_id.in_(ids))) if at is not None}
    views = []
    for a in agencies:
        level = domain.Level(lv) if (lv := latest.get(a.id)) else None
        views.append(AgencyView(a, level, a.id in approved, domain.training_clearance(level, a.id in approved)))
    return views


async def register_agency(uow: UnitOfWork, body: AgencyIn) -> AgencyView:
    """The agency id is the unit of work's tenant (the caller picks it: the body's id or a new one)."""
    agency_id, today, now = tenant(uow), uow.today, utcnow()
    if (await uow.scalars(select(Agency).where(Agency.id == agency_id))).first() is not None:
        raise Problem(409, f"Agency {agency_id} is already registered.", slug="already-registered")
    t = domain.Thresholds()
    agency = Agency(id=agency_id, agency_id=agency_id, name=body.name, region=body.region, programs=body.programs,
                    stage=domain.Stage.EXPLORATION, stage_entered_on=today, ready_at=t.ready_at,
                    conditions_at=t.conditions_at, min_respondents=t.min_respondents, created_at=now)
    uow.add(agency)
    uow.add(Plan(id=str(uuid7()), agency_id=agency_id, approved_revision=0, changed_at=now, created_at=now))
    await uow.emit(events.AgencyRegistered(agency_id=agency_id, agency_name=body.name, region=body.region,
                                           programs=body.programs), subject=agency_id, agency=agency_id)
    await enter_stage(uow, agency, domain.Stage.EXPLORATION, "the agency was registered", None, None)
    return (await agency_views(uow, [agency]))[0]


async def list_agencies(uow: UnitOfWork, page: PageParams) -> list[AgencyView]:
    """The agencies the session can see (all of them in an all-agencies session), one page plus one."""
    rows = list((await uow.scalars(paged(select(Agency), Agency.id, page))).all())
    return await agency_views(uow, rows)


async def get_agency(uow: UnitOfWork) -> AgencyView:
    return (await agency_views(uow, [await load_agency(uow)]))[0]


@dataclass(frozen=True)
class ChangeAgency:
    patch: AgencyPatch
    by_platform_admin: bool


async def change_agency(uow: UnitOfWork, cmd: ChangeAgency) -> AgencyView:
    changes = cmd.patch.model_dump(exclude_unset=True)
    if set(changes) & {"ready_at", "conditions_at", "min_respondents"} and not cmd.by_platform_admin:
        raise Problem(403, "Only platform admins change readiness thresholds.", slug="missing-role")
    a = await load_agency(uow)
    changes = cmd.patch.model_dump(exclude_unset=True, exclude_none=True)
    merged = domain.Thresholds(changes.get("ready_at", a.ready_at), changes.get("conditions_at", a.conditions_at),
                               changes.get("min_respondents", a.min_respondents))
    if problems := merged.problems():
        raise invalid([field_error(f"body.{f}", m) for f, m in problems])
    for key, value in changes.items():
        setattr(a, key, value)
    return (await agency_views(uow, [a]))[0]


# ---- teams and staff ---------------------------------------------------------------------------

async def create_team(uow: UnitOfWork, body: TeamIn) -> Team:
    await load_agency(uow)
    name = body.name.strip()
    teams = (await uow.scalars(select(Team))).all()
    if not name or any(t.name.casefold() == name.casefold() for t in teams):
        raise invalid([field_error("body.name", f"the agency already has a team called '{name}'" if name
                                   else "name is blank")])
    team = Team(id=str(uuid7()), agency_id=tenant(uow), name=name, created_at=utcnow())
    uow.add(team)
    return team


async def list_teams(uow: UnitOfWork, page: PageParams) -> list[Team]:
    return list((await uow.scalars(paged(select(Team), Team.id, page))).all())


def joined(m: Staff) -> events.StaffMemberJoined:
    return events.StaffMemberJoined(staff_id=m.id, display_name=m.name, team_id=m.team_id, roles=m.roles,
                                    hire_date=m.hire_date)


def role_changed(m: Staff, before_roles: list[str], before_team: str | None) -> events.StaffRoleChanged:
    return events.StaffRoleChanged(staff_id=m.id, roles=m.roles, previous_roles=before_roles, team_id=m.team_id,
                                   previous_team_id=before_team)


async def roster_changed(uow: UnitOfWork, m: Staff, payload: EventPayload) -> None:
    """A roster change's event; the stage rules run again, since the practitioner count may have moved."""
    await uow.emit(payload, subject=m.id)
    await refresh_stage(uow)


async def team_problem(uow: UnitOfWork, team_id: UUID | None) -> list[dict[str, Any]]:
    if team_id is not None and (await uow.scalars(select(Team).where(Team.id == str(team_id)))).first() is None:
        return [field_error("body.team_id", f"no team {team_id} in this agency")]
    return []


async def add_staff(uow: UnitOfWork, body: StaffIn) -> Staff:
    agency, today, now = tenant(uow), uow.today, utcnow()
    hired = body.hire_date or today
    errors = [field_error("body.hire_date", "the hire date is in the future")] if hired > today else []
    await load_agency(uow)
    errors += await team_problem(uow, body.team_id)
    if errors:
        raise invalid(errors)
    email = body.email.lower()
    if (await uow.scalars(select(Staff).where(Staff.email == email))).first() is not None:
        raise Problem(409, f"{email} is already on this agency's roster.", slug="already-on-roster")
    person = str(body.id or uuid7())
    # Ids are per agency (the key is agency and id): one in use elsewhere is no business of this
    # caller, so only this agency's roster is asked.
    if (await uow.scalars(select(Staff).where(Staff.id == person))).first() is not None:
        raise Problem(409, f"Staff id {person} is already on this agency's roster.", slug="already-on-roster")
    m = Staff(id=person, agency_id=agency, name=body.name.strip(), email=email,
              team_id=str(body.team_id) if body.team_id else None, roles=sorted(set(body.roles)),
              hire_date=hired, status="active", left_on=None, created_at=now, updated_at=now)
    uow.add(m)
    await roster_changed(uow, m, joined(m))
    return m


@dataclass(frozen=True)
class StaffQuery:
    page: PageParams
    status: str | None = None
    team_id: UUID | None = None
    role: StaffRole | None = None


async def list_staff(uow: UnitOfWork, q: StaffQuery) -> list[Staff]:
    stmt = select(Staff)
    if q.status:
        stmt = stmt.where(Staff.status == q.status)
    if q.team_id:
        stmt = stmt.where(Staff.team_id == str(q.team_id))
    if q.role:  # a JSON list on both backends; the role is one of a fixed set, so no wildcards
        stmt = stmt.where(cast(Staff.roles, String).like(f'%"{q.role}"%'))
    return list((await uow.scalars(paged(stmt, Staff.id, q.page))).all())


async def get_staff(uow: UnitOfWork, staff_id: UUID) -> Staff:
    return await load(uow, Staff, staff_id, "staff member")


@dataclass(frozen=True)
class ChangeStaff:
    staff_id: UUID
    patch: StaffPatch


async def change_staff(uow: UnitOfWork, cmd: ChangeStaff) -> Staff:
    body, changes = cmd.patch, cmd.patch.model_dump(exclude_unset=True)
    m = await load(uow, Staff, cmd.staff_id, "staff member")
    if m.status != "active":
        raise Problem(409, f"{m.name} has left the agency; their record is closed.", slug="staff-left")
    if errors := await team_problem(uow, body.team_id):
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
        await roster_changed(uow, m, role_changed(m, before_roles, before_team))
    return m


@dataclass(frozen=True)
class RecordLeaving:
    staff_id: UUID
    left_on: date | None = None  # default: today


async def record_leaving(uow: UnitOfWork, cmd: RecordLeaving) -> Staff:
    today = uow.today
    left_on = cmd.left_on or today
    m = await load(uow, Staff, cmd.staff_id, "staff member")
    if m.status != "active":
        raise Problem(409, f"{m.name} already left on {m.left_on}.", slug="staff-left")
    if not m.hire_date <= left_on <= today:
        raise invalid([field_error("body.left_on", f"must be between the hire date {m.hire_date} and today")])
    m.status, m.left_on, m.updated_at = "left", left_on, utcnow()
    await roster_changed(uow, m, events.StaffMemberLeft(staff_id=m.id, left_on=left_on))
    return m


@dataclass(frozen=True)
class RecordRejoining:
    staff_id: UUID
    body: RejoinIn


async def record_rejoining(uow: UnitOfWork, cmd: RecordRejoining) -> Staff:
    body, today = cmd.body, uow.today
    hired = body.hire_date or today
    m = await load(uow, Staff, cmd.staff_id, "staff member")
    if m.status == "active":
        raise Problem(409, f"{m.name} is already active staff.", slug="staff-active")
    errors = await team_problem(uow, body.team_id)
    if m.left_on is not None and not m.left_on <= hired <= today:
        errors.append(field_error("body.hire_date", f"must be between their leaving date {m.left_on} and today"))
    if errors:
        raise invalid(errors)
    m.status, m.left_on, m.hire_date, m.updated_at = "active", None, hired, utcnow()
    if body.roles is not None:
        m.roles = sorted(set(body.roles))
    if "team_id" in body.model_fields_set:
        m.team_id = str(body.team_id) if body.team_id else None
    await roster_changed(uow, m, joined(m))
    return m


@dataclass(frozen=True)
class ImportRoster:
    csv: str
    dry_run: bool = False


@dataclass(frozen=True)
class ImportResult:
    rows: int
    created: int
    updated: int


def _file_problem(errors: Sequence[domain.RowError]) -> Problem:
    return Problem(422, f"{len(errors)} problem(s) in the file; nothing was imported.", slug="validation-error",
                   errors=[{"field": f"line {e.line}" + (f", {e.column}" if e.column else ""),
                            "pointer": f"#/line/{e.line}", "line": e.line, "column": e.column, "message": e.message}
                           for e in sorted(errors, key=lambda e: e.line)])


async def import_roster(uow: UnitOfWork, cmd: ImportRoster) -> ImportResult:
    """All rows valid, or nothing is written; a dry run does every check (the database's too), then discards."""
    agency, today, now = tenant(uow), uow.today, utcnow()
    await load_agency(uow)
    teams = {t.name.casefold(): t.id for t in (await uow.scalars(select(Team))).all()}
    existing = {m.email: m for m in (await uow.scalars(select(Staff))).all()}
    by_id = {m.id: m for m in existing.values()}
    known = {e: domain.Known(m.id, m.status == "active") for e, m in existing.items()}
    parsed = domain.parse_roster(cmd.csv, teams, known, today)
    errors = list(parsed.errors)
    for row in parsed.rows:
        if row.id and row.id.lower() in by_id and by_id[row.id.lower()].email != row.email:
            errors.append(domain.RowError(row.line, "id", f"id {row.id} belongs to another staff member"))
    if errors:
        raise _file_problem(errors)
    created = updated = 0
    for row in parsed.rows:
        m = existing.get(row.email)
        if m is None:
            created += 1
            m = Staff(id=(row.id or str(uuid7())).lower(), agency_id=agency, name=row.name, email=row.email,
                      team_id=row.team, roles=list(row.roles), hire_date=row.hire_date, status="active",
                      left_on=None, created_at=now, updated_at=now)
            uow.add(m)
            await uow.emit(joined(m), subject=m.id)
        elif (m.name, m.team_id, m.roles) != (row.name, row.team, list(row.roles)):
            updated += 1
            before_roles, before_team = list(m.roles), m.team_id
            m.name, m.team_id, m.roles, m.updated_at = row.name, row.team, list(row.roles), now
            if (before_roles, before_team) != (m.roles, m.team_id):
                await uow.emit(role_changed(m, before_roles, before_team), subject=m.id)
    try:
        await uow.flush()  # the database's own checks, in a dry run exactly as in a real one
    except IntegrityError:
        raise Problem(409, "The roster changed while the file was being imported; nothing was imported. "
                           "Try again.", slug="roster-changed") from None
    if cmd.dry_run:
        discard(uow)
    elif created or updated:
        await refresh_stage(uow)
    return ImportResult(rows=len(parsed.rows), created=created, updated=updated)


@dataclass(frozen=True)
class TeamFigures:
    team_id: str | None
    team_name: str
    figures: domain.Turnover


@dataclass(frozen=True)
class TurnoverReport:
    as_of: date
    agency: domain.Turnover
    teams: list[TeamFigures]


async def turnover(uow: UnitOfWork) -> TurnoverReport:
    """Joined and left in the trailing 12 months, per team and for the whole agency, as of today."""
    today = uow.today
    await load_agency(uow)
    staff = (await uow.scalars(select(Staff))).all()
    teams = {t.id: t.name for t in (await uow.scalars(select(Team))).all()}
    grouped: dict[str | None, list[domain.Tenure]] = defaultdict(list)
    for m in staff:
        grouped[m.team_id].append(domain.Tenure(m.hire_date, m.left_on))
    per_team = [TeamFigures(tid, teams.get(tid, "No team") if tid else "No team",
                            domain.turnover(grouped.get(tid, []), today))
                for tid in [*teams, *([None] if None in grouped else [])]]
    everyone = domain.turnover((domain.Tenure(m.hire_date, m.left_on) for m in staff), today)
    return TurnoverReport(today, everyone, per_team)


# ---- readiness instruments and rounds ----------------------------------------------------------

async def list_instruments(uow: UnitOfWork, page: PageParams) -> list[InstrumentRow]:
    return list((await uow.scalars(paged(select(InstrumentRow), InstrumentRow.id, page))).all())


async def get_instrument(uow: UnitOfWork, instrument_id: UUID) -> InstrumentRow:
    """One readiness instrument; they are shared by every agency."""
    row = (await uow.scalars(select(InstrumentRow).where(InstrumentRow.id == str(instrument_id)))).one_or_none()
    if row is None:
        raise Problem(404, f"No readiness instrument {instrument_id}.")
    return row


@dataclass(frozen=True)
class OpenRound:
    title: str
    instrument_id: UUID | None  # default: the newest active instrument
    opened_by: str


async def open_round(uow: UnitOfWork, cmd: OpenRound) -> Round:
    a = await load_agency(uow, lock=True)  # so two admins cannot open two rounds at once
    if cmd.instrument_id is None:
        inst = (await uow.scalars(select(InstrumentRow).where(InstrumentRow.status == "active")
                                  .order_by(InstrumentRow.version.desc()))).first()
    else:
        inst = await uow.get(InstrumentRow, str(cmd.instrument_id))
    if inst is None or inst.status != "active":
        raise invalid([field_error("body.instrument_id", "no active readiness instrument with that id")])
    if (await uow.scalars(select(Round).where(Round.status == "open"))).first() is not None:
        raise Problem(409, "This agency already has an open readiness round; close it first.", slug="round-open")
    r = Round(id=str(uuid7()), agency_id=a.id, instrument_id=inst.id, title=cmd.title.strip(), status="open",
              opened_by=cmd.opened_by, opened_at=utcnow(), ready_at=a.ready_at, conditions_at=a.conditions_at,
              min_respondents=a.min_respondents, respondents=0, reasons=[], results=[])
    uow.add(r)
    await uow.emit(events.ReadinessRoundOpened(round_id=r.id, title=r.title, instrument_id=inst.id,
                                               instrument_version=inst.version, opened_at=r.opened_at),
                   subject=r.id)
    return r


async def list_rounds(uow: UnitOfWork, page: PageParams) -> list[Round]:
    return list((await uow.scalars(paged(select(Round), Round.id, page))).all())


async def get_round(uow: UnitOfWork, round_id: UUID) -> Round:
    return await load(uow, Round, round_id, "readiness round")


@dataclass(frozen=True)
class Comparison:
    base: Round
    other: Round
    domains: list[domain.DomainComparison]


async def compare_rounds(uow: UnitOfWork, rounds: tuple[UUID, UUID]) -> Comparison:
    a = await load(uow, Round, rounds[0], "readiness round")
    b = await load(uow, Round, rounds[1], "readiness round")
    if a.status != "closed" or b.status != "closed":
        raise Problem(409, "Only closed rounds have results to compare.", slug="round-open")

    def results(r: Round) -> list[domain.DomainResult]:
        return [domain.DomainResult(**d) for d in r.results]

    return Comparison(a, b, domain.compare(results(a), results(b)))


@dataclass(frozen=True)
class Respondent:
    round_id: UUID
    person: str  # the caller's subject
    agency: str | None  # the caller's own agency (a platform admin's is another one)


@dataclass(frozen=True)
class Answer(Respondent):
    answers: dict[str, int]


async def answer_round(uow: UnitOfWork, cmd: Answer) -> tuple[Answers, bool]:
    """Give or change your own answers while the round is open; True when they are new."""
    agency = tenant(uow)
    me = (await uow.scalars(select(Staff).where(Staff.id == cmd.person))).first()
    if cmd.agency != agency or me is None or me.status != "active":
        raise Problem(403, "Only the agency's active staff answer its readiness rounds.", slug="not-a-respondent")
    # Locked: answers and the close of one round take turns, so counts and the close agree.
    r = await load(uow, Round, cmd.round_id, "readiness round", lock=True)
    if r.status != "open":
        raise Problem(409, "This round is closed; answers can no longer change.", slug="round-closed")
    inst = await uow.get(InstrumentRow, r.instrument_id)
    assert inst is not None
    if problems := domain.answer_problems(inst.to_domain(), cmd.answers):
        raise invalid([field_error(f"body.{f}", m) for f, m in problems], "The answers")
    mine = (await uow.scalars(select(Answers).where(Answers.round_id == r.id,
                                                    Answers.respondent_id == cmd.person))).first()
    now = utcnow()
    if mine is not None:
        mine.answers, mine.updated_at = dict(cmd.answers), now
        return mine, False
    mine = Answers(id=str(uuid7()), agency_id=agency, round_id=r.id, respondent_id=cmd.person,
                   answers=dict(cmd.answers), submitted_at=now, updated_at=now)
    uow.add(mine)
    r.respondents += 1
    # Count only, keyed by the round: the privacy floor forbids anything that points at the respondent.
    # An update (above) emits nothing, since the count did not change.
    await uow.emit(events.ReadinessResponseRecorded(round_id=r.id, respondents=r.respondents), subject=r.id)
    return mine, True


async def my_answers(uow: UnitOfWork, who: Respondent) -> Answers:
    mine = (await uow.scalars(select(Answers).where(Answers.round_id == str(who.round_id),
                                                    Answers.respondent_id == who.person))).first()
    if mine is None:
        raise Problem(404, "You have not answered this round.")
    return mine


async def close_round(uow: UnitOfWork, round_id: UUID) -> Round:
    """Results per domain, the level, and suggested plan actions for the gaps."""
    agency, today, now = tenant(uow), uow.today, utcnow()
    r = await load(uow, Round, round_id, "readiness round", lock=True)
    if r.status != "open":
        raise Problem(409, "This round is already closed.", slug="round-closed")
    inst = await uow.get(InstrumentRow, r.instrument_id)
    assert inst is not None
    answers = [a.answers for a in (await uow.scalars(select(Answers).where(Answers.round_id == r.id))).all()]
    result = domain.assess(inst.to_domain(), answers, domain.Thresholds(r.ready_at, r.conditions_at,
                                                                        r.min_respondents))
    r.status, r.closed_at, r.level, r.reasons = "closed", now, result.level.value, list(result.reasons)
    r.respondents, r.results = result.respondents, [vars(d) for d in result.domains]
    await uow.emit(events.ReadinessAssessed(
        round_id=r.id, instrument_id=inst.id, instrument_version=inst.version, closed_on=today,
        respondents=result.respondents, level=result.level.value,
        domains=[events.DomainResult(**vars(d)) for d in result.domains]), subject=r.id)
    plan = (await uow.scalars(select(Plan))).one()
    actions = (await uow.scalars(select(PlanAction))).all()
    suggestions = domain.suggested_actions(result.gaps, [a.title for a in actions if a.status != "dropped"])
    for t in suggestions:
        suggested = PlanAction(id=str(uuid7()), agency_id=agency, plan_id=plan.id, title=t.title,
                               readiness_domain=t.domain, owner_id=None, due_on=today + timedelta(days=t.due_in_days),
                               status=domain.ActionStatus.OPEN, origin="suggested", round_id=r.id,
                               completed_on=None, created_at=now, updated_at=now)
        uow.add(suggested)
        await uow.emit(action_added(suggested), subject=plan.id)
    if suggestions:
        plan.changed_at = now
    return r


# ---- the implementation plan -------------------------------------------------------------------

@dataclass(frozen=True)
class ActionView:
    action: PlanAction
    overdue: bool  # as of the unit of work's today


@dataclass(frozen=True)
class PlanView:
    plan: Plan
    actions: list[ActionView]


def action_view(a: PlanAction, today: date) -> ActionView:
    return ActionView(a, domain.is_overdue(a.status, a.due_on, today))


def action_added(a: PlanAction) -> events.PlanActionAdded:
    return events.PlanActionAdded(plan_id=a.plan_id, action_id=a.id, title=a.title,
                                  readiness_domain=a.readiness_domain, owner_id=a.owner_id, due_on=a.due_on,
                                  origin=a.origin, round_id=a.round_id)


async def get_plan(uow: UnitOfWork) -> PlanView:
    await load_agency(uow)
    return await _plan_view(uow)


async def _plan_view(uow: UnitOfWork) -> PlanView:
    today = uow.today
    plan = (await uow.scalars(select(Plan))).one()
    actions = (await uow.scalars(select(PlanAction).order_by(PlanAction.id))).all()
    return PlanView(plan, [action_view(a, today) for a in actions])


@dataclass(frozen=True)
class ActionQuery:
    page: PageParams
    status: domain.ActionStatus | None = None
    overdue: bool | None = None  # only overdue actions


async def list_actions(uow: UnitOfWork, q: ActionQuery) -> list[ActionView]:
    today = uow.today
    stmt = select(PlanAction)
    if q.status:
        stmt = stmt.where(PlanAction.status == q.status.value)
    if q.overdue:
        stmt = stmt.where(PlanAction.due_on < today, PlanAction.status.in_(["open", "in_progress"]))
    return [action_view(a, today) for a in (await uow.scalars(paged(stmt, PlanAction.id, q.page))).all()]


async def owner_problem(uow: UnitOfWork, owner: UUID | None) -> list[dict[str, Any]]:
    if owner is None:
        return []
    m = (await uow.scalars(select(Staff).where(Staff.id == str(owner)))).first()
    if m is None or m.status != "active":
        return [field_error("body.owner_id", "the owner must be active staff of the agency")]
    return []


async def add_action(uow: UnitOfWork, body: ActionIn) -> ActionView:
    agency, today, now = tenant(uow), uow.today, utcnow()
    errors = []
    if body.readiness_domain is not None and body.readiness_domain not in DOMAIN_KEYS:
        errors.append(field_error("body.readiness_domain", f"unknown domain; one of {', '.join(sorted(DOMAIN_KEYS))}"))
    if body.due_on is not None and body.due_on < today:
        errors.append(field_error("body.due_on", "a new action cannot be due in the past"))
    await load_agency(uow)
    errors += await owner_problem(uow, body.owner_id)
    if errors:
        raise invalid(errors)
    plan = (await uow.scalars(select(Plan))).one()
    a = PlanAction(id=str(uuid7()), agency_id=agency, plan_id=plan.id, title=body.title.strip(),
                   readiness_domain=body.readiness_domain, owner_id=str(body.owner_id) if body.owner_id else None,
                   due_on=body.due_on, status=domain.ActionStatus.OPEN, origin="manual", round_id=None,
                   completed_on=None, created_at=now, updated_at=now)
    uow.add(a)
    plan.changed_at = now
    await uow.emit(action_added(a), subject=plan.id)
    return action_view(a, today)


@dataclass(frozen=True)
class ChangeAction:
    action_id: UUID
    patch: ActionPatch


async def change_action(uow: UnitOfWork, cmd: ChangeAction) -> ActionView:
    """Marking an action done publishes PlanActionCompleted; any other real change publishes PlanActionUpdated."""
    body, today, now = cmd.patch, uow.today, utcnow()
    changes = body.model_dump(exclude_unset=True)
    a = await load(uow, PlanAction, cmd.action_id, "plan action")
    errors = await owner_problem(uow, body.owner_id)
    current = domain.ActionStatus(a.status)
    if body.status is not None and (problem := domain.move_problem(current, body.status)):
        errors.append(field_error("body.status", problem))
    if current == domain.ActionStatus.DONE and set(changes) - {"status"}:
        errors.append(field_error("body", "a done action is part of the record and cannot change"))
    if errors:
        raise invalid(errors)
    plan = (await uow.scalars(select(Plan))).one()
    if set(changes) & {"title", "owner_id", "due_on"} or body.status == domain.ActionStatus.DROPPED:
        plan.changed_at = now  # the plan itself changed, not just its progress
    fields: tuple[events.ActionField, ...] = ("title", "owner_id", "due_on", "status")
    before = {k: getattr(a, k) for k in fields}
    if body.title is not None:
        a.title = body.title.strip()
    if "owner_id" in changes:
        a.owner_id = str(body.owner_id) if body.owner_id else None
    if "due_on" in changes:
        a.due_on = body.due_on
    done = body.status == domain.ActionStatus.DONE and current != domain.ActionStatus.DONE
    if body.status is not None and body.status != current and not done:
        a.status = body.status.value
    # Only fields whose value really moved; completion has its own event below, after this one.
    changed = [k for k in fields if getattr(a, k) != before[k]]
    if changed:
        await uow.emit(events.PlanActionUpdated(plan_id=a.plan_id, action_id=a.id, title=a.title,
                                                readiness_domain=a.readiness_domain, owner_id=a.owner_id,
                                                due_on=a.due_on, status=a.status, changed=changed),
                       subject=plan.id)
    if done:
        a.status, a.completed_on = domain.ActionStatus.DONE.value, today
        await uow.emit(events.PlanActionCompleted(plan_id=a.plan_id, action_id=a.id, title=a.title,
                                                  readiness_domain=a.readiness_domain, completed_on=today,
                                                  due_on=a.due_on), subject=plan.id)
    a.updated_at = now
    return action_view(a, today)


@dataclass(frozen=True)
class AddComment:
    body: str
    action_id: UUID | None
    author: str
    author_kind: str  # agency | partner (the implementation partner)


async def add_comment(uow: UnitOfWork, cmd: AddComment) -> PlanComment:
    await load_agency(uow)
    plan = (await uow.scalars(select(Plan))).one()
    if cmd.action_id is not None:
        await load(uow, PlanAction, cmd.action_id, "plan action")
    c = PlanComment(id=str(uuid7()), agency_id=tenant(uow), plan_id=plan.id,
                    action_id=str(cmd.action_id) if cmd.action_id else None, author_id=cmd.author,
                    author_kind=cmd.author_kind, body=cmd.body, created_at=utcnow())
    uow.add(c)
    return c


@dataclass(frozen=True)
class CommentQuery:
    page: PageParams
    action_id: UUID | None = None


async def list_comments(uow: UnitOfWork, q: CommentQuery) -> list[PlanComment]:
    stmt = select(PlanComment)
    if q.action_id:
        stmt = stmt.where(PlanComment.action_id == str(q.action_id))
    return list((await uow.scalars(paged(stmt, PlanComment.id, q.page))).all())


async def approve_plan(uow: UnitOfWork, approver: str) -> PlanView:
    """The agency's leadership approves the co-created plan; a changed plan is approved again as a new revision."""
    today, now = uow.today, utcnow()
    plan = (await uow.scalars(select(Plan).with_for_update())).one()
    live = [a for a in (await uow.scalars(select(PlanAction))).all() if a.status != "dropped"]
    if not live:
        raise invalid([field_error("body", "the plan has no actions to approve")], "The plan")
    if plan.approved and not plan.changed_since_approval:
        raise Problem(409, "The plan is already approved and has not changed since.", slug="already-approved")
    plan.approved_revision += 1
    plan.approved_at, plan.approved_by = now, approver
    await uow.emit(events.ImplementationPlanApproved(plan_id=plan.id, approved_by=approver, approved_on=today,
                                                     revision=plan.approved_revision, actions=len(live)),
                   subject=plan.id)
    await refresh_stage(uow)
    return await get_plan(uow)


# ---- implementation stages ---------------------------------------------------------------------

async def stage_history(uow: UnitOfWork) -> tuple[Agency, list[StageEntry]]:
    a = await load_agency(uow)
    return a, list((await uow.scalars(select(StageEntry).order_by(StageEntry.id))).all())


async def stage_facts(uow: UnitOfWork) -> domain.StageFacts:
    """Facts for the stage rules, in the session's agency (tenant scoping filters every query)."""
    plan = (await uow.scalars(select(Plan))).one_or_none()
    practitioners = {s.id for s in (await uow.scalars(select(Staff).where(Staff.status == "active"))).all()
                     if "practitioner" in s.roles}
    certs = (await uow.scalars(select(Certification).where(Certification.track == "practitioner"))).all()
    certified = {c.practitioner_id for c in certs if c.current} & practitioners
    return domain.StageFacts(plan_approved=plan is not None and plan.approved, ever_certified=bool(certs),
                             active_practitioners=len(practitioners), certified_practitioners=len(certified))


async def enter_stage(uow: UnitOfWork, agency: Agency, stage: domain.Stage, reason: str, share: float | None,
                      previous: str | None, on: date | None = None) -> None:
    on = on or uow.today
    uow.add(StageEntry(id=str(uuid7()), agency_id=agency.id, stage=stage, previous_stage=previous, entered_on=on,
                       reason=reason, certified_share=share, created_at=utcnow()))
    agency.stage, agency.stage_entered_on = stage, on
    await uow.emit(events.ImplementationStageChanged(stage=stage.value, previous_stage=previous, entered_on=on,
                                                     reason=reason, certified_share=share),
                   subject=agency.id, agency=agency.id)


async def refresh_stage(uow: UnitOfWork, as_of: date | None = None) -> list[domain.Stage]:
    """Apply the stage rules until they rest; each stage passed is recorded and published.

    `as_of` defaults to the clock's today; the sweep passes the day it sweeps for.
    """
    today = as_of or uow.today
    await uow.flush()  # the facts must include the caller's pending change
    # Locked so two transactions (say a lapse and a certification) apply the rules one after the other.
    agency = (await uow.scalars(select(Agency).where(Agency.id == tenant(uow)).with_for_update())).one_or_none()
    if agency is None:
        return []  # events about an agency this service does not know yet change nothing
    facts = await stage_facts(uow)
    moved: list[domain.Stage] = []
    for _ in range(len(domain.Stage)):
        move = domain.next_stage(domain.Stage(agency.stage), agency.stage_entered_on, facts, today)
        if move is None:
            break
        share = round(facts.share, 3) if facts.active_practitioners else None
        await enter_stage(uow, agency, move.stage, move.reason, share, agency.stage, today)
        moved.append(move.stage)
    return moved


async def agencies_in_full_implementation(uow: UnitOfWork) -> list[str]:
    """Where time alone can move the stage (Full Implementation held long enough); an all-agencies session."""
    return list((await uow.scalars(select(Agency.id).where(Agency.stage == domain.Stage.FULL))).all())


async def sweep_stages(db: Database, today: date | None = None) -> int:
    """The stage-sweep chore: re-apply the stage rules where time alone moves them.

    Each agency in its own unit of work. Safe on several replicas at once: the agency row is locked,
    and a second pass finds nothing to do.
    """
    async with db.reader(all_agencies=True) as uow:
        ids = await agencies_in_full_implementation(uow)
    moved = 0
    for agency_id in ids:
        async with db.unit_of_work(agency=agency_id) as uow:
            moved += len(await refresh_stage(uow, today))
    return moved


# ---- fidelity's certifications (the handlers' use case) ---------------------------------------

CertificationEvent = PractitionerCertified | CertificationRenewed | CertificationLapsed | CertificationRevoked


@dataclass(frozen=True)
class CertificationChanged:
    event: CertificationEvent
    current: bool  # certified or renewed: True; lapsed or revoked: False


async def record_certification(uow: UnitOfWork, cmd: CertificationChanged) -> list[domain.Stage]:
    """Keep the certification's newest state (by revision, whatever order events arrive in), then the stage."""
    e, now = cmd.event, utcnow()
    cert = (await uow.scalars(select(Certification).where(Certification.id == e.certification_id))).first()
    if cert is None:
        uow.add(Certification(id=e.certification_id, agency_id=tenant(uow), practitioner_id=e.practitioner_id,
                              track=e.track, current=cmd.current, revision=e.revision, updated_at=now))
    elif e.revision > cert.revision:
        cert.current, cert.revision, cert.updated_at = cmd.current, e.revision, now
    else:
        return []  # an older transition arriving late changes nothing
    return await refresh_stage(uow) if e.track == "practitioner" else []

