"""Fidelity REST API: each route parses, resolves access, calls one use case and shapes the answer."""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response

from services.fidelity import domain
from services.fidelity import usecases as uc
from services.fidelity.models import Calibration, CalibrationReference, Certification, InstrumentRow, Observation
from services.fidelity.schemas import (
    AmendmentIn,
    AmendmentOut,
    CalibrationIn,
    CalibrationOut,
    CalibrationPage,
    CertificationOut,
    CertificationPage,
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
    ShareHistoryOut,
    SummaryOut,
    TimelineOut,
    Track,
)
from trellis.auth import CurrentPrincipal, Principal, require_roles
from trellis.deps import DB, Admin, Page, PlatformAdmin, own_record, scoped
from trellis.pagination import number_cursor, page_of

router = APIRouter(prefix="/v1", tags=["fidelity"])
STAFF_READERS = uc.STAFF_READERS
Reader = Annotated[Principal, require_roles(*uc.READERS)]
StaffReader = Annotated[Principal, require_roles(*STAFF_READERS)]
Observer = Annotated[Principal, require_roles("observer")]
MAX_SEQ = 2**31 - 1  # drift_points.seq is INTEGER (int4 on PostgreSQL)
MAX_ROW_ID = 2**63 - 1  # drift_points.id is BIGINT
Family = Annotated[str, Query(max_length=64)]
Metric = Annotated[str, Query(max_length=200, description="`total` or a competency")]


def about(person: UUID, principal: Principal) -> str:
    """Staff may read anyone in their agency; a practitioner only themself."""
    return own_record(person, principal, *STAFF_READERS)


# ---- instruments ---------------------------------------------------------------------------------


def instrument_out(row: InstrumentRow) -> InstrumentOut:
    inst = row.to_domain()
    return InstrumentOut(
        id=row.id, family=row.family, kind=row.kind, track=inst.track, name=row.name, description=row.description,
        version=row.version, status=row.status, pass_threshold=row.pass_threshold, competencies=inst.competencies,
        items=[asdict(i) for i in inst.items], created_at=row.created_at,  # type: ignore[misc]
        activated_at=row.activated_at, retired_at=row.retired_at,
    )


def to_items(items: list[ItemIn]) -> tuple[domain.Item, ...]:
    return tuple(domain.Item(**i.model_dump()) for i in items)


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
    q = uc.ListInstruments(page, published_only(principal), status, family, kind)
    async with db.reader() as uow:
        rows = await uc.list_instruments(uow, q)
    return page_of(rows, page, instrument_out, lambda r: r.id)


@router.get("/instruments/{instrument_id}", response_model=InstrumentOut)
async def get_instrument(instrument_id: UUID, db: DB, principal: CurrentPrincipal) -> InstrumentOut:
    async with db.reader() as uow:
        row = await uc.get_instrument(uow, uc.GetInstrument(str(instrument_id), published_only(principal)))
    return instrument_out(row)


@router.post("/instruments", status_code=201, response_model=InstrumentOut,
             summary="Start a new instrument: version 1, as a draft (platform admins)")
async def create_instrument(body: InstrumentIn, db: DB, response: Response, principal: PlatformAdmin) -> InstrumentOut:
    cmd = uc.CreateInstrument(body.family, body.kind, body.name, body.description, body.pass_threshold,
                              to_items(body.items), by=principal.sub)
    async with db.unit_of_work() as uow:
        row = await uc.create_instrument(uow, cmd)
    response.headers["Location"] = f"/v1/instruments/{row.id}"
    return instrument_out(row)


@router.post("/instruments/{instrument_id}/versions", status_code=201, response_model=InstrumentOut,
             summary="Start the next version of an instrument as a draft, copied from this one")
async def new_version(instrument_id: UUID, db: DB, response: Response, principal: PlatformAdmin) -> InstrumentOut:
    async with db.unit_of_work() as uow:
        row = await uc.new_version(uow, str(instrument_id), principal.sub)
    response.headers["Location"] = f"/v1/instruments/{row.id}"
    return instrument_out(row)


@router.patch("/instruments/{instrument_id}", response_model=InstrumentOut,
              summary="Edit a draft; active and retired versions never change")
