"""Registration use cases: seats, the waiting list, offers, and the offer and reminder sweeps.

Capacity is never exceeded, even with several replicas: every change to a session's seats runs
under that session's row lock (`get_session(lock=True)`, SELECT ... FOR UPDATE on PostgreSQL;
SQLite serialises writers), and counts the seats held (confirmed + offered) after taking it.
Positions (first come, first served) are taken under the same lock. Events about a person carry
the person's agency.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, OperationalError
from uuid6 import uuid7

from contracts.community import RegistrationCancelled, RegistrationConfirmed, SessionReminderDue, WaitlistOffered
from services.community.domain import registration as domain
from services.community.models import Registration, ReminderSent, SeriesRegistration, Session
from services.community.usecases.common import get_program, get_session, is_active_staff, is_hub, open_to
from services.community.usecases.directory import display_names
from trellis.auth import Principal
from trellis.db import Database, UnitOfWork
from trellis.pagination import PageParams, encode_cursor, paged
from trellis.problems import Problem, field_error, invalid

log = logging.getLogger("trellis.community")


@dataclass(frozen=True)
class Seat:
    """A registration as the API shows it: the row and its place in the waiting list (when waiting)."""

    row: Registration
    waitlist_position: int | None = None
    display_name: str | None = None  # the person's name as the community knows it (StaffMemberJoined)


async def named(uow: UnitOfWork, seats: list[Seat]) -> list[Seat]:
    """The seats with their people's display names: one query for the whole list, never one per row."""
    names = await display_names(uow, (s.row.person_id for s in seats))
    return [replace(s, display_name=names.get(s.row.person_id)) for s in seats]


async def _one(uow: UnitOfWork, s: Seat) -> Seat:
    return (await named(uow, [s]))[0]


# ---- steps other areas call ------------------------------------------------------------------------


async def _held_and_waiting(uow: UnitOfWork, session_id: str) -> tuple[int, list[tuple[int, str]]]:
    rows = (await uow.execute(select(Registration.status, Registration.position, Registration.id).where(
        Registration.session_id == session_id, Registration.status.in_(domain.ACTIVE)))).all()
    held = sum(1 for s, _, _ in rows if s in domain.HOLDS_SEAT)
    return held, [(p, i) for s, p, i in rows if s == "waiting"]


async def offer_free_seats(uow: UnitOfWork, session: Session) -> int:
    """Offers every free seat to the first people waiting (WaitlistOffered); the number offered.

    Call after a seat was freed or the capacity rose. Takes the session's lock (again) itself.
    Nothing is offered once the session has started or when it is cancelled.
    """
    session = await get_session(uow, session.id, lock=True)
    now = uow.now
    if not domain.registration_open(session.status, session.starts_at, now):
        return 0
    held, waiting = await _held_and_waiting(uow, session.id)
    chosen = domain.next_offers(waiting, session.capacity, held)
    if not chosen:
        return 0
    program = await get_program(uow, session.program_id)
    expires = domain.offer_expiry(now, program.offer_hours, session.starts_at)
    regs = (await uow.scalars(select(Registration).where(Registration.id.in_(chosen)))).all()
    for reg in sorted(regs, key=lambda r: r.position):
        reg.status, reg.offered_at, reg.offer_expires_at, reg.updated_at = "offered", now, expires, now
        await uow.emit(WaitlistOffered(registration_id=reg.id, session_id=reg.session_id, program_id=reg.program_id,
                                       person_id=reg.person_id, expires_at=expires),
                       subject=reg.id, agency=reg.agency_id)
    return len(regs)


async def _cancel(uow: UnitOfWork, reg: Registration, reason: str, event_id: str | None = None) -> None:
    was = reg.status
    reg.status, reg.cancel_reason, reg.updated_at = "cancelled", reason, uow.now
    reg.offer_expires_at = None
    await uow.emit(RegistrationCancelled(registration_id=reg.id, session_id=reg.session_id, program_id=reg.program_id,
                                         person_id=reg.person_id, was=was, reason=reason),  # type: ignore[arg-type]
                   subject=reg.id, agency=reg.agency_id, event_id=event_id)


async def cancel_all(uow: UnitOfWork, session: Session, reason: str) -> int:
    """Cancels every active registration of a session (e.g. `session_cancelled`); the number cancelled."""
    await get_session(uow, session.id, lock=True)
    regs = (await uow.scalars(select(Registration).where(
        Registration.session_id == session.id, Registration.status.in_(domain.ACTIVE))
        .order_by(Registration.position))).all()
    for reg in regs:
        await _cancel(uow, reg, reason)
    return len(regs)


