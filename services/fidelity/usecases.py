"""Fidelity use cases: one function per use case, `(uow, command) -> result`.

Each loads what its rule needs, calls domain.py, writes and stages its events through the unit of
work it is given (`uow.emit`), so a change and its events commit together. Time comes from
`uow.today` only. api.py and handlers.py adapt HTTP requests and events to these functions; the
certification sweep (a chore) runs one small use case per certification.
"""

from __future__ import annotations

import logging
import math
import uuid
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Select, insert, select
from sqlalchemy.exc import IntegrityError, OperationalError
from uuid6 import uuid7

from contracts.fidelity import (
    CertificationLapsed,
    CertificationRenewed,
    CertificationRevoked,
    FidelityDriftCleared,
    FidelityDriftDetected,
    ObservationAmended,
    ObservationRecorded,
    PractitionerCertified,
    RecertificationDue,
    SlippingMetric,
)
from services.fidelity import domain
from services.fidelity.models import (
    ROSTER,
    Amendment,
    Calibration,
    CalibrationReference,
    Certification,
    CourseCompletion,
    DriftPoint,
    DriftSeries,
    InstrumentRow,
    Observation,
    PolicyRow,
    TimelineEntry,
)
from trellis.auth import Principal
from trellis.db import Database, UnitOfWork, utcnow
from trellis.envelope import EventPayload
from trellis.pagination import PageParams, paged
from trellis.problems import Problem, field_error, invalid

log = logging.getLogger("trellis.fidelity")
READERS = ("observer", "coach", "supervisor", "agency_admin", "platform_admin", "practitioner")
STAFF_READERS = tuple(r for r in READERS if r != "practitioner")
# Certification events get ids derived from the certification and its revision, so a transition
# staged twice (two sweeps on two replicas) is the same event: the outbox refuses the second copy
# and NATS would drop it within its duplicate window.
TRANSITION_NS = uuid.UUID("6f1d0c38-5a0e-4c8e-9d65-2b1f4f7b9a10")


# ---- shared steps --------------------------------------------------------------------------------


async def policy_of(uow: UnitOfWork) -> domain.Policy:
    row = (await uow.scalars(select(PolicyRow))).one_or_none()
    return domain.Policy(**row.settings) if row is not None else domain.Policy()


async def lock_person(uow: UnitOfWork, agency: str, person: str) -> None:
    """Serialises everything about one person (certification, drift) across concurrent requests."""
    t = ROSTER.t
    await uow.execute(select(t.c.person_id).where(t.c.agency_id == agency, t.c.person_id == person)
                      .with_for_update())


def score_errors(instrument: domain.Instrument, scores: dict[str, int]) -> list[dict[str, Any]]:
    return [field_error(f"body.{e.field}", e.message) for e in domain.validate_scores(instrument, scores)]


async def load_instrument(uow: UnitOfWork, instrument_id: str, *, lock: bool = False) -> InstrumentRow:
    stmt = select(InstrumentRow).where(InstrumentRow.id == instrument_id)
    row = (await uow.scalars(stmt.with_for_update() if lock else stmt)).one_or_none()
    if row is None:
        raise Problem(404, f"No instrument {instrument_id}.")
    return row


async def load_observation(uow: UnitOfWork, observation_id: str, viewer: Principal,
                           *, lock: bool = False) -> Observation:
    stmt = select(Observation).where(Observation.id == observation_id)
    obs = (await uow.scalars(stmt.with_for_update() if lock else stmt)).one_or_none()
    if obs is None or (not viewer.has(*STAFF_READERS) and obs.practitioner_id != viewer.sub):
        raise Problem(404, f"No observation {observation_id} in your agency.")
    return obs


def recorded_on(o: Observation) -> date:
    return o.recorded_on or o.created_at.date()


# ---- instruments ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListInstruments:
    page: PageParams
    published_only: bool  # drafts are the platform admins' work in progress
    status: domain.InstrumentStatus | None = None
    family: str | None = None
    kind: str | None = None


@dataclass(frozen=True)
class GetInstrument:
    instrument_id: str
    published_only: bool


@dataclass(frozen=True)
class CreateInstrument:
    family: str
    kind: str
    name: str
    description: str
    pass_threshold: float
    items: tuple[domain.Item, ...]
    by: str


@dataclass(frozen=True)
class EditInstrument:
    instrument_id: str
    name: str | None = None
    description: str | None = None
    pass_threshold: float | None = None
    items: tuple[domain.Item, ...] | None = None


def check_definition(name: str, threshold: float, items: list[domain.Item]) -> None:
    if errors := domain.instrument_problems(name, threshold, items):
        raise invalid([field_error(f"body.{e.field}", e.message) for e in errors], "The instrument")


async def list_instruments(uow: UnitOfWork, q: ListInstruments) -> list[InstrumentRow]:
    stmt = select(InstrumentRow)
    if q.published_only:
        stmt = stmt.where(InstrumentRow.status != domain.InstrumentStatus.DRAFT.value)
    if q.status is not None:
        stmt = stmt.where(InstrumentRow.status == q.status.value)
    if q.family is not None:
        stmt = stmt.where(InstrumentRow.family == q.family)
    if q.kind is not None:
        stmt = stmt.where(InstrumentRow.kind == q.kind)
    return list((await uow.scalars(paged(stmt, InstrumentRow.id, q.page))).all())


async def get_instrument(uow: UnitOfWork, q: GetInstrument) -> InstrumentRow:
    row = await load_instrument(uow, q.instrument_id)
    if q.published_only and row.status == domain.InstrumentStatus.DRAFT:
        raise Problem(404, f"No instrument {q.instrument_id}.")  # the same answer as for no instrument at all
    return row


async def create_instrument(uow: UnitOfWork, cmd: CreateInstrument) -> InstrumentRow:
    """Version 1 of a new family, as a draft."""
    items = list(cmd.items)
    check_definition(cmd.name, cmd.pass_threshold, items)
    if (await uow.scalars(select(InstrumentRow.id).where(InstrumentRow.family == cmd.family))).first():
        raise Problem(409, f"Instrument family '{cmd.family}' exists; start a new version of it instead.",
                      slug="family-exists")
    row = InstrumentRow(id=str(uuid7()), family=cmd.family, kind=cmd.kind, name=cmd.name,
                        description=cmd.description, version=1, status=domain.InstrumentStatus.DRAFT,
                        pass_threshold=cmd.pass_threshold, items=[asdict(i) for i in items],
                        created_at=utcnow(), created_by=cmd.by)
    uow.add(row)
    return row


