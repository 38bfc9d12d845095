"""Fidelity REST API (thin: validate, call the domain, write in one transaction)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy import select
from uuid6 import uuid7

from contracts.fidelity import ObservationRecorded
from services.fidelity import domain
from services.fidelity.models import ROSTER, InstrumentRow, Observation
from services.fidelity.schemas import InstrumentOut, InstrumentPage, ObservationIn, ObservationOut, ObservationPage
from trellis.auth import CurrentPrincipal, Principal, require_roles
from trellis.db import Database, utcnow
from trellis.envelope import Envelope
from trellis.outbox import add_event
from trellis.pagination import PageParams, page_of, paged
from trellis.problems import Problem, field_error

router = APIRouter(prefix="/v1", tags=["fidelity"])
SOURCE = "trellis/fidelity"
READERS = ("observer", "coach", "supervisor", "agency_admin", "platform_admin", "practitioner")


def db_of(request: Request) -> Database:
    return request.app.state.db  # type: ignore[no-any-return]


DB = Annotated[Database, Depends(db_of)]


def instrument_out(row: InstrumentRow) -> InstrumentOut:
    inst = row.to_domain()
    return InstrumentOut(
        id=row.id, name=row.name, version=row.version, status=row.status, pass_threshold=row.pass_threshold,
        competencies=inst.competencies, items=[i.__dict__ for i in inst.items],  # type: ignore[misc]
    )


def observation_out(o: Observation) -> ObservationOut:
    return ObservationOut(
        id=o.id, agency_id=o.agency_id, practitioner_id=o.practitioner_id, observer_id=o.observer_id,
        instrument_id=o.instrument_id, instrument_version=o.instrument_version, observed_on=o.observed_on,
        setting=o.setting, notes=o.notes, scores=o.item_scores, score=o.total_score,
        competency_scores=o.competency_scores, passed=o.passed, created_at=o.created_at,
    )


@router.get("/instruments", response_model=InstrumentPage, summary="Instruments with their items")
async def list_instruments(db: DB, _: CurrentPrincipal, page: Annotated[PageParams, Depends()]) -> dict[str, object]:
    async with db.reader() as s:
        rows = list((await s.scalars(paged(select(InstrumentRow), InstrumentRow.id, page))).all())
    return page_of(rows, page, instrument_out, lambda r: r.id)


@router.get("/instruments/{instrument_id}", response_model=InstrumentOut)
async def get_instrument(instrument_id: UUID, db: DB, _: CurrentPrincipal) -> InstrumentOut:
    async with db.reader() as s:
        row = await s.get(InstrumentRow, str(instrument_id))
    if row is None:
        raise Problem(404, f"No instrument {instrument_id}.")
    return instrument_out(row)


@router.post("/observations", status_code=201, response_model=ObservationOut,
             summary="Record a scored observation of practice (observers only)")
async def record_observation(
    body: ObservationIn, db: DB, response: Response,
    principal: Annotated[Principal, require_roles("observer")],
) -> ObservationOut:
    errors = []
    if body.observed_on > date.today() + timedelta(days=1):  # one day of slack for time zones
        errors.append(field_error("body.observed_on", "an observation cannot be dated in the future"))
    if str(body.practitioner_id) == principal.sub:
        errors.append(field_error("body.practitioner_id", "an observer cannot observe themself"))
    async with db.unit_of_work(agency=principal.agency) as s:
        errors += await ROSTER.check_active(s, principal.agency, str(body.practitioner_id), "body.practitioner_id",
                                            what="practitioner")
        row = await s.get(InstrumentRow, str(body.instrument_id))
        if row is None:
            errors.append(field_error("body.instrument_id", f"no instrument {body.instrument_id}"))
        elif row.status != "active":
            errors.append(field_error("body.instrument_id", f"instrument is {row.status}, not active"))
        else:
            instrument = row.to_domain()
            bad = domain.validate_scores(instrument, body.scores)
            errors += [field_error(f"body.{e.field}", e.message) for e in bad]
        if errors:
            raise Problem(422, f"The observation has {len(errors)} problem(s); nothing was recorded.",
                          slug="validation-error", errors=errors)
        scored = domain.score(instrument, body.scores)
        obs = Observation(
            id=str(uuid7()), agency_id=principal.agency, practitioner_id=str(body.practitioner_id),
            observer_id=principal.sub, instrument_id=instrument.id, instrument_version=instrument.version,
            observed_on=body.observed_on, setting=body.setting, notes=body.notes, item_scores=dict(body.scores),
            total_score=scored.total, competency_scores=scored.competencies, passed=scored.passed,
            created_at=utcnow(),
        )
        s.add(obs)
        event = ObservationRecorded(
            observation_id=obs.id, practitioner_id=obs.practitioner_id, observer_id=obs.observer_id,
            instrument_id=obs.instrument_id, instrument_version=obs.instrument_version,
            observed_on=obs.observed_on, setting=obs.setting, total_score=obs.total_score,
            competency_scores=obs.competency_scores, passed=obs.passed,
        )
        await add_event(s, Envelope.wrap(event, source=SOURCE, subject=obs.id, agency=principal.agency))
    response.headers["Location"] = f"/v1/observations/{obs.id}"
    return observation_out(obs)


@router.get("/observations", response_model=ObservationPage, summary="Observations in the caller's agency")
async def list_observations(
    db: DB, principal: Annotated[Principal, require_roles(*READERS)], page: Annotated[PageParams, Depends()],
    practitioner_id: Annotated[list[UUID] | None, Query(description="Repeat to ask for several")] = None,
) -> dict[str, object]:
    stmt = select(Observation)
    wanted = [str(p) for p in practitioner_id or []]
    if not principal.has(*(r for r in READERS if r != "practitioner")):
        # A practitioner sees only their own observations.
        if any(p != principal.sub for p in wanted):
            raise Problem(403, "Practitioners can only see their own observations.", slug="not-your-record")
        wanted = [principal.sub]
    if wanted:
        stmt = stmt.where(Observation.practitioner_id.in_(wanted))
    async with db.reader(agency=principal.agency) as s:
        rows = list((await s.scalars(paged(stmt, Observation.id, page))).all())
    return page_of(rows, page, observation_out, lambda r: r.id)


@router.get("/observations/{observation_id}", response_model=ObservationOut)
async def get_observation(
    observation_id: UUID, db: DB, principal: Annotated[Principal, require_roles(*READERS)]
) -> ObservationOut:
    async with db.reader(agency=principal.agency) as s:
        obs = (await s.scalars(select(Observation).where(Observation.id == str(observation_id)))).one_or_none()
    if obs is None or (principal.roles == {"practitioner"} and obs.practitioner_id != principal.sub):
        raise Problem(404, f"No observation {observation_id} in your agency.")
    return observation_out(obs)
