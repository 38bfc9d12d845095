"""The community's copies of other services' facts: people's names, agencies' names, competencies."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select

from contracts.fidelity import ObservationRecorded
from contracts.readiness import AgencyRegistered, StaffMemberJoined
from services.community.models import Agency, Competency, Person
from trellis.db import UnitOfWork, utcnow
from trellis.envelope import Envelope


async def remember_people(uow: UnitOfWork, events: Iterable[tuple[Envelope, StaffMemberJoined]]) -> None:
    for env, joined in events:
        person = await uow.get(Person, joined.staff_id)
        if person is None:
            uow.add(Person(person_id=joined.staff_id, agency_id=env.agency, display_name=joined.display_name,
                           updated_at=utcnow()))
        else:
            person.agency_id, person.display_name, person.updated_at = env.agency, joined.display_name, utcnow()
        await uow.flush()


async def remember_agency(uow: UnitOfWork, env: Envelope, registered: AgencyRegistered) -> None:
    agency = await uow.get(Agency, env.agency)
    if agency is None:
        uow.add(Agency(agency_id=env.agency, name=registered.agency_name, updated_at=utcnow()))
    else:
        agency.name, agency.updated_at = registered.agency_name, utcnow()


async def remember_competencies(uow: UnitOfWork, events: Iterable[tuple[Envelope, ObservationRecorded]]) -> None:
    seen = {name for _, obs in events for name in obs.competency_scores}
    if not seen:
        return
    known = set((await uow.scalars(select(Competency.name).where(Competency.name.in_(seen)))).all())
    for name in sorted(seen - known):
        uow.add(Competency(name=name, first_seen_at=utcnow()))


async def known_competencies(uow: UnitOfWork) -> list[str]:
    return list((await uow.scalars(select(Competency.name).order_by(Competency.name))).all())


async def display_names(uow: UnitOfWork, person_ids: Iterable[str]) -> dict[str, str]:
    """The known display names of these people in one query; people never named (no StaffMemberJoined) are absent."""
    ids = sorted(set(person_ids))
    if not ids:
        return {}
    rows = (await uow.execute(select(Person.person_id, Person.display_name).where(Person.person_id.in_(ids)))).all()
    return {pid: name for pid, name in rows}


async def names_known(uow: UnitOfWork) -> tuple[list[str], list[str]]:
    """(people's display names, agencies' names): what the privacy screening checks free text against."""
    people = list((await uow.scalars(select(Person.display_name))).all())
    agencies = list((await uow.scalars(select(Agency.name))).all())
    return people, agencies