async def new_version(uow: UnitOfWork, instrument_id: str, by: str) -> InstrumentRow:
    """The family's next version as a draft, copied from `instrument_id`."""
    base = await load_instrument(uow, instrument_id)
    family = list((await uow.scalars(select(InstrumentRow).where(InstrumentRow.family == base.family)
                                     .with_for_update())).all())
    if draft := next((r for r in family if r.status == domain.InstrumentStatus.DRAFT), None):
        raise Problem(409, f"Version {draft.version} of '{base.family}' is already a draft ({draft.id}); "
                           "edit that one.", slug="draft-exists")
    row = InstrumentRow(id=str(uuid7()), family=base.family, kind=base.kind, name=base.name,
                        description=base.description, version=max(r.version for r in family) + 1,
                        status=domain.InstrumentStatus.DRAFT, pass_threshold=base.pass_threshold,
                        items=list(base.items), created_at=utcnow(), created_by=by)
    uow.add(row)
    return row


async def edit_instrument(uow: UnitOfWork, cmd: EditInstrument) -> InstrumentRow:
    """Edit a draft; active and retired versions never change."""
    row = await load_instrument(uow, cmd.instrument_id, lock=True)
    if row.status != domain.InstrumentStatus.DRAFT:
        raise Problem(409, f"Version {row.version} of '{row.family}' is {row.status} and never changes; "
                           f"start a new version (POST /v1/instruments/{row.id}/versions).",
                      slug="instrument-immutable")
    items = list(cmd.items) if cmd.items is not None else list(row.to_domain().items)
    name = cmd.name if cmd.name is not None else row.name
    threshold = cmd.pass_threshold if cmd.pass_threshold is not None else row.pass_threshold
    check_definition(name, threshold, items)
    row.name, row.pass_threshold, row.items = name, threshold, [asdict(i) for i in items]
    if cmd.description is not None:
        row.description = cmd.description
    return row


async def activate_instrument(uow: UnitOfWork, instrument_id: str) -> InstrumentRow:
    """Publish a draft; the family's previously active version is retired."""
    row = await load_instrument(uow, instrument_id, lock=True)
    if row.status != domain.InstrumentStatus.DRAFT:
        raise Problem(409, f"Only a draft can be activated; this version is {row.status}.", slug="not-a-draft")
    check_definition(row.name, row.pass_threshold, list(row.to_domain().items))
    now = utcnow()
    for old in await uow.scalars(select(InstrumentRow).where(
            InstrumentRow.family == row.family, InstrumentRow.status == domain.InstrumentStatus.ACTIVE)):
        old.status, old.retired_at = domain.InstrumentStatus.RETIRED, now
    row.status, row.activated_at = domain.InstrumentStatus.ACTIVE, now
    return row


async def retire_instrument(uow: UnitOfWork, instrument_id: str) -> InstrumentRow:
    row = await load_instrument(uow, instrument_id, lock=True)
    if row.status != domain.InstrumentStatus.ACTIVE:
        raise Problem(409, f"Only an active version can be retired; this one is {row.status}.", slug="not-active")
    row.status, row.retired_at = domain.InstrumentStatus.RETIRED, utcnow()
    return row


# ---- observations --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordObservation:
    observer: str
    agency: str
    practitioner_id: str
    instrument_id: str
    observed_on: date
    setting: str
    kind: str
    scores: dict[str, int]
    notes: str = ""


@dataclass(frozen=True)
class AmendObservation:
    observation_id: str
    by: Principal
    scores: dict[str, int]
    reason: str
    notes: str | None = None


@dataclass(frozen=True)
class ListObservations:
    viewer: Principal
    page: PageParams
    practitioner_ids: tuple[str, ...] = ()
    observer_ids: tuple[str, ...] = ()
    newest_first: bool = False


async def _calibration_errors(uow: UnitOfWork, rater: str, family: str, policy: domain.Policy) -> list[dict[str, Any]]:
    status = await rater_status(uow, rater, family, policy)
    if status.calibrated:
        return []
    return [field_error("observer", f"you are not a calibrated rater for '{family}': {status.reason}",
                        code="rater-not-calibrated")]


async def record_observation(uow: UnitOfWork, cmd: RecordObservation) -> Observation:
    """A calibrated observer's scored observation, then what it means for certification and drift."""
    today = uow.today
    errors = []
    if cmd.observed_on > today + timedelta(days=1):  # one day of slack for time zones
        errors.append(field_error("body.observed_on", "an observation cannot be dated in the future"))
    if cmd.practitioner_id == cmd.observer:
        errors.append(field_error("body.practitioner_id", "an observer cannot observe themself"))
    person = cmd.practitioner_id
    # The roster check also takes the person's lock (what lock_person does), in the same round trip.
    errors += await ROSTER.check_active(uow, cmd.agency, person, "body.practitioner_id", what="practitioner",
                                        lock=True)
    row = await uow.get(InstrumentRow, cmd.instrument_id)
    instrument = None
    policy = None
    if row is None:
        errors.append(field_error("body.instrument_id", f"no instrument {cmd.instrument_id}"))
    elif row.status != domain.InstrumentStatus.ACTIVE:
        errors.append(field_error("body.instrument_id", f"instrument is {row.status}, not active"))
    else:
        instrument = row.to_domain()
        if not domain.kind_fits(instrument.kind, cmd.kind):
            errors.append(field_error("body.kind", f"a {cmd.kind.replace('_', ' ')} cannot be scored on a "
                                                   f"{instrument.kind.replace('_', ' ')} instrument"))
        errors += score_errors(instrument, cmd.scores)
        policy = await policy_of(uow)
        errors += await _calibration_errors(uow, cmd.observer, instrument.family, policy)
    if errors:
        raise Problem(422, f"The observation has {len(errors)} problem(s); nothing was recorded.",
                      slug="validation-error", errors=errors)
    assert instrument is not None and policy is not None
    scored = domain.score(instrument, cmd.scores)
    obs = Observation(
        id=str(uuid7()), agency_id=cmd.agency, practitioner_id=person, observer_id=cmd.observer,
        instrument_id=instrument.id, instrument_version=instrument.version, instrument_family=instrument.family,
        kind=cmd.kind, observed_on=cmd.observed_on, setting=cmd.setting, notes=cmd.notes,
        item_scores=dict(cmd.scores), total_score=scored.total, competency_scores=scored.competencies,
        passed=scored.passed, amendments=0, recorded_on=today, created_at=utcnow(),
    )
    uow.add(obs)
    await uow.emit(ObservationRecorded(
        observation_id=obs.id, practitioner_id=obs.practitioner_id, observer_id=obs.observer_id,
        instrument_id=obs.instrument_id, instrument_version=obs.instrument_version, observed_on=obs.observed_on,
        setting=obs.setting, kind=obs.kind, instrument_family=obs.instrument_family, total_score=obs.total_score,
        competency_scores=obs.competency_scores, passed=obs.passed,
    ), subject=obs.id, agency=cmd.agency)
    await uow.flush()
    await consequences(uow, obs, instrument, policy=policy)
    return obs


