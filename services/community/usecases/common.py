"""Steps several community use cases share: loading a program or session, and who the caller is to it."""

from __future__ import annotations

from sqlalchemy import select

from services.community.models import ROSTER, HubMember, Program, Session
from trellis.auth import Principal
from trellis.db import UnitOfWork
from trellis.problems import Problem

FACILITATORS = ("facilitator", "platform_admin")


async def get_program(uow: UnitOfWork, program_id: str, *, lock: bool = False) -> Program:
    stmt = select(Program).where(Program.id == program_id)
    program = (await uow.scalars(stmt.with_for_update() if lock else stmt)).one_or_none()
    if program is None:
        raise Problem(404, f"No program {program_id}.")
    return program


async def get_session(uow: UnitOfWork, session_id: str, *, lock: bool = False) -> Session:
    """`lock`: the session's row lock (FOR UPDATE on PostgreSQL) serialises its seats across replicas."""
    stmt = select(Session).where(Session.id == session_id)
    session = (await uow.scalars(stmt.with_for_update() if lock else stmt)).one_or_none()
    if session is None:
        raise Problem(404, f"No session {session_id}.")
    return session


async def hub_role(uow: UnitOfWork, program_id: str, person_id: str) -> str | None:
    """'facilitator' or 'expert' when the person is on the program's hub team, else None."""
    return (await uow.scalars(select(HubMember.role).where(
        HubMember.program_id == program_id, HubMember.person_id == person_id))).one_or_none()


async def is_hub(uow: UnitOfWork, program_id: str, viewer: Principal) -> bool:
    return viewer.has("platform_admin") or await hub_role(uow, program_id, viewer.sub) is not None


async def require_hub(uow: UnitOfWork, program_id: str, viewer: Principal, action: str = "do this") -> None:
    if not await is_hub(uow, program_id, viewer):
        raise Problem(403, f"Only the program's hub team may {action}.", slug="not-hub-team")


def open_to(program: Program, agency: str) -> bool:
    return program.open_to_all or agency in (program.agencies or [])


async def is_active_staff(uow: UnitOfWork, agency: str, person: str) -> bool:
    member = await ROSTER.member(uow, agency, person)
    return member is not None and member.active