async def edit_instrument(instrument_id: UUID, body: InstrumentPatch, db: DB, _: PlatformAdmin) -> InstrumentOut:
    cmd = uc.EditInstrument(str(instrument_id), body.name, body.description, body.pass_threshold,
                            to_items(body.items) if body.items is not None else None)
    async with db.unit_of_work() as uow:
        return instrument_out(await uc.edit_instrument(uow, cmd))


@router.post("/instruments/{instrument_id}/activate", response_model=InstrumentOut,
             summary="Publish a draft; the family's previously active version is retired")
async def activate_instrument(instrument_id: UUID, db: DB, _: PlatformAdmin) -> InstrumentOut:
    async with db.unit_of_work() as uow:
        return instrument_out(await uc.activate_instrument(uow, str(instrument_id)))


@router.post("/instruments/{instrument_id}/retire", response_model=InstrumentOut,
             summary="Retire an active version: no new observations on it; old ones keep their scores")
async def retire_instrument(instrument_id: UUID, db: DB, _: PlatformAdmin) -> InstrumentOut:
    async with db.unit_of_work() as uow:
        return instrument_out(await uc.retire_instrument(uow, str(instrument_id)))


# ---- observations --------------------------------------------------------------------------------


def observation_out(o: Observation) -> ObservationOut:
    return ObservationOut(
        id=o.id, agency_id=o.agency_id, practitioner_id=o.practitioner_id, observer_id=o.observer_id,
        instrument_id=o.instrument_id, instrument_version=o.instrument_version, observed_on=o.observed_on,
        setting=o.setting, kind=o.kind, instrument_family=o.instrument_family, notes=o.notes, scores=o.item_scores,
        score=o.total_score, competency_scores=o.competency_scores, passed=o.passed, created_at=o.created_at,
        amendments=o.amendments, amendable_until=uc.recorded_on(o) + timedelta(days=domain.AMEND_DAYS),
    )


@router.post("/observations", status_code=201, response_model=ObservationOut,
             summary="Record a scored observation of practice (calibrated observers only)")
async def record_observation(body: ObservationIn, db: DB, response: Response, principal: Observer) -> ObservationOut:
    cmd = uc.RecordObservation(
        observer=principal.sub, agency=principal.agency, practitioner_id=str(body.practitioner_id),
        instrument_id=str(body.instrument_id), observed_on=body.observed_on, setting=body.setting, kind=body.kind,
        scores=dict(body.scores), notes=body.notes)
    async with db.unit_of_work(agency=principal.agency) as uow:
        obs = await uc.record_observation(uow, cmd)
    response.headers["Location"] = f"/v1/observations/{obs.id}"
    return observation_out(obs)


@router.get("/observations", response_model=ObservationPage, summary="Observations in the caller's agency")
async def list_observations(
    db: DB, principal: Reader, page: Page,
    practitioner_id: Annotated[list[UUID] | None, Query(description="Repeat to ask for several")] = None,
    observer_id: Annotated[list[UUID] | None, Query(description="Who recorded them; repeat to ask for several")] = None,
    order: Annotated[Literal["oldest", "newest"], Query(description="By when recorded")] = "oldest",
) -> dict[str, object]:
    q = uc.ListObservations(principal, page, tuple(str(p) for p in practitioner_id or []),
                            tuple(str(o) for o in observer_id or []), newest_first=order == "newest")
    async with db.reader(agency=principal.agency) as uow:
        rows = await uc.list_observations(uow, q)
    return page_of(rows, page, observation_out, lambda r: r.id)


@router.get("/observations/{observation_id}", response_model=ObservationOut)
async def get_observation(observation_id: UUID, db: DB, principal: Reader) -> ObservationOut:
    async with db.reader(agency=principal.agency) as uow:
        return observation_out(await uc.get_observation(uow, str(observation_id), principal))


@router.get("/observations/{observation_id}/amendments", response_model=list[AmendmentOut],
            summary="The observation's amendments, oldest first")
async def list_amendments(observation_id: UUID, db: DB, principal: Reader) -> list[AmendmentOut]:
    async with db.reader(agency=principal.agency) as uow:
        rows = await uc.list_amendments(uow, str(observation_id), principal)
    return [AmendmentOut.model_validate(r, from_attributes=True) for r in rows]