async def list_observations(uow: UnitOfWork, q: ListObservations) -> list[Observation]:
    stmt = select(Observation)
    wanted = list(q.practitioner_ids)
    if not q.viewer.has(*STAFF_READERS):
        # A practitioner sees only their own observations.
        if any(p != q.viewer.sub for p in wanted):
            raise Problem(403, "Practitioners can only see their own observations.", slug="not-your-record")
        wanted = [q.viewer.sub]
    if wanted:
        stmt = stmt.where(Observation.practitioner_id.in_(wanted))
    if q.observer_ids:  # ix_observations_agency_observer
        stmt = stmt.where(Observation.observer_id.in_(q.observer_ids))
    if not q.newest_first:
        return list((await uow.scalars(paged(stmt, Observation.id, q.page))).all())
    # Ids are UUIDv7, so descending id is newest recorded first; the cursor is the last id of the page before.
    if q.page.after:
        stmt = stmt.where(Observation.id < q.page.after)
    stmt = stmt.order_by(Observation.id.desc()).limit(q.page.limit + 1)
    return list((await uow.scalars(stmt)).all())


async def get_observation(uow: UnitOfWork, observation_id: str, viewer: Principal) -> Observation:
    return await load_observation(uow, observation_id, viewer)


async def list_amendments(uow: UnitOfWork, observation_id: str, viewer: Principal) -> list[Amendment]:
    """The observation's amendments, oldest first."""
    await load_observation(uow, observation_id, viewer)
    return list((await uow.scalars(select(Amendment).where(Amendment.observation_id == observation_id)
                                   .order_by(Amendment.number))).all())


async def amend_observation(uow: UnitOfWork, cmd: AmendObservation) -> Observation:
    """Correct an observation's scores: its observer only, within the amendment window; old scores are kept."""
    today = uow.today
    obs = await load_observation(uow, cmd.observation_id, cmd.by, lock=True)
    if obs.observer_id != cmd.by.sub:
        raise Problem(403, "Only the observer who recorded an observation can amend it.", slug="not-your-record")
    if not domain.amendable(recorded_on(obs), today):
        raise Problem(409, f"Observations can be amended for {domain.AMEND_DAYS} days; this one was recorded on "
                           f"{recorded_on(obs)} and is final.", slug="observation-final")
    # Scored against the version it was recorded with, even if that version has since been retired.
    instrument = (await load_instrument(uow, obs.instrument_id)).to_domain()
    if errors := score_errors(instrument, cmd.scores):
        raise invalid(errors, "The amendment")
    await lock_person(uow, cmd.by.agency, obs.practitioner_id)
    scored = domain.score(instrument, cmd.scores)
    obs.amendments += 1
    new_pass = scored.passed and not obs.passed
    uow.add(Amendment(id=str(uuid7()), agency_id=obs.agency_id, observation_id=obs.id, number=obs.amendments,
                      amended_by=cmd.by.sub, reason=cmd.reason, previous_scores=obs.item_scores,
                      previous_total=obs.total_score, previous_passed=obs.passed, scores=dict(cmd.scores),
                      total_score=scored.total, passed=scored.passed, created_at=utcnow()))
    obs.item_scores, obs.total_score = dict(cmd.scores), scored.total
    obs.competency_scores, obs.passed = scored.competencies, scored.passed
    if cmd.notes is not None:
        obs.notes = cmd.notes
    await uow.emit(ObservationAmended(
        observation_id=obs.id, practitioner_id=obs.practitioner_id, observer_id=obs.observer_id,
        instrument_id=obs.instrument_id, instrument_version=obs.instrument_version, amendment=obs.amendments,
        amended_on=today, total_score=obs.total_score, competency_scores=obs.competency_scores,
        passed=obs.passed), agency=obs.agency_id, subject=obs.id)
    await uow.flush()
    await consequences(uow, obs, instrument, amended=True, new_pass=new_pass)
    return obs


async def consequences(uow: UnitOfWork, obs: Observation, instrument: domain.Instrument,
                       *, amended: bool = False, new_pass: bool = True, policy: domain.Policy | None = None) -> None:
    """What an observation (or its amendment) means for certification, then for drift.

    An amendment may renew only if it turned a fail into a pass: a pass that renewed once never renews again.
    `policy`: the certification policy, when the caller has loaded it in this unit of work already.
    """
    certified = False
    if instrument.track is not None:
        cert = await evaluate(uow, obs.agency_id, obs.practitioner_id, instrument.track,
                              obs if new_pass else None, policy=policy)
        certified = cert is not None
    if amended:
        await replay_drift(uow, obs, instrument)
    else:
        await track_drift(uow, obs, instrument, certified)


# ---- course completions (from learning) ----------------------------------------------------------


@dataclass(frozen=True)
class RecordCourseCompletion:
    agency: str
    person_id: str
    course_key: str
    course_id: str
    completed_on: date


async def record_course_completion(uow: UnitOfWork, cmd: RecordCourseCompletion) -> None:
    """Keep the completion; the course may be the last thing a person needed to be certified."""
    seen = (await uow.scalars(select(CourseCompletion).where(
        CourseCompletion.person_id == cmd.person_id, CourseCompletion.course_key == cmd.course_key))).first()
    if seen is None:
        uow.add(CourseCompletion(id=str(uuid7()), agency_id=cmd.agency, person_id=cmd.person_id,
                                 course_key=cmd.course_key, course_id=cmd.course_id, completed_on=cmd.completed_on))
    elif cmd.completed_on < seen.completed_on:
        seen.completed_on, seen.course_id = cmd.completed_on, cmd.course_id
    await uow.flush()
    policy = await policy_of(uow)
    for track in ("practitioner", "coach"):
        if policy.course_for(track) == cmd.course_key:
            await lock_person(uow, cmd.agency, cmd.person_id)
            await evaluate(uow, cmd.agency, cmd.person_id, track)


