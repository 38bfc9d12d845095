"""Fidelity REST API (thin: check access, call the domain, write in one transaction)."""

from __future__ import annotations

import math
from dataclasses import asdict
from datetime import date, timedelta
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from uuid6 import uuid7

from contracts.fidelity import ObservationAmended, ObservationRecorded
from services.fidelity import domain, workflows
from services.fidelity.models import (
    ROSTER,
    Amendment,
    Calibration,
    CalibrationReference,
    Certification,
    DriftPoint,
    DriftSeries,
    InstrumentRow,
    Observation,
    PolicyRow,
    TimelineEntry,
)
from services.fidelity.schemas import (
    AmendmentIn,
    AmendmentOut,
    CalibrationIn,
    CalibrationOut,
    CalibrationPage,
    CertificationOut,
    CertificationPage,
    DriftMetricOut,
    DriftOut,
    InstrumentIn,
    InstrumentOut,
    InstrumentPage,
    InstrumentPatch,
    ItemIn,
    ObservationIn,
    ObservationOut,
    ObservationPage,
    PeopleSeriesPage,
    PeopleSeriesPointOut,
    PersonCertificationOut,
    PolicyIO,
    RaterStatusOut,
    ReferenceIn,
    ReferenceOut,
    ReferencePage,
    RevokeIn,
    SeriesOut,
    SeriesPointOut,
    SummaryOut,
    TimelineOut,
    Track,
)
from trellis.auth import CurrentPrincipal, Principal, require_roles
from trellis.db import Database, add_event, utcnow
from trellis.envelope import Envelope
from trellis.pagination import PageParams, page_of, paged
from trellis.problems import Problem, field_error

router = APIRouter(prefix="/v1", tags=["fidelity"])
SOURCE = workflows.SOURCE
READERS = ("observer", "coach", "supervisor", "agency_admin", "platform_admin", "practitioner")
STAFF_READERS = tuple(r for r in READERS if r != "practitioner")
ADMINS = ("agency_admin", "platform_admin")
MAX_SEQ = 2**31 - 1  # drift_points.seq is INTEGER (int4 on PostgreSQL)
MAX_ROW_ID = 2**63 - 1  # drift_points.id is BIGINT


def db_of(request: Request) -> Database:
    return request.app.state.db  # type: ignore[no-any-return]


DB = Annotated[Database, Depends(db_of)]
Reader = Annotated[Principal, require_roles(*READERS)]
Admin = Annotated[Principal, require_roles(*ADMINS)]
PlatformAdmin = Annotated[Principal, require_roles("platform_admin")]
Page = Annotated[PageParams, Depends()]


def invalid(errors: list[dict[str, Any]], what: str = "The request") -> Problem:
    return Problem(422, f"{what} has {len(errors)} problem(s); nothing was changed.", slug="validation-error",
                   errors=errors)


def scoped(agency_id: UUID, principal: Principal) -> str:
    agency = str(agency_id)
    if agency != principal.agency and not principal.has("platform_admin"):
        raise Problem(403, "You can only see your own agency.", slug="other-agency")
    return agency


def about(person: UUID, principal: Principal) -> str:
    """Staff may read anyone in their agency; a practitioner only themself."""
    if not principal.has(*STAFF_READERS) and str(person) != principal.sub:
        raise Problem(403, "Practitioners can only see their own records.", slug="not-your-record")
    return str(person)


# ---- instruments ---------------------------------------------------------------------------------


def instrument_out(row: InstrumentRow) -> InstrumentOut:
    inst = row.to_domain()
    return InstrumentOut(
        id=row.id, family=row.family, kind=row.kind, track=inst.track, name=row.name, description=row.description,
        version=row.version, status=row.status, pass_threshold=row.pass_threshold, competencies=inst.competencies,
        items=[asdict(i) for i in inst.items], created_at=row.created_at,  # type: ignore[misc]
        activated_at=row.activated_at, retired_at=row.retired_at,
    )


def to_items(items: list[ItemIn]) -> list[domain.Item]:
    return [domain.Item(**i.model_dump()) for i in items]


def check_definition(name: str, threshold: float, items: list[domain.Item]) -> None:
    if errors := domain.instrument_problems(name, threshold, items):
        raise invalid([field_error(f"body.{e.field}", e.message) for e in errors], "The instrument")


async def load_instrument(s: AsyncSession, instrument_id: UUID, *, lock: bool = False) -> InstrumentRow:
    stmt = select(InstrumentRow).where(InstrumentRow.id == str(instrument_id))
    row = (await s.scalars(stmt.with_for_update() if lock else stmt)).one_or_none()
    if row is None:
        raise Problem(404, f"No instrument {instrument_id}.")
    return row


def published_only(principal: Principal) -> bool:
    """Drafts are work in progress of the platform admins, who curate instruments; nobody else sees them."""
    return not principal.has("platform_admin")


@router.get("/instruments", response_model=InstrumentPage,
            summary="Instrument versions with their items (drafts: platform admins only)")
