"""Steps shared by api.py, handlers.py and the sweep: load the facts a rule needs, apply it, stage events.

They run inside the caller's unit of work, so a change and its events commit together.
"""

from __future__ import annotations

import logging
import uuid
from datetime import date, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession
from uuid6 import uuid7

from contracts.fidelity import (
    CertificationLapsed,
    CertificationRenewed,
    CertificationRevoked,
    FidelityDriftCleared,
    FidelityDriftDetected,
    PractitionerCertified,
    RecertificationDue,
    SlippingMetric,
)
from services.fidelity import domain
from services.fidelity.models import (
    ROSTER,
    Calibration,
    Certification,
    CourseCompletion,
    DriftPoint,
    DriftSeries,
    InstrumentRow,
    Observation,
    PolicyRow,
    TimelineEntry,
)
from trellis.db import Database, add_event, utcnow
from trellis.envelope import Envelope, EventPayload

SOURCE = "trellis/fidelity"
log = logging.getLogger("trellis.fidelity")
# Certification events get ids derived from the certification and its revision, so a transition
# staged twice (two sweeps on two replicas) is the same event: the outbox refuses the second copy
# and NATS would drop it within its duplicate window.
TRANSITION_NS = uuid.UUID("6f1d0c38-5a0e-4c8e-9d65-2b1f4f7b9a10")


async def emit(session: AsyncSession, payload: EventPayload, *, agency: str, subject: str,
               event_id: str | None = None) -> None:
    await add_event(session, Envelope.wrap(payload, source=SOURCE, subject=subject, agency=agency, id=event_id))


async def policy_of(session: AsyncSession) -> domain.Policy:
    row = (await session.scalars(select(PolicyRow))).one_or_none()
    return domain.Policy(**row.settings) if row is not None else domain.Policy()


async def lock_person(session: AsyncSession, agency: str, person: str) -> None:
    """Serialises everything about one person (certification, drift) across concurrent requests."""
    t = ROSTER.t
    await session.execute(select(t.c.person_id).where(t.c.agency_id == agency, t.c.person_id == person)
                          .with_for_update())


# ---- certification -------------------------------------------------------------------------------


async def live_certification(session: AsyncSession, person: str, track: str) -> Certification | None:
    stmt = select(Certification).where(Certification.person_id == person, Certification.track == track,
                                       Certification.status.in_([s.value for s in domain.LIVE]))
    return (await session.scalars(stmt.with_for_update())).first()


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


async def apply(session: AsyncSession, cert: Certification, t: domain.Transition, policy: domain.Policy,
                *, actor: str | None = None, instrument_id: str = "") -> None:
    """Record one transition: the certification's row, its timeline entry and its event."""
    cert.status, cert.revision, cert.expires_on = t.status.value, t.revision, t.expires_on
    cert.window_opens_on = t.expires_on - timedelta(days=policy.window_days)
    if t.status in (domain.CertStatus.LAPSED, domain.CertStatus.REVOKED):
        cert.ended_on = t.on
    cert.updated_at = utcnow()
    session.add(TimelineEntry(id=str(uuid7()), agency_id=cert.agency_id, certification_id=cert.id,
                              person_id=cert.person_id, track=cert.track, revision=t.revision, status=t.status.value,
                              on=t.on, expires_on=t.expires_on, reason=t.reason, observation_ids=list(t.evidence),
                              actor=actor, created_at=utcnow()))
    event_id = str(uuid.uuid5(TRANSITION_NS, f"{cert.id}/{t.revision}"))
    await emit(session, _event(cert, t, actor, instrument_id), agency=cert.agency_id, subject=cert.person_id,
               event_id=event_id)


async def advance(session: AsyncSession, cert: Certification, policy: domain.Policy, today: date) -> int:
    steps = domain.due_transitions(cert.to_domain(), policy, today)
    for t in steps:
        await apply(session, cert, t, policy)
    return len(steps)