# ---- certification -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SetPolicy:
    agency: str
    policy: domain.Policy
    by: str


@dataclass(frozen=True)
class ListCertifications:
    page: PageParams
    status: domain.CertStatus | None = None
    track: str | None = None
    person_id: str | None = None


@dataclass(frozen=True)
class PeopleOnTrack:
    people: tuple[str, ...]
    track: str


@dataclass
class PersonCertification:
    person_id: str
    track: str
    status: str
    current: Certification | None
    missing: list[str]
    timeline: list[TimelineEntry]


@dataclass(frozen=True)
class Revoke:
    certification_id: str
    reason: str
    by: str


async def get_policy(uow: UnitOfWork) -> domain.Policy:
    return await policy_of(uow)


async def set_policy(uow: UnitOfWork, cmd: SetPolicy) -> domain.Policy:
    if problems := cmd.policy.problems():
        raise invalid([field_error(f"body.{f}", m) for f, m in problems], "The policy")
    row = (await uow.scalars(select(PolicyRow).with_for_update())).one_or_none()
    if row is None:
        row = PolicyRow(id=cmd.agency, agency_id=cmd.agency, settings={}, updated_by="", updated_at=utcnow())
        uow.add(row)
    row.settings, row.updated_by, row.updated_at = asdict(cmd.policy), cmd.by, utcnow()
    return cmd.policy


async def list_certifications(uow: UnitOfWork, q: ListCertifications) -> list[Certification]:
    stmt = select(Certification)
    if q.status is not None:
        stmt = stmt.where(Certification.status == q.status.value)
    if q.track is not None:
        stmt = stmt.where(Certification.track == q.track)
    if q.person_id is not None:
        stmt = stmt.where(Certification.person_id == q.person_id)
    return list((await uow.scalars(paged(stmt, Certification.id, q.page))).all())


async def certifications_of(uow: UnitOfWork, q: PeopleOnTrack) -> list[PersonCertification]:
    """Each person's certification on the track, in the order given (one query per table, not per person)."""
    today, people = uow.today, list(q.people)
    certs = list((await uow.scalars(select(Certification).where(
        Certification.person_id.in_(people), Certification.track == q.track)
        .order_by(Certification.created_at))).all())
    steps = list((await uow.scalars(select(TimelineEntry).where(
        TimelineEntry.person_id.in_(people), TimelineEntry.track == q.track)
        .order_by(TimelineEntry.created_at, TimelineEntry.revision))).all())
    policy = await policy_of(uow)
    out = []
    for person in people:
        mine = [c for c in certs if c.person_id == person]
        live = next((c for c in mine if c.status in domain.LIVE), None)
        missing = [] if live else await certification_progress(uow, person, q.track, policy, today)
        out.append(PersonCertification(
            person_id=person, track=q.track,
            status=live.status if live else (mine[-1].status if mine else "not_certified"),
            current=live, missing=missing, timeline=[t for t in steps if t.person_id == person]))
    return out


async def revoke_certification(uow: UnitOfWork, cmd: Revoke) -> Certification:
    today = uow.today
    cert = (await uow.scalars(select(Certification).where(Certification.id == cmd.certification_id)
                              .with_for_update())).one_or_none()
    if cert is None:
        raise Problem(404, f"No certification {cmd.certification_id} in your agency.")
    policy = await policy_of(uow)
    await advance(uow, cert, policy, today)  # it may have lapsed already
    t = domain.revocation(cert.to_domain(), today, cmd.reason)
    if t is None:
        raise Problem(409, f"The certification is {cert.status}; only a current one can be revoked.",
                      slug="not-current")
    await apply(uow, cert, t, policy, actor=cmd.by)
    return cert


async def live_certification(uow: UnitOfWork, person: str, track: str) -> Certification | None:
    stmt = select(Certification).where(Certification.person_id == person, Certification.track == track,
                                       Certification.status.in_([s.value for s in domain.LIVE]))
    return (await uow.scalars(stmt.with_for_update())).first()


def _event(cert: Certification, t: domain.Transition, actor: str | None, instrument_id: str) -> EventPayload:
    common: dict[str, Any] = {"certification_id": cert.id, "practitioner_id": cert.person_id,
                              "track": cert.track, "revision": t.revision}
    if t.status == domain.CertStatus.CERTIFIED and t.revision == 1:
        return PractitionerCertified(**common, instrument_id=instrument_id,
                                     certified_on=t.on, expires_on=t.expires_on, evidence=list(t.evidence))
    if t.status == domain.CertStatus.CERTIFIED:
        return CertificationRenewed(**common, renewed_on=t.on, expires_on=t.expires_on,
                                    observation_id=t.evidence[0] if t.evidence else None)
    if t.status == domain.CertStatus.DUE:
        return RecertificationDue(**common, window_opened_on=t.on, expires_on=t.expires_on)
    if t.status == domain.CertStatus.LAPSED:
        return CertificationLapsed(**common, lapsed_on=t.on)
    return CertificationRevoked(**common, revoked_on=t.on, revoked_by=actor or "", reason=t.reason)


async def apply(uow: UnitOfWork, cert: Certification, t: domain.Transition, policy: domain.Policy,
                *, actor: str | None = None, instrument_id: str = "") -> None:
    """Record one transition: the certification's row, its timeline entry and its event."""
    cert.status, cert.revision, cert.expires_on = t.status.value, t.revision, t.expires_on
    cert.window_opens_on = t.expires_on - timedelta(days=policy.window_days)
    if t.status in (domain.CertStatus.LAPSED, domain.CertStatus.REVOKED):
        cert.ended_on = t.on
    cert.updated_at = utcnow()
    uow.add(TimelineEntry(id=str(uuid7()), agency_id=cert.agency_id, certification_id=cert.id,
                          person_id=cert.person_id, track=cert.track, revision=t.revision, status=t.status.value,
                          on=t.on, expires_on=t.expires_on, reason=t.reason, observation_ids=list(t.evidence),
                          actor=actor, created_at=utcnow()))
    event_id = str(uuid.uuid5(TRANSITION_NS, f"{cert.id}/{t.revision}"))
    await uow.emit(_event(cert, t, actor, instrument_id), agency=cert.agency_id, subject=cert.person_id,
                   event_id=event_id)