async def list_instruments(
    db: DB, principal: CurrentPrincipal, page: Page,
    status: Annotated[domain.InstrumentStatus | None, Query()] = None,
    family: Annotated[str | None, Query(max_length=64)] = None,
    kind: Annotated[str | None, Query(max_length=32)] = None,
) -> dict[str, object]:
    stmt = select(InstrumentRow)
    if published_only(principal):
        stmt = stmt.where(InstrumentRow.status != domain.InstrumentStatus.DRAFT.value)
    if status is not None:
        stmt = stmt.where(InstrumentRow.status == status.value)
    if family is not None:
        stmt = stmt.where(InstrumentRow.family == family)
    if kind is not None:
        stmt = stmt.where(InstrumentRow.kind == kind)
    async with db.reader() as s:
        rows = list((await s.scalars(paged(stmt, InstrumentRow.id, page))).all())
    return page_of(rows, page, instrument_out, lambda r: r.id)


@router.get("/instruments/{instrument_id}", response_model=InstrumentOut)
async def get_instrument(instrument_id: UUID, db: DB, principal: CurrentPrincipal) -> InstrumentOut:
    async with db.reader() as s:
        row = await load_instrument(s, instrument_id)
    if published_only(principal) and row.status == domain.InstrumentStatus.DRAFT:
        raise Problem(404, f"No instrument {instrument_id}.")  # the same answer as for no instrument at all
    return instrument_out(row)


@router.post("/instruments", status_code=201, response_model=InstrumentOut,
             summary="Start a new instrument: version 1, as a draft (platform admins)")
async def create_instrument(body: InstrumentIn, db: DB, response: Response, principal: PlatformAdmin) -> InstrumentOut:
    items = to_items(body.items)
    check_definition(body.name, body.pass_threshold, items)
    async with db.unit_of_work() as s:
        if (await s.scalars(select(InstrumentRow.id).where(InstrumentRow.family == body.family))).first():
            raise Problem(409, f"Instrument family '{body.family}' exists; start a new version of it instead.",
                          slug="family-exists")
        row = InstrumentRow(id=str(uuid7()), family=body.family, kind=body.kind, name=body.name,
                            description=body.description, version=1, status=domain.InstrumentStatus.DRAFT,
                            pass_threshold=body.pass_threshold, items=[asdict(i) for i in items],
                            created_at=utcnow(), created_by=principal.sub)
        s.add(row)
    response.headers["Location"] = f"/v1/instruments/{row.id}"
    return instrument_out(row)


@router.post("/instruments/{instrument_id}/versions", status_code=201, response_model=InstrumentOut,
             summary="Start the next version of an instrument as a draft, copied from this one")
async def new_version(instrument_id: UUID, db: DB, response: Response, principal: PlatformAdmin) -> InstrumentOut:
    async with db.unit_of_work() as s:
        base = await load_instrument(s, instrument_id)
        family = list((await s.scalars(select(InstrumentRow).where(InstrumentRow.family == base.family)
                                       .with_for_update())).all())
        if draft := next((r for r in family if r.status == domain.InstrumentStatus.DRAFT), None):
            raise Problem(409, f"Version {draft.version} of '{base.family}' is already a draft ({draft.id}); "
                               "edit that one.", slug="draft-exists")
        row = InstrumentRow(id=str(uuid7()), family=base.family, kind=base.kind, name=base.name,
                            description=base.description, version=max(r.version for r in family) + 1,
                            status=domain.InstrumentStatus.DRAFT, pass_threshold=base.pass_threshold,
                            items=list(base.items), created_at=utcnow(), created_by=principal.sub)
        s.add(row)
    response.headers["Location"] = f"/v1/instruments/{row.id}"
    return instrument_out(row)


@router.patch("/instruments/{instrument_id}", response_model=InstrumentOut,
              summary="Edit a draft; active and retired versions never change")
async def edit_instrument(instrument_id: UUID, body: InstrumentPatch, db: DB, _: PlatformAdmin) -> InstrumentOut:
    async with db.unit_of_work() as s:
        row = await load_instrument(s, instrument_id, lock=True)
        if row.status != domain.InstrumentStatus.DRAFT:
            raise Problem(409, f"Version {row.version} of '{row.family}' is {row.status} and never changes; "
                               f"start a new version (POST /v1/instruments/{row.id}/versions).",
                          slug="instrument-immutable")
        items = to_items(body.items) if body.items is not None else list(row.to_domain().items)
        name = body.name if body.name is not None else row.name
        threshold = body.pass_threshold if body.pass_threshold is not None else row.pass_threshold
        check_definition(name, threshold, items)
        row.name, row.pass_threshold, row.items = name, threshold, [asdict(i) for i in items]
        if body.description is not None:
            row.description = body.description
        return instrument_out(row)


@router.post("/instruments/{instrument_id}/activate", response_model=InstrumentOut,
             summary="Publish a draft; the family's previously active version is retired")