async def passes(session: AsyncSession, person: str, track: str, since: date) -> list[domain.Pass]:
    """Passing observations of `person` on their track's instruments since `since` (bounded by the look-back)."""
    kind = domain.KIND_OF_TRACK[track]
    stmt = (select(Observation.id, Observation.observed_on)
            .join(InstrumentRow, InstrumentRow.id == Observation.instrument_id)
            .where(Observation.practitioner_id == person, Observation.passed.is_(True),
                   Observation.observed_on > since, InstrumentRow.kind == kind))
    return [domain.Pass(i, d) for i, d in (await session.execute(stmt)).all()]


async def course_done(session: AsyncSession, person: str, course: str | None) -> bool:
    if course is None:
        return True
    stmt = select(CourseCompletion.id).where(CourseCompletion.person_id == person,
                                             CourseCompletion.course_key == course)
    return (await session.scalars(stmt)).first() is not None


async def evidence_since(session: AsyncSession, person: str, track: str, policy: domain.Policy, today: date) -> date:
    """Passes count towards a new certification if inside the look-back and after the last one ended:
    a revoked or lapsed certification's evidence never certifies again."""
    ended = (await session.scalars(select(Certification.ended_on).where(
        Certification.person_id == person, Certification.track == track, Certification.ended_on.is_not(None))
        .order_by(Certification.ended_on.desc()).limit(1))).first()
    since = today - timedelta(days=policy.lookback_days)
    return max(since, ended) if ended else since


async def certification_progress(session: AsyncSession, person: str, track: str, policy: domain.Policy,
                                 today: date) -> list[str]:
    since = await evidence_since(session, person, track, policy, today)
    return domain.missing_for_certification(track, await course_done(session, person, policy.course_for(track)),
                                            await passes(session, person, track, since), policy, today)


async def evaluate(session: AsyncSession, agency: str, person: str, track: str, today: date,
                   observation: Observation | None = None) -> Certification | None:
    """Bring a person's certification up to date: time first (window, lapse), then the new evidence.

    Returns the live certification afterwards, if any. The caller holds the person's lock.
    """
    policy = await policy_of(session)
    cert = await live_certification(session, person, track)
    if cert is not None:
        await advance(session, cert, policy, today)
        if cert.status not in domain.LIVE:
            cert = None
    if cert is not None:
        if observation is not None and (t := domain.renewal(cert.to_domain(), observation.observed_on,
                                                            observation.passed, observation.id, policy, today)):
            await apply(session, cert, t, policy)
        return cert
    if not await course_done(session, person, policy.course_for(track)):
        return None
    since = await evidence_since(session, person, track, policy, today)
    evidence = domain.initial_evidence(await passes(session, person, track, since), policy, today)
    if evidence is None:
        return None
    t = domain.certify(evidence, policy, today)
    cert = Certification(id=str(uuid7()), agency_id=agency, person_id=person, track=track, status=t.status.value,
                         certified_on=today, expires_on=t.expires_on, window_opens_on=t.expires_on, revision=0,
                         evidence=list(t.evidence), created_at=utcnow(), updated_at=utcnow())
    session.add(cert)
    latest = (await session.scalars(select(Observation.instrument_id).where(
        Observation.id == evidence[-1].observation_id))).one()
    await apply(session, cert, t, policy, instrument_id=latest)
    return cert


async def sweep_certifications(db: Database, today: date | None = None) -> int:
    """Apply what time alone does (open windows, lapse), one transaction per certification.

    Safe on several replicas at once and more than once: each certification is locked and
    re-read, so a second sweep finds nothing left to do; event ids derive from the transition.
    """
    today = today or db.clock()
    horizon = today + timedelta(days=365)  # the longest window a policy allows: the domain decides the rest
    async with db.reader(all_agencies=True) as s:
        candidates = (await s.execute(
            select(Certification.id, Certification.agency_id)
            .where(Certification.status.in_([x.value for x in domain.LIVE]), Certification.expires_on <= horizon)
            .order_by(Certification.expires_on))).all()
    moved = 0
    for cert_id, agency in candidates:
        try:
            async with db.unit_of_work(agency=agency) as s:
                cert = (await s.scalars(select(Certification).where(Certification.id == cert_id)
                                        .with_for_update())).one()
                if cert.status in domain.LIVE:
                    moved += await advance(s, cert, await policy_of(s), today)
        except IntegrityError:  # another replica staged the same transition first
            log.info("certification %s: transition already recorded elsewhere", cert_id)
        except OperationalError as e:  # SQLite shared by two processes: busy; the next sweep finishes it
            log.warning("certification %s: %s; left for the next sweep", cert_id, e.orig)
    return moved


