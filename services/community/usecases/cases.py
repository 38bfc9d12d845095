"""Case consultation use cases: draft, screen, justify, submit, review, present, recommend, follow up, read.

Every free text is screened (domain/screening.py) against the identifiers Trellis knows. Template
fields may be fixed or justified; texts the hub or presenter write later (comments, recommendations,
follow-up report, justification reasons) are refused with 422 when they carry an identifier.
Every read of a case writes a `case_reads` row in the reading transaction.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import false, or_, select, update
from sqlalchemy.exc import OperationalError
from uuid6 import uuid7

from contracts.community import CaseFollowUpReported, CaseRecommendationsIssued, Recommendation
from services.community.config import community_settings
from services.community.domain import cases as domain
from services.community.domain.cases import Action, Actor, State
from services.community.models import Attendance, Case, CaseRead, HubMember, Registration, Session
from services.community.usecases.common import get_program, get_session, hub_role, open_to
from services.community.usecases.directory import names_known
from trellis.auth import Principal
from trellis.db import Database, UnitOfWork
from trellis.pagination import PageParams, paged
from trellis.problems import Problem, field_error, invalid

log = logging.getLogger("trellis.community.cases")
PRESENTERS = ("practitioner", "coach", "supervisor")


# ---- screening ------------------------------------------------------------------------------------


async def _names(uow: UnitOfWork) -> Any:
    # Imported here: the detector is its own area (domain/screening.py).
    from services.community.domain import screening

    people, agencies = await names_known(uow)
    return screening.NameIndex.build(people, agencies)


async def screen_texts(uow: UnitOfWork, texts: dict[str, str], names: Any = None) -> list[domain.Detected]:
    from services.community.domain import screening

    names = names if names is not None else await _names(uow)
    return [domain.Detected(key, f.kind, f.start, f.end, f.text)
            for key, text in texts.items() if text for f in screening.screen(text, names)]


async def refuse_identifiers(uow: UnitOfWork, texts: dict[str, str], what: str) -> None:
    """422 naming each identifier found in texts that are published or shown as they are (`texts`: loc -> text)."""
    found = await screen_texts(uow, texts)
    if found:
        raise invalid([field_error(d.field, f"contains what looks like an identifier ({d.kind}): {d.text!r}",
                                   kind=d.kind, start=d.start, end=d.end) for d in found], what)


def _texts(case: Case) -> dict[str, str]:
    return {"title": case.title, **{k: case.fields.get(k, "") for k in domain.FIELD_KEYS}}


async def _rescreen(uow: UnitOfWork, case: Case) -> None:
    detected = await screen_texts(uow, _texts(case))
    reasons = {str(j["finding_id"]): str(j["reason"]) for j in case.justifications or []}
    if not case.finding_key:  # a secret per case: finding ids do not give a fixed identifier back
        case.finding_key = secrets.token_hex(16)
    case.findings = domain.reconcile(case.findings or [], detected, reasons, case.finding_key)
    # A justification whose finding is gone is dropped, so it cannot cover a later hit by chance.
    live = {f["id"] for f in case.findings if f["status"] != "fixed"}
    case.justifications = [j for j in case.justifications or [] if j["finding_id"] in live]


def _check_fields(fields: dict[str, str], title: str | None) -> None:
    errors = []
    if title is not None and domain.blank(title):
        errors.append(field_error("body.title", "must not be blank"))
    for spec in domain.TEMPLATE:
        if len(fields.get(spec.key, "")) > spec.max_length:
            errors.append(field_error(f"body.fields.{spec.key}", f"at most {spec.max_length} characters"))
    unknown = sorted(set(fields) - set(domain.FIELD_KEYS))
    errors += [field_error(f"body.fields.{k}", "not a field of the case template") for k in unknown]
    if errors:
        raise invalid(errors, "The case")


def _refused(e: domain.TransitionRefused) -> Problem:
    if e.reason == "not-allowed":
        return Problem(403, e.detail, slug="not-allowed")
    return Problem(409, e.detail, slug="wrong-case-state")


def _step(case: Case, action: Action, actors: set[Actor], open_findings: int = 0) -> State:
    try:
        return domain.transition(case.state, action, actors, open_findings=open_findings)
    except domain.TransitionRefused as e:
        raise _refused(e) from None


def _touch(uow: UnitOfWork, case: Case, state: State | None = None) -> None:
    if state is not None:
        case.state = state.value
    case.revision += 1
    case.updated_at = uow.now


# ---- who the caller is to a case ------------------------------------------------------------------


async def _actors(uow: UnitOfWork, case: Case, who: Principal) -> set[Actor]:
    actors = set()
    if who.sub == case.presenter_id:
        actors.add(Actor.PRESENTER)
    if await hub_role(uow, case.program_id, who.sub) is not None:
        actors.add(Actor.HUB)
    return actors


async def _participates(uow: UnitOfWork, session_id: str, person: str) -> bool:
    reg = (await uow.scalars(select(Registration.id).where(
        Registration.session_id == session_id, Registration.person_id == person,
        Registration.status == "confirmed"))).first()
    if reg is not None:
        return True
    return (await uow.scalars(select(Attendance.person_id).where(
        Attendance.session_id == session_id, Attendance.person_id == person,
        Attendance.attended.is_(True)))).first() is not None


async def _may_see(uow: UnitOfWork, case: Case, who: Principal, session: Session | None = None) -> bool:
    session = session or await get_session(uow, case.session_id)
    viewer = domain.Viewer(who.sub, who.agency, who.roles,
                           is_hub=await hub_role(uow, case.program_id, who.sub) is not None,
                           is_participant=await _participates(uow, case.session_id, who.sub))
    facts = domain.CaseFacts(case.presenter_id, case.presenter_agency, case.state,
                             domain.local_day(session.starts_at, session.timezone))
    return domain.may_see(viewer, facts, domain.local_day(uow.now, session.timezone))


async def _load(uow: UnitOfWork, case_id: str, *, lock: bool = False) -> Case:
    stmt = select(Case).where(Case.id == case_id)
    case = (await uow.scalars(stmt.with_for_update() if lock else stmt)).one_or_none()
    if case is None:
        raise Problem(404, f"No case {case_id}.")
    return case


async def _visible(uow: UnitOfWork, case_id: str, who: Principal, *, lock: bool = False) -> Case:
    """The case, or 404 when the caller may not see it (its existence is not disclosed)."""
    case = await _load(uow, case_id, lock=lock)
    if not await _may_see(uow, case, who):
        raise Problem(404, f"No case {case_id}.")
    return case


def _audit(uow: UnitOfWork, case: Case, who: Principal) -> None:
    uow.add(CaseRead(id=str(uuid7()), case_id=case.id, reader_id=who.sub, reader_agency=who.agency,
                     reader_roles=sorted(who.roles), state=case.state, read_at=uow.now))


# ---- drafting -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DraftCase:
    presenter: Principal
    session_id: str
    title: str
    fields: dict[str, str]


async def draft_case(uow: UnitOfWork, cmd: DraftCase) -> Case:
    """A practitioner, coach or supervisor drafts a case for a session; it is screened at once."""
    _check_fields(cmd.fields, cmd.title)
    session = await get_session(uow, cmd.session_id)
    if session.status != "scheduled":
        raise Problem(409, "The session is cancelled; a case cannot be brought to it.", slug="session-cancelled")
    program = await get_program(uow, session.program_id)
    if not open_to(program, cmd.presenter.agency) and await hub_role(uow, program.id, cmd.presenter.sub) is None:
        raise Problem(403, "The program is not open to your agency.", slug="program-not-open")
    now = uow.now
    case = Case(id=str(uuid7()), session_id=session.id, program_id=session.program_id,
                presenter_id=cmd.presenter.sub, presenter_agency=cmd.presenter.agency, title=cmd.title.strip(),
                fields={**domain.blank_fields(), **cmd.fields}, findings=[], justifications=[],
                state=State.DRAFT.value, hub_comments="", recommendations=[], follow_up_on=None,
                follow_up_report="", revision=1, created_at=now, updated_at=now)
    await _rescreen(uow, case)
    case.state = domain.transition(State.DRAFT, Action.EDIT, {Actor.PRESENTER},
                                   open_findings=len(domain.open_findings(case.findings))).value
    uow.add(case)
    _audit(uow, case, cmd.presenter)  # the presenter reads back what they wrote
    return case


@dataclass(frozen=True)
class EditCase:
    who: Principal
    case_id: str
    title: str | None = None
    fields: dict[str, str] = field(default_factory=dict)


async def edit_case(uow: UnitOfWork, cmd: EditCase) -> Case:
    _check_fields(cmd.fields, cmd.title)
    case = await _visible(uow, cmd.case_id, cmd.who, lock=True)
    actors = await _actors(uow, case, cmd.who)
    _step(case, Action.EDIT, actors)  # refuses early: wrong actor or state
    if cmd.title is not None:
        case.title = cmd.title.strip()
    if cmd.fields:
        case.fields = {**case.fields, **cmd.fields}
    await _rescreen(uow, case)
    _touch(uow, case, _step(case, Action.EDIT, actors, len(domain.open_findings(case.findings))))
    _audit(uow, case, cmd.who)
    return case


@dataclass(frozen=True)
class Justify:
    who: Principal
    case_id: str
    reasons: dict[str, str]  # finding id -> reason


async def justify_findings(uow: UnitOfWork, cmd: Justify) -> Case:
    case = await _visible(uow, cmd.case_id, cmd.who, lock=True)
    actors = await _actors(uow, case, cmd.who)
    _step(case, Action.EDIT, actors)
    errors = [field_error(f"body.items.{i}.finding_id", "no open finding with this id on the case")
              for i, fid in enumerate(cmd.reasons) if fid in domain.justify(case.findings, cmd.reasons)]
    errors += [field_error(f"body.items.{i}.reason", "must not be blank")
               for i, reason in enumerate(cmd.reasons.values()) if domain.blank(reason)]
    if errors:
        raise invalid(errors, "The justifications")
    await refuse_identifiers(uow, {f"body.items.{i}.reason": r for i, r in enumerate(cmd.reasons.values())},
                             "The justifications")
    kept = [j for j in case.justifications or [] if j["finding_id"] not in cmd.reasons]
    case.justifications = kept + [{"finding_id": fid, "reason": reason.strip(), "by": cmd.who.sub,
                                   "at": uow.now.isoformat()} for fid, reason in cmd.reasons.items()]
    await _rescreen(uow, case)
    _touch(uow, case, _step(case, Action.EDIT, actors, len(domain.open_findings(case.findings))))
    _audit(uow, case, cmd.who)
    return case


@dataclass(frozen=True)
class Act:
    who: Principal
    case_id: str


async def submit_case(uow: UnitOfWork, cmd: Act) -> Case:
    case = await _visible(uow, cmd.case_id, cmd.who, lock=True)
    still_open = domain.open_findings(case.findings)
    if still_open and Actor.PRESENTER in await _actors(uow, case, cmd.who) and case.state in domain.EDITABLE:
        raise Problem(409, f"{len(still_open)} screening finding(s) must be fixed or justified first.",
                      slug="open-findings", errors=[
                          field_error(f"fields.{f['field']}" if f["field"] != "title" else "title",
                                      f"{f['kind']}: {f['text']!r}", finding_id=f["id"], kind=f["kind"],
                                      start=f["start"], end=f["end"]) for f in still_open])
    target = _step(case, Action.SUBMIT, await _actors(uow, case, cmd.who))
    missing = domain.incomplete_fields(case.fields)
    if missing:
        raise Problem(409, "Every field of the template must be filled in before submitting.", slug="incomplete-case",
                      errors=[field_error(f"fields.{k}", "empty") for k in missing])
    _touch(uow, case, target)
    _audit(uow, case, cmd.who)
    return case


# ---- the hub --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Review:
    who: Principal
    case_id: str
    decision: str  # approve | return
    comments: str = ""


async def review_case(uow: UnitOfWork, cmd: Review) -> Case:
    case = await _visible(uow, cmd.case_id, cmd.who, lock=True)
    action = Action.APPROVE if cmd.decision == "approve" else Action.RETURN
    actors = await _actors(uow, case, cmd.who)
    if Actor.PRESENTER in actors:  # a hub member bringing a case has someone else review it
        raise Problem(403, "A presenter cannot review their own case.", slug="own-case")
    target = _step(case, action, actors)
    if action is Action.RETURN and domain.blank(cmd.comments):
        raise invalid([field_error("body.comments", "say what the presenter should change")], "The review")
    await refuse_identifiers(uow, {"body.comments": cmd.comments}, "The review")
    case.hub_comments = cmd.comments.strip()
    _touch(uow, case, target)
    _audit(uow, case, cmd.who)
    return case


async def mark_presented(uow: UnitOfWork, cmd: Act) -> Case:
    case = await _visible(uow, cmd.case_id, cmd.who, lock=True)
    target = _step(case, Action.PRESENT, await _actors(uow, case, cmd.who))
    session = await get_session(uow, case.session_id)
    if domain.local_day(uow.now, session.timezone) < domain.local_day(session.starts_at, session.timezone):
        raise Problem(409, "A case is presented on or after its session's day.", slug="session-not-yet")
    _touch(uow, case, target)
    _audit(uow, case, cmd.who)
    return case


@dataclass(frozen=True)
class RecommendationIn:
    text: str
    due_on: date | None = None


@dataclass(frozen=True)
class IssueRecommendations:
    who: Principal
    case_id: str
    items: Sequence[RecommendationIn]
    follow_up_on: date


async def issue_recommendations(uow: UnitOfWork, cmd: IssueRecommendations) -> Case:
    case = await _visible(uow, cmd.case_id, cmd.who, lock=True)
    target = _step(case, Action.ISSUE, await _actors(uow, case, cmd.who))
    errors = [field_error(f"body.items.{i}.text", "must not be blank")
              for i, item in enumerate(cmd.items) if domain.blank(item.text)]
    errors += [field_error(f"body.items.{i}.due_on", "must not be in the past")
               for i, item in enumerate(cmd.items) if item.due_on is not None and item.due_on < uow.today]
    if cmd.follow_up_on <= uow.today:
        errors.append(field_error("body.follow_up_on", "must be after today"))
    if not cmd.items:
        errors.append(field_error("body.items", "at least one recommendation"))
    if errors:
        raise invalid(errors, "The recommendations")
    await refuse_identifiers(uow, {f"body.items.{i}.text": item.text for i, item in enumerate(cmd.items)},
                             "The recommendations")
    recs = [Recommendation(id=str(uuid7()), text=item.text.strip(), assigned_to=case.presenter_id,
                           due_on=item.due_on) for item in cmd.items]
    case.recommendations = [r.model_dump(mode="json") for r in recs]
    case.follow_up_on = cmd.follow_up_on
    _touch(uow, case, target)
    issued = CaseRecommendationsIssued(case_id=case.id, session_id=case.session_id, program_id=case.program_id,
                                       presenter_id=case.presenter_id, recommendations=recs,
                                       follow_up_on=cmd.follow_up_on)
    # One issue per case (the state machine); a deterministic id makes a replayed stage a duplicate too.
    await uow.emit(issued, subject=case.id, agency=case.presenter_agency,
                   event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"trellis:case:{case.id}:recommendations")))
    _audit(uow, case, cmd.who)
    return case


@dataclass(frozen=True)
class ReportFollowUp:
    who: Principal
    case_id: str
    report: str


async def report_follow_up(uow: UnitOfWork, cmd: ReportFollowUp) -> Case:
    case = await _visible(uow, cmd.case_id, cmd.who, lock=True)
    target = _step(case, Action.REPORT, await _actors(uow, case, cmd.who))
    if domain.blank(cmd.report):
        raise invalid([field_error("body.report", "say what happened with the recommendations")], "The report")
    await refuse_identifiers(uow, {"body.report": cmd.report}, "The report")
    case.follow_up_report = cmd.report.strip()
    case.closed_at = uow.now
    _touch(uow, case, target)
    reported = CaseFollowUpReported(case_id=case.id, session_id=case.session_id, program_id=case.program_id,
                                    presenter_id=case.presenter_id, reported_on=uow.today)
    await uow.emit(reported, subject=case.id, agency=case.presenter_agency,
                   event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"trellis:case:{case.id}:follow-up")))
    _audit(uow, case, cmd.who)
    return case


# ---- reading --------------------------------------------------------------------------------------


async def read_case(uow: UnitOfWork, cmd: Act) -> Case:
    """One case, and its read in the audit log (same transaction: no read without its record)."""
    case = await _visible(uow, cmd.case_id, cmd.who)
    _audit(uow, case, cmd.who)
    return case


@dataclass(frozen=True)
class ListCases:
    who: Principal
    page: PageParams
    session_id: str | None = None
    state: str | None = None
    mine: bool = False
    review_queue: bool = False


async def _eligible_sessions(uow: UnitOfWork, person: str) -> list[str]:
    """Sessions the person took part in whose local day has come: where approved cases become theirs to see."""
    regs = select(Registration.session_id).where(Registration.person_id == person,
                                                 Registration.status == "confirmed")
    attended = select(Attendance.session_id).where(Attendance.person_id == person, Attendance.attended.is_(True))
    rows = (await uow.execute(select(Session.id, Session.starts_at, Session.timezone).where(
        or_(Session.id.in_(regs), Session.id.in_(attended))))).all()
    return [sid for sid, starts, tz in rows if domain.local_day(uow.now, tz) >= domain.local_day(starts, tz)]


async def list_cases(uow: UnitOfWork, q: ListCases) -> list[Case]:
    """The cases the caller may see, filtered; each one returned is a read and is audited."""
    who = q.who
    hub_programs = select(HubMember.program_id).where(HubMember.person_id == who.sub)
    submitted = [s.value for s in domain.SUBMITTED]
    staff = Case.program_id.in_(hub_programs)
    if who.has("supervisor"):
        staff = or_(staff, Case.presenter_agency == who.agency)
    sessions = await _eligible_sessions(uow, who.sub)
    participant = (Case.session_id.in_(sessions) & Case.state.in_([s.value for s in domain.APPROVED_ON])
                   if sessions else false())
    stmt = select(Case).where(or_(Case.presenter_id == who.sub, Case.state.in_(submitted) & staff, participant))
    if q.session_id:
        stmt = stmt.where(Case.session_id == q.session_id)
    if q.state:
        stmt = stmt.where(Case.state == q.state)
    if q.mine:
        stmt = stmt.where(Case.presenter_id == who.sub)
    if q.review_queue:
        stmt = stmt.where(Case.state == State.IN_REVIEW.value, Case.program_id.in_(hub_programs))
    rows = list((await uow.scalars(paged(stmt, Case.id, q.page))).all())
    for case in rows[: q.page.limit]:  # the look-ahead row is not returned, so not read
        _audit(uow, case, who)
    return rows


@dataclass(frozen=True)
class ListReads:
    who: Principal
    case_id: str
    page: PageParams


async def list_reads(uow: UnitOfWork, q: ListReads) -> list[CaseRead]:
    """The audit log of a case's reads: for its presenter and its program's hub team."""
    case = await _load(uow, q.case_id)
    if not await _actors(uow, case, q.who):
        if not await _may_see(uow, case, q.who):
            raise Problem(404, f"No case {q.case_id}.")
        raise Problem(403, "Only the presenter and the hub team see who read a case.", slug="not-allowed")
    return list((await uow.scalars(paged(select(CaseRead).where(CaseRead.case_id == case.id),
                                         CaseRead.id, q.page))).all())


# ---- the sweep ------------------------------------------------------------------------------------


async def sweep_cases(db: Database) -> int:
    """The `case-sweep` chore: follow-ups fall due on their date; closed cases past retention are redacted.

    Safe on several replicas and more than once: the follow-up step is one conditional UPDATE, and each
    redaction locks and re-reads its case, so a second sweep finds nothing left to do.
    """
    today, now = db.clock(), db.now()
    async with db.unit_of_work(all_agencies=True) as uow:
        due = await uow.execute(update(Case).where(
            Case.state == State.RECOMMENDATIONS_ISSUED.value, Case.follow_up_on <= today,
        ).values(state=State.FOLLOW_UP_DUE.value, revision=Case.revision + 1, updated_at=now))
        moved = int(due.rowcount or 0)  # type: ignore[attr-defined]
    before = now - timedelta(days=community_settings().case_retention_days)
    async with db.reader(all_agencies=True) as uow:
        old = list((await uow.scalars(select(Case.id).where(
            Case.state == State.CLOSED.value, Case.redacted_at.is_(None), Case.closed_at < before))).all())
    for case_id in old:
        try:
            async with db.unit_of_work(all_agencies=True) as uow:
                moved += await redact_case(uow, case_id, now)
        except OperationalError as e:  # busy (SQLite across processes): the next sweep finishes it
            log.warning("case %s: %s; left for the next sweep", case_id, e.orig)
    return moved


async def redact_case(uow: UnitOfWork, case_id: str, now: Any) -> int:
    case = (await uow.scalars(select(Case).where(Case.id == case_id).with_for_update())).one()
    if case.redacted_at is not None or not domain.is_due_for_redaction(
            case.closed_at, now, community_settings().case_retention_days):
        return 0
    r = domain.redact(case.fields)
    case.title, case.fields, case.findings, case.justifications = r.title, r.fields, r.findings, r.justifications
    case.hub_comments, case.follow_up_report = r.hub_comments, r.follow_up_report
    case.redacted_at = now
    case.revision += 1
    case.updated_at = now
    return 1