async def activate_instrument(instrument_id: UUID, db: DB, _: PlatformAdmin) -> InstrumentOut:
    async with db.unit_of_work() as s:
        row = await load_instrument(s, instrument_id, lock=True)
        if row.status != domain.InstrumentStatus.DRAFT:
            raise Problem(409, f"Only a draft can be activated; this version is {row.status}.", slug="not-a-draft")
        check_definition(row.name, row.pass_threshold, list(row.to_domain().items))
        now = utcnow()
        for old in await s.scalars(select(InstrumentRow).where(
                InstrumentRow.family == row.family, InstrumentRow.status == domain.InstrumentStatus.ACTIVE)):
            old.status, old.retired_at = domain.InstrumentStatus.RETIRED, now
        row.status, row.activated_at = domain.InstrumentStatus.ACTIVE, now
        return instrument_out(row)


@router.post("/instruments/{instrument_id}/retire", response_model=InstrumentOut,
             summary="Retire an active version: no new observations on it; old ones keep their scores")
async def retire_instrument(instrument_id: UUID, db: DB, _: PlatformAdmin) -> InstrumentOut:
    async with db.unit_of_work() as s:
        row = await load_instrument(s, instrument_id, lock=True)
        if row.status != domain.InstrumentStatus.ACTIVE:
            raise Problem(409, f"Only an active version can be retired; this one is {row.status}.",
                          slug="not-active")
        row.status, row.retired_at = domain.InstrumentStatus.RETIRED, utcnow()
        return instrument_out(row)


# ---- observations --------------------------------------------------------------------------------


def observation_out(o: Observation) -> ObservationOut:
    return ObservationOut(
        id=o.id, agency_id=o.agency_id, practitioner_id=o.practitioner_id, observer_id=o.observer_id,
        instrument_id=o.instrument_id, instrument_version=o.instrument_version, observed_on=o.observed_on,
        setting=o.setting, kind=o.kind, instrument_family=o.instrument_family, notes=o.notes, scores=o.item_scores,
        score=o.total_score, competency_scores=o.competency_scores, passed=o.passed, created_at=o.created_at,
        amendments=o.amendments, amendable_until=recorded_on(o) + timedelta(days=domain.AMEND_DAYS),
    )


def recorded_on(o: Observation) -> date:
    return o.recorded_on or o.created_at.date()


def score_errors(instrument: domain.Instrument, scores: dict[str, int]) -> list[dict[str, Any]]:
    return [field_error(f"body.{e.field}", e.message) for e in domain.validate_scores(instrument, scores)]


async def refuse_uncalibrated(s: AsyncSession, principal: Principal, family: str, policy: domain.Policy,
                              today: date) -> list[dict[str, Any]]:
    status = await workflows.rater_status(s, principal.sub, family, policy, today)
    if status.calibrated:
        return []
    return [field_error("observer", f"you are not a calibrated rater for '{family}': {status.reason}",
                        code="rater-not-calibrated")]


@router.post("/observations", status_code=201, response_model=ObservationOut,
             summary="Record a scored observation of practice (calibrated observers only)")
async def record_observation(
    body: ObservationIn, db: DB, response: Response,
    principal: Annotated[Principal, require_roles("observer")],
) -> ObservationOut:
    today = db.clock()
    errors = []
    if body.observed_on > today + timedelta(days=1):  # one day of slack for time zones
        errors.append(field_error("body.observed_on", "an observation cannot be dated in the future"))
    if str(body.practitioner_id) == principal.sub:
        errors.append(field_error("body.practitioner_id", "an observer cannot observe themself"))
    person = str(body.practitioner_id)
    async with db.unit_of_work(agency=principal.agency) as s:
        errors += await ROSTER.check_active(s, principal.agency, person, "body.practitioner_id", what="practitioner")
        row = await s.get(InstrumentRow, str(body.instrument_id))
        instrument = None
        if row is None:
            errors.append(field_error("body.instrument_id", f"no instrument {body.instrument_id}"))
        elif row.status != domain.InstrumentStatus.ACTIVE:
            errors.append(field_error("body.instrument_id", f"instrument is {row.status}, not active"))
        else:
            instrument = row.to_domain()
            if not domain.kind_fits(instrument.kind, body.kind):
                errors.append(field_error("body.kind", f"a {body.kind.replace('_', ' ')} cannot be scored on a "
                                                       f"{instrument.kind.replace('_', ' ')} instrument"))
            errors += score_errors(instrument, body.scores)
            errors += await refuse_uncalibrated(s, principal, instrument.family, await workflows.policy_of(s), today)
        if errors:
            raise Problem(422, f"The observation has {len(errors)} problem(s); nothing was recorded.",
                          slug="validation-error", errors=errors)
        assert instrument is not None
        await workflows.lock_person(s, principal.agency, person)
        scored = domain.score(instrument, body.scores)
        obs = Observation(
            id=str(uuid7()), agency_id=principal.agency, practitioner_id=person, observer_id=principal.sub,
            instrument_id=instrument.id, instrument_version=instrument.version, instrument_family=instrument.family,
            kind=body.kind, observed_on=body.observed_on, setting=body.setting, notes=body.notes,
            item_scores=dict(body.scores), total_score=scored.total, competency_scores=scored.competencies,
            passed=scored.passed, amendments=0, recorded_on=today, created_at=utcnow(),
        )
        s.add(obs)
        await add_event(s, Envelope.wrap(ObservationRecorded(
            observation_id=obs.id, practitioner_id=obs.practitioner_id, observer_id=obs.observer_id,
            instrument_id=obs.instrument_id, instrument_version=obs.instrument_version, observed_on=obs.observed_on,
            setting=obs.setting, kind=obs.kind, instrument_family=obs.instrument_family, total_score=obs.total_score,
            competency_scores=obs.competency_scores, passed=obs.passed,
        ), source=SOURCE, subject=obs.id, agency=principal.agency))
        await s.flush()
        await workflows.consequences(s, obs, instrument, today)
    response.headers["Location"] = f"/v1/observations/{obs.id}"
    return observation_out(obs)