@router.post("/observations/{observation_id}/amendments", status_code=201, response_model=ObservationOut,
             summary="Correct an observation's scores: its observer only, within 7 days; the old scores are kept")
async def amend_observation(observation_id: UUID, body: AmendmentIn, db: DB, principal: Observer) -> ObservationOut:
    cmd = uc.AmendObservation(str(observation_id), principal, dict(body.scores), body.reason, body.notes)
    async with db.unit_of_work(agency=principal.agency) as uow:
        return observation_out(await uc.amend_observation(uow, cmd))


# ---- certification -------------------------------------------------------------------------------


def certification_out(c: Certification) -> CertificationOut:
    return CertificationOut.model_validate(c, from_attributes=True)


def person_certification_out(p: uc.PersonCertification) -> PersonCertificationOut:
    return PersonCertificationOut(
        person_id=p.person_id, track=p.track, status=p.status, missing=p.missing,
        current=certification_out(p.current) if p.current else None,
        timeline=[TimelineOut.model_validate(t, from_attributes=True) for t in p.timeline])


@router.get("/certification-policy", response_model=PolicyIO, summary="Your agency's certification policy")
async def get_policy(db: DB, principal: Reader) -> PolicyIO:
    async with db.reader(agency=principal.agency) as uow:
        return PolicyIO(**asdict(await uc.get_policy(uow)))


@router.put("/certification-policy", response_model=PolicyIO,
            summary="Set your agency's certification policy (agency admins); omitted fields take the defaults")
async def put_policy(body: PolicyIO, db: DB, principal: Admin) -> PolicyIO:
    cmd = uc.SetPolicy(principal.agency, domain.Policy(**body.model_dump()), principal.sub)
    async with db.unit_of_work(agency=principal.agency) as uow:
        await uc.set_policy(uow, cmd)
    return body


@router.get("/certifications", response_model=CertificationPage, summary="Certifications in your agency")
async def list_certifications(
    db: DB, principal: Annotated[Principal, require_roles(*STAFF_READERS, "partner")], page: Page,
    status: Annotated[domain.CertStatus | None, Query()] = None,
    track: Annotated[Track | None, Query()] = None,
    person_id: Annotated[UUID | None, Query()] = None,
) -> dict[str, object]:
    q = uc.ListCertifications(page, status, track, str(person_id) if person_id is not None else None)
    async with db.reader(agency=principal.agency) as uow:
        rows = await uc.list_certifications(uow, q)
    return page_of(rows, page, certification_out, lambda r: r.id)


@router.get("/people/{person_id}/certification", response_model=PersonCertificationOut,
            summary="A person's certification on a track: status, what is missing, and the whole timeline")
async def person_certification(
    person_id: UUID, db: DB, principal: Reader, track: Annotated[Track, Query()] = "practitioner",
) -> PersonCertificationOut:
    q = uc.PeopleOnTrack((about(person_id, principal),), track)
    async with db.reader(agency=principal.agency) as uow:
        (one,) = await uc.certifications_of(uow, q)
    return person_certification_out(one)


@router.post("/certifications/{certification_id}/revoke", response_model=CertificationOut,
             summary="Revoke a certification, with a reason (agency or platform admins)")
async def revoke(certification_id: UUID, body: RevokeIn, db: DB, principal: Admin) -> CertificationOut:
    async with db.unit_of_work(agency=principal.agency) as uow:
        cert = await uc.revoke_certification(uow, uc.Revoke(str(certification_id), body.reason, principal.sub))
        return certification_out(cert)


# ---- rater calibration ---------------------------------------------------------------------------


def reference_out(r: CalibrationReference, curator: bool = False) -> ReferenceOut:
    out = ReferenceOut.model_validate(r, from_attributes=True)
    # Raters must not see the master coding before they score; the platform admin curates it.
    return out if curator else out.model_copy(update={"scores": None})


def calibration_out(c: Calibration, reference: dict[str, int], policy: domain.Policy) -> CalibrationOut:
    return CalibrationOut(
        id=c.id, rater_id=c.rater_id, family=c.family, instrument_id=c.instrument_id, reference_id=c.reference_id,
        observation_id=c.observation_id, agreement=c.agreement, total_difference=c.total_difference,
        items_compared=c.items_compared, mismatched=c.mismatched, calibrated_on=c.calibrated_on,
        calibrated=c.agreement >= policy.calibration_agreement, reference_scores=reference)


