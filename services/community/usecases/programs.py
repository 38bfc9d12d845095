"""Programs and their sessions: creating a program expands its recurrence into sessions; editing the
recurrence changes future sessions only; one session can be moved, edited or cancelled alone.

Programs and sessions are platform-wide: their events use the `platform` subject. Who may see a
program: the agencies it is open to, its hub team, and the platform admin (and the read-only partner).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import String, and_, cast, func, or_, select
from uuid6 import uuid7

from contracts.community import PLATFORM, SessionCancelled, SessionScheduled
from services.community.config import community_settings
from services.community.domain import sessions as domain
from services.community.models import HubMember, Program, Registration, Session
from services.community.usecases import registration
from services.community.usecases.common import get_program, get_session, hub_role, open_to
from services.community.usecases.directory import known_competencies
from trellis.auth import Principal
from trellis.db import Database, UnitOfWork
from trellis.pagination import PageParams, encode_cursor
from trellis.problems import Problem, field_error, invalid

SEES_ALL = ("platform_admin", "partner")  # the partner reads across agencies, read-only
HOLDS_SEAT = ("confirmed", "offered")
SESSION_FIELDS = ("title", "session_title", "topic", "capacity", "competencies", "meeting_url", "materials")
TIMING_FIELDS = ("recurrence", "timezone", "duration_minutes")
# Competency tags when fidelity has not told us any yet: a short name, no markup.
TAG = re.compile(r"^[\w][\w .,&/()'+-]{0,99}$")


# ---- who sees and changes what ---------------------------------------------------------------------


async def hub_programs(uow: UnitOfWork, person_id: str) -> set[str]:
    return set((await uow.scalars(select(HubMember.program_id).where(HubMember.person_id == person_id))).all())


def sees(program: Program, viewer: Principal, hub: set[str]) -> bool:
    return viewer.has(*SEES_ALL) or open_to(program, viewer.agency) or program.id in hub


async def visible_program(uow: UnitOfWork, viewer: Principal, program_id: str, *, lock: bool = False) -> Program:
    program = await get_program(uow, program_id, lock=lock)
    if not sees(program, viewer, await hub_programs(uow, viewer.sub)):
        raise Problem(404, f"No program {program_id}.")
    return program


async def require_facilitator(uow: UnitOfWork, program: Program, viewer: Principal) -> None:
    if viewer.has("platform_admin") or await hub_role(uow, program.id, viewer.sub) == "facilitator":
        return
    raise Problem(403, "Only a facilitator of the program's hub team may do this.", slug="not-hub-facilitator")


async def is_hub_member(uow: UnitOfWork, program_id: str, viewer: Principal) -> bool:
    return viewer.has("platform_admin") or await hub_role(uow, program_id, viewer.sub) is not None


# ---- validation ------------------------------------------------------------------------------------


async def tag_errors(uow: UnitOfWork, tags: Iterable[str], loc: str) -> list[dict[str, Any]]:
    """Tags must be competencies fidelity's instruments name; before any is known, any tidy name."""
    known = await known_competencies(uow)
    errors = []
    for i, tag in enumerate(tags):
        if known and tag not in known:
            errors.append(field_error(f"{loc}.{i}", f"unknown competency {tag!r}; known: {', '.join(known)}",
                                      known=known))
        elif not known and not TAG.match(tag):
            errors.append(field_error(f"{loc}.{i}", f"{tag!r} is not a competency name"))
    return errors


def recurrence_errors(rec: domain.Recurrence) -> list[dict[str, Any]]:
    where = {"timezone": "body.timezone", "dtstart": "body.recurrence.dtstart", "rrule": "body.recurrence.rrule",
             "duration_minutes": "body.duration_minutes"}
    try:
        domain.validate(rec)
    except domain.RecurrenceError as e:
        return [field_error(where[k], v) for k, v in e.problems.items()]
    return []


