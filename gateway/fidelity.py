"""The fidelity service in the graph: instruments and their versions, observations and amendments,
certification, drift, rater calibration, the certification policy and the agency summary.

Types are derived from the generated models of the service's REST bodies (gateway.upstream.fidelity):
a field the service renames fails at import, not in a resolver. Hand-written only where GraphQL differs
from REST: scores are a list of {item, score} here and an object there, and inputs, which the service
validates. Nested fields are resolvers, so a field that is not asked for costs no upstream call. This
module imports neither gateway.schema nor gateway.readiness; they import its types."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import asdict
from datetime import date
from functools import partial
from typing import Annotated, Any
from urllib.parse import quote
from uuid import UUID

import strawberry
from strawberry.experimental.pydantic import input as input_from_model
from strawberry.scalars import JSON

from gateway.clients import MAX_PAGE, FromRest, Inputs, from_model, input_error, rest_body
from gateway.context import Ctx
from gateway.loaders import grouped
from gateway.upstream import fidelity as rest

IdempotencyKey = Annotated[str | None, strawberry.argument(
    description="Makes a retried mutation safe (the service honours it on POST)")]


def seg(value: Any) -> str:
    return quote(str(value), safe="")  # an id cannot reach another route


# ---- scores: {item: score} over REST, a list of {item, score} in the graph (REST takes both) -----------


@strawberry.type
class CompetencyScore:
    competency: str
    score: float


@from_model(model=rest.ItemScoreIn, all_fields=True)
class ItemScore(FromRest):
    pass


@input_from_model(model=rest.ItemScoreIn, all_fields=True)
class ItemScoreInput:
    pass


def item_scores(scores: Mapping[str, int]) -> list[ItemScore]:
    return [ItemScore(item=k, score=v) for k, v in scores.items()]  # type: ignore[call-arg]


def score_list(scores: list[ItemScoreInput], at: str) -> list[dict[str, Any]]:
    """The list as REST takes it. An item scored twice is refused here, before any upstream call, at its
    GraphQL input path (`at` is where the list is: `input.scores`, or `scores`)."""
    seen: set[str] = set()
    for i, s in enumerate(scores):
        if s.item in seen:
            raise input_error(f"item '{s.item}' is scored twice", f"{at}[{i}].item")
        seen.add(s.item)
    return [{"item": s.item, "score": s.score} for s in scores]


def scored(scores: list[ItemScoreInput], root: str = "") -> Inputs:
    """Where a body with these scores came from, so the service's `body.scores.<item>` names `scores[i].score`."""
    return Inputs(root, scores=[s.item for s in scores])


# ---- instruments ---------------------------------------------------------------------------------


@from_model(model=rest.ItemOut)
class InstrumentItem(FromRest):
    key: strawberry.auto
    label: strawberry.auto
    competency: strawberry.auto
    scale_min: strawberry.auto
    scale_max: strawberry.auto
    critical: strawberry.auto
    critical_min: strawberry.auto = strawberry.field(
        description="A critical item scored below this fails the observation")
    required: strawberry.auto
    weight: strawberry.auto


@from_model(model=rest.InstrumentOut)
class Instrument(FromRest):
    id: strawberry.ID
    family: strawberry.auto = strawberry.field(
        description="Stable key shared by every version, e.g. miiwrap-practice")
    kind: strawberry.auto = strawberry.field(
        description="practice_observation, coaching_observation or record_review")
    track: strawberry.auto = strawberry.field(description="Whose certification its observations count towards")
    name: strawberry.auto
    description: strawberry.auto
    version: strawberry.auto
    status: strawberry.auto = strawberry.field(description="draft, active or retired")
    pass_threshold: strawberry.auto
    competencies: strawberry.auto
    items: strawberry.auto
    created_at: strawberry.auto
    activated_at: strawberry.auto
    retired_at: strawberry.auto


@strawberry.input
class InstrumentItemInput:
    key: str = strawberry.field(description="lower_snake_case, unique in the instrument")
    label: str
    competency: str
    scale_min: int = 0
    scale_max: int = 2
    critical: bool = False
    critical_min: int = strawberry.field(default=1, description="A critical item scored below this fails the "
                                                                "observation")
    required: bool = True
    weight: float = 1.0