@router.get("/observations", response_model=ObservationPage, summary="Observations in the caller's agency")
async def list_observations(
    db: DB, principal: Reader, page: Page,
    practitioner_id: Annotated[list[UUID] | None, Query(description="Repeat to ask for several")] = None,
) -> dict[str, object]:
    stmt = select(Observation)
    wanted = [str(p) for p in practitioner_id or []]
    if not principal.has(*STAFF_READERS):
        # A practitioner sees only their own observations.
        if any(p != principal.sub for p in wanted):
            raise Problem(403, "Practitioners can only see their own observations.", slug="not-your-record")
        wanted = [principal.sub]
    if wanted:
        stmt = stmt.where(Observation.practitioner_id.in_(wanted))
    async with db.reader(agency=principal.agency) as s:
        rows = list((await s.scalars(paged(stmt, Observation.id, page))).all())
    return page_of(rows, page, observation_out, lambda r: r.id)


async def load_observation(s: AsyncSession, observation_id: UUID, principal: Principal,
                           *, lock: bool = False) -> Observation:
    stmt = select(Observation).where(Observation.id == str(observation_id))
    obs = (await s.scalars(stmt.with_for_update() if lock else stmt)).one_or_none()
    if obs is None or (not principal.has(*STAFF_READERS) and obs.practitioner_id != principal.sub):
        raise Problem(404, f"No observation {observation_id} in your agency.")
    return obs


@router.get("/observations/{observation_id}", response_model=ObservationOut)
async def get_observation(observation_id: UUID, db: DB, principal: Reader) -> ObservationOut:
    async with db.reader(agency=principal.agency) as s:
        return observation_out(await load_observation(s, observation_id, principal))


@router.get("/observations/{observation_id}/amendments", response_model=list[AmendmentOut],
            summary="The observation's amendments, oldest first")
async def list_amendments(observation_id: UUID, db: DB, principal: Reader) -> list[AmendmentOut]:
    async with db.reader(agency=principal.agency) as s:
        await load_observation(s, observation_id, principal)
        rows = await s.scalars(select(Amendment).where(Amendment.observation_id == str(observation_id))
                               .order_by(Amendment.number))
        return [AmendmentOut.model_validate(r, from_attributes=True) for r in rows]


@router.post("/observations/{observation_id}/amendments", status_code=201, response_model=ObservationOut,
             summary="Correct an observation's scores: its observer only, within 7 days; the old scores are kept")
async def amend_observation(
    observation_id: UUID, body: AmendmentIn, db: DB, principal: Annotated[Principal, require_roles("observer")],
) -> ObservationOut:
    today = db.clock()
    async with db.unit_of_work(agency=principal.agency) as s:
        obs = await load_observation(s, observation_id, principal, lock=True)
        if obs.observer_id != principal.sub:
            raise Problem(403, "Only the observer who recorded an observation can amend it.", slug="not-your-record")
        if not domain.amendable(recorded_on(obs), today):
            raise Problem(409, f"Observations can be amended for {domain.AMEND_DAYS} days; this one was recorded on "
                               f"{recorded_on(obs)} and is final.", slug="observation-final")
        # Scored against the version it was recorded with, even if that version has since been retired.
        instrument = (await load_instrument(s, UUID(obs.instrument_id))).to_domain()
        if errors := score_errors(instrument, body.scores):
            raise invalid(errors, "The amendment")
        await workflows.lock_person(s, principal.agency, obs.practitioner_id)
        scored = domain.score(instrument, body.scores)
        obs.amendments += 1
        new_pass = scored.passed and not obs.passed
        s.add(Amendment(id=str(uuid7()), agency_id=obs.agency_id, observation_id=obs.id, number=obs.amendments,
                        amended_by=principal.sub, reason=body.reason, previous_scores=obs.item_scores,
                        previous_total=obs.total_score, previous_passed=obs.passed, scores=dict(body.scores),
                        total_score=scored.total, passed=scored.passed, created_at=utcnow()))
        obs.item_scores, obs.total_score = dict(body.scores), scored.total
        obs.competency_scores, obs.passed = scored.competencies, scored.passed
        if body.notes is not None:
            obs.notes = body.notes
        await workflows.emit(s, ObservationAmended(
            observation_id=obs.id, practitioner_id=obs.practitioner_id, observer_id=obs.observer_id,
            instrument_id=obs.instrument_id, instrument_version=obs.instrument_version, amendment=obs.amendments,
            amended_on=today, total_score=obs.total_score, competency_scores=obs.competency_scores,
            passed=obs.passed), agency=obs.agency_id, subject=obs.id)
        await s.flush()
        await workflows.consequences(s, obs, instrument, today, amended=True, new_pass=new_pass)
        return observation_out(obs)