async def advance(uow: UnitOfWork, cert: Certification, policy: domain.Policy, today: date) -> int:
    steps = domain.due_transitions(cert.to_domain(), policy, today)
    for t in steps:
        await apply(uow, cert, t, policy)
    return len(steps)


async def passes(uow: UnitOfWork, person: str, track: str, since: date) -> list[domain.Pass]:
    """Passing observations of `person` on their track's instruments since `since` (bounded by the look-back)."""
    kind = domain.KIND_OF_TRACK[track]
    stmt = (select(Observation.id, Observation.observed_on)
            .join(InstrumentRow, InstrumentRow.id == Observation.instrument_id)
            .where(Observation.practitioner_id == person, Observation.passed.is_(True),
                   Observation.observed_on > since, InstrumentRow.kind == kind))
    return [domain.Pass(i, d) for i, d in (await uow.execute(stmt)).all()]


async def course_done(uow: UnitOfWork, person: str, course: str | None) -> bool:
    if course is None:
        return True
    stmt = select(CourseCompletion.id).where(CourseCompletion.person_id == person,
                                             CourseCompletion.course_key == course)
    return (await uow.scalars(stmt)).first() is not None


async def evidence_since(uow: UnitOfWork, person: str, track: str, policy: domain.Policy, today: date) -> date:
    """Passes count towards a new certification if inside the look-back and after the last one ended:
    a revoked or lapsed certification's evidence never certifies again."""
    ended = (await uow.scalars(select(Certification.ended_on).where(
        Certification.person_id == person, Certification.track == track, Certification.ended_on.is_not(None))
        .order_by(Certification.ended_on.desc()).limit(1))).first()
    since = today - timedelta(days=policy.lookback_days)
    return max(since, ended) if ended else since


async def certification_progress(uow: UnitOfWork, person: str, track: str, policy: domain.Policy,
                                 today: date) -> list[str]:
    since = await evidence_since(uow, person, track, policy, today)
    return domain.missing_for_certification(track, await course_done(uow, person, policy.course_for(track)),
                                            await passes(uow, person, track, since), policy, today)


async def evaluate(uow: UnitOfWork, agency: str, person: str, track: str,
                   observation: Observation | None = None, *, policy: domain.Policy | None = None
                   ) -> Certification | None:
    """Bring a person's certification up to date: time first (window, lapse), then the new evidence.

    Returns the live certification afterwards, if any. The caller holds the person's lock.
    """
    today = uow.today
    if policy is None:
        policy = await policy_of(uow)
    cert = await live_certification(uow, person, track)
    if cert is not None:
        await advance(uow, cert, policy, today)
        if cert.status not in domain.LIVE:
            cert = None
    if cert is not None:
        if observation is not None and (t := domain.renewal(cert.to_domain(), observation.observed_on,
                                                            observation.passed, observation.id, policy, today)):
            await apply(uow, cert, t, policy)
        return cert
    if not await course_done(uow, person, policy.course_for(track)):
        return None
    since = await evidence_since(uow, person, track, policy, today)
    evidence = domain.initial_evidence(await passes(uow, person, track, since), policy, today)
    if evidence is None:
        return None
    t = domain.certify(evidence, policy, today)
    cert = Certification(id=str(uuid7()), agency_id=agency, person_id=person, track=track, status=t.status.value,
                         certified_on=today, expires_on=t.expires_on, window_opens_on=t.expires_on, revision=0,
                         evidence=list(t.evidence), created_at=utcnow(), updated_at=utcnow())
    uow.add(cert)
    latest = (await uow.scalars(select(Observation.instrument_id).where(
        Observation.id == evidence[-1].observation_id))).one()
    await apply(uow, cert, t, policy, instrument_id=latest)
    return cert


async def advance_certification(uow: UnitOfWork, certification_id: str, today: date) -> int:
    """What time alone does to one certification (open its window, lapse it): the transitions recorded."""
    cert = (await uow.scalars(select(Certification).where(Certification.id == certification_id)
                              .with_for_update())).one()
    if cert.status not in domain.LIVE:
        return 0  # another sweep got there first
    return await advance(uow, cert, await policy_of(uow), today)


async def sweep_certifications(db: Database, today: date | None = None) -> int:
    """The sweep chore: `advance_certification` for each live certification near its end, one transaction each.

    Safe on several replicas at once and more than once: each certification is locked and
    re-read, so a second sweep finds nothing left to do; event ids derive from the transition.
    """
    today = today or db.clock()
    horizon = today + timedelta(days=365)  # the longest window a policy allows: the domain decides the rest
    async with db.reader(all_agencies=True) as uow:
        candidates = (await uow.execute(
            select(Certification.id, Certification.agency_id)
            .where(Certification.status.in_([x.value for x in domain.LIVE]), Certification.expires_on <= horizon)
            .order_by(Certification.expires_on))).all()
    moved = 0
    for cert_id, agency in candidates:
        try:
            async with db.unit_of_work(agency=agency) as uow:
                moved += await advance_certification(uow, cert_id, today)
        except IntegrityError:  # another replica staged the same transition first
            log.info("certification %s: transition already recorded elsewhere", cert_id)
        except OperationalError as e:  # SQLite shared by two processes: busy; the next sweep finishes it
            log.warning("certification %s: %s; left for the next sweep", cert_id, e.orig)
    return moved


# ---- rater calibration ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AddReference:
    instrument_id: str
    title: str
    reference_rater: str
    scores: dict[str, int]
    by: Principal


@dataclass(frozen=True)
class Calibrate:
    rater: Principal
    scores: dict[str, int]
    reference_id: str | None = None
    observation_id: str | None = None
    cooldown_s: float = 0.0


@dataclass(frozen=True)
class Calibrated:
    row: Calibration
    reference_scores: dict[str, int]
    policy: domain.Policy


@dataclass(frozen=True)
class ListCalibrations:
    page: PageParams
    rater_id: str | None = None