def items_of(items: list[InstrumentItemInput]) -> list[dict[str, Any]]:
    return [rest_body(rest.ItemIn, **asdict(i)) for i in items]


@strawberry.input
class CreateInstrumentInput:
    family: str = strawberry.field(description="Stable key shared by every version: lower-case letters, digits, "
                                               "dashes")
    kind: str = strawberry.field(description="practice_observation, coaching_observation or record_review")
    name: str
    items: list[InstrumentItemInput]
    description: str = ""
    pass_threshold: float = 80.0


@strawberry.input(description="Only the fields given change; items, when given, replace them all")
class EditInstrumentInput:
    name: str | None = strawberry.UNSET
    description: str | None = strawberry.UNSET
    pass_threshold: float | None = strawberry.UNSET
    items: list[InstrumentItemInput] | None = strawberry.UNSET


# ---- observations --------------------------------------------------------------------------------


@from_model(model=rest.AmendmentOut)
class Amendment(FromRest):
    number: strawberry.auto
    amended_by: strawberry.ID
    reason: strawberry.auto
    previous_total: strawberry.auto
    previous_passed: strawberry.auto
    total_score: strawberry.auto
    passed: strawberry.auto
    created_at: strawberry.auto

    @strawberry.field
    def previous_scores(self) -> list[ItemScore]:
        return item_scores(self.rest(rest.AmendmentOut).previous_scores)

    @strawberry.field
    def scores(self) -> list[ItemScore]:
        return item_scores(self.rest(rest.AmendmentOut).scores)


@from_model(model=rest.ObservationOut)
class Observation(FromRest):
    id: strawberry.ID
    practitioner_id: strawberry.ID
    observer_id: strawberry.ID
    instrument_id: strawberry.ID
    instrument_version: strawberry.auto
    instrument_family: strawberry.auto
    kind: strawberry.auto = strawberry.field(description="live_observation, recording_review or record_review")
    observed_on: strawberry.auto
    setting: strawberry.auto
    notes: strawberry.auto
    score: strawberry.auto = strawberry.field(description="Total as a percentage of the instrument's maximum")
    passed: strawberry.auto
    competency_scores: JSON = strawberry.field(description="Competency → percent, e.g. {\"Team process\": 75.0}")
    amendments: strawberry.auto = strawberry.field(description="How many times it was amended")
    amendable_until: strawberry.auto = strawberry.field(description="The last day its observer may amend it")
    created_at: strawberry.auto

    @strawberry.field(description="The same scores as a typed list")
    def competencies(self) -> list[CompetencyScore]:
        got = self.rest(rest.ObservationOut).competency_scores
        return [CompetencyScore(competency=k, score=v) for k, v in got.items()]

    @strawberry.field
    def item_scores(self) -> list[ItemScore]:
        return item_scores(self.rest(rest.ObservationOut).scores)

    @strawberry.field(description="Its amendments, oldest first, each with the scores it replaced")
    async def amendment_history(self, info: Ctx) -> list[Amendment]:
        if not self.amendments:
            return []  # nothing to fetch
        rows = await info.context.fidelity.get_list(f"/v1/observations/{seg(self.id)}/amendments",
                                                    into=rest.AmendmentOut)
        return [Amendment.from_rest(a) for a in rows]


@strawberry.input
class RecordObservationInput:
    practitioner_id: strawberry.ID
    instrument_id: strawberry.ID
    observed_on: date
    setting: str
    scores: list[ItemScoreInput]
    kind: str | None = strawberry.field(default=None, description="live_observation (the default), "
                                                                  "recording_review or record_review")
    notes: str = ""
    idempotency_key: str | None = strawberry.field(default=None, description="Makes a retried mutation safe")


# ---- certification -------------------------------------------------------------------------------


@from_model(model=rest.CertificationOut)
class Certification(FromRest):
    id: strawberry.ID
    person_id: strawberry.ID
    track: strawberry.auto
    status: strawberry.auto = strawberry.field(description="certified, recertification_due, lapsed or revoked")
    certified_on: strawberry.auto
    expires_on: strawberry.auto
    window_opens_on: strawberry.auto = strawberry.field(description="When the recertification window opens")
    revision: strawberry.auto
    evidence: list[strawberry.ID] = strawberry.field(description="The observations it rests on")
    ended_on: strawberry.auto