# ---- certification -------------------------------------------------------------------------------


def certification_out(c: Certification) -> CertificationOut:
    return CertificationOut.model_validate(c, from_attributes=True)


@router.get("/certification-policy", response_model=PolicyIO, summary="Your agency's certification policy")
async def get_policy(db: DB, principal: Reader) -> PolicyIO:
    async with db.reader(agency=principal.agency) as s:
        return PolicyIO(**asdict(await workflows.policy_of(s)))


@router.put("/certification-policy", response_model=PolicyIO,
            summary="Set your agency's certification policy (agency admins); omitted fields take the defaults")
async def put_policy(body: PolicyIO, db: DB, principal: Admin) -> PolicyIO:
    policy = domain.Policy(**body.model_dump())
    if problems := policy.problems():
        raise invalid([field_error(f"body.{f}", m) for f, m in problems], "The policy")
    async with db.unit_of_work(agency=principal.agency) as s:
        row = (await s.scalars(select(PolicyRow).with_for_update())).one_or_none()
        if row is None:
            row = PolicyRow(id=principal.agency, agency_id=principal.agency, settings={}, updated_by="",
                            updated_at=utcnow())
            s.add(row)
        row.settings, row.updated_by, row.updated_at = asdict(policy), principal.sub, utcnow()
    return body


@router.get("/certifications", response_model=CertificationPage, summary="Certifications in your agency")
async def list_certifications(
    db: DB, principal: Annotated[Principal, require_roles(*STAFF_READERS, "partner")], page: Page,
    status: Annotated[domain.CertStatus | None, Query()] = None,
    track: Annotated[Track | None, Query()] = None,
    person_id: Annotated[UUID | None, Query()] = None,
) -> dict[str, object]:
    stmt = select(Certification)
    if status is not None:
        stmt = stmt.where(Certification.status == status.value)
    if track is not None:
        stmt = stmt.where(Certification.track == track)
    if person_id is not None:
        stmt = stmt.where(Certification.person_id == str(person_id))
    async with db.reader(agency=principal.agency) as s:
        rows = list((await s.scalars(paged(stmt, Certification.id, page))).all())
    return page_of(rows, page, certification_out, lambda r: r.id)


@router.get("/people/{person_id}/certification", response_model=PersonCertificationOut,
            summary="A person's certification on a track: status, what is missing, and the whole timeline")
async def person_certification(
    person_id: UUID, db: DB, principal: Reader, track: Annotated[Track, Query()] = "practitioner",
) -> PersonCertificationOut:
    (one,) = await certifications_of(db, principal.agency, [about(person_id, principal)], track)
    return one


async def certifications_of(db: Database, agency: str, people: list[str], track: str) -> list[PersonCertificationOut]:
    """Each person's certification on `track`, in the order given (one query per table, not per person)."""
    today = db.clock()
    async with db.reader(agency=agency) as s:
        certs = list((await s.scalars(select(Certification).where(
            Certification.person_id.in_(people), Certification.track == track)
            .order_by(Certification.created_at))).all())
        steps = list((await s.scalars(select(TimelineEntry).where(
            TimelineEntry.person_id.in_(people), TimelineEntry.track == track)
            .order_by(TimelineEntry.created_at, TimelineEntry.revision))).all())
        policy = await workflows.policy_of(s)
        out = []
        for person in people:
            mine = [c for c in certs if c.person_id == person]
            live = next((c for c in mine if c.status in domain.LIVE), None)
            missing = [] if live else await workflows.certification_progress(s, person, track, policy, today)
            out.append(PersonCertificationOut(
                person_id=person, track=track,
                status=live.status if live else (mine[-1].status if mine else "not_certified"),
                current=certification_out(live) if live else None, missing=missing,
                timeline=[TimelineOut.model_validate(t, from_attributes=True) for t in steps
                          if t.person_id == person]))
    return out


@router.post("/certifications/{certification_id}/revoke", response_model=CertificationOut,
             summary="Revoke a certification, with a reason (agency or platform admins)")
