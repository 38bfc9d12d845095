"""Community REST: programs, their hub team and their sessions. Routes parse, call one use case, shape the answer."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Response

from services.community.schemas.inputs import Instant
from services.community.schemas.programs import (
    CancelIn,
    CompetencyList,
    HubMemberIn,
    ProgramIn,
    ProgramOut,
    ProgramPage,
    ProgramPatch,
    SessionOut,
    SessionPage,
    SessionPatch,
)
from services.community.schemas.registration import RegistrationOut
from services.community.usecases import programs as uc
from services.community.usecases.common import FACILITATORS
from trellis.auth import CurrentPrincipal, Principal, require_roles
from trellis.deps import DB, Page

router = APIRouter(prefix="/v1", tags=["community"])
Facilitator = Annotated[Principal, require_roles(*FACILITATORS)]


def program_out(v: uc.ProgramView) -> ProgramOut:
    p = v.program
    return ProgramOut(
        id=p.id, title=p.title, description=p.description, owner_id=p.owner_id, open_to_all=p.open_to_all,
        agencies=list(p.agencies or []), timezone=p.timezone,
        recurrence={"dtstart": p.dtstart, "rrule": p.rrule},  # type: ignore[arg-type]
        duration_minutes=p.duration_minutes, capacity=p.capacity, session_title=p.session_title, topic=p.topic,
        competencies=list(p.competencies), meeting_url=(p.meeting_url or None) if v.is_hub else None,
        materials=p.materials, attendance_threshold=p.attendance_threshold,  # type: ignore[arg-type]
        offer_hours=p.offer_hours, ce_rule=p.ce_rule, revision=p.revision,
        hub=[{"person_id": m.person_id, "agency_id": m.agency_id, "role": m.role} for m in v.hub],  # type: ignore[misc]
        session_count=v.session_count, next_session_at=v.next_session_at, is_hub=v.is_hub,
        created_at=p.created_at, updated_at=p.updated_at)


def session_out(v: uc.SessionView) -> SessionOut:
    s = v.session
    mine = None
    if v.mine is not None:
        mine = RegistrationOut.model_validate(v.mine.row, from_attributes=True)
        mine.waitlist_position, mine.display_name = v.mine.waitlist_position, v.mine.display_name
    return SessionOut(
        id=s.id, program_id=s.program_id, program_title=v.program_title, title=s.title, topic=s.topic,
        starts_at=s.starts_at, ends_at=s.ends_at, timezone=s.timezone, capacity=s.capacity,
        seats_taken=v.seats_taken, waiting=v.waiting, materials=s.materials,  # type: ignore[arg-type]
        competencies=list(s.competencies), meeting_url=v.meeting_url, status=s.status,  # type: ignore[arg-type]
        detached=s.detached, registration_open=v.registration_open, my_registration=mine, is_hub=v.is_hub,
        revision=s.revision)


# ---- programs --------------------------------------------------------------------------------------


@router.post("/programs", status_code=201, response_model=ProgramOut,
             summary="Create a program: its recurrence is expanded into sessions (SessionScheduled each)")
async def create_program(body: ProgramIn, db: DB, principal: Facilitator, response: Response) -> ProgramOut:
    async with db.unit_of_work() as uow:
        program = await uc.create_program(uow, uc.CreateProgram(principal, body.model_dump(mode="json")))
        view = (await uc.program_views(uow, principal, [program]))[0]
    response.headers["Location"] = f"/v1/programs/{program.id}"
    return program_out(view)


@router.get("/programs", response_model=ProgramPage, summary="Programs open to the caller's agency or hubbed by them")
async def list_programs(db: DB, principal: CurrentPrincipal, page: Page) -> dict[str, object]:
    async with db.reader() as uow:
        views, nxt = await uc.list_programs(uow, uc.ListPrograms(principal, page))
    return {"items": [program_out(v) for v in views], "next": nxt}


@router.get("/programs/{program_id}", response_model=ProgramOut)
async def get_program(program_id: UUID, db: DB, principal: CurrentPrincipal) -> ProgramOut:
    async with db.reader() as uow:
        return program_out(await uc.get_program_view(uow, uc.GetProgram(principal, str(program_id))))


@router.patch("/programs/{program_id}", response_model=ProgramOut,
              summary="Edit a program; schedule and session fields change future, non-detached sessions only")
async def update_program(program_id: UUID, body: ProgramPatch, db: DB, principal: CurrentPrincipal) -> ProgramOut:
    changes = body.model_dump(mode="json", exclude_unset=True)
    async with db.unit_of_work() as uow:
        program = await uc.update_program(uow, uc.UpdateProgram(principal, str(program_id), changes))
        view = (await uc.program_views(uow, principal, [program]))[0]
    return program_out(view)


@router.post("/programs/{program_id}/hub", response_model=ProgramOut, summary="Add or change a hub team member")
async def add_hub_member(program_id: UUID, body: HubMemberIn, db: DB, principal: CurrentPrincipal) -> ProgramOut:
    cmd = uc.AddHubMember(principal, str(program_id), str(body.person_id), str(body.agency_id), body.role)
    async with db.unit_of_work() as uow:
        program = await uc.add_hub_member(uow, cmd)
        view = (await uc.program_views(uow, principal, [program]))[0]
    return program_out(view)


@router.delete("/programs/{program_id}/hub/{person_id}", response_model=ProgramOut,
               summary="Remove a hub team member (a program keeps one facilitator)")
async def remove_hub_member(program_id: UUID, person_id: UUID, db: DB, principal: CurrentPrincipal) -> ProgramOut:
    async with db.unit_of_work() as uow:
        program = await uc.remove_hub_member(uow, uc.RemoveHubMember(principal, str(program_id), str(person_id)))
        view = (await uc.program_views(uow, principal, [program]))[0]
    return program_out(view)


@router.get("/competencies", response_model=CompetencyList,
            summary="Competency tags sessions may carry (from fidelity's instruments)")
async def competencies(db: DB, principal: CurrentPrincipal) -> dict[str, object]:
    async with db.reader() as uow:
        return {"items": await uc.known_tags(uow)}


# ---- sessions --------------------------------------------------------------------------------------


@router.get("/sessions", response_model=SessionPage, summary="Sessions the caller may see, by start time")
async def list_sessions(
    db: DB, principal: CurrentPrincipal, page: Page,
    start: Annotated[Instant | None, Query(alias="from", description="Starting at or after (with offset)")] = None,
    end: Annotated[Instant | None, Query(alias="to", description="Starting before (with offset)")] = None,
    competency: Annotated[str | None, Query(max_length=100)] = None,
    program_id: UUID | None = None,
) -> dict[str, object]:
    q = uc.ListSessions(principal, page, start, end, competency, str(program_id) if program_id else None)
    async with db.reader() as uow:
        views, nxt = await uc.list_sessions(uow, q)
    return {"items": [session_out(v) for v in views], "next": nxt}


@router.get("/sessions/{session_id}", response_model=SessionOut)
async def get_session(session_id: UUID, db: DB, principal: CurrentPrincipal) -> SessionOut:
    async with db.reader() as uow:
        return session_out(await uc.get_session_view(uow, uc.GetSession(principal, str(session_id))))


@router.patch("/sessions/{session_id}", response_model=SessionOut,
              summary="Move or edit one session (hub team); it is detached from the recurrence")
async def update_session(session_id: UUID, body: SessionPatch, db: DB, principal: CurrentPrincipal) -> SessionOut:
    changes = body.model_dump(exclude_unset=True)
    changes.update({k: v for k, v in body.model_dump(mode="json", exclude_unset=True).items()
                    if k in ("materials", "meeting_url")})
    async with db.unit_of_work() as uow:
        s = await uc.update_session(uow, uc.UpdateSession(principal, str(session_id), changes))
        view = (await uc.session_views(uow, principal, [s]))[0]
    return session_out(view)


@router.post("/sessions/{session_id}/cancel", response_model=SessionOut,
             summary="Cancel one session (hub team): its registrations are cancelled")
async def cancel_session(session_id: UUID, body: CancelIn, db: DB, principal: CurrentPrincipal) -> SessionOut:
    async with db.unit_of_work() as uow:
        s = await uc.cancel_session(uow, uc.CancelSession(principal, str(session_id), body.reason))
        view = (await uc.session_views(uow, principal, [s]))[0]
    return session_out(view)