async def rater_status(uow: UnitOfWork, rater: str, family: str,
                       policy: domain.Policy | None = None) -> domain.RaterStatus:
    """Whether `rater` may record observations on `family` now, and why (a query use case and a step)."""
    if policy is None:
        policy = await policy_of(uow)
    latest = (await uow.scalars(
        select(Calibration).where(Calibration.rater_id == rater, Calibration.family == family)
        .order_by(Calibration.calibrated_on.desc(), Calibration.created_at.desc()).limit(1))).first()
    return domain.rater_status(latest.calibrated_on if latest else None, latest.agreement if latest else None,
                               policy, uow.today)


def visible_references(agency: str) -> Select[tuple[CalibrationReference]]:
    return select(CalibrationReference).where(
        (CalibrationReference.agency_id.is_(None)) | (CalibrationReference.agency_id == agency))


async def list_references(uow: UnitOfWork, viewer: Principal, page: PageParams) -> list[CalibrationReference]:
    return list((await uow.scalars(paged(visible_references(viewer.agency), CalibrationReference.id, page))).all())


async def add_reference(uow: UnitOfWork, cmd: AddReference) -> CalibrationReference:
    """Platform admins add shared references, agency admins their own."""
    row = await uow.get(InstrumentRow, cmd.instrument_id)
    if row is None or row.status != domain.InstrumentStatus.ACTIVE:
        raise invalid([field_error("body.instrument_id", "must be an active instrument")], "The reference")
    if errors := score_errors(row.to_domain(), cmd.scores):
        raise invalid(errors, "The reference")
    ref = CalibrationReference(
        id=str(uuid7()), agency_id=None if cmd.by.has("platform_admin") else cmd.by.agency,
        instrument_id=row.id, title=cmd.title, reference_rater=cmd.reference_rater, scores=dict(cmd.scores),
        created_by=cmd.by.sub, created_at=utcnow())
    uow.add(ref)
    return ref


async def _refuse_replay(uow: UnitOfWork, cmd: Calibrate, family: str) -> None:
    """One blind attempt per reference, and a pause between attempts.

    Each attempt reveals the reference's coding, so a second attempt on the same reference (or live
    observation) would only replay it: refused. The cooldown keeps a rater from cycling through references.
    """
    mine = select(Calibration).where(Calibration.rater_id == cmd.rater.sub)
    seen = (Calibration.reference_id == cmd.reference_id if cmd.reference_id is not None
            else Calibration.observation_id == cmd.observation_id)
    if (await uow.scalars(mine.where(seen).limit(1))).first() is not None:
        raise Problem(409, "You have already scored this reference and seen its coding, so it no longer counts "
                           "for you; calibrate on another one.", slug="reference-seen")
    latest = (await uow.scalars(mine.where(Calibration.family == family)
                                .order_by(Calibration.created_at.desc()).limit(1))).first()
    if latest is not None and cmd.cooldown_s > 0:
        wait = cmd.cooldown_s - (utcnow() - latest.created_at).total_seconds()
        if wait > 0:
            retry = math.ceil(wait)
            raise Problem(429, f"Your last calibration on '{family}' was moments ago; try again in {retry} s.",
                          slug="calibration-cooldown", title="Too Many Requests",
                          headers={"Retry-After": str(retry)})


async def calibrate(uow: UnitOfWork, cmd: Calibrate) -> Calibrated:
    """Score a reference blind, or double-code a calibrated observer's live observation; one attempt each."""
    if (cmd.reference_id is None) == (cmd.observation_id is None):
        raise invalid([field_error("body", "give exactly one of reference_id and observation_id")])
    rater = cmd.rater
    policy = await policy_of(uow)
    if cmd.reference_id is not None:
        ref = (await uow.scalars(visible_references(rater.agency).where(
            CalibrationReference.id == cmd.reference_id))).one_or_none()
        if ref is None:
            raise Problem(404, f"No calibration reference {cmd.reference_id}.")
        if ref.created_by == rater.sub or rater.has("platform_admin"):
            raise Problem(409, "You can read this reference's master coding, so scoring it cannot calibrate you.",
                          slug="reference-seen")
        instrument_id, reference = ref.instrument_id, ref.scores
    else:
        live = await load_observation(uow, str(cmd.observation_id), rater)
        if rater.sub in (live.observer_id, live.practitioner_id):
            raise invalid([field_error("body.observation_id", "double-code someone else's observation of "
                                       "someone else")], "The calibration")
        # The live observation's scores are the reference only if its observer is a calibrated rater.
        status = await rater_status(uow, live.observer_id, live.instrument_family, policy)
        if not status.calibrated:
            raise invalid([field_error("body.observation_id", f"its observer is not calibrated ({status.reason}), "
                                       "so it cannot serve as a reference", code="reference-not-calibrated")],
                          "The calibration")
        instrument_id, reference = live.instrument_id, live.item_scores
    instrument = (await load_instrument(uow, instrument_id)).to_domain()
    if errors := score_errors(instrument, cmd.scores):
        raise invalid(errors, "The calibration")
    # Locked (a rostered rater's row): two attempts at once cannot both pass the checks below.
    await lock_person(uow, rater.agency, rater.sub)
    await _refuse_replay(uow, cmd, instrument.family)
    a = domain.agreement(instrument, cmd.scores, reference)
    row = Calibration(id=str(uuid7()), agency_id=rater.agency, rater_id=rater.sub, family=instrument.family,
                      instrument_id=instrument.id, reference_id=cmd.reference_id, observation_id=cmd.observation_id,
                      scores=dict(cmd.scores), agreement=a.exact_percent, total_difference=a.total_difference,
                      items_compared=a.items_compared, mismatched=a.mismatched, calibrated_on=uow.today,
                      created_at=utcnow())
    uow.add(row)
    return Calibrated(row, reference, policy)


async def list_calibrations(uow: UnitOfWork, q: ListCalibrations) -> tuple[list[Calibration], domain.Policy]:
    stmt = select(Calibration)
    if q.rater_id is not None:
        stmt = stmt.where(Calibration.rater_id == q.rater_id)
    policy = await policy_of(uow)
    return list((await uow.scalars(paged(stmt, Calibration.id, q.page))).all()), policy


# ---- drift ---------------------------------------------------------------------------------------


@dataclass
class DriftMetric:
    metric: str
    flagged: str | None
    ewma: float | None
    observations: int