def _recurrence(program: Program) -> domain.Recurrence:
    return domain.Recurrence(program.timezone, program.dtstart, program.rrule, program.duration_minutes)


def _horizon(uow: UnitOfWork) -> datetime:
    return uow.now + timedelta(days=community_settings().expand_horizon_days)


# ---- sessions as rows and events -------------------------------------------------------------------


def _session_title(program: Program) -> str:
    return program.session_title or program.title


def _new_session(uow: UnitOfWork, program: Program, occ: domain.Occurrence) -> Session:
    now = uow.now
    return Session(id=str(uuid7()), program_id=program.id, occurrence=occ.occurrence, title=_session_title(program),
                   topic=program.topic, starts_at=occ.starts_at, ends_at=occ.ends_at, timezone=program.timezone,
                   capacity=program.capacity, materials=list(program.materials),
                   competencies=list(program.competencies), meeting_url=program.meeting_url,
                   status="scheduled", detached=False, revision=1,
                   created_at=now, updated_at=now)


async def _scheduled(uow: UnitOfWork, s: Session) -> None:
    await uow.emit(SessionScheduled(
        session_id=s.id, program_id=s.program_id, title=s.title, topic=s.topic, starts_at=s.starts_at,
        ends_at=s.ends_at, timezone=s.timezone, capacity=s.capacity, competencies=list(s.competencies),
        revision=s.revision), subject=s.id, agency=PLATFORM)


async def _cancel_session(uow: UnitOfWork, s: Session, reason: str) -> None:
    s.status, s.revision, s.updated_at = "cancelled", s.revision + 1, uow.now
    await uow.emit(SessionCancelled(session_id=s.id, program_id=s.program_id, starts_at=s.starts_at, reason=reason),
                   subject=s.id, agency=PLATFORM)
    await registration.cancel_all(uow, s, "session_cancelled")


async def seats_held(uow: UnitOfWork, session_ids: Sequence[str]) -> dict[str, tuple[int, int]]:
    """session id → (confirmed + offered, waiting), in one grouped query."""
    if not session_ids:
        return {}
    rows = (await uow.execute(
        select(Registration.session_id, Registration.status, func.count())
        .where(Registration.session_id.in_(session_ids), Registration.status.in_((*HOLDS_SEAT, "waiting")))
        .group_by(Registration.session_id, Registration.status))).all()
    out: dict[str, list[int]] = {}
    for sid, status, n in rows:
        out.setdefault(sid, [0, 0])[0 if status in HOLDS_SEAT else 1] += int(n)
    return {sid: (v[0], v[1]) for sid, v in out.items()}


# ---- creating a program ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CreateProgram:
    viewer: Principal
    fields: Mapping[str, Any]  # ProgramIn as JSON values


async def create_program(uow: UnitOfWork, cmd: CreateProgram) -> Program:
    """The creator joins the hub as facilitator; the recurrence is expanded up to the horizon (at most
    500 sessions), each session announced with SessionScheduled."""
    f = cmd.fields
    rec = domain.Recurrence(f["timezone"], f["recurrence"]["dtstart"], domain.normalise_rule(f["recurrence"]["rrule"]),
                            f["duration_minutes"])
    errors = recurrence_errors(rec) + await tag_errors(uow, f.get("competencies", []), "body.competencies")
    if not f.get("open_to_all", True) and not f.get("agencies"):
        errors.append(field_error("body.agencies", "a program not open to all names the agencies it is open to"))
    if errors:
        raise invalid(errors, "The program")
    now = uow.now
    program = Program(
        id=str(uuid7()), title=f["title"], description=f.get("description", ""), owner_id=cmd.viewer.sub,
        owner_agency=cmd.viewer.agency, open_to_all=f.get("open_to_all", True),
        agencies=[str(a) for a in f.get("agencies", [])], timezone=rec.timezone, dtstart=rec.dtstart, rrule=rec.rrule,
        duration_minutes=rec.duration_minutes, capacity=f["capacity"], session_title=f.get("session_title", ""),
        topic=f.get("topic", ""), competencies=list(f.get("competencies", [])), meeting_url=f.get("meeting_url") or "",
        materials=list(f.get("materials", [])),
        attendance_threshold=f.get("attendance_threshold") or community_settings().attendance_threshold,
        offer_hours=f.get("offer_hours") or community_settings().offer_hours,
        ce_rule=dict(f.get("ce_rule") or {"kind": "share", "min_share": 0.8}),
        revision=1, created_at=now, updated_at=now)
    uow.add(program)
    hub = {cmd.viewer.sub: (cmd.viewer.agency, "facilitator")}
    for m in f.get("hub", []):
        hub.setdefault(str(m["person_id"]), (str(m["agency_id"]), m.get("role", "expert")))
    for person, (agency, role) in hub.items():
        uow.add(HubMember(program_id=program.id, person_id=person, agency_id=agency, role=role))
    for occ in _initial(uow, rec):
        s = _new_session(uow, program, occ)
        uow.add(s)
        await _scheduled(uow, s)
    await uow.flush()
    return program


