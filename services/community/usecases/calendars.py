"""iCalendar feeds behind revocable secret URLs: one per person (their sessions) and one per program.

The token is the only credential, so calendar clients (Outlook, Google Calendar) can poll the feed
without signing in; rotating it revokes the old URL at once.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import or_, select

from services.community.domain import sessions as domain
from services.community.models import CalendarFeed, HubMember, Program, Registration, Session
from services.community.usecases.common import get_program
from services.community.usecases.programs import is_hub_member, visible_program
from trellis.auth import Principal
from trellis.db import UnitOfWork
from trellis.problems import Problem

PERSON, PROGRAM = "person", "program"
TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")  # secrets.token_urlsafe(32) is 43 such characters
KEEP_PAST = timedelta(days=90)  # a person's feed keeps recent past sessions, so calendars do not empty


def feed_path(token: str) -> str:
    return f"/v1/calendar/{token}.ics"


async def _active(uow: UnitOfWork, kind: str, owner: str) -> CalendarFeed | None:
    return (await uow.scalars(select(CalendarFeed).where(
        CalendarFeed.owner_kind == kind, CalendarFeed.owner_id == owner, CalendarFeed.revoked_at.is_(None))
        .order_by(CalendarFeed.created_at.desc()).limit(1))).first()


def _issue(uow: UnitOfWork, kind: str, owner: str) -> CalendarFeed:
    feed = CalendarFeed(token=secrets.token_urlsafe(32), owner_kind=kind, owner_id=owner, created_at=uow.now)
    uow.add(feed)
    return feed


async def _get_or_issue(uow: UnitOfWork, kind: str, owner: str) -> CalendarFeed:
    return await _active(uow, kind, owner) or _issue(uow, kind, owner)


async def _rotate(uow: UnitOfWork, kind: str, owner: str) -> CalendarFeed:
    now = uow.now
    for old in (await uow.scalars(select(CalendarFeed).where(
            CalendarFeed.owner_kind == kind, CalendarFeed.owner_id == owner, CalendarFeed.revoked_at.is_(None)))).all():
        old.revoked_at = now
    return _issue(uow, kind, owner)


@dataclass(frozen=True)
class MyFeed:
    viewer: Principal
    rotate: bool = False


async def my_feed(uow: UnitOfWork, cmd: MyFeed) -> CalendarFeed:
    """The caller's feed URL (issued on first ask); `rotate` revokes the old one and issues a new one."""
    if cmd.rotate:
        return await _rotate(uow, PERSON, cmd.viewer.sub)
    return await _get_or_issue(uow, PERSON, cmd.viewer.sub)


@dataclass(frozen=True)
class ProgramFeed:
    viewer: Principal
    program_id: str
    rotate: bool = False


async def program_feed(uow: UnitOfWork, cmd: ProgramFeed) -> CalendarFeed:
    """Anyone who sees the program gets its feed URL; only the hub team rotates it."""
    program = await visible_program(uow, cmd.viewer, cmd.program_id)
    if cmd.rotate:
        if not await is_hub_member(uow, program.id, cmd.viewer):
            raise Problem(403, "Only the program's hub team may rotate its calendar URL.", slug="not-hub-team")
        return await _rotate(uow, PROGRAM, program.id)
    return await _get_or_issue(uow, PROGRAM, program.id)


@dataclass(frozen=True)
class ReadFeed:
    token: str


async def read_feed(uow: UnitOfWork, q: ReadFeed) -> bytes:
    """The .ics text of a live token; unknown and revoked tokens are both plain 404s."""
    # Only what secrets.token_urlsafe issues reaches the database (PostgreSQL refuses a NUL: a 500).
    feed = await uow.get(CalendarFeed, q.token) if TOKEN.fullmatch(q.token) else None
    if feed is None or feed.revoked_at is not None:
        raise Problem(404, "No such calendar feed; it may have been replaced by a new URL.")
    if feed.owner_kind == PROGRAM:
        return await _program_ics(uow, feed.owner_id)
    return await _person_ics(uow, feed.owner_id)


def _entry(s: Session, program_title: str, *, link: bool) -> domain.CalendarEntry:
    cancelled = s.status == "cancelled"
    about = program_title if s.topic == "" else f"{program_title}: {s.topic}"
    return domain.CalendarEntry(
        uid=f"{s.id}@trellis", title=s.title, description=about, starts_at=s.starts_at, ends_at=s.ends_at,
        timezone=s.timezone, cancelled=cancelled, url=s.meeting_url if link and not cancelled else "",
        sequence=s.revision - 1, occurrence=s.occurrence)


async def _program_ics(uow: UnitOfWork, program_id: str) -> bytes:
    program = await get_program(uow, program_id)
    rows = (await uow.scalars(select(Session).where(Session.program_id == program.id)
                              .order_by(Session.starts_at))).all()
    # Shared with everyone who sees the program: never the meeting link.
    return domain.calendar_text(program.title, [_entry(s, program.title, link=False) for s in rows], stamp=uow.now)


async def _person_ics(uow: UnitOfWork, person_id: str) -> bytes:
    """Sessions the person holds a seat at (the link only once confirmed), or whose hub they are on;
    sessions cancelled under them stay as STATUS:CANCELLED so calendars drop them."""
    since = uow.now - KEEP_PAST
    regs = {r.session_id: r for r in (await uow.scalars(select(Registration).where(
        Registration.person_id == person_id,
        or_(Registration.status.in_(("confirmed", "offered")), Registration.cancel_reason == "session_cancelled"),
    ))).all()}
    hub = set((await uow.scalars(select(HubMember.program_id).where(HubMember.person_id == person_id))).all())
    conds = []
    if regs:
        conds.append(Session.id.in_(sorted(regs)))
    if hub:
        conds.append(Session.program_id.in_(sorted(hub)))
    rows = list((await uow.scalars(select(Session).where(or_(*conds), Session.ends_at >= since)
                                   .order_by(Session.starts_at))).all()) if conds else []
    titles = dict((await uow.execute(select(Program.id, Program.title).where(
        Program.id.in_(sorted({s.program_id for s in rows}))))).all()) if rows else {}
    entries = []
    for s in rows:
        reg = regs.get(s.id)
        link = s.program_id in hub or (reg is not None and reg.status == "confirmed")
        entries.append(_entry(s, titles.get(s.program_id, ""), link=link))
    return domain.calendar_text("Trellis community sessions", entries, stamp=uow.now)
