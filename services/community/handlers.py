"""Community event handlers: adapt events to use cases (idempotent via the kernel's inbox)."""

from __future__ import annotations

from contracts.fidelity import ObservationRecorded
from contracts.readiness import AgencyRegistered, StaffMemberJoined, StaffMemberLeft
from services.community.models import ROSTER
from services.community.usecases import directory
from services.community.usecases import registration as registration_uc
from trellis.bus import Batch, Handlers
from trellis.db import UnitOfWork
from trellis.envelope import Envelope

handlers = Handlers()
ROSTER.register(handlers)


@handlers.on_batch(StaffMemberJoined, "remember-names")
async def remember_names(uow: UnitOfWork, events: Batch[StaffMemberJoined]) -> None:
    await directory.remember_people(uow, events)


@handlers.on(AgencyRegistered, "remember-agency")
async def remember_agency(env: Envelope, event: AgencyRegistered, uow: UnitOfWork) -> None:
    await directory.remember_agency(uow, env, event)


@handlers.on_batch(ObservationRecorded, "remember-competencies")
async def remember_competencies(uow: UnitOfWork, events: Batch[ObservationRecorded]) -> None:
    await directory.remember_competencies(uow, events)


@handlers.on(StaffMemberLeft, "release-leavers-seats")
async def release_leavers_seats(env: Envelope, event: StaffMemberLeft, uow: UnitOfWork) -> None:
    await registration_uc.release_seats_of_leaver(uow, env.agency, event.staff_id)