@from_model(model=rest.TimelineOut)
class CertificationStep(FromRest):
    certification_id: strawberry.ID
    revision: strawberry.auto
    status: strawberry.auto
    on: strawberry.auto
    expires_on: strawberry.auto
    reason: strawberry.auto
    observation_ids: list[strawberry.ID]
    actor: strawberry.ID | None = strawberry.field(description="Who made the change; null when time or evidence did")


@from_model(model=rest.PersonCertificationOut)
class PersonCertification(FromRest):
    person_id: strawberry.ID
    track: strawberry.auto
    status: strawberry.auto = strawberry.field(
        description="certified, recertification_due, lapsed, revoked or not_certified")
    current: strawberry.auto = strawberry.field(description="The certification in force, if any")
    missing: strawberry.auto = strawberry.field(description="What is still needed to certify (when not certified)")
    timeline: strawberry.auto = strawberry.field(description="Every state of every certification, oldest first")

    @strawberry.field(description="The current certification's expiry; null when none is in force")
    def expires_on(self) -> date | None:
        return self.current.expires_on if self.current else None


@from_model(model=rest.PolicyIO)
class CertificationPolicy(FromRest):
    required_passes: strawberry.auto = strawberry.field(
        description="Passing observations needed for initial certification")
    lookback_days: strawberry.auto
    min_gap_days: strawberry.auto
    valid_months: strawberry.auto
    window_days: strawberry.auto = strawberry.field(
        description="The recertification window opens this long before expiry")
    calibration_agreement: strawberry.auto
    calibration_valid_days: strawberry.auto
    practitioner_course: strawberry.auto
    coach_course: strawberry.auto


@strawberry.input(description="The whole policy: fields left out take the service's defaults, not their "
                              "current values; a course of null means no course is required")
class CertificationPolicyInput:
    required_passes: int | None = strawberry.UNSET
    lookback_days: int | None = strawberry.UNSET
    min_gap_days: int | None = strawberry.UNSET
    valid_months: int | None = strawberry.UNSET
    window_days: int | None = strawberry.UNSET
    calibration_agreement: float | None = strawberry.UNSET
    calibration_valid_days: int | None = strawberry.UNSET
    practitioner_course: str | None = strawberry.UNSET
    coach_course: str | None = strawberry.UNSET


# ---- drift ---------------------------------------------------------------------------------------


@from_model(model=rest.PeopleSeriesPointOut)
class FidelityPoint(FromRest):
    observation_id: strawberry.ID
    observed_on: strawberry.auto
    seq: strawberry.auto
    score: strawberry.auto
    ewma: strawberry.auto
    centre: strawberry.auto
    lower_limit: strawberry.auto
    upper_limit: strawberry.auto
    pass_threshold: strawberry.auto
    flagged: strawberry.auto = strawberry.field(description="The rule that flagged the series at this point, if any")


@from_model(model=rest.DriftMetricOut)
class DriftMetric(FromRest):
    metric: strawberry.auto = strawberry.field(description="total, or a competency")
    flagged: strawberry.auto
    ewma: strawberry.auto
    observations: strawberry.auto


@from_model(model=rest.DriftOut)
class Drift(FromRest):
    family: strawberry.auto
    drifting: strawberry.auto
    metrics: strawberry.auto
    evidence: list[strawberry.ID] = strawberry.field(description="Observations behind a flagged series")