async def revoke(certification_id: UUID, body: RevokeIn, db: DB, principal: Admin) -> CertificationOut:
    today = db.clock()
    async with db.unit_of_work(agency=principal.agency) as s:
        cert = (await s.scalars(select(Certification).where(Certification.id == str(certification_id))
                                .with_for_update())).one_or_none()
        if cert is None:
            raise Problem(404, f"No certification {certification_id} in your agency.")
        policy = await workflows.policy_of(s)
        await workflows.advance(s, cert, policy, today)  # it may have lapsed already
        t = domain.revocation(cert.to_domain(), today, body.reason)
        if t is None:
            raise Problem(409, f"The certification is {cert.status}; only a current one can be revoked.",
                          slug="not-current")
        await workflows.apply(s, cert, t, policy, actor=principal.sub)
        return certification_out(cert)


# ---- rater calibration ---------------------------------------------------------------------------


def reference_out(r: CalibrationReference, curator: bool = False) -> ReferenceOut:
    out = ReferenceOut.model_validate(r, from_attributes=True)
    # Raters must not see the master coding before they score; the platform admin curates it.
    return out if curator else out.model_copy(update={"scores": None})


def visible_references(principal: Principal) -> Any:
    return select(CalibrationReference).where(
        (CalibrationReference.agency_id.is_(None)) | (CalibrationReference.agency_id == principal.agency))


@router.get("/calibration-references", response_model=ReferencePage,
            summary="Reference observations to calibrate on (their scores are shown only after you score)")
async def list_references(db: DB, principal: Reader, page: Page) -> dict[str, object]:
    async with db.reader() as s:
        rows = list((await s.scalars(paged(visible_references(principal), CalibrationReference.id, page))).all())
    curator = principal.has("platform_admin")
    return page_of(rows, page, lambda r: reference_out(r, curator), lambda r: r.id)


@router.post("/calibration-references", status_code=201, response_model=ReferenceOut,
             summary="Add a master-coded reference: platform admins add shared ones, agency admins their own")
async def add_reference(body: ReferenceIn, db: DB, response: Response, principal: Admin) -> ReferenceOut:
    async with db.unit_of_work() as s:
        row = await s.get(InstrumentRow, str(body.instrument_id))
        if row is None or row.status != domain.InstrumentStatus.ACTIVE:
            raise invalid([field_error("body.instrument_id", "must be an active instrument")], "The reference")
        if errors := score_errors(row.to_domain(), body.scores):
            raise invalid(errors, "The reference")
        ref = CalibrationReference(
            id=str(uuid7()), agency_id=None if principal.has("platform_admin") else principal.agency,
            instrument_id=row.id, title=body.title, reference_rater=body.reference_rater, scores=dict(body.scores),
            created_by=principal.sub, created_at=utcnow())
        s.add(ref)
    response.headers["Location"] = f"/v1/calibration-references/{ref.id}"
    return reference_out(ref, curator=True)


def calibration_out(c: Calibration, reference: dict[str, int], policy: domain.Policy) -> CalibrationOut:
    return CalibrationOut(
        id=c.id, rater_id=c.rater_id, family=c.family, instrument_id=c.instrument_id, reference_id=c.reference_id,
        observation_id=c.observation_id, agreement=c.agreement, total_difference=c.total_difference,
        items_compared=c.items_compared, mismatched=c.mismatched, calibrated_on=c.calibrated_on,
        calibrated=c.agreement >= policy.calibration_agreement, reference_scores=reference)


async def refuse_replay(s: AsyncSession, principal: Principal, body: CalibrationIn, family: str,
                        cooldown_s: float) -> None:
    """One blind attempt per reference, and a pause between attempts.

    Each attempt reveals the reference's coding, so a second attempt on the same reference (or live
    observation) would only replay it: refused. The cooldown keeps a rater from cycling through references.
    """
    mine = select(Calibration).where(Calibration.rater_id == principal.sub)
    seen = (Calibration.reference_id == str(body.reference_id) if body.reference_id is not None
            else Calibration.observation_id == str(body.observation_id))
    if (await s.scalars(mine.where(seen).limit(1))).first() is not None:
        raise Problem(409, "You have already scored this reference and seen its coding, so it no longer counts "
                           "for you; calibrate on another one.", slug="reference-seen")
    latest = (await s.scalars(mine.where(Calibration.family == family)
                              .order_by(Calibration.created_at.desc()).limit(1))).first()
    if latest is not None and cooldown_s > 0:
        wait = cooldown_s - (utcnow() - latest.created_at).total_seconds()
        if wait > 0:
            retry = math.ceil(wait)
            raise Problem(429, f"Your last calibration on '{family}' was moments ago; try again in {retry} s.",
                          slug="calibration-cooldown", title="Too Many Requests",
                          headers={"Retry-After": str(retry)})


@router.post("/calibrations", status_code=201, response_model=CalibrationOut,
             summary="Calibrate: score a reference observation, or double-code a live one (observers). "
                     "One attempt per reference; the coding is shown once the attempt is recorded.",
             responses={429: {"description": "Too soon after your last attempt on this instrument family.",
                              "headers": {"Retry-After": {"description": "Seconds to wait",
                                                          "schema": {"type": "integer"}}}}})