async def waitlist_position(uow: UnitOfWork, reg: Registration) -> int | None:
    if reg.status != "waiting":
        return None
    ahead = (await uow.execute(select(func.count()).select_from(Registration).where(
        Registration.session_id == reg.session_id, Registration.status == "waiting",
        Registration.position < reg.position))).scalar_one()
    return int(ahead) + 1


async def seat(uow: UnitOfWork, reg: Registration) -> Seat:
    return Seat(reg, await waitlist_position(uow, reg))


async def seats(uow: UnitOfWork, regs: Sequence[Registration]) -> list[Seat]:
    """`seat` for many registrations: one query for the waiting lists they are on, not one per row."""
    sessions = {r.session_id for r in regs if r.status == "waiting"}
    places: dict[str, int] = {}
    if sessions:
        rows = (await uow.execute(select(Registration.session_id, Registration.id).where(
            Registration.session_id.in_(sessions), Registration.status == "waiting")
            .order_by(Registration.session_id, Registration.position))).all()
        counted: dict[str, int] = {}
        for session_id, reg_id in rows:
            counted[session_id] = places[reg_id] = counted.get(session_id, 0) + 1
    return [Seat(r, places.get(r.id)) for r in regs]


# ---- registering ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Register:
    viewer: Principal
    session_id: str
    person_id: str | None = None


@dataclass(frozen=True)
class RegisterSeries:
    viewer: Principal
    program_id: str
    person_id: str | None = None


async def _who(uow: UnitOfWork, viewer: Principal, person_id: str | None) -> str:
    """The person to register: the caller, or (agency admin) active staff of the caller's agency."""
    person = person_id or viewer.sub
    if person != viewer.sub and not viewer.has("agency_admin"):
        raise Problem(403, "You can only register yourself; an agency admin may register their staff.",
                      slug="not-your-record")
    if not await is_active_staff(uow, viewer.agency, person):
        raise invalid([field_error("body.person_id", f"{person} is not active staff of your agency")],
                      "The registration")
    return person


async def _counts(uow: UnitOfWork, session_id: str) -> tuple[int, int, int]:
    """Seats held, people waiting and the highest position so far, in one round trip (under the lock)."""
    held, waiting, top = (await uow.execute(select(
        func.count().filter(Registration.status.in_(domain.HOLDS_SEAT)),
        func.count().filter(Registration.status == "waiting"),
        func.max(Registration.position)).where(Registration.session_id == session_id))).one()
    return int(held), int(waiting), int(top or 0)


async def _seat_in(uow: UnitOfWork, session: Session, person: str, agency: str, by: str, via: str,
                   *, series: bool = False) -> Seat | None:
    """Registers `person` at a session whose lock is held: confirmed or waiting. None (series) if already in."""
    now = uow.now
    existing = (await uow.scalars(select(Registration).where(
        Registration.session_id == session.id, Registration.person_id == person))).one_or_none()
    if existing is not None and existing.status in domain.ACTIVE:
        if series:
            return None
        raise Problem(409, f"Already registered for this session: registration {existing.id}.",
                      slug="already-registered")
    held, waiting, top = await _counts(uow, session.id)
    status = domain.seat_decision(session.capacity, held, waiting)
    reg = existing  # a cancelled registration is re-opened: same row, a new place at the back
    if reg is None:
        reg = Registration(id=str(uuid7()), session_id=session.id, program_id=session.program_id, person_id=person,
                           created_at=now)
        uow.add(reg)
    reg.agency_id, reg.status, reg.position, reg.via, reg.registered_by = agency, status, top + 1, via, by
    reg.offered_at = reg.offer_expires_at = reg.cancel_reason = None
    reg.updated_at = now
    if status == "confirmed":
        await uow.emit(RegistrationConfirmed(registration_id=reg.id, session_id=session.id,
                                             program_id=session.program_id, person_id=person,
                                             starts_at=session.starts_at, via=via),  # type: ignore[arg-type]
                       subject=reg.id, agency=agency)
        return Seat(reg)
    if domain.free_seats(session.capacity, held):  # free seats but people waiting: they come first
        await uow.flush()
        await offer_free_seats(uow, session)
        return await seat(uow, reg)
    return Seat(reg, waiting + 1)  # at the back of the queue