@strawberry.type
class PractitionerFidelity:
    """Fields of Practitioner served by the fidelity service (gateway.schema's Practitioner extends it)."""

    id: strawberry.ID

    @strawberry.field(description="Certification on a track (practitioner or coach): status, what is missing, "
                                  "and the whole timeline")
    async def certification(self, info: Ctx, track: str = "practitioner") -> PersonCertification:
        loader = info.context.loaders.get("certification", lambda: grouped(partial(certifications, info)))
        return PersonCertification.from_rest(await loader.load((track, str(self.id))))

    @strawberry.field(description="Chart data, oldest first: each observation's score on an instrument family, "
                                  "the EWMA, the control limits and the pass threshold")
    async def fidelity_series(self, info: Ctx, family: str = "miiwrap-practice",
                              metric: str = "total") -> list[FidelityPoint]:
        loader = info.context.loaders.get("fidelity_series", lambda: grouped(partial(series, info)))
        return [FidelityPoint.from_rest(p) for p in await loader.load(((family, metric), str(self.id)))]

    @strawberry.field(description="Whether practice is drifting, per instrument family")
    async def drift(self, info: Ctx) -> list[Drift]:
        loader = info.context.loaders.get("drift", lambda: grouped(partial(drift, info)))
        return [Drift.from_rest(d) for d in await loader.load(((), str(self.id)))]

    @strawberry.field(description="Observations of this practitioner, oldest first")
    async def observations(self, info: Ctx) -> list[Observation]:
        return [Observation.from_rest(o) for o in await info.context.loaders.observations.load(str(self.id))]


# The batch loads behind PractitionerFidelity: all the people of one level in one call per field.
# A person's id is matched in its canonical form, which is how the service answers.


def people(ids: list[str]) -> list[tuple[str, str]]:
    return [("person_id", i) for i in ids]


async def certifications(info: Ctx, track: str, ids: list[str]) -> dict[str, rest.PersonCertificationOut]:
    rows = await info.context.fidelity.get_list("/v1/people/certification", [("track", track), *people(ids)],
                                                into=rest.PersonCertificationOut)
    got = {r.person_id: r for r in rows}
    return {i: got[str(UUID(i))] for i in ids}


async def drift(info: Ctx, _: tuple[()], ids: list[str]) -> dict[str, list[rest.DriftOut]]:
    rows = await info.context.fidelity.get_list("/v1/people/drift", people(ids), into=rest.DriftOut)
    got: dict[str, list[rest.DriftOut]] = defaultdict(list)
    for r in rows:
        got[r.person_id].append(r)
    return {i: got.get(str(UUID(i)), []) for i in ids}


async def series(info: Ctx, args: tuple[str, str], ids: list[str]) -> dict[str, list[rest.PeopleSeriesPointOut]]:
    family, metric = args
    rows = await info.context.fidelity.get_all("/v1/people/fidelity-series",
                                               [("family", family), ("metric", metric), *people(ids)],
                                               page=rest.PeopleSeriesPage, page_size=MAX_PAGE)
    got: dict[str, list[rest.PeopleSeriesPointOut]] = defaultdict(list)
    for r in rows:
        got[r.person_id].append(r)
    return {i: sorted(got.get(str(UUID(i)), []), key=lambda p: p.seq) for i in ids}


# ---- the agency summary --------------------------------------------------------------------------


@from_model(model=rest.DistributionBin)
class ScoreBin(FromRest):
    from_: strawberry.auto  # "from" in the graph too: the model's alias
    to: strawberry.auto = strawberry.field(description="Exclusive, except 100")
    count: strawberry.auto


@from_model(model=rest.GroupSummary, all_fields=True)
class FidelityFigures(FromRest):
    pass


@from_model(model=rest.TeamSummary, all_fields=True)
class TeamFidelityFigures(FromRest):
    team_id: strawberry.ID | None = strawberry.field(description="null: people in no team")


@from_model(model=rest.SummaryOut)
class FidelitySummary(FromRest):
    agency_id: strawberry.ID
    track: strawberry.auto
    as_of: strawberry.auto
    full_implementation_percent: strawberry.auto = strawberry.field(
        description="NIRN's Full Implementation line (50): at least this share of the track's staff certified")
    agency: strawberry.auto
    teams: strawberry.auto


@from_model(model=rest.SharePointOut)
class CertifiedSharePoint(FromRest):
    month: strawberry.auto = strawberry.field(description="YYYY-MM")
    on: strawberry.auto = strawberry.field(description="The month's last day, or today for the current month")
    active: strawberry.auto = strawberry.field(description="Active staff on the track counted that day")
    certified: strawberry.auto = strawberry.field(description="How many of them held a certification in force")
    certified_percent: strawberry.auto = strawberry.field(description="null when nobody was counted")