# ---- rater calibration ---------------------------------------------------------------------------


async def rater_status(session: AsyncSession, rater: str, family: str, policy: domain.Policy,
                       today: date) -> domain.RaterStatus:
    latest = (await session.scalars(
        select(Calibration).where(Calibration.rater_id == rater, Calibration.family == family)
        .order_by(Calibration.calibrated_on.desc(), Calibration.created_at.desc()).limit(1))).first()
    return domain.rater_status(latest.calibrated_on if latest else None, latest.agreement if latest else None,
                               policy, today)


# ---- drift ---------------------------------------------------------------------------------------


def _metrics(obs: Observation) -> dict[str, float]:
    return {domain.TOTAL: obs.total_score, **obs.competency_scores}


async def _series(session: AsyncSession, person: str, family: str) -> dict[str, DriftSeries]:
    rows = await session.scalars(select(DriftSeries).where(DriftSeries.person_id == person,
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


async def track_drift(session: AsyncSession, obs: Observation, instrument: domain.Instrument, certified: bool,
                      today: date) -> None:
    series = await _series(session, obs.practitioner_id, instrument.family)
    before = {m: r.flagged for m, r in series.items()}
    points = _fold(series, obs, instrument, certified)
    session.add_all([*series.values(), *points])
    await _drift_events(session, obs, instrument, series, before, today)


async def replay_drift(session: AsyncSession, obs: Observation, instrument: domain.Instrument, today: date) -> None:
    """After an amendment: restore each series to its state before `obs` and fold again from there.

    Amendments are allowed for 7 days, so only the few observations since then are replayed.
    """
    person, family = obs.practitioner_id, instrument.family
    first = (await session.scalars(select(DriftPoint.id).where(DriftPoint.observation_id == obs.id)
                                   .order_by(DriftPoint.id).limit(1))).first()
    if first is None:
        return
    series = await _series(session, person, family)
    before = {m: r.flagged for m, r in series.items()}
    later = list((await session.scalars(select(DriftPoint).where(
        DriftPoint.person_id == person, DriftPoint.family == family, DriftPoint.id >= first)
        .order_by(DriftPoint.id))).all())
    for metric, row in series.items():
        prior = (await session.scalars(select(DriftPoint.state).where(
            DriftPoint.person_id == person, DriftPoint.family == family, DriftPoint.metric == metric,
            DriftPoint.id < first).order_by(DriftPoint.id.desc()).limit(1))).first()
        row.state = prior if prior is not None else domain.SeriesState().to_json()
    order = list(dict.fromkeys(p.observation_id for p in later))
    certified = {p.observation_id: p.certified for p in later}
    for p in later:
        await session.delete(p)
    await session.flush()
    observations = {o.id: o for o in await session.scalars(select(Observation).where(Observation.id.in_(order)))}
    for oid in order:
        session.add_all(_fold(series, observations[oid], instrument, certified[oid]))
    await _drift_events(session, obs, instrument, series, before, today)


async def _drift_events(session: AsyncSession, obs: Observation, instrument: domain.Instrument,
                        series: dict[str, DriftSeries], before: dict[str, str | None], today: date) -> None:
    after = {m: r.flagged for m, r in series.items()}
    change = domain.drift_change(before, after)
    states = {m: domain.SeriesState.from_json(r.state) for m, r in series.items()}
    total = states.get(domain.TOTAL, domain.SeriesState())
    latest = (await session.scalars(select(DriftPoint).where(
        DriftPoint.person_id == obs.practitioner_id, DriftPoint.family == instrument.family,
        DriftPoint.metric == domain.TOTAL).order_by(DriftPoint.id.desc()).limit(1))).first()
    common = {"practitioner_id": obs.practitioner_id, "instrument_family": instrument.family,
              "track": instrument.track}
    if change.started or (change.newly_flagged and any(after.values())):
        slipping = await _slipping(session, obs, instrument.family, after)
        evidence = sorted({i for m in after if after[m] for i in states[m].evidence})
        await emit(session, FidelityDriftDetected(
            **common, competencies=[s.metric for s in slipping if s.metric != domain.TOTAL], metrics=slipping,
            ewma=round(total.ewma or 0.0, 3), lower_limit=latest.lower_limit if latest else 0.0,
            pass_threshold=instrument.pass_threshold, latest_score=obs.total_score,
            observation_ids=evidence, detected_on=today), agency=obs.agency_id, subject=obs.practitioner_id)
    elif change.cleared:
        await emit(session, FidelityDriftCleared(**common, ewma=round(total.ewma or 0.0, 3), observation_id=obs.id,
                                                 cleared_on=today), agency=obs.agency_id, subject=obs.practitioner_id)


async def _slipping(session: AsyncSession, obs: Observation, family: str,
                    flags: dict[str, str | None]) -> list[SlippingMetric]:
    out = []
    for metric, rule in sorted(flags.items()):
        if not rule:
            continue
        p = (await session.scalars(select(DriftPoint).where(
            DriftPoint.person_id == obs.practitioner_id, DriftPoint.family == family, DriftPoint.metric == metric)
            .order_by(DriftPoint.id.desc()).limit(1))).first()
        if p is not None:
            out.append(SlippingMetric(metric=metric, ewma=p.ewma, lower_limit=p.lower_limit, centre=p.centre,
                                      rule=rule))  # type: ignore[arg-type]
    return out


# ---- an observation's consequences ---------------------------------------------------------


async def consequences(s: AsyncSession, obs: Observation, instrument: domain.Instrument, today: date,
                       *, amended: bool = False, new_pass: bool = True) -> None:
    """What an observation (or its amendment) means for certification, then for drift.

    An amendment may renew only if it turned a fail into a pass: a pass that renewed once never renews again.
    """
    certified = False
    if instrument.track is not None:
        cert = await evaluate(s, obs.agency_id, obs.practitioner_id, instrument.track, today,
                                        obs if new_pass else None)
        certified = cert is not None
    if amended:
        await replay_drift(s, obs, instrument, today)
    else:
        await track_drift(s, obs, instrument, certified, today)


# ---- summaries -----------------------------------------------------------------------------------


async def summary(session: AsyncSession, agency: str, track: str, today: date) -> dict[str, Any]:
    """The fidelity summary of an agency and each of its teams, for one track."""
    role = "practitioner" if track == "practitioner" else "coach"
    t = ROSTER.t
    members = (await session.execute(select(t.c.person_id, t.c.team_id, t.c.roles).where(
        t.c.agency_id == agency, t.c.status == "active"))).all()
    people = [(p, team) for p, team, roles in members if role in roles]
    certs = [domain.CertFact(c.person_id, domain.CertStatus(c.status), c.expires_on, c.window_opens_on, c.ended_on)
             for c in await session.scalars(select(Certification).where(Certification.track == track))]
    since = today - timedelta(days=90)
    kind = domain.KIND_OF_TRACK[track]
    rows = (await session.execute(
        select(Observation.practitioner_id, Observation.total_score)
        .join(InstrumentRow, InstrumentRow.id == Observation.instrument_id)
        .where(Observation.observed_on > since, Observation.observed_on <= today, InstrumentRow.kind == kind))).all()
    scores: dict[str, list[float]] = {}
    for person, score in rows:
        scores.setdefault(person, []).append(score)
    families = select(InstrumentRow.family).where(InstrumentRow.kind == kind)
    drifting = set((await session.scalars(select(DriftSeries.person_id).where(
        DriftSeries.flagged.is_not(None), DriftSeries.family.in_(families)))).all())
    teams: dict[str | None, list[str]] = {}
    for person, team in people:
        teams.setdefault(team, []).append(person)
    everyone = [p for p, _ in people]
    return {
        "agency_id": agency, "track": track, "as_of": today,
        "agency": domain.summarize(everyone, certs, scores, drifting, today),
        "teams": [{"team_id": team, **domain.summarize(group, certs, scores, drifting, today)}
                  for team, group in sorted(teams.items(), key=lambda kv: kv[0] or "")],
    }