@router.get("/calibration-references", response_model=ReferencePage,
            summary="Reference observations to calibrate on (their scores are shown only after you score)")
async def list_references(db: DB, principal: Reader, page: Page) -> dict[str, object]:
    async with db.reader() as uow:
        rows = await uc.list_references(uow, principal, page)
    curator = principal.has("platform_admin")
    return page_of(rows, page, lambda r: reference_out(r, curator), lambda r: r.id)


@router.post("/calibration-references", status_code=201, response_model=ReferenceOut,
             summary="Add a master-coded reference: platform admins add shared ones, agency admins their own")
async def add_reference(body: ReferenceIn, db: DB, response: Response, principal: Admin) -> ReferenceOut:
    cmd = uc.AddReference(str(body.instrument_id), body.title, body.reference_rater, dict(body.scores), principal)
    async with db.unit_of_work() as uow:
        ref = await uc.add_reference(uow, cmd)
    response.headers["Location"] = f"/v1/calibration-references/{ref.id}"
    return reference_out(ref, curator=True)


@router.post("/calibrations", status_code=201, response_model=CalibrationOut,
             summary="Calibrate: score a reference observation, or double-code a live one (observers). "
                     "One attempt per reference; the coding is shown once the attempt is recorded.",
             responses={429: {"description": "Too soon after your last attempt on this instrument family.",
                              "headers": {"Retry-After": {"description": "Seconds to wait",
                                                          "schema": {"type": "integer"}}}}})
async def calibrate(body: CalibrationIn, db: DB, request: Request, response: Response,
                    principal: Observer) -> CalibrationOut:
    cmd = uc.Calibrate(principal, dict(body.scores),
                       reference_id=str(body.reference_id) if body.reference_id is not None else None,
                       observation_id=str(body.observation_id) if body.observation_id is not None else None,
                       cooldown_s=request.app.state.settings.calibration_cooldown_s)
    async with db.unit_of_work(agency=principal.agency) as uow:
        done = await uc.calibrate(uow, cmd)
    response.headers["Location"] = f"/v1/calibrations/{done.row.id}"
    return calibration_out(done.row, done.reference_scores, done.policy)


@router.get("/calibrations", response_model=CalibrationPage, summary="Calibration results in your agency")
async def list_calibrations(
    db: DB, principal: StaffReader, page: Page, rater_id: Annotated[UUID | None, Query()] = None,
) -> dict[str, object]:
    q = uc.ListCalibrations(page, str(rater_id) if rater_id is not None else None)
    async with db.reader(agency=principal.agency) as uow:
        rows, policy = await uc.list_calibrations(uow, q)
    return page_of(rows, page, lambda c: calibration_out(c, {}, policy), lambda r: r.id)


@router.get("/raters/{rater_id}/status", response_model=RaterStatusOut,
            summary="Whether a rater may record observations on an instrument family now, and why")
async def rater_status(
    rater_id: UUID, db: DB, principal: StaffReader, family: Family = "miiwrap-practice",
) -> RaterStatusOut:
    async with db.reader(agency=principal.agency) as uow:
        st = await uc.rater_status(uow, str(rater_id), family)
    return RaterStatusOut(rater_id=str(rater_id), family=family, calibrated=st.calibrated, reason=st.reason,
                          valid_until=st.valid_until)


# ---- drift and summaries -------------------------------------------------------------------------


@router.get("/people/{person_id}/drift", response_model=list[DriftOut],
            summary="Whether a person's practice is drifting, per instrument family and competency")
async def person_drift(person_id: UUID, db: DB, principal: Reader) -> list[DriftOut]:
    person = about(person_id, principal)
    async with db.reader(agency=principal.agency) as uow:
        drift = await uc.drift_of(uow, (person,))
    return [DriftOut.model_validate(d, from_attributes=True) for d in drift]


@router.get("/people/{person_id}/fidelity-series", response_model=SeriesOut,
            summary="Chart data: each observation's score, the EWMA, the control limits and the pass threshold")