async def calibrate(body: CalibrationIn, db: DB, request: Request, response: Response,
                    principal: Annotated[Principal, require_roles("observer")]) -> CalibrationOut:
    if (body.reference_id is None) == (body.observation_id is None):
        raise invalid([field_error("body", "give exactly one of reference_id and observation_id")])
    today = db.clock()
    async with db.unit_of_work(agency=principal.agency) as s:
        policy = await workflows.policy_of(s)
        if body.reference_id is not None:
            ref = (await s.scalars(visible_references(principal).where(
                CalibrationReference.id == str(body.reference_id)))).one_or_none()
            if ref is None:
                raise Problem(404, f"No calibration reference {body.reference_id}.")
            if ref.created_by == principal.sub or principal.has("platform_admin"):
                raise Problem(409, "You can read this reference's master coding, so scoring it cannot calibrate "
                                   "you.", slug="reference-seen")
            instrument_id, reference = ref.instrument_id, ref.scores
        else:
            live = await load_observation(s, UUID(str(body.observation_id)), principal)
            if principal.sub in (live.observer_id, live.practitioner_id):
                raise invalid([field_error("body.observation_id", "double-code someone else's observation of "
                                           "someone else")], "The calibration")
            # The live observation's scores are the reference only if its observer is a calibrated rater.
            status = await workflows.rater_status(s, live.observer_id, live.instrument_family, policy, today)
            if not status.calibrated:
                raise invalid([field_error("body.observation_id", f"its observer is not calibrated ({status.reason}), "
                                           "so it cannot serve as a reference", code="reference-not-calibrated")],
                              "The calibration")
            instrument_id, reference = live.instrument_id, live.item_scores
        instrument = (await load_instrument(s, UUID(instrument_id))).to_domain()
        if errors := score_errors(instrument, body.scores):
            raise invalid(errors, "The calibration")
        # Locked (a rostered rater's row): two attempts at once cannot both pass the checks below.
        await workflows.lock_person(s, principal.agency, principal.sub)
        await refuse_replay(s, principal, body, instrument.family, request.app.state.settings.calibration_cooldown_s)
        a = domain.agreement(instrument, body.scores, reference)
        row = Calibration(id=str(uuid7()), agency_id=principal.agency, rater_id=principal.sub,
                          family=instrument.family, instrument_id=instrument.id,
                          reference_id=str(body.reference_id) if body.reference_id else None,
                          observation_id=str(body.observation_id) if body.observation_id else None,
                          scores=dict(body.scores), agreement=a.exact_percent, total_difference=a.total_difference,
                          items_compared=a.items_compared, mismatched=a.mismatched, calibrated_on=today,
                          created_at=utcnow())
        s.add(row)
    response.headers["Location"] = f"/v1/calibrations/{row.id}"
    return calibration_out(row, reference, policy)


@router.get("/calibrations", response_model=CalibrationPage, summary="Calibration results in your agency")
async def list_calibrations(
    db: DB, principal: Annotated[Principal, require_roles(*STAFF_READERS)], page: Page,
    rater_id: Annotated[UUID | None, Query()] = None,
) -> dict[str, object]:
    stmt = select(Calibration)
    if rater_id is not None:
        stmt = stmt.where(Calibration.rater_id == str(rater_id))
    async with db.reader(agency=principal.agency) as s:
        policy = await workflows.policy_of(s)
        rows = list((await s.scalars(paged(stmt, Calibration.id, page))).all())
    return page_of(rows, page, lambda c: calibration_out(c, {}, policy), lambda r: r.id)


@router.get("/raters/{rater_id}/status", response_model=RaterStatusOut,
            summary="Whether a rater may record observations on an instrument family now, and why")
async def rater_status(
    rater_id: UUID, db: DB, principal: Annotated[Principal, require_roles(*STAFF_READERS)],
    family: Annotated[str, Query(max_length=64)] = "miiwrap-practice",
) -> RaterStatusOut:
    async with db.reader(agency=principal.agency) as s:
        st = await workflows.rater_status(s, str(rater_id), family, await workflows.policy_of(s), db.clock())
    return RaterStatusOut(rater_id=str(rater_id), family=family, calibrated=st.calibrated, reason=st.reason,
                          valid_until=st.valid_until)


# ---- drift and summaries -------------------------------------------------------------------------


@router.get("/people/{person_id}/drift", response_model=list[DriftOut],
            summary="Whether a person's practice is drifting, per instrument family and competency")
async def person_drift(person_id: UUID, db: DB, principal: Reader) -> list[DriftOut]:
    return await drift_of(db, principal.agency, [about(person_id, principal)])


