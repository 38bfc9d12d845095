"""Attendance and continuing education: check-in, report import, audited adjustments, certificates.

Every change to a person's attendance emits AttendanceRecorded (subject: the person's agency) and
re-evaluates the program's continuing-education rule for that person's cycle (domain/attendance.py).
Meeting it inserts a Certificate, unique per (program, person, cycle), and emits
ContinuingEducationEarned in the same transaction — so the event exists exactly once: a later
re-evaluation finds the certificate, and two replicas racing lose one insert to the unique key.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from uuid6 import uuid7

from contracts.community import AttendanceRecorded, ContinuingEducationEarned
from services.community.domain import attendance as rules
from services.community.models import (
    ROSTER,
    Agency,
    Attendance,
    AttendanceAdjustment,
    Certificate,
    Person,
    Program,
    Registration,
    Session,
)
from services.community.usecases.common import get_program, get_session, is_hub, require_hub
from trellis.auth import Principal
from trellis.db import UnitOfWork, discard
from trellis.pagination import PageParams, paged
from trellis.problems import Problem, field_error, invalid

# Attendance can be taken from a little before the start (people join early), never for a future session.
EARLY = timedelta(hours=1)
CERTIFICATE_NS = uuid.UUID("0190b7c2-5e1a-7c00-8000-00000000ce01")


@dataclass(frozen=True)
class AttendanceView:
    """An attendance row with the person's display name (the id when the name is not known)."""

    row: Attendance
    display_name: str


# ---- shared steps -------------------------------------------------------------------------------------


async def _open_session(uow: UnitOfWork, session_id: str, viewer: Principal, action: str
                        ) -> tuple[Session, Program]:
    session = await get_session(uow, session_id)
    program = await get_program(uow, session.program_id)
    await require_hub(uow, program.id, viewer, action)
    if session.status == "cancelled":
        raise Problem(409, "The session was cancelled; it has no attendance.", slug="session-cancelled")
    if uow.now < session.starts_at - EARLY:
        raise Problem(409, "The session has not started; attendance is taken from an hour before its start.",
                      slug="session-not-started")
    return session, program


async def _names(uow: UnitOfWork, people: list[str]) -> dict[str, str]:
    if not people:
        return {}
    rows = await uow.execute(select(Person.person_id, Person.display_name).where(Person.person_id.in_(people)))
    return {p: n for p, n in rows.all()}


async def _agency_of(uow: UnitOfWork, session: Session, person_id: str) -> str | None:
    """The person's agency: from their registration, else the names directory, else the roster."""
    reg = (await uow.scalars(select(Registration.agency_id).where(
        Registration.session_id == session.id, Registration.person_id == person_id))).first()
    if reg:
        return reg
    person = await uow.get(Person, person_id)
    if person is not None:
        return person.agency_id
    t = ROSTER.t
    return (await uow.scalars(select(t.c.agency_id).where(t.c.person_id == person_id, t.c.status == "active")
                              )).first()