@dataclass
class Drift:
    person_id: str
    family: str
    drifting: bool = False
    metrics: list[DriftMetric] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SeriesQuery:
    people: tuple[str, ...]
    family: str
    metric: str
    limit: int
    after: int | None = None  # the cursor: a point's seq (one person) or row id (several people)


async def drift_of(uow: UnitOfWork, people: tuple[str, ...]) -> list[Drift]:
    """Drift per person and instrument family, with each competency's series."""
    rows = list((await uow.scalars(select(DriftSeries).where(DriftSeries.person_id.in_(people))
                                   .order_by(DriftSeries.person_id, DriftSeries.family, DriftSeries.metric))).all())
    out: dict[tuple[str, str], Drift] = {}
    for r in rows:
        st = domain.SeriesState.from_json(r.state)
        d = out.setdefault((r.person_id, r.family), Drift(r.person_id, r.family))
        d.metrics.append(DriftMetric(metric=r.metric, flagged=r.flagged, ewma=st.ewma, observations=st.n))
        if r.flagged:
            d.drifting = True
            d.evidence = sorted({*d.evidence, *st.evidence})
    return list(out.values())


async def fidelity_series(uow: UnitOfWork, q: SeriesQuery) -> list[DriftPoint]:
    """One person's chart points on one series in `seq` order, `limit + 1` (the extra one says there is more)."""
    return await _points(uow, q, DriftPoint.seq)


async def people_fidelity_series(uow: UnitOfWork, q: SeriesQuery) -> list[DriftPoint]:
    """Several people's chart points on one series in the order recorded (row id), `limit + 1`."""
    return await _points(uow, q, DriftPoint.id)


async def _points(uow: UnitOfWork, q: SeriesQuery, order: Any) -> list[DriftPoint]:
    stmt = select(DriftPoint).where(DriftPoint.person_id.in_(q.people), DriftPoint.family == q.family,
                                    DriftPoint.metric == q.metric)
    if q.after is not None:
        stmt = stmt.where(order > q.after)
    return list((await uow.scalars(stmt.order_by(order).limit(q.limit + 1))).all())


def _metrics(obs: Observation) -> dict[str, float]:
    return {domain.TOTAL: obs.total_score, **obs.competency_scores}


async def _series(uow: UnitOfWork, person: str, family: str) -> dict[str, DriftSeries]:
    rows = await uow.scalars(select(DriftSeries).where(DriftSeries.person_id == person,
                                                       DriftSeries.family == family))
    return {r.metric: r for r in rows}


def _fold(series: dict[str, DriftSeries], obs: Observation, instrument: domain.Instrument,
          certified: bool) -> list[DriftPoint]:
    """Fold one observation into each of its series (constant work), returning the chart points."""
    points = []
    for metric, score in _metrics(obs).items():
        row = series.get(metric)
        if row is None:
            row = series[metric] = DriftSeries(id=str(uuid7()), agency_id=obs.agency_id, person_id=obs.practitioner_id,
                                               family=instrument.family, metric=metric,
                                               state=domain.SeriesState().to_json())
        state, point = domain.update(domain.SeriesState.from_json(row.state), metric, score, obs.id, certified)
        row.state, row.flagged, row.updated_at = state.to_json(), state.flagged, utcnow()
        points.append(DriftPoint(agency_id=obs.agency_id, person_id=obs.practitioner_id, family=instrument.family,
                                 metric=metric, seq=state.n, observation_id=obs.id, observed_on=obs.observed_on,
                                 certified=certified, score=score, ewma=point.ewma, centre=point.centre,
                                 lower_limit=point.lower_limit, upper_limit=point.upper_limit,
                                 pass_threshold=instrument.pass_threshold, flagged=point.flagged,
                                 state=state.to_json()))
    return points


_POINT_COLUMNS = tuple(c.key for c in DriftPoint.__table__.columns if c.key != "id")
# Core, not ORM, insert: the ORM splits a batch wherever a value is None (here `flagged`).
_INSERT_POINTS = insert(DriftPoint.__table__)


async def track_drift(uow: UnitOfWork, obs: Observation, instrument: domain.Instrument, certified: bool) -> None:
    series = await _series(uow, obs.practitioner_id, instrument.family)
    before = {m: r.flagged for m, r in series.items()}
    points = _fold(series, obs, instrument, certified)
    uow.add_all(series.values())
    # One multi-row INSERT for every metric's point (as ORM objects, SQLite would insert them one by
    # one to read back each id, which nothing here needs). The series are written first, as before.
    await uow.flush()
    await uow.execute(_INSERT_POINTS, [{k: getattr(p, k) for k in _POINT_COLUMNS} for p in points])
    await _drift_events(uow, obs, instrument, series, before, latest={p.metric: p for p in points})


async def replay_drift(uow: UnitOfWork, obs: Observation, instrument: domain.Instrument) -> None:
    """After an amendment: restore each series to its state before `obs` and fold again from there.

    Amendments are allowed for 7 days, so only the few observations since then are replayed.
    """
    person, family = obs.practitioner_id, instrument.family
    first = (await uow.scalars(select(DriftPoint.id).where(DriftPoint.observation_id == obs.id)
                               .order_by(DriftPoint.id).limit(1))).first()
    if first is None:
        return
    series = await _series(uow, person, family)
    before = {m: r.flagged for m, r in series.items()}
    later = list((await uow.scalars(select(DriftPoint).where(
        DriftPoint.person_id == person, DriftPoint.family == family, DriftPoint.id >= first)
        .order_by(DriftPoint.id))).all())
    for metric, row in series.items():
        prior = (await uow.scalars(select(DriftPoint.state).where(
            DriftPoint.person_id == person, DriftPoint.family == family, DriftPoint.metric == metric,
            DriftPoint.id < first).order_by(DriftPoint.id.desc()).limit(1))).first()
        row.state = prior if prior is not None else domain.SeriesState().to_json()
    order = list(dict.fromkeys(p.observation_id for p in later))
    certified = {p.observation_id: p.certified for p in later}
    for p in later:
        await uow.delete(p)
    await uow.flush()
    observations = {o.id: o for o in await uow.scalars(select(Observation).where(Observation.id.in_(order)))}
    for oid in order:
        uow.add_all(_fold(series, observations[oid], instrument, certified[oid]))
    await _drift_events(uow, obs, instrument, series, before)