async def fidelity_summary(info: Ctx, agency_id: str, track: str) -> FidelitySummary:
    """For gateway.readiness's Agency.fidelitySummary."""
    got = await info.context.fidelity.get(f"/v1/agencies/{seg(agency_id)}/fidelity-summary", {"track": track},
                                          into=rest.SummaryOut)
    return FidelitySummary.from_rest(got)


SHARE_HISTORY_DESCRIPTION = (
    "From the fidelity service: the certified share at each month-end up to today (months 1-36, the current "
    "month's point is today), to chart against fidelitySummary's fullImplementationPercent. The counts rest on "
    "today's active staff on the track: people who have left are not counted, and people who joined later "
    "count as not yet certified.")


async def certified_share_history(info: Ctx, agency_id: str, track: str, months: int) -> list[CertifiedSharePoint]:
    """For gateway.readiness's Agency.certifiedShareHistory."""
    got = await info.context.fidelity.get(f"/v1/agencies/{seg(agency_id)}/fidelity-summary/history",
                                          {"track": track, "months": months}, into=rest.ShareHistoryOut)
    return [CertifiedSharePoint.from_rest(p) for p in got.points]


# ---- rater calibration ---------------------------------------------------------------------------


@from_model(model=rest.CalibrationOut)
class Calibration(FromRest):
    id: strawberry.ID
    rater_id: strawberry.ID
    family: strawberry.auto
    instrument_id: strawberry.ID
    reference_id: strawberry.ID | None
    observation_id: strawberry.ID | None
    agreement: strawberry.auto = strawberry.field(description="Exact-match agreement on items, percent")
    total_difference: strawberry.auto = strawberry.field(
        description="Rater's total minus the reference's, percentage points")
    items_compared: strawberry.auto
    mismatched: strawberry.auto
    calibrated_on: strawberry.auto
    calibrated: strawberry.auto = strawberry.field(description="Whether this result makes the rater calibrated")

    @strawberry.field(description="Shown once the rater has scored")
    def reference_scores(self) -> list[ItemScore]:
        return item_scores(self.rest(rest.CalibrationOut).reference_scores)


@from_model(model=rest.ReferenceOut)
class CalibrationReference(FromRest):
    id: strawberry.ID
    agency_id: strawberry.ID | None = strawberry.field(description="null: shared by every agency")
    instrument_id: strawberry.ID
    title: strawberry.auto
    reference_rater: strawberry.auto
    created_at: strawberry.auto

    @strawberry.field(description="The master coding: platform admins only")
    def scores(self) -> list[ItemScore] | None:
        got = self.rest(rest.ReferenceOut).scores
        return item_scores(got) if got is not None else None


@from_model(model=rest.RaterStatusOut)
class RaterStatus(FromRest):
    rater_id: strawberry.ID
    family: strawberry.auto
    calibrated: strawberry.auto
    reason: strawberry.auto
    valid_until: strawberry.auto


# ---- root fields ---------------------------------------------------------------------------------

MAX_OBSERVATIONS = 100  # one upstream page: a longer history is Practitioner.observations


def id_param(value: strawberry.ID | None, rest_name: str, arg: str) -> list[tuple[str, str]]:
    """A query parameter from an ID argument; a malformed id is refused here, named by its argument."""
    if value is None:
        return []
    try:
        return [(rest_name, str(UUID(str(value))))]
    except ValueError:
        raise input_error(f"'{value}' is not an id", arg) from None