def _initial(uow: UnitOfWork, rec: domain.Recurrence) -> list[domain.Occurrence]:
    """The sessions a new program starts with: future ones up to the horizon, and past ones within as
    long back (a program can be recorded after it began, as the demo seed does); the cap keeps the latest."""
    now, span = uow.now, timedelta(days=community_settings().expand_horizon_days)
    future = domain.expand(rec, until=now + span, after=now)
    room = domain.MAX_SESSIONS - len(future)
    past = domain.expand(rec, until=now + timedelta(microseconds=1), after=now - span, limit=10_000) if room else []
    return past[-room:] + future if room else future


# ---- editing a program: future sessions only -------------------------------------------------------


@dataclass(frozen=True)
class UpdateProgram:
    viewer: Principal
    program_id: str
    changes: Mapping[str, Any]  # only the fields sent, as JSON values


async def update_program(uow: UnitOfWork, cmd: UpdateProgram) -> Program:
    program = await get_program(uow, cmd.program_id, lock=True)
    await require_facilitator(uow, program, cmd.viewer)
    c = dict(cmd.changes)
    _no_nulls(c)
    rec = domain.Recurrence(
        c.get("timezone", program.timezone),
        c["recurrence"]["dtstart"] if "recurrence" in c else program.dtstart,
        domain.normalise_rule(c["recurrence"]["rrule"]) if "recurrence" in c else program.rrule,
        c.get("duration_minutes", program.duration_minutes))
    retime = rec != _recurrence(program)
    errors = recurrence_errors(rec) if retime else []
    if "competencies" in c:
        errors += await tag_errors(uow, c["competencies"], "body.competencies")
    if c.get("open_to_all") is False and not c.get("agencies", program.agencies):
        errors.append(field_error("body.agencies", "a program not open to all names the agencies it is open to"))
    if errors:
        raise invalid(errors, "The change")

    now = uow.now
    future = list((await uow.scalars(select(Session).where(
        Session.program_id == program.id, or_(Session.starts_at > now, Session.occurrence > now))
        .order_by(Session.starts_at).with_for_update())).all())
    by_id = {s.id: s for s in future}
    if retime:
        wanted = domain.expand(rec, until=_horizon(uow), after=now)
        plan = domain.plan_future(
            # Detached sessions (moved, edited or cancelled alone) are the hub's: the rule leaves them be.
            # A session an earlier rule dropped comes back if the new rule has it again.
            [domain.Existing(s.id, s.occurrence, s.starts_at, frozen=s.detached) for s in future],
            wanted, rec.timezone)
    else:
        plan = domain.FuturePlan(update=[(s.id, domain.Occurrence(s.occurrence or s.starts_at, s.starts_at, s.ends_at))
                                         for s in future if not s.detached and s.status == "scheduled"])
    if "capacity" in c:
        held = await seats_held(uow, [sid for sid, _ in plan.update])
        short = [sid for sid, _ in plan.update if held.get(sid, (0, 0))[0] > c["capacity"]]
        if short:
            raise invalid([field_error("body.capacity", f"{held[sid][0]} seats are already taken at session {sid}",
                                       session_id=sid) for sid in short], "The change")

    for key in ("title", "description", "open_to_all", "session_title", "topic", "competencies", "materials",
                "attendance_threshold", "offer_hours", "ce_rule", "capacity"):
        if key in c:
            setattr(program, key, c[key])
    if "agencies" in c:
        program.agencies = [str(a) for a in c["agencies"]]
    if "meeting_url" in c:
        program.meeting_url = c["meeting_url"] or ""
    program.timezone, program.dtstart, program.rrule, program.duration_minutes = (
        rec.timezone, rec.dtstart, rec.rrule, rec.duration_minutes)
    program.revision += 1
    program.updated_at = now

    touches = retime or any(k in c for k in SESSION_FIELDS)
    fresh: list[Session] = []  # scheduled by this edit: the series' people get seats there
    for sid, occ in plan.update if touches else []:
        s = by_id[sid]
        grew = "capacity" in c and c["capacity"] > s.capacity
        revived = s.status == "cancelled"
        earlier = occ.starts_at < s.starts_at
        s.status = "scheduled"
        if _apply_program(s, program, occ, c) or revived:
            s.revision, s.updated_at = s.revision + 1, now
            await _scheduled(uow, s)
        if revived:
            fresh.append(s)
        if earlier:
            await registration.recap_offers(uow, s)
        if grew:
            await registration.offer_free_seats(uow, s)
    for sid in (d for d in plan.drop if by_id[d].status == "scheduled"):
        await _cancel_session(uow, by_id[sid], "no longer in the program's schedule")
    for occ in plan.create:
        s = _new_session(uow, program, occ)
        uow.add(s)
        await _scheduled(uow, s)
        fresh.append(s)
    await uow.flush()
    await registration.seat_series(uow, fresh)
    await uow.flush()
    return program