def _snapshot(row: Attendance | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {"attended": row.attended, "minutes_present": row.minutes_present, "share": row.share,
            "source": row.source}


async def _record(uow: UnitOfWork, session: Session, person_id: str, agency_id: str, *, attended: bool,
                  minutes: int, share: float, source: str, segments: list[rules.Segment] | None,
                  by: str) -> tuple[Attendance, bool]:
    """Write a person's attendance; (row, changed). Unchanged rows emit nothing."""
    row = await uow.get(Attendance, (session.id, person_id))
    stored = [{"joined_at": s.joined_at.isoformat(), "left_at": s.left_at.isoformat()} for s in segments] \
        if segments is not None else (row.segments if row is not None else [])
    if row is not None and (row.attended, row.minutes_present, row.share, row.source, row.segments) == (
            attended, minutes, share, source, stored):
        return row, False
    if row is None:
        row = Attendance(session_id=session.id, person_id=person_id, program_id=session.program_id,
                         agency_id=agency_id, revision=1)
        uow.add(row)
    else:
        row.revision += 1
    row.attended, row.minutes_present, row.share, row.source = attended, minutes, share, source
    row.segments, row.recorded_by, row.recorded_at = stored, by, uow.now
    await uow.flush()
    await uow.emit(AttendanceRecorded(session_id=session.id, program_id=session.program_id, person_id=person_id,
                                      attended=attended, minutes_present=minutes, share=share,
                                      source=source, revision=row.revision),  # type: ignore[arg-type]
                   subject=person_id, agency=row.agency_id)
    return row, True


async def _views(uow: UnitOfWork, rows: list[Attendance]) -> list[AttendanceView]:
    names = await _names(uow, [r.person_id for r in rows])
    return [AttendanceView(r, names.get(r.person_id, r.person_id)) for r in rows]


# ---- check-in ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckIn:
    viewer: Principal
    session_id: str
    person_id: str
    walk_in: bool = False


async def check_in(uow: UnitOfWork, cmd: CheckIn) -> AttendanceView:
    """The hub marks a person present for the whole session (a registrant, or a walk-in when said so)."""
    session, program = await _open_session(uow, cmd.session_id, cmd.viewer, "check people in")
    registered = (await uow.scalars(select(Registration.status).where(
        Registration.session_id == session.id, Registration.person_id == cmd.person_id))).first()
    if registered not in ("confirmed", "offered", "waiting") and not cmd.walk_in:
        raise invalid([field_error("body.person_id", "not registered for this session; check in with "
                                   "walk_in=true to record a walk-in", code="not-registered")], "The check-in")
    agency = await _agency_of(uow, session, cmd.person_id)
    if agency is None:
        raise invalid([field_error("body.person_id", "unknown person: not on any agency's roster",
                                   code="unknown-person")], "The check-in")
    whole = rules.presence([rules.Segment(session.starts_at, session.ends_at)], session.starts_at, session.ends_at,
                           program.attendance_threshold)
    row, changed = await _record(uow, session, cmd.person_id, agency, attended=True, minutes=whole.minutes_present,
                                 share=whole.share, source="check_in", segments=whole.segments, by=cmd.viewer.sub)
    if changed:
        await evaluate_rule(uow, program, session, cmd.person_id, agency)
    return (await _views(uow, [row]))[0]


# ---- report import -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportReport:
    viewer: Principal
    session_id: str
    csv: str
    format: rules.ReportFormat = "auto"
    mapping: dict[str, str] = field(default_factory=dict)
    dry_run: bool = False


@dataclass
class ImportResult:
    imported: int
    matched: list[dict[str, Any]]
    unmatched: list[dict[str, Any]]
    attendance: list[AttendanceView]
    format: str


async def import_report(uow: UnitOfWork, cmd: ImportReport) -> ImportResult:
    """Read a Zoom or BigBlueButton participant report into attendance; all or nothing.

    Participants are matched by the mapping (participant name or email → person id), then by display
    name among the session's registrants (unique, case-insensitive). Several participants matched to
    one person (phone and laptop) are merged. A person whose attendance was adjusted by hand keeps it.
    """
    session, program = await _open_session(uow, cmd.session_id, cmd.viewer, "import attendance")
    try:
        report = rules.parse_report(cmd.csv, cmd.format, session.timezone, near=session.starts_at)
    except rules.MalformedReport as e:
        raise Problem(422, f"The report has {len(e.errors)} bad line(s); nothing was imported.",
                      slug="malformed-report",
                      errors=[field_error("body.csv", err.msg, line=err.line, loc=["body", "csv"], msg=err.msg)
                              for err in e.errors]) from None
    mapping = {k.strip().casefold(): v for k, v in cmd.mapping.items()}
    regs = (await uow.execute(select(Registration.person_id, Registration.agency_id).where(
        Registration.session_id == session.id, Registration.status != "cancelled"))).all()
    reg_agency = {p: a for p, a in regs}
    names = await _names(uow, list(reg_agency))
    by_name: dict[str, list[str]] = {}
    for person, name in names.items():
        by_name.setdefault(rules.normal_name(name), []).append(person)

    wanted: dict[str, list[rules.Participant]] = {}
    unmatched: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for p in report.participants:
        person = mapping.get(p.email.casefold()) if p.email else None
        person = person or next((mapping[v] for v in rules.name_variants(p.name) if v in mapping), None)
        if person is None:
            hits = {h for v in rules.name_variants(p.name) for h in by_name.get(v, []) if len(by_name[v]) == 1}
            person = hits.pop() if len(hits) == 1 else None
        mins = int(sum(s.seconds for s in rules.merge_segments(p.segments, session.starts_at, session.ends_at)) // 60)
        if person is None:
            unmatched.append({"name": p.name, "email": p.email or None, "minutes": mins})
        else:
            wanted.setdefault(person, []).append(p)
    agencies: dict[str, str] = {}
    for person in wanted:
        agency = reg_agency.get(person) or await _agency_of(uow, session, person)
        if agency is None:
            errors.append(field_error("body.mapping", f"{person} is not a known person", code="unknown-person"))
        else:
            agencies[person] = agency
    if errors:
        raise invalid(errors, "The mapping")

    matched: list[dict[str, Any]] = []
    rows: list[Attendance] = []
    cycles: dict[str, list[Session]] = {}
    imported = 0
    for person, parts in wanted.items():
        seen = rules.presence([s for p in parts for s in p.segments], session.starts_at, session.ends_at,
                              program.attendance_threshold)
        existing = await uow.get(Attendance, (session.id, person))
        kept = existing is not None and existing.source == "adjustment"
        for p in parts:
            matched.append({"name": p.name, "email": p.email or None, "person_id": person,
                            "minutes": seen.minutes_present, "kept_adjustment": kept})
        if kept:
            assert existing is not None
            rows.append(existing)
            continue
        if cmd.dry_run:
            rows.append(Attendance(session_id=session.id, person_id=person, program_id=program.id,
                                   agency_id=agencies[person], attended=seen.attended,
                                   minutes_present=seen.minutes_present, share=seen.share, source="import",
                                   segments=[{"joined_at": s.joined_at.isoformat(), "left_at": s.left_at.isoformat()}
                                             for s in seen.segments],
                                   revision=(existing.revision + 1) if existing else 1, recorded_by=cmd.viewer.sub,
                                   recorded_at=uow.now))
            imported += 1
            continue
        row, changed = await _record(uow, session, person, agencies[person], attended=seen.attended,
                                     minutes=seen.minutes_present, share=seen.share, source="import",
                                     segments=seen.segments, by=cmd.viewer.sub)
        rows.append(row)
        if changed:
            imported += 1
            await evaluate_rule(uow, program, session, person, agencies[person], cycles)
    if cmd.dry_run:
        discard(uow)  # nothing of a dry run is kept, even inside a request transaction
    return ImportResult(imported, matched, unmatched, await _views(uow, rows), report.format)


# ---- adjustments -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Adjust:
    viewer: Principal
    session_id: str
    person_id: str
    reason: str
    attended: bool | None = None
    minutes_present: int | None = None


async def adjust(uow: UnitOfWork, cmd: Adjust) -> AttendanceView:
    """The hub corrects a person's attendance, with a reason; who, when, why, before and after are kept."""
    session, program = await _open_session(uow, cmd.session_id, cmd.viewer, "adjust attendance")
    length = int((session.ends_at - session.starts_at).total_seconds() // 60)
    errors = []
    if not cmd.reason.strip():
        errors.append(field_error("body.reason", "say why the attendance is changed"))
    if cmd.attended is None and cmd.minutes_present is None:
        errors.append(field_error("body.attended", "give attended, minutes_present or both"))
    if cmd.minutes_present is not None and not 0 <= cmd.minutes_present <= length:
        errors.append(field_error("body.minutes_present", f"must be between 0 and the session's {length} minutes"))
    agency = await _agency_of(uow, session, cmd.person_id)
    if agency is None:
        errors.append(field_error("path.person_id", "unknown person: not on any agency's roster"))
    if errors:
        raise invalid(errors, "The adjustment")
    assert agency is not None
    before = await uow.get(Attendance, (session.id, cmd.person_id))
    snapshot = _snapshot(before)
    minutes = cmd.minutes_present if cmd.minutes_present is not None else (before.minutes_present if before else 0)
    share = rules.share_of(minutes, session.starts_at, session.ends_at)
    attended = cmd.attended if cmd.attended is not None else rules.attended_by_share(share,
                                                                                      program.attendance_threshold)
    row, _ = await _record(uow, session, cmd.person_id, agency, attended=attended, minutes=minutes, share=share,
                           source="adjustment", segments=None, by=cmd.viewer.sub)
    uow.add(AttendanceAdjustment(id=str(uuid7()), session_id=session.id, person_id=cmd.person_id,
                                 adjusted_by=cmd.viewer.sub, adjusted_at=uow.now, reason=cmd.reason.strip(),
                                 before=snapshot, after=_snapshot(row)))
    await evaluate_rule(uow, program, session, cmd.person_id, agency)
    return (await _views(uow, [row]))[0]


# ---- reading -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListAttendance:
    viewer: Principal
    session_id: str


async def list_attendance(uow: UnitOfWork, q: ListAttendance) -> tuple[list[AttendanceView], float]:
    """The hub sees the whole roll call; anyone else only their own row. Also the program's threshold."""
    session = await get_session(uow, q.session_id)
    program = await get_program(uow, session.program_id)
    stmt = select(Attendance).where(Attendance.session_id == session.id)
    if not await is_hub(uow, program.id, q.viewer):
        stmt = stmt.where(Attendance.person_id == q.viewer.sub)
    rows = list((await uow.scalars(stmt.order_by(Attendance.recorded_at, Attendance.person_id))).all())
    return await _views(uow, rows), program.attendance_threshold


@dataclass(frozen=True)
class ListAdjustments:
    viewer: Principal
    session_id: str
    person_id: str


async def list_adjustments(uow: UnitOfWork, q: ListAdjustments) -> list[AttendanceAdjustment]:
    """The audit of one person's attendance at a session: for the hub and the person."""
    session = await get_session(uow, q.session_id)
    if q.viewer.sub != q.person_id:
        await require_hub(uow, session.program_id, q.viewer, "see attendance adjustments")
    return list((await uow.scalars(select(AttendanceAdjustment).where(
        AttendanceAdjustment.session_id == session.id, AttendanceAdjustment.person_id == q.person_id,
    ).order_by(AttendanceAdjustment.adjusted_at, AttendanceAdjustment.id))).all())


# ---- continuing education ----------------------------------------------------------------------------


def new_code() -> str:
    return "".join(secrets.choice(rules.CODE_ALPHABET) for _ in range(rules.CODE_LENGTH))


async def evaluate_rule(uow: UnitOfWork, program: Program, session: Session, person_id: str, agency_id: str,
                        cache: dict[str, list[Session]] | None = None) -> Certificate | None:
    """Re-evaluate the program's rule for the person's cycle of `session`; a new certificate, or None.

    `cache` keeps a cycle's sessions across the people of one import.

    A certificate once issued stays (a later adjustment does not revoke it) and is issued only once.
    """
    rule = rules.rule_from(program.ce_rule)
    if rule is None:
        return None
    cycle = rules.cycle_of(session.starts_at, program.timezone)
    done = (await uow.scalars(select(func.count()).select_from(Certificate).where(
        Certificate.program_id == program.id, Certificate.person_id == person_id, Certificate.cycle == cycle))).one()
    if done:
        return None
    sessions = cache.get(cycle) if cache is not None else None
    if sessions is None:
        start, end = rules.cycle_bounds(cycle, program.timezone)
        sessions = list((await uow.scalars(select(Session).where(
            Session.program_id == program.id, Session.status != "cancelled",
            Session.starts_at >= start, Session.starts_at < end))).all())
        if cache is not None:
            cache[cycle] = sessions
    present = set((await uow.scalars(select(Attendance.session_id).where(
        Attendance.person_id == person_id, Attendance.attended.is_(True),
        Attendance.session_id.in_([s.id for s in sessions])))).all())
    result = rules.evaluate(rule, [
        rules.CycleSession(s.id, s.title, s.starts_at, rules.hours_of(s.starts_at, s.ends_at), s.id in present)
        for s in sessions])
    if not result.met:
        return None
    person = await uow.get(Person, person_id)
    agency = await uow.get(Agency, agency_id)
    cert = Certificate(
        id=str(uuid7()), program_id=program.id, person_id=person_id, agency_id=agency_id, cycle=cycle,
        person_name=person.display_name if person else person_id, agency_name=agency.name if agency else agency_id,
        program_title=program.title, hours=result.hours, verification_code=new_code(), issued_on=uow.today,
        sessions=[{"id": s.id, "title": s.title, "starts_at": s.starts_at.isoformat(), "hours": s.hours}
                  for s in result.counted],
        created_at=uow.now)
    try:
        async with uow.begin_nested():  # two replicas at once: the unique key keeps one, the other moves on
            uow.add(cert)
            await uow.flush()
    except IntegrityError:
        return None
    # A deterministic event id: even a retried transaction publishes one ContinuingEducationEarned.
    await uow.emit(ContinuingEducationEarned(
        certificate_id=cert.id, program_id=program.id, person_id=person_id, cycle=cycle,
        sessions=[s.id for s in result.counted], hours=cert.hours, verification_code=cert.verification_code,
        issued_on=cert.issued_on), subject=person_id, agency=agency_id,
        event_id=str(uuid.uuid5(CERTIFICATE_NS, f"{program.id}/{person_id}/{cycle}")))
    return cert


@dataclass(frozen=True)
class ListCertificates:
    viewer: Principal
    page: PageParams
    person_id: str | None = None


async def list_certificates(uow: UnitOfWork, q: ListCertificates) -> list[Certificate]:
    """Own certificates; an agency admin's agency's; a platform admin's anyone's."""
    person = q.person_id or q.viewer.sub
    stmt = select(Certificate).where(Certificate.person_id == person)
    if person != q.viewer.sub and not q.viewer.has("platform_admin"):
        if not q.viewer.has("agency_admin"):
            raise Problem(403, "You can only see your own certificates.", slug="not-your-record")
        stmt = stmt.where(Certificate.agency_id == q.viewer.agency)
    return list((await uow.scalars(paged(stmt, Certificate.id, q.page))).all())


@dataclass(frozen=True)
class GetCertificate:
    viewer: Principal
    certificate_id: str


async def get_certificate(uow: UnitOfWork, q: GetCertificate) -> Certificate:
    """The person, their agency's admin, a platform admin and the program's hub see a certificate."""
    cert = await uow.get(Certificate, q.certificate_id)
    v = q.viewer
    if cert is None or not (cert.person_id == v.sub or v.has("platform_admin")
                            or (v.has("agency_admin") and v.agency == cert.agency_id)
                            or await is_hub(uow, cert.program_id, v)):
        raise Problem(404, f"No certificate {q.certificate_id} you may see.")
    return cert


async def verify(uow: UnitOfWork, code: str) -> Certificate:
    """Public: the certificate a verification code belongs to (typed with dashes, spaces or lower case)."""
    normal = rules.normal_code(code)
    cert = None if normal is None else (await uow.scalars(select(Certificate).where(
        Certificate.verification_code == normal))).one_or_none()
    if cert is None:
        raise Problem(404, "No certificate has this verification code.", slug="unknown-certificate")
    return cert