async def _checks(uow: UnitOfWork, viewer: Principal, program_id: str, person_id: str | None) -> str:
    """Who may register whom, for this program: the person registered (checked before any lock is taken)."""
    program = await get_program(uow, program_id)
    if not open_to(program, viewer.agency):
        raise Problem(403, "This program is not open to your agency.", slug="program-not-open")
    return await _who(uow, viewer, person_id)


async def register(uow: UnitOfWork, cmd: Register) -> Seat:
    # The rules that need no lock run first, so the session's lock is held only for the seat itself.
    program_id = (await uow.scalars(select(Session.program_id).where(Session.id == cmd.session_id))).one_or_none()
    if program_id is None:
        raise Problem(404, f"No session {cmd.session_id}.")
    person = await _checks(uow, cmd.viewer, program_id, cmd.person_id)
    session = await get_session(uow, cmd.session_id, lock=True)
    if not domain.registration_open(session.status, session.starts_at, uow.now):
        raise Problem(409, "Registration for this session is closed (it has started or was cancelled).",
                      slug="registration-closed")
    out = await _seat_in(uow, session, person, cmd.viewer.agency, cmd.viewer.sub, "direct")
    assert out is not None
    return await _one(uow, out)


async def register_series(uow: UnitOfWork, cmd: RegisterSeries) -> list[Seat]:
    """Every future scheduled session of the program the person is not registered for (via=series),
    and the sessions created later too (`seat_series`), until the series is cancelled."""
    person = await _checks(uow, cmd.viewer, cmd.program_id, cmd.person_id)
    # The program's lock first, as the recurrence edit and the expansion chore take it before creating
    # sessions: a series registered meanwhile is either seen by them or sees their sessions.
    await get_program(uow, cmd.program_id, lock=True)
    series = await uow.get(SeriesRegistration, (cmd.program_id, person))
    if series is None:
        series = SeriesRegistration(program_id=cmd.program_id, person_id=person)
        uow.add(series)
    if series.cancelled_at is not None or series.created_at is None:  # new or re-opened: at the back
        series.created_at, series.cancelled_at = uow.now, None
    series.agency_id, series.registered_by = cmd.viewer.agency, cmd.viewer.sub
    ids = (await uow.scalars(select(Session.id).where(
        Session.program_id == cmd.program_id, Session.status == "scheduled", Session.starts_at > uow.now)
        .order_by(Session.starts_at, Session.id))).all()  # one lock order for everyone: no deadlocks
    out = []
    for sid in ids:
        session = await get_session(uow, sid, lock=True)
        if not domain.registration_open(session.status, session.starts_at, uow.now):
            continue
        s = await _seat_in(uow, session, person, cmd.viewer.agency, cmd.viewer.sub, "series", series=True)
        if s is not None:
            out.append(s)
    return await named(uow, out)


async def seat_series(uow: UnitOfWork, sessions: Sequence[Session]) -> int:
    """Seats every active series registrant who is still active staff at sessions just created (or
    scheduled again) for one program: confirmed or waiting, first registered first, via=series.

    Call with the program's lock held (recurrence edit, expansion chore), after the sessions are flushed.
    """
    if not sessions:
        return 0
    program = await get_program(uow, sessions[0].program_id)
    people = (await uow.scalars(select(SeriesRegistration).where(
        SeriesRegistration.program_id == program.id, SeriesRegistration.cancelled_at.is_(None))
        .order_by(SeriesRegistration.created_at, SeriesRegistration.person_id))).all()
    people = [p for p in people if open_to(program, p.agency_id) and await is_active_staff(uow, p.agency_id,
                                                                                             p.person_id)]
    n = 0
    for s in sorted(sessions, key=lambda x: (x.starts_at, x.id)) if people else []:
        session = await get_session(uow, s.id, lock=True)
        if not domain.registration_open(session.status, session.starts_at, uow.now):
            continue
        for p in people:
            seated = await _seat_in(uow, session, p.person_id, p.agency_id, p.registered_by, "series", series=True)
            n += seated is not None
    return n


async def _end_future(uow: UnitOfWork, regs: Sequence[tuple[str, str]], reason: str) -> list[Registration]:
    """Cancels the given (registration id, session id), in start order, each under its session's lock;
    freed seats pass to the waiting list. The registrations cancelled."""
    out = []
    for rid, sid in regs:
        session = await get_session(uow, sid, lock=True)
        reg = (await uow.scalars(select(Registration).where(Registration.id == rid)
                                 .execution_options(populate_existing=True))).one()
        if reg.status not in domain.ACTIVE or uow.now >= session.starts_at:
            continue
        freed = reg.status in domain.HOLDS_SEAT
        await _cancel(uow, reg, reason)
        if freed:
            await offer_free_seats(uow, session)
        out.append(reg)
    return out