def _no_nulls(changes: Mapping[str, Any]) -> None:
    """A patch leaves out what it does not change; null is not a value for any field."""
    nulls = [field_error(f"body.{k}", "may not be null: leave the field out to keep it") for k, v in changes.items()
             if v is None]
    if nulls:
        raise invalid(nulls, "The change")


def _apply_program(s: Session, program: Program, occ: domain.Occurrence, c: Mapping[str, Any]) -> bool:
    """Copy the program's session fields onto one of its (future, attached) sessions; whether it changed."""
    before = (s.occurrence, s.starts_at, s.ends_at, s.timezone, s.title, s.topic, s.capacity, s.competencies,
              s.materials, s.meeting_url)
    s.occurrence, s.starts_at, s.ends_at, s.timezone = occ.occurrence, occ.starts_at, occ.ends_at, program.timezone
    if "title" in c or "session_title" in c:
        s.title = _session_title(program)
    if "topic" in c:
        s.topic = program.topic
    if "capacity" in c:
        s.capacity = program.capacity
    if "competencies" in c:
        s.competencies = list(program.competencies)
    if "materials" in c:
        s.materials = list(program.materials)
    if "meeting_url" in c:
        s.meeting_url = program.meeting_url
    after = (s.occurrence, s.starts_at, s.ends_at, s.timezone, s.title, s.topic, s.capacity, s.competencies,
             s.materials, s.meeting_url)
    return before != after


# ---- the hub team ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AddHubMember:
    viewer: Principal
    program_id: str
    person_id: str
    agency_id: str
    role: str