async def _drift_events(uow: UnitOfWork, obs: Observation, instrument: domain.Instrument,
                        series: dict[str, DriftSeries], before: dict[str, str | None],
                        latest: dict[str, DriftPoint] | None = None) -> None:
    """`latest`: each metric's newest chart point when the caller has just made it (else it is read)."""
    today = uow.today
    after = {m: r.flagged for m, r in series.items()}
    change = domain.drift_change(before, after)
    states = {m: domain.SeriesState.from_json(r.state) for m, r in series.items()}
    total = states.get(domain.TOTAL, domain.SeriesState())
    latest = latest or {}
    if domain.TOTAL not in latest:
        newest = (await uow.scalars(select(DriftPoint).where(
            DriftPoint.person_id == obs.practitioner_id, DriftPoint.family == instrument.family,
            DriftPoint.metric == domain.TOTAL).order_by(DriftPoint.id.desc()).limit(1))).first()
        if newest is not None:
            latest[domain.TOTAL] = newest
    total_point = latest.get(domain.TOTAL)
    common = {"practitioner_id": obs.practitioner_id, "instrument_family": instrument.family,
              "track": instrument.track}
    if change.started or (change.newly_flagged and any(after.values())):
        slipping = await _slipping(uow, obs, instrument.family, after, latest)
        evidence = sorted({i for m in after if after[m] for i in states[m].evidence})
        await uow.emit(FidelityDriftDetected(
            **common, competencies=[s.metric for s in slipping if s.metric != domain.TOTAL], metrics=slipping,
            ewma=round(total.ewma or 0.0, 3), lower_limit=total_point.lower_limit if total_point else 0.0,
            pass_threshold=instrument.pass_threshold, latest_score=obs.total_score,
            observation_ids=evidence, detected_on=today), agency=obs.agency_id, subject=obs.practitioner_id)
    elif change.cleared:
        await uow.emit(FidelityDriftCleared(**common, ewma=round(total.ewma or 0.0, 3), observation_id=obs.id,
                                            cleared_on=today), agency=obs.agency_id, subject=obs.practitioner_id)


async def _slipping(uow: UnitOfWork, obs: Observation, family: str,
                    flags: dict[str, str | None], latest: dict[str, DriftPoint]) -> list[SlippingMetric]:
    out = []
    for metric, rule in sorted(flags.items()):
        if not rule:
            continue
        p = latest.get(metric) or (await uow.scalars(select(DriftPoint).where(
            DriftPoint.person_id == obs.practitioner_id, DriftPoint.family == family, DriftPoint.metric == metric)
            .order_by(DriftPoint.id.desc()).limit(1))).first()
        if p is not None:
            out.append(SlippingMetric(metric=metric, ewma=p.ewma, lower_limit=p.lower_limit, centre=p.centre,
                                      rule=rule))  # type: ignore[arg-type]
    return out


# ---- summaries -----------------------------------------------------------------------------------


async def summary(uow: UnitOfWork, agency: str, track: str) -> dict[str, Any]:
    """The fidelity summary of an agency and each of its teams, for one track."""
    today = uow.today
    role = "practitioner" if track == "practitioner" else "coach"
    t = ROSTER.t
    members = (await uow.execute(select(t.c.person_id, t.c.team_id, t.c.roles).where(
        t.c.agency_id == agency, t.c.status == "active"))).all()
    people = [(p, team) for p, team, roles in members if role in roles]
    certs = [domain.CertFact(c.person_id, domain.CertStatus(c.status), c.expires_on, c.window_opens_on, c.ended_on)
             for c in await uow.scalars(select(Certification).where(Certification.track == track))]
    since = today - timedelta(days=90)
    kind = domain.KIND_OF_TRACK[track]
    rows = (await uow.execute(
        select(Observation.practitioner_id, Observation.total_score)
        .join(InstrumentRow, InstrumentRow.id == Observation.instrument_id)
        .where(Observation.observed_on > since, Observation.observed_on <= today, InstrumentRow.kind == kind))).all()
    scores: dict[str, list[float]] = {}
    for person, score in rows:
        scores.setdefault(person, []).append(score)
    families = select(InstrumentRow.family).where(InstrumentRow.kind == kind)
    drifting = set((await uow.scalars(select(DriftSeries.person_id).where(
        DriftSeries.flagged.is_not(None), DriftSeries.family.in_(families)))).all())
    teams: dict[str | None, list[str]] = {}
    for person, team in people:
        teams.setdefault(team, []).append(person)
    everyone = [p for p, _ in people]
    return {
        "agency_id": agency, "track": track, "as_of": today,
        "full_implementation_percent": domain.FULL_IMPLEMENTATION_PERCENT,
        "agency": domain.summarize(everyone, certs, scores, drifting, today),
        "teams": [{"team_id": team, **domain.summarize(group, certs, scores, drifting, today)}
                  for team, group in sorted(teams.items(), key=lambda kv: kv[0] or "")],
    }


@dataclass(frozen=True)
class ShareHistoryQuery:
    agency: str
    track: str
    months: int = 12


# Said with every answer, because the roster copy keeps no join or leave dates: the denominator is the
# staff active today, at every month-end.
SHARE_HISTORY_BASIS = ("Each month-end counts today's active staff on the track and which of them held a "
                       "certification in force that day; people who have left are not counted, and people who "
                       "joined later count as not yet certified.")


async def certified_share_history(uow: UnitOfWork, q: ShareHistoryQuery) -> dict[str, Any]:
    """The certified share at each month-end up to today, against the Full Implementation line."""
    today = uow.today
    role = "practitioner" if q.track == "practitioner" else "coach"
    staff = [domain.StaffSpell(p) for p in await ROSTER.active_ids(uow, q.agency, role)]
    rows = (await uow.execute(select(Certification.person_id, Certification.certified_on, Certification.expires_on,
                                     Certification.ended_on).where(Certification.agency_id == q.agency,
                                                               Certification.track == q.track))).all()
    certs = [domain.CertSpell(p, on, expires, ended) for p, on, expires, ended in rows]
    return {"agency_id": q.agency, "track": q.track, "as_of": today,
            "full_implementation_percent": domain.FULL_IMPLEMENTATION_PERCENT, "basis": SHARE_HISTORY_BASIS,
            "points": domain.certified_share_history(staff, certs, today, q.months)}
