"""Community REST: registration, the waiting list and offers. Routes parse, call one use case, shape the answer."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Body, Query, Response

from services.community.schemas.registration import RegisterIn, RegistrationList, RegistrationOut, RegistrationPage
from services.community.usecases import registration as uc
from trellis.auth import CurrentPrincipal
from trellis.deps import DB, Page
from trellis.pagination import page_of

router = APIRouter(prefix="/v1", tags=["community"])


def registration_out(s: uc.Seat) -> RegistrationOut:
    out = RegistrationOut.model_validate(s.row, from_attributes=True)
    out.waitlist_position, out.display_name = s.waitlist_position, s.display_name
    return out


def _person(body: RegisterIn | None) -> str | None:
    return str(body.person_id) if body is not None and body.person_id is not None else None


@router.post("/sessions/{session_id}/registrations", status_code=201, response_model=RegistrationOut,
             summary="Register for a session: a seat if one is free, else a place on the waiting list")
async def register(session_id: UUID, db: DB, principal: CurrentPrincipal, response: Response,
                   body: Annotated[RegisterIn | None, Body()] = None) -> RegistrationOut:
    async with db.unit_of_work() as uow:
        s = await uc.register(uow, uc.Register(principal, str(session_id), _person(body)))
    response.headers["Location"] = f"/v1/registrations/{s.row.id}"
    return registration_out(s)


@router.post("/programs/{program_id}/registrations", status_code=201, response_model=RegistrationList,
             summary="Register for a program's series: every future session, and sessions added later, "
                     "until cancelled")
async def register_series(program_id: UUID, db: DB, principal: CurrentPrincipal,
                          body: Annotated[RegisterIn | None, Body()] = None) -> dict[str, object]:
    async with db.unit_of_work() as uow:
        seats = await uc.register_series(uow, uc.RegisterSeries(principal, str(program_id), _person(body)))
    return {"items": [registration_out(s) for s in seats]}


@router.post("/programs/{program_id}/registrations/cancel", response_model=RegistrationList,
             summary="Cancel a series registration (body person_id, default the caller): no more automatic seats, "
                     "and the person's future registrations of the program are cancelled (returned)")
async def cancel_series(program_id: UUID, db: DB, principal: CurrentPrincipal,
                        body: Annotated[RegisterIn | None, Body()] = None) -> dict[str, object]:
    async with db.unit_of_work() as uow:
        seats = await uc.cancel_series(uow, uc.RegisterSeries(principal, str(program_id), _person(body)))
    return {"items": [registration_out(s) for s in seats]}


@router.get("/sessions/{session_id}/registrations", response_model=RegistrationPage,
            summary="A session's registrations by position (hub team)")
async def list_for_session(
    session_id: UUID, db: DB, principal: CurrentPrincipal, page: Page,
    status: Literal["confirmed", "waiting", "offered", "cancelled"] | None = None,
) -> dict[str, object]:
    async with db.reader() as uow:
        seats, nxt = await uc.list_for_session(uow, uc.ListForSession(principal, str(session_id), page, status))
    return {"items": [registration_out(s) for s in seats], "next": nxt}


@router.get("/registrations", response_model=RegistrationPage, summary="A person's registrations (default: mine)")
async def list_for_person(db: DB, principal: CurrentPrincipal, page: Page,
                          person_id: Annotated[UUID | None, Query()] = None) -> dict[str, object]:
    async with db.reader() as uow:
        seats = await uc.list_for_person(
            uow, uc.ListForPerson(principal, page, str(person_id) if person_id else None))
    return page_of(seats, page, registration_out, lambda s: s.row.id)


@router.get("/registrations/{registration_id}", response_model=RegistrationOut)
async def get_registration(registration_id: UUID, db: DB, principal: CurrentPrincipal) -> RegistrationOut:
    async with db.reader() as uow:
        return registration_out(await uc.get(uow, uc.Act(principal, str(registration_id))))


@router.post("/registrations/{registration_id}/cancel", response_model=RegistrationOut,
             summary="Cancel a registration; a freed seat is offered to the first person waiting")
async def cancel(registration_id: UUID, db: DB, principal: CurrentPrincipal) -> RegistrationOut:
    async with db.unit_of_work() as uow:
        return registration_out(await uc.cancel(uow, uc.Act(principal, str(registration_id))))


@router.post("/registrations/{registration_id}/accept", response_model=RegistrationOut,
             summary="Accept the seat offered from the waiting list, before the offer expires")
async def accept(registration_id: UUID, db: DB, principal: CurrentPrincipal) -> RegistrationOut:
    async with db.unit_of_work() as uow:
        return registration_out(await uc.accept(uow, uc.Act(principal, str(registration_id))))


@router.post("/registrations/{registration_id}/decline", response_model=RegistrationOut,
             summary="Decline an offered seat; it passes to the next person waiting")
async def decline(registration_id: UUID, db: DB, principal: CurrentPrincipal) -> RegistrationOut:
    async with db.unit_of_work() as uow:
        return registration_out(await uc.decline(uow, uc.Act(principal, str(registration_id))))