async def add_hub_member(uow: UnitOfWork, cmd: AddHubMember) -> Program:
    program = await get_program(uow, cmd.program_id, lock=True)
    await require_facilitator(uow, program, cmd.viewer)
    member = await uow.get(HubMember, (program.id, cmd.person_id))
    if member is None:
        uow.add(HubMember(program_id=program.id, person_id=cmd.person_id, agency_id=cmd.agency_id, role=cmd.role))
    else:
        if member.role == "facilitator" and cmd.role != "facilitator":
            await _keep_a_facilitator(uow, program.id, cmd.person_id)
        member.agency_id, member.role = cmd.agency_id, cmd.role
    program.updated_at = uow.now
    await uow.flush()
    return program


@dataclass(frozen=True)
class RemoveHubMember:
    viewer: Principal
    program_id: str
    person_id: str


async def remove_hub_member(uow: UnitOfWork, cmd: RemoveHubMember) -> Program:
    program = await get_program(uow, cmd.program_id, lock=True)
    await require_facilitator(uow, program, cmd.viewer)
    member = await uow.get(HubMember, (program.id, cmd.person_id))
    if member is None:
        raise Problem(404, f"{cmd.person_id} is not on the program's hub team.")
    if member.role == "facilitator":
        await _keep_a_facilitator(uow, program.id, cmd.person_id)
    await uow.delete(member)
    program.updated_at = uow.now
    await uow.flush()
    return program


async def _keep_a_facilitator(uow: UnitOfWork, program_id: str, leaving: str) -> None:
    others = (await uow.execute(select(func.count()).select_from(HubMember).where(
        HubMember.program_id == program_id, HubMember.role == "facilitator",
        HubMember.person_id != leaving))).scalar_one()
    if not others:
        raise Problem(409, "A program keeps at least one facilitator on its hub team.", slug="last-facilitator")


# ---- reading programs ------------------------------------------------------------------------------


@dataclass
class ProgramView:
    program: Program
    hub: list[HubMember]
    session_count: int
    next_session_at: datetime | None
    is_hub: bool


async def program_views(uow: UnitOfWork, viewer: Principal, programs: Sequence[Program]) -> list[ProgramView]:
    ids = [p.id for p in programs]
    if not ids:
        return []
    hubs: dict[str, list[HubMember]] = {}
    for m in (await uow.scalars(select(HubMember).where(HubMember.program_id.in_(ids))
                                .order_by(HubMember.program_id, HubMember.person_id))).all():
        hubs.setdefault(m.program_id, []).append(m)
    counts = dict((await uow.execute(select(Session.program_id, func.count()).where(
        Session.program_id.in_(ids), Session.status == "scheduled").group_by(Session.program_id))).all())
    nexts = dict((await uow.execute(select(Session.program_id, func.min(Session.starts_at)).where(
        Session.program_id.in_(ids), Session.status == "scheduled", Session.starts_at > uow.now)
        .group_by(Session.program_id))).all())
    out = []
    for p in programs:
        hub = hubs.get(p.id, [])
        nxt = nexts.get(p.id)
        if isinstance(nxt, str):  # SQLite's MIN() returns the stored text, not the typed value
            nxt = datetime.fromisoformat(nxt)
        if nxt is not None and nxt.tzinfo is None:
            nxt = nxt.replace(tzinfo=UTC)
        out.append(ProgramView(p, hub, int(counts.get(p.id, 0)), nxt,
                               viewer.has("platform_admin") or any(m.person_id == viewer.sub for m in hub)))
    return out


@dataclass(frozen=True)
class GetProgram:
    viewer: Principal
    program_id: str


async def get_program_view(uow: UnitOfWork, q: GetProgram) -> ProgramView:
    program = await visible_program(uow, q.viewer, q.program_id)
    return (await program_views(uow, q.viewer, [program]))[0]


@dataclass(frozen=True)
class ListPrograms:
    viewer: Principal
    page: PageParams