@strawberry.type
class FidelityQuery:
    @strawberry.field(description="Observations in your agency, newest recorded first: those an observer recorded, "
                                  f"of a practitioner, or both; first is 1-{MAX_OBSERVATIONS}")
    async def observations(self, info: Ctx, observer_id: strawberry.ID | None = None,
                           practitioner_id: strawberry.ID | None = None, first: int = 20) -> list[Observation]:
        if not 1 <= first <= MAX_OBSERVATIONS:
            raise input_error(f"first must be between 1 and {MAX_OBSERVATIONS}", "first")
        params = [*id_param(observer_id, "observer_id", "observerId"),
                  *id_param(practitioner_id, "practitioner_id", "practitionerId"),
                  ("order", "newest"), ("limit", str(first))]
        got = await info.context.fidelity.get("/v1/observations", params, into=rest.ObservationPage)
        return [Observation.from_rest(o) for o in got.items]

    @strawberry.field(description="Instrument versions with their items; status is draft, active or retired")
    async def instruments(self, info: Ctx, status: str | None = None, family: str | None = None,
                          kind: str | None = None) -> list[Instrument]:
        params = [(k, v) for k, v in (("status", status), ("family", family), ("kind", kind)) if v is not None]
        rows = await info.context.fidelity.get_all("/v1/instruments", params, page=rest.InstrumentPage)
        return [Instrument.from_rest(r) for r in rows]

    @strawberry.field
    async def instrument(self, info: Ctx, id: strawberry.ID) -> Instrument | None:
        return Instrument.from_rest(await info.context.fidelity.get(f"/v1/instruments/{seg(id)}",
                                                                    into=rest.InstrumentOut))

    @strawberry.field(description="One observation in your agency")
    async def observation(self, info: Ctx, id: strawberry.ID) -> Observation | None:
        return Observation.from_rest(await info.context.fidelity.get(f"/v1/observations/{seg(id)}",
                                                                     into=rest.ObservationOut))

    @strawberry.field(description="Your agency's certification policy")
    async def certification_policy(self, info: Ctx) -> CertificationPolicy:
        return CertificationPolicy.from_rest(await info.context.fidelity.get("/v1/certification-policy",
                                                                             into=rest.PolicyIO))

    @strawberry.field(description="Reference observations to calibrate on (their scores only for platform admins)")
    async def calibration_references(self, info: Ctx) -> list[CalibrationReference]:
        rows = await info.context.fidelity.get_all("/v1/calibration-references", [], page=rest.ReferencePage)
        return [CalibrationReference.from_rest(r) for r in rows]

    @strawberry.field(description="Whether a rater may record observations on an instrument family now, and why")
    async def rater_status(self, info: Ctx, rater_id: strawberry.ID,
                           family: str = "miiwrap-practice") -> RaterStatus:
        got = await info.context.fidelity.get(f"/v1/raters/{seg(rater_id)}/status", {"family": family},
                                              into=rest.RaterStatusOut)
        return RaterStatus.from_rest(got)


def instrument_path(instrument_id: strawberry.ID, action: str = "") -> str:
    return f"/v1/instruments/{seg(instrument_id)}" + (f"/{action}" if action else "")