async def fidelity_series(
    person_id: UUID, db: DB, principal: Reader, page: Page,
    family: Family = "miiwrap-practice", metric: Metric = domain.TOTAL,
) -> dict[str, object]:
    person = about(person_id, principal)
    q = uc.SeriesQuery((person,), family, metric, page.limit, number_cursor(page.after, MAX_SEQ))
    async with db.reader(agency=principal.agency) as uow:
        rows = await uc.fidelity_series(uow, q)
    body = page_of(rows, page, lambda p: SeriesPointOut.model_validate(p, from_attributes=True), lambda p: str(p.seq))
    return {"person_id": person, "family": family, "metric": metric, "points": body["items"], "next": body["next"]}


# ---- several people at once (the gateway's DataLoaders: one call per field, not one per person) -----

MAX_PEOPLE = 200
People = Annotated[list[UUID], Query(min_length=1, max_length=MAX_PEOPLE,
                                     description=f"Repeat for each person, at most {MAX_PEOPLE}")]


def them(person_id: list[UUID], principal: Principal) -> tuple[str, ...]:
    return tuple(dict.fromkeys(about(p, principal) for p in person_id))


@router.get("/people/certification", response_model=list[PersonCertificationOut],
            summary="Several people's certification on a track, in the order asked")
async def people_certification(
    person_id: People, db: DB, principal: Reader, track: Annotated[Track, Query()] = "practitioner",
) -> list[PersonCertificationOut]:
    q = uc.PeopleOnTrack(them(person_id, principal), track)
    async with db.reader(agency=principal.agency) as uow:
        found = await uc.certifications_of(uow, q)
    return [person_certification_out(p) for p in found]


@router.get("/people/drift", response_model=list[DriftOut],
            summary="Several people's drift, per person and instrument family")
async def people_drift(person_id: People, db: DB, principal: Reader) -> list[DriftOut]:
    people = them(person_id, principal)
    async with db.reader(agency=principal.agency) as uow:
        drift = await uc.drift_of(uow, people)
    return [DriftOut.model_validate(d, from_attributes=True) for d in drift]


@router.get("/people/fidelity-series", response_model=PeopleSeriesPage,
            summary="Several people's chart data on one series, in pages, in the order the points were recorded")
async def people_fidelity_series(
    person_id: People, db: DB, principal: Reader, page: Page,
    family: Family = "miiwrap-practice", metric: Metric = domain.TOTAL,
) -> dict[str, object]:
    q = uc.SeriesQuery(them(person_id, principal), family, metric, page.limit, number_cursor(page.after, MAX_ROW_ID))
    async with db.reader(agency=principal.agency) as uow:
        rows = await uc.people_fidelity_series(uow, q)
    return page_of(rows, page, lambda p: PeopleSeriesPointOut.model_validate(p, from_attributes=True),
                   lambda p: str(p.id))


@router.get("/agencies/{agency_id}/fidelity-summary", response_model=SummaryOut,
            summary="Per agency and team: certified, in window, lapsed, fidelity over 90 days, drifting")
async def fidelity_summary(
    agency_id: UUID, db: DB, principal: Annotated[Principal, require_roles(*STAFF_READERS, "partner")],
    track: Annotated[Track, Query()] = "practitioner",
) -> dict[str, Any]:
    agency = scoped(agency_id, principal)
    async with db.reader(agency=agency) as uow:
        return await uc.summary(uow, agency, track)


@router.get("/agencies/{agency_id}/fidelity-summary/history", response_model=ShareHistoryOut,
            summary="The certified share at each month-end up to today, against the 50% Full Implementation line",
            description=uc.SHARE_HISTORY_BASIS)
async def certified_share_history(
    agency_id: UUID, db: DB, principal: Annotated[Principal, require_roles(*STAFF_READERS, "partner")],
    track: Annotated[Track, Query()] = "practitioner",
    months: Annotated[int, Query(ge=1, le=domain.MAX_HISTORY_MONTHS, description="How many months, "
                                 "the current one included")] = 12,
) -> dict[str, Any]:
    agency = scoped(agency_id, principal)
    async with db.reader(agency=agency) as uow:
        return await uc.certified_share_history(uow, uc.ShareHistoryQuery(agency, track, months))