async def list_programs(uow: UnitOfWork, q: ListPrograms) -> tuple[list[ProgramView], str | None]:
    """Programs the caller may see, by id; visibility of listed agencies is checked per row, so the
    scan reads on in chunks until a page is full (programs are few: tens, not thousands)."""
    hub = await hub_programs(uow, q.viewer.sub)
    found: list[Program] = []
    after = q.page.after
    while len(found) <= q.page.limit:
        stmt = select(Program).order_by(Program.id).limit(200)
        if after:
            stmt = stmt.where(Program.id > after)
        chunk = list((await uow.scalars(stmt)).all())
        found += [p for p in chunk if sees(p, q.viewer, hub)]
        if len(chunk) < 200:
            break
        after = chunk[-1].id
    more = len(found) > q.page.limit
    found = found[: q.page.limit]
    return await program_views(uow, q.viewer, found), encode_cursor(found[-1].id) if more and found else None


# ---- sessions: reading -----------------------------------------------------------------------------


@dataclass
class SessionView:
    session: Session
    program_title: str
    seats_taken: int
    waiting: int
    mine: registration.Seat | None
    is_hub: bool
    registration_open: bool

    @property
    def meeting_url(self) -> str | None:
        s = self.session
        shown = self.is_hub or (self.mine is not None and self.mine.row.status == "confirmed")
        return (s.meeting_url or None) if shown and s.status == "scheduled" else None


async def session_views(uow: UnitOfWork, viewer: Principal, rows: Sequence[Session]) -> list[SessionView]:
    """Counts, the caller's registration and hub membership for a page of sessions: one query each."""
    ids = [s.id for s in rows]
    program_ids = sorted({s.program_id for s in rows})
    if not ids:
        return []
    titles = dict((await uow.execute(select(Program.id, Program.title).where(Program.id.in_(program_ids)))).all())
    hub = set() if viewer.has("platform_admin") else set((await uow.scalars(select(HubMember.program_id).where(
        HubMember.person_id == viewer.sub, HubMember.program_id.in_(program_ids)))).all())
    held = await seats_held(uow, ids)
    mine = {r.session_id: r for r in (await uow.scalars(select(Registration).where(
        Registration.person_id == viewer.sub, Registration.session_id.in_(ids)))).all()}
    seats = {x.row.session_id: x for x in await registration.named(
        uow, await registration.seats(uow, list(mine.values())))}
    out = []
    for s in rows:
        taken, waiting = held.get(s.id, (0, 0))
        out.append(SessionView(s, titles.get(s.program_id, ""), taken, waiting, seats.get(s.id),
                               viewer.has("platform_admin") or s.program_id in hub,
                               s.status == "scheduled" and uow.now < s.starts_at))
    return out


@dataclass(frozen=True)
class GetSession:
    viewer: Principal
    session_id: str


async def get_session_view(uow: UnitOfWork, q: GetSession) -> SessionView:
    s = await get_session(uow, q.session_id)
    await _visible_session(uow, q.viewer, s)
    return (await session_views(uow, q.viewer, [s]))[0]


async def _visible_session(uow: UnitOfWork, viewer: Principal, s: Session) -> Program:
    program = await get_program(uow, s.program_id)
    if not sees(program, viewer, await hub_programs(uow, viewer.sub)):
        raise Problem(404, f"No session {s.id}.")
    return program


@dataclass(frozen=True)
class ListSessions:
    viewer: Principal
    page: PageParams
    start: datetime | None = None  # `from`
    end: datetime | None = None  # `to`
    competency: str | None = None
    program_id: str | None = None
    statuses: tuple[str, ...] = field(default=())


def session_cursor(s: Session) -> str:
    return encode_cursor(f"{s.starts_at.astimezone(UTC).isoformat()}|{s.id}")


def _after(raw: str) -> tuple[datetime, str]:
    try:
        at, _, sid = raw.partition("|")
        when = datetime.fromisoformat(at)
        if not sid or when.tzinfo is None:
            raise ValueError
        when = when.astimezone(UTC)  # 9999-12-31T23:59:59-14:00 has no UTC value: OverflowError
    except (ValueError, OverflowError):
        raise Problem(400, "The 'after' cursor is not one this API issued.", slug="bad-cursor",
                      errors=[field_error("query.after", "unknown cursor")]) from None
    return when, sid