async def cancel_series(uow: UnitOfWork, cmd: RegisterSeries) -> list[Seat]:
    """Ends a series registration: no more automatic seats, and the person's future registrations of
    the program are cancelled. The person, their agency admin or the program's hub may do it."""
    person = cmd.person_id or cmd.viewer.sub
    series = await uow.get(SeriesRegistration, (cmd.program_id, person))
    own_staff = series is not None and cmd.viewer.has("agency_admin") and cmd.viewer.agency == series.agency_id
    if person != cmd.viewer.sub and not own_staff and not await is_hub(uow, cmd.program_id, cmd.viewer):
        raise Problem(403, "You can only cancel your own series; an agency admin may cancel their staff's.",
                      slug="not-your-record")
    if series is None:
        raise Problem(404, f"No series registration of {person} for program {cmd.program_id}.")
    if series.cancelled_at is not None:
        raise Problem(409, "This series registration was already cancelled.", slug="registration-not-active")
    series.cancelled_at = uow.now
    ids = (await uow.execute(select(Registration.id, Registration.session_id).join(
        Session, Session.id == Registration.session_id).where(
        Registration.program_id == cmd.program_id, Registration.person_id == person,
        Registration.status.in_(domain.ACTIVE), Session.starts_at > uow.now)
        .order_by(Session.starts_at, Session.id))).all()  # the lock order register_series uses
    return await named(uow, [Seat(r) for r in await _end_future(uow, [(r, s) for r, s in ids], "cancelled")])


async def recap_offers(uow: UnitOfWork, session: Session) -> int:
    """After a session moved earlier: outstanding offers end at the new start at the latest (the caller
    holds the session's lock). The number re-capped."""
    regs = (await uow.scalars(select(Registration).where(
        Registration.session_id == session.id, Registration.status == "offered",
        Registration.offer_expires_at > session.starts_at))).all()
    for reg in regs:
        reg.offer_expires_at, reg.updated_at = session.starts_at, uow.now
    return len(regs)


# ---- changing a registration -----------------------------------------------------------------------


@dataclass(frozen=True)
class Act:
    """Cancel, accept or decline one registration."""

    viewer: Principal
    registration_id: str


async def _load(uow: UnitOfWork, viewer: Principal, registration_id: str) -> Registration:
    reg = (await uow.scalars(select(Registration).where(Registration.id == registration_id))).one_or_none()
    if reg is None or not await _may_see(uow, viewer, reg):
        raise Problem(404, f"No registration {registration_id} you can see.")
    return reg


async def _may_see(uow: UnitOfWork, viewer: Principal, reg: Registration) -> bool:
    return (reg.person_id == viewer.sub or (viewer.has("agency_admin") and viewer.agency == reg.agency_id)
            or await is_hub(uow, reg.program_id, viewer))


async def _locked(uow: UnitOfWork, cmd: Act) -> tuple[Session, Registration]:
    reg = await _load(uow, cmd.viewer, cmd.registration_id)
    session = await get_session(uow, reg.session_id, lock=True)
    await uow.refresh(reg)  # re-read under the lock: another replica may have changed it
    return session, reg


def _not_active(reg: Registration) -> Problem:
    return Problem(409, f"Registration {reg.id} is {reg.status}.", slug="registration-not-active")


async def cancel(uow: UnitOfWork, cmd: Act) -> Seat:
    """The person, their agency admin or the hub cancels; a freed seat goes to the first waiting person."""
    session, reg = await _locked(uow, cmd)
    if reg.status not in domain.ACTIVE:
        raise _not_active(reg)
    if uow.now >= session.starts_at:
        raise Problem(409, "The session has started; its registrations can no longer change.",
                      slug="registration-closed")
    freed = reg.status in domain.HOLDS_SEAT
    await _cancel(uow, reg, "cancelled")
    if freed:
        await offer_free_seats(uow, session)
    return await _one(uow, Seat(reg))