async def drift_of(db: Database, agency: str, people: list[str]) -> list[DriftOut]:
    """Drift per person and instrument family, with each competency's series."""
    async with db.reader(agency=agency) as s:
        rows = list((await s.scalars(select(DriftSeries).where(DriftSeries.person_id.in_(people))
                                     .order_by(DriftSeries.person_id, DriftSeries.family, DriftSeries.metric))).all())
    out: dict[tuple[str, str], DriftOut] = {}
    for r in rows:
        st = domain.SeriesState.from_json(r.state)
        d = out.setdefault((r.person_id, r.family), DriftOut(person_id=r.person_id, family=r.family,
                                                             drifting=False, metrics=[], evidence=[]))
        d.metrics.append(DriftMetricOut(metric=r.metric, flagged=r.flagged, ewma=st.ewma, observations=st.n))
        if r.flagged:
            d.drifting = True
            d.evidence = sorted({*d.evidence, *st.evidence})
    return list(out.values())


def number_cursor(after: str | None, maximum: int) -> int | None:
    """A cursor that is a row number this API issued: ASCII digits up to the column's maximum.

    `str.isdigit` alone also passes '²' (which int() refuses), and a huge number overflows the column.
    """
    if after is None:
        return None
    if not (after.isascii() and after.isdigit() and len(after) <= 19 and int(after) <= maximum):
        raise Problem(400, "The 'after' cursor is not one this API issued.", slug="bad-cursor",
                      errors=[field_error("query.after", "unknown cursor")])
    return int(after)


@router.get("/people/{person_id}/fidelity-series", response_model=SeriesOut,
            summary="Chart data: each observation's score, the EWMA, the control limits and the pass threshold")
async def fidelity_series(
    person_id: UUID, db: DB, principal: Reader, page: Page,
    family: Annotated[str, Query(max_length=64)] = "miiwrap-practice",
    metric: Annotated[str, Query(max_length=200, description="`total` or a competency")] = domain.TOTAL,
) -> dict[str, object]:
    person = about(person_id, principal)
    after = number_cursor(page.after, MAX_SEQ)
    stmt = select(DriftPoint).where(DriftPoint.person_id == person, DriftPoint.family == family,
                                    DriftPoint.metric == metric)
    if after is not None:
        stmt = stmt.where(DriftPoint.seq > after)
    async with db.reader(agency=principal.agency) as s:
        rows = list((await s.scalars(stmt.order_by(DriftPoint.seq).limit(page.limit + 1))).all())
    body = page_of(rows, page, lambda p: SeriesPointOut.model_validate(p, from_attributes=True), lambda p: str(p.seq))
    return {"person_id": person, "family": family, "metric": metric, "points": body["items"], "next": body["next"]}


# ---- several people at once (the gateway's DataLoaders: one call per field, not one per person) -----

MAX_PEOPLE = 200
People = Annotated[list[UUID], Query(min_length=1, max_length=MAX_PEOPLE,
                                     description=f"Repeat for each person, at most {MAX_PEOPLE}")]


@router.get("/people/certification", response_model=list[PersonCertificationOut],
            summary="Several people's certification on a track, in the order asked")
async def people_certification(
    person_id: People, db: DB, principal: Reader, track: Annotated[Track, Query()] = "practitioner",
) -> list[PersonCertificationOut]:
    people = list(dict.fromkeys(about(p, principal) for p in person_id))
    return await certifications_of(db, principal.agency, people, track)


@router.get("/people/drift", response_model=list[DriftOut],
            summary="Several people's drift, per person and instrument family")
async def people_drift(person_id: People, db: DB, principal: Reader) -> list[DriftOut]:
    return await drift_of(db, principal.agency, list(dict.fromkeys(about(p, principal) for p in person_id)))


@router.get("/people/fidelity-series", response_model=PeopleSeriesPage,
            summary="Several people's chart data on one series, in pages, in the order the points were recorded")
async def people_fidelity_series(
    person_id: People, db: DB, principal: Reader, page: Page,
    family: Annotated[str, Query(max_length=64)] = "miiwrap-practice",
    metric: Annotated[str, Query(max_length=200, description="`total` or a competency")] = domain.TOTAL,
) -> dict[str, object]:
    people = list(dict.fromkeys(about(p, principal) for p in person_id))
    after = number_cursor(page.after, MAX_ROW_ID)
    stmt = select(DriftPoint).where(DriftPoint.person_id.in_(people), DriftPoint.family == family,
                                    DriftPoint.metric == metric)
    if after is not None:
        stmt = stmt.where(DriftPoint.id > after)
    async with db.reader(agency=principal.agency) as s:
        rows = list((await s.scalars(stmt.order_by(DriftPoint.id).limit(page.limit + 1))).all())
    return page_of(rows, page, lambda p: PeopleSeriesPointOut.model_validate(p, from_attributes=True),
                   lambda p: str(p.id))


@router.get("/agencies/{agency_id}/fidelity-summary", response_model=SummaryOut,
            summary="Per agency and team: certified, in window, lapsed, fidelity over 90 days, drifting")
async def fidelity_summary(
    agency_id: UUID, db: DB, principal: Annotated[Principal, require_roles(*STAFF_READERS, "partner")],
    track: Annotated[Track, Query()] = "practitioner",
) -> dict[str, Any]:
    agency = scoped(agency_id, principal)
    async with db.reader(agency=agency) as s:
        return await workflows.summary(s, agency, track, db.clock())