async def list_sessions(uow: UnitOfWork, q: ListSessions) -> tuple[list[SessionView], str | None]:
    """Sessions of the programs the caller may see, by start time (cursor on starts_at, id)."""
    if q.start and q.end and q.end <= q.start:
        raise invalid([field_error("query.to", "must be after 'from'")], "The query")
    stmt = select(Session)
    if not q.viewer.has(*SEES_ALL):
        hub = await hub_programs(uow, q.viewer.sub)
        programs = (await uow.scalars(select(Program))).all()
        stmt = stmt.where(Session.program_id.in_(sorted(p.id for p in programs if sees(p, q.viewer, hub))))
    if q.program_id:
        stmt = stmt.where(Session.program_id == q.program_id)
    if q.start:
        stmt = stmt.where(Session.starts_at >= q.start)
    if q.end:
        stmt = stmt.where(Session.starts_at < q.end)
    if q.statuses:
        stmt = stmt.where(Session.status.in_(q.statuses))
    if q.competency:
        # The JSON list as stored text holds the tag JSON-encoded: a portable containment test.
        needle = json.dumps(q.competency).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        stmt = stmt.where(cast(Session.competencies, String).like(f"%{needle}%", escape="\\"))
    if q.page.after:
        at, sid = _after(q.page.after)
        stmt = stmt.where(or_(Session.starts_at > at, and_(Session.starts_at == at, Session.id > sid)))
    rows = list((await uow.scalars(stmt.order_by(Session.starts_at, Session.id).limit(q.page.limit + 1))).all())
    more = len(rows) > q.page.limit
    rows = rows[: q.page.limit]
    return await session_views(uow, q.viewer, rows), session_cursor(rows[-1]) if more and rows else None


# ---- one session: move, edit, cancel ---------------------------------------------------------------


@dataclass(frozen=True)
class UpdateSession:
    viewer: Principal
    session_id: str
    changes: Mapping[str, Any]  # SessionPatch fields sent; starts_at/ends_at as aware datetimes


async def update_session(uow: UnitOfWork, cmd: UpdateSession) -> Session:
    """Moves or edits one session, which is detached from the recurrence from then on."""
    s = await get_session(uow, cmd.session_id, lock=True)
    program = await _visible_session(uow, cmd.viewer, s)
    if not await is_hub_member(uow, program.id, cmd.viewer):
        raise Problem(403, "Only the program's hub team may change a session.", slug="not-hub-team")
    if s.status != "scheduled":
        raise Problem(409, "The session is cancelled.", slug="session-cancelled")
    c = dict(cmd.changes)
    _no_nulls(c)
    now = uow.now
    if s.starts_at <= now and set(c) - {"materials"}:  # the history stays true; slides may still be shared
        raise Problem(409, "The session has started; only its materials can still change.",
                      slug="session-started")
    errors: list[dict[str, Any]] = []
    starts, ends = c.get("starts_at"), c.get("ends_at")
    for key, value in (("starts_at", starts), ("ends_at", ends)):
        if value is not None and value.tzinfo is None:
            errors.append(field_error(f"body.{key}", "needs an offset (e.g. Z for UTC)"))
        elif value is not None and not domain.YEARS[0] <= value.year <= domain.YEARS[1]:  # before any arithmetic
            errors.append(field_error(f"body.{key}", "must be within the years {} to {}".format(*domain.YEARS)))
    if errors:
        raise invalid(errors, "The change")
    new_start = starts.astimezone(UTC) if starts else s.starts_at
    new_end = ends.astimezone(UTC) if ends else (new_start + (s.ends_at - s.starts_at) if starts else s.ends_at)
    if starts and new_start <= now:
        errors.append(field_error("body.starts_at", "must be in the future"))
    if not timedelta(0) < new_end - new_start <= timedelta(minutes=domain.MAX_DURATION_MINUTES):
        errors.append(field_error("body.ends_at", "must be after starts_at, within a day"))
    if "competencies" in c:
        errors += await tag_errors(uow, c["competencies"], "body.competencies")
    if "capacity" in c:
        taken = (await seats_held(uow, [s.id])).get(s.id, (0, 0))[0]
        if c["capacity"] < taken:
            errors.append(field_error("body.capacity", f"{taken} seats are already taken", seats_taken=taken))
    if errors:
        raise invalid(errors, "The change")
    grew = "capacity" in c and c["capacity"] > s.capacity
    earlier = new_start < s.starts_at
    s.starts_at, s.ends_at = new_start, new_end
    for key in ("title", "topic", "capacity", "materials", "competencies"):
        if key in c:
            setattr(s, key, c[key])
    if "meeting_url" in c:
        s.meeting_url = c["meeting_url"] or ""
    s.detached, s.revision, s.updated_at = True, s.revision + 1, now
    await _scheduled(uow, s)
    if earlier:  # an offer never outlives the start: what the person is shown stays true
        await registration.recap_offers(uow, s)
    if grew:
        await registration.offer_free_seats(uow, s)
    await uow.flush()
    return s