@strawberry.type
class FidelityMutation:
    @strawberry.mutation(description="Record a scored observation (calibrated observers)")
    async def record_observation(self, info: Ctx, input: RecordObservationInput) -> Observation:
        body = rest_body(rest.ObservationIn, practitioner_id=input.practitioner_id, instrument_id=input.instrument_id,
                         observed_on=input.observed_on, setting=input.setting,
                         scores=score_list(input.scores, "input.scores"), notes=input.notes,
                         kind=strawberry.UNSET if input.kind is None else input.kind)
        return Observation.from_rest(await info.context.fidelity.post(
            "/v1/observations", body, input.idempotency_key, into=rest.ObservationOut,
            inputs=scored(input.scores, "input")))

    @strawberry.mutation(description="Correct an observation's scores (its observer, within 7 days); the old "
                                     "scores are kept. Scores are the complete corrected set; notes, if given, "
                                     "replace the old ones")
    async def amend_observation(self, info: Ctx, id: strawberry.ID, scores: list[ItemScoreInput], reason: str,
                                notes: str | None = None, idempotency_key: IdempotencyKey = None) -> Observation:
        body = rest_body(rest.AmendmentIn, scores=score_list(scores, "scores"), reason=reason,
                         notes=strawberry.UNSET if notes is None else notes)
        row = await info.context.fidelity.post(f"/v1/observations/{seg(id)}/amendments", body, idempotency_key,
                                               into=rest.ObservationOut, inputs=scored(scores))
        return Observation.from_rest(row)

    @strawberry.mutation(description="Start a new instrument family: version 1, as a draft (platform admins)")
    async def create_instrument(self, info: Ctx, input: CreateInstrumentInput,
                                idempotency_key: IdempotencyKey = None) -> Instrument:
        body = rest_body(rest.InstrumentIn, family=input.family, kind=input.kind, name=input.name,
                         description=input.description, pass_threshold=input.pass_threshold,
                         items=items_of(input.items))
        return Instrument.from_rest(await info.context.fidelity.post("/v1/instruments", body, idempotency_key,
                                                                     into=rest.InstrumentOut, inputs=Inputs("input")))

    @strawberry.mutation(description="Start the next version of an instrument as a draft, copied from this one")
    async def start_instrument_version(self, info: Ctx, id: strawberry.ID,
                                       idempotency_key: IdempotencyKey = None) -> Instrument:
        row = await info.context.fidelity.send("POST", instrument_path(id, "versions"), idempotency_key=idempotency_key,
                                               into=rest.InstrumentOut)
        return Instrument.from_rest(row)

    @strawberry.mutation(description="Edit a draft; active and retired versions never change")
    async def edit_instrument(self, info: Ctx, id: strawberry.ID, input: EditInstrumentInput) -> Instrument:
        items = input.items if input.items is strawberry.UNSET or input.items is None else items_of(input.items)
        body = rest_body(rest.InstrumentPatch, name=input.name, description=input.description,
                         pass_threshold=input.pass_threshold, items=items)
        return Instrument.from_rest(await info.context.fidelity.send("PATCH", instrument_path(id), json=body,
                                                                     into=rest.InstrumentOut, inputs=Inputs("input")))

    @strawberry.mutation(description="Publish a draft; the family's previously active version is retired")
    async def activate_instrument(self, info: Ctx, id: strawberry.ID,
                                  idempotency_key: IdempotencyKey = None) -> Instrument:
        row = await info.context.fidelity.send("POST", instrument_path(id, "activate"), idempotency_key=idempotency_key,
                                               into=rest.InstrumentOut)
        return Instrument.from_rest(row)

    @strawberry.mutation(description="Retire an active version: no new observations on it; old ones keep their "
                                     "scores")
    async def retire_instrument(self, info: Ctx, id: strawberry.ID,
                                idempotency_key: IdempotencyKey = None) -> Instrument:
        row = await info.context.fidelity.send("POST", instrument_path(id, "retire"), idempotency_key=idempotency_key,
                                               into=rest.InstrumentOut)
        return Instrument.from_rest(row)

    @strawberry.mutation(description="Revoke a current certification, with a reason (agency or platform admins)")
    async def revoke_certification(self, info: Ctx, id: strawberry.ID, reason: str,
                                   idempotency_key: IdempotencyKey = None) -> Certification:
        row = await info.context.fidelity.post(f"/v1/certifications/{seg(id)}/revoke",
                                               rest_body(rest.RevokeIn, reason=reason), idempotency_key,
                                               into=rest.CertificationOut, inputs=Inputs())
        return Certification.from_rest(row)

    @strawberry.mutation(description="Calibrate (observers): score a reference observation, or double-code "
                                     "someone else's live one; give exactly one of referenceId and observationId")
    async def calibrate(self, info: Ctx, scores: list[ItemScoreInput], reference_id: strawberry.ID | None = None,
                        observation_id: strawberry.ID | None = None,
                        idempotency_key: IdempotencyKey = None) -> Calibration:
        body = rest_body(rest.CalibrationIn, scores=score_list(scores, "scores"),
                         reference_id=strawberry.UNSET if reference_id is None else reference_id,
                         observation_id=strawberry.UNSET if observation_id is None else observation_id)
        return Calibration.from_rest(await info.context.fidelity.post("/v1/calibrations", body, idempotency_key,
                                                                      into=rest.CalibrationOut, inputs=scored(scores)))

    @strawberry.mutation(description="Set your agency's certification policy (agency admins)")
    async def set_certification_policy(self, info: Ctx, input: CertificationPolicyInput) -> CertificationPolicy:
        body = rest_body(rest.PolicyIO, **asdict(input))  # UNSET fields are left out: the service's defaults
        got = await info.context.fidelity.send("PUT", "/v1/certification-policy", json=body, into=rest.PolicyIO,
                                               inputs=Inputs("input"))
        return CertificationPolicy.from_rest(got)