async def accept(uow: UnitOfWork, cmd: Act) -> Seat:
    session, reg = await _locked(uow, cmd)
    if reg.person_id != cmd.viewer.sub:
        raise Problem(403, "Only the person offered the seat may accept it.", slug="not-your-record")
    if reg.status != "offered":
        raise Problem(409, f"Registration {reg.id} is {reg.status}, not offered a seat.", slug="no-offer")
    now = uow.now
    # The start caps an offer even when the session was moved earlier after the offer was made.
    if not domain.offer_live(reg.offer_expires_at, now) or not domain.registration_open(
            session.status, session.starts_at, now):
        raise Problem(409, "The offer has expired; the seat passes to the next person.", slug="offer-expired")
    reg.status, reg.via, reg.offer_expires_at, reg.updated_at = "confirmed", "waitlist", None, now
    await uow.emit(RegistrationConfirmed(registration_id=reg.id, session_id=reg.session_id, program_id=reg.program_id,
                                         person_id=reg.person_id, starts_at=session.starts_at, via="waitlist"),
                   subject=reg.id, agency=reg.agency_id)
    return await _one(uow, Seat(reg))


async def decline(uow: UnitOfWork, cmd: Act) -> Seat:
    session, reg = await _locked(uow, cmd)
    if reg.person_id != cmd.viewer.sub:
        raise Problem(403, "Only the person offered the seat may decline it.", slug="not-your-record")
    if reg.status != "offered":
        raise Problem(409, f"Registration {reg.id} is {reg.status}, not offered a seat.", slug="no-offer")
    await _cancel(uow, reg, "offer_declined")
    await offer_free_seats(uow, session)
    return await _one(uow, Seat(reg))


async def release_seats_of_leaver(uow: UnitOfWork, agency: str, person: str) -> int:
    """A person left their agency: their series registrations end, their registrations for sessions not
    yet started end (`left_roster`), and the seats they held pass to the waiting list. The number cancelled."""
    now = uow.now
    for series in (await uow.scalars(select(SeriesRegistration).where(
            SeriesRegistration.person_id == person, SeriesRegistration.agency_id == agency,
            SeriesRegistration.cancelled_at.is_(None)))).all():
        series.cancelled_at = now
    ids = (await uow.execute(select(Registration.id, Registration.session_id).join(
        Session, Session.id == Registration.session_id).where(
        Registration.person_id == person, Registration.agency_id == agency,
        Registration.status.in_(domain.ACTIVE), Session.starts_at > now)
        .order_by(Session.starts_at, Session.id))).all()  # the lock order register_series uses
    await _end_future(uow, [(r, s) for r, s in ids], "left_roster")
    return len(ids)


# ---- reading ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListForSession:
    viewer: Principal
    session_id: str
    page: PageParams
    status: str | None = None


@dataclass(frozen=True)
class ListForPerson:
    viewer: Principal
    page: PageParams
    person_id: str | None = None


async def get(uow: UnitOfWork, cmd: Act) -> Seat:
    return await _one(uow, await seat(uow, await _load(uow, cmd.viewer, cmd.registration_id)))


async def list_for_session(uow: UnitOfWork, q: ListForSession) -> tuple[list[Seat], str | None]:
    """The hub's list, by position; the cursor is the last position shown."""
    session = await get_session(uow, q.session_id)
    if not await is_hub(uow, session.program_id, q.viewer):
        raise Problem(403, "Only the program's hub team may list a session's registrations.", slug="not-hub-team")
    after = 0
    if q.page.after is not None:
        if not (q.page.after.isascii() and q.page.after.isdigit() and len(q.page.after) < 10):
            raise Problem(400, "The 'after' cursor is not one this API issued.", slug="bad-cursor",
                          errors=[field_error("query.after", "unknown cursor")])
        after = int(q.page.after)
    stmt = select(Registration).where(Registration.session_id == session.id, Registration.position > after)
    if q.status:
        stmt = stmt.where(Registration.status == q.status)
    rows = list((await uow.scalars(stmt.order_by(Registration.position).limit(q.page.limit + 1))).all())
    more = len(rows) > q.page.limit
    rows = rows[: q.page.limit]
    _, waiting = await _held_and_waiting(uow, session.id)
    places = domain.waitlist_positions(waiting)
    nxt = encode_cursor(str(rows[-1].position)) if more and rows else None
    return await named(uow, [Seat(r, places.get(r.id)) for r in rows]), nxt


async def list_for_person(uow: UnitOfWork, q: ListForPerson) -> list[Seat]:
    """The caller's own; an agency admin their agency's staff's; the platform admin anyone's. By id (time)."""
    person = q.person_id or q.viewer.sub
    stmt = select(Registration).where(Registration.person_id == person)
    if person != q.viewer.sub and not q.viewer.has("platform_admin"):
        if not q.viewer.has("agency_admin"):
            raise Problem(403, "You can only see your own registrations.", slug="not-your-record")
        stmt = stmt.where(Registration.agency_id == q.viewer.agency)
    rows = (await uow.scalars(paged(stmt, Registration.id, q.page))).all()
    return await named(uow, await seats(uow, rows))