@dataclass(frozen=True)
class CancelSession:
    viewer: Principal
    session_id: str
    reason: str = ""


async def cancel_session(uow: UnitOfWork, cmd: CancelSession) -> Session:
    s = await get_session(uow, cmd.session_id, lock=True)
    program = await _visible_session(uow, cmd.viewer, s)
    if not await is_hub_member(uow, program.id, cmd.viewer):
        raise Problem(403, "Only the program's hub team may cancel a session.", slug="not-hub-team")
    if s.status == "cancelled":
        raise Problem(409, "The session is already cancelled.", slug="session-cancelled")
    if s.starts_at <= uow.now:
        raise Problem(409, "The session has started; it can no longer be cancelled.", slug="session-started")
    s.detached = True  # cancelled alone: a later recurrence edit does not bring it back
    await _cancel_session(uow, s, cmd.reason)
    await uow.flush()
    return s


# ---- chore: keep unbounded recurrences expanded to the horizon ---------------------------------------


async def extend_sessions(db: Database) -> int:
    """Adds the occurrences that came within the horizon since the last run; the number added.

    Most runs find nothing and only read. A program with new occurrences is extended under its row
    lock, so replicas running this at once add nothing twice (the (program, occurrence) unique
    constraint backs that up).
    """
    async with db.reader(all_agencies=True) as uow:
        due = [p.id for p in (await uow.scalars(select(Program).order_by(Program.id))).all()
               if await _missing(uow, p)]
    added = 0
    for pid in due:
        async with db.unit_of_work(all_agencies=True) as uow:
            program = await get_program(uow, pid, lock=True)
            fresh = []
            for occ in await _missing(uow, program):
                s = _new_session(uow, program, occ)
                uow.add(s)
                await _scheduled(uow, s)
                fresh.append(s)
            await uow.flush()
            await registration.seat_series(uow, fresh)  # a series registration covers sessions added later
        added += len(fresh)  # counted once committed
    return added


async def _missing(uow: UnitOfWork, program: Program) -> list[domain.Occurrence]:
    """Future occurrences within the horizon after the program's last session's occurrence."""
    last = (await uow.execute(select(func.max(Session.occurrence)).where(
        Session.program_id == program.id))).scalar_one()
    if isinstance(last, str):  # SQLite's MAX() returns the stored text
        last = datetime.fromisoformat(last)
    if last is not None and last.tzinfo is None:
        last = last.replace(tzinfo=UTC)
    after = max(last, uow.now) if last is not None else uow.now
    return domain.expand(_recurrence(program), until=_horizon(uow), after=after)


async def known_tags(uow: UnitOfWork) -> list[str]:
    return await known_competencies(uow)