# ---- chores ----------------------------------------------------------------------------------------


async def expire_offers(uow: UnitOfWork, session_id: str) -> int:
    """Under the session's lock: expired offers are cancelled (`offer_expired`) and the seats offered on."""
    session = await get_session(uow, session_id, lock=True)
    now = uow.now
    regs = (await uow.scalars(select(Registration).where(
        Registration.session_id == session_id, Registration.status == "offered")
        .order_by(Registration.position))).all()
    expired = [r for r in regs if not domain.offer_live(r.offer_expires_at, now)]
    for reg in expired:
        offered_at = reg.offered_at or reg.updated_at
        await _cancel(uow, reg, "offer_expired", event_id=domain.expiry_event_id(reg.id, offered_at))
    if expired:
        await offer_free_seats(uow, session)
    return len(expired)


async def sweep_offers(db: Database) -> int:
    """The `offer-sweep` chore: one transaction per session with an expired offer; safe on several replicas."""
    now = db.now()
    async with db.reader() as uow:
        sessions = (await uow.scalars(select(Registration.session_id).where(
            Registration.status == "offered", Registration.offer_expires_at <= now).distinct())).all()
    moved = 0
    for sid in sessions:
        try:
            async with db.unit_of_work() as uow:
                n = await expire_offers(uow, sid)
            moved += n  # counted once committed
        except IntegrityError:  # another replica recorded the same expiry first
            log.info("session %s: offer expiry already recorded elsewhere", sid)
        except OperationalError as e:  # SQLite shared by two processes: busy; the next sweep finishes it
            log.warning("session %s: %s; left for the next sweep", sid, e.orig)
    return moved


async def send_reminders(uow: UnitOfWork, session_id: str) -> int:
    """Under the session's lock: the reminders due now to its confirmed registrants, each exactly once."""
    session = await get_session(uow, session_id, lock=True)
    now = uow.now
    if session.status != "scheduled":
        return 0
    regs = (await uow.scalars(select(Registration).where(
        Registration.session_id == session_id, Registration.status == "confirmed")
        .order_by(Registration.position))).all()
    # Only reminders of the current start count: a moved session's reminders are due again.
    sent: dict[str, set[str]] = {}
    for person, lead, start in (await uow.execute(select(
            ReminderSent.person_id, ReminderSent.lead, ReminderSent.starts_at).where(
            ReminderSent.session_id == session_id))).all():
        if start == session.starts_at:
            sent.setdefault(person, set()).add(lead)
    n = 0
    for reg in regs:
        for lead in domain.reminders_due(session.starts_at, now, sent.get(reg.person_id, ())):
            uow.add(ReminderSent(session_id=session_id, person_id=reg.person_id, lead=lead,
                                 starts_at=session.starts_at, sent_at=now))
            await uow.emit(SessionReminderDue(
                session_id=session_id, program_id=session.program_id, registration_id=reg.id,
                person_id=reg.person_id, lead=lead, title=session.title,  # type: ignore[arg-type]
                starts_at=session.starts_at, timezone=session.timezone),
                subject=reg.id, agency=reg.agency_id,
                event_id=domain.reminder_event_id(session_id, reg.person_id, lead, session.starts_at))
            n += 1
    return n


async def sweep_reminders(db: Database) -> int:
    """The `reminder-sweep` chore: sessions starting within the longest lead, one transaction each.

    Concurrent-safe like fidelity's certification sweep: the session is locked and what was sent
    re-read; the reminders_sent key and the deterministic event id stop any duplicate.
    """
    now = db.now()
    horizon = now + max(domain.LEADS.values())
    async with db.reader() as uow:
        sessions = (await uow.scalars(select(Session.id).where(
            Session.status == "scheduled", Session.starts_at > now, Session.starts_at <= horizon)
            .order_by(Session.starts_at))).all()
    sent = 0
    for sid in sessions:
        try:
            async with db.unit_of_work() as uow:
                n = await send_reminders(uow, sid)
            sent += n  # counted once committed
        except IntegrityError:
            log.info("session %s: reminders already recorded elsewhere", sid)
        except OperationalError as e:
            log.warning("session %s: %s; left for the next sweep", sid, e.orig)
    return sent

