"""The fidelity service in the graph: instruments and their versions, observations and amendments,
certification, drift, rater calibration, the certification policy and the agency summary.

Nested fields are resolvers, so a field that is not asked for costs no upstream call. This module
imports neither gateway.schema nor gateway.readiness; they import its types."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime
from functools import partial
from typing import Annotated, Any
from urllib.parse import quote
from uuid import UUID

import strawberry
from graphql import GraphQLError
from strawberry.scalars import JSON

from gateway.clients import MAX_PAGE
from gateway.context import Ctx
from gateway.loaders import grouped

IdempotencyKey = Annotated[str | None, strawberry.argument(
    description="Makes a retried mutation safe (the service honours it on POST)")]


def seg(value: Any) -> str:
    return quote(str(value), safe="")  # an id cannot reach another route


def opt_date(v: str | None) -> date | None:
    return date.fromisoformat(v) if v else None


def opt_datetime(v: str | None) -> datetime | None:
    return datetime.fromisoformat(v) if v else None


def present(**fields: Any) -> dict[str, Any]:
    """A REST body of the fields given: UNSET ones are left out so the service keeps (or defaults) them."""
    return {k: v for k, v in fields.items() if v is not strawberry.UNSET}


# ---- scores --------------------------------------------------------------------------------------


@strawberry.type
class CompetencyScore:
    competency: str
    score: float


@strawberry.type
class ItemScore:
    item: str
    score: int


def item_scores(scores: dict[str, int]) -> list[ItemScore]:
    return [ItemScore(item=k, score=v) for k, v in scores.items()]


@strawberry.input
class ItemScoreInput:
    item: str
    score: int


def scores_of(scores: list[ItemScoreInput]) -> dict[str, int]:
    """Item key → score; an item scored twice is refused here, since a JSON object cannot carry it."""
    out: dict[str, int] = {}
    for s in scores:
        if s.item in out:
            raise GraphQLError(f"item '{s.item}' is scored twice", extensions={"code": "BAD_USER_INPUT"})
        out[s.item] = s.score
    return out


# ---- instruments ---------------------------------------------------------------------------------


@strawberry.type
class InstrumentItem:
    key: str
    label: str
    competency: str
    scale_min: int
    scale_max: int
    critical: bool
    critical_min: int = strawberry.field(description="A critical item scored below this fails the observation")
    required: bool
    weight: float

    @classmethod
    def from_rest(cls, i: dict[str, Any]) -> InstrumentItem:
        return cls(key=i["key"], label=i["label"], competency=i["competency"], scale_min=i["scale_min"],
                   scale_max=i["scale_max"], critical=i["critical"], critical_min=i["critical_min"],
                   required=i["required"], weight=i["weight"])


@strawberry.type
class Instrument:
    id: strawberry.ID
    family: str = strawberry.field(description="Stable key shared by every version, e.g. miiwrap-practice")
    kind: str = strawberry.field(description="practice_observation, coaching_observation or record_review")
    track: str | None = strawberry.field(description="Whose certification its observations count towards")
    name: str
    description: str
    version: int
    status: str = strawberry.field(description="draft, active or retired")
    pass_threshold: float
    competencies: list[str]
    items: list[InstrumentItem]
    created_at: datetime
    activated_at: datetime | None
    retired_at: datetime | None

    @classmethod
    def from_rest(cls, r: dict[str, Any]) -> Instrument:
        return cls(id=r["id"], family=r["family"], kind=r["kind"], track=r["track"], name=r["name"],
                   description=r["description"], version=r["version"], status=r["status"],
                   pass_threshold=r["pass_threshold"], competencies=r["competencies"],
                   items=[InstrumentItem.from_rest(i) for i in r["items"]],
                   created_at=datetime.fromisoformat(r["created_at"]), activated_at=opt_datetime(r["activated_at"]),
                   retired_at=opt_datetime(r["retired_at"]))


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

    def to_rest(self) -> dict[str, Any]:
        return {"key": self.key, "label": self.label, "competency": self.competency, "scale_min": self.scale_min,
                "scale_max": self.scale_max, "critical": self.critical, "critical_min": self.critical_min,
                "required": self.required, "weight": self.weight}


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


@strawberry.type
class Amendment:
    number: int
    amended_by: strawberry.ID
    reason: str
    previous_scores: list[ItemScore]
    previous_total: float
    previous_passed: bool
    scores: list[ItemScore]
    total_score: float
    passed: bool
    created_at: datetime

    @classmethod
    def from_rest(cls, a: dict[str, Any]) -> Amendment:
        return cls(number=a["number"], amended_by=a["amended_by"], reason=a["reason"],
                   previous_scores=item_scores(a["previous_scores"]), previous_total=a["previous_total"],
                   previous_passed=a["previous_passed"], scores=item_scores(a["scores"]),
                   total_score=a["total_score"], passed=a["passed"], created_at=datetime.fromisoformat(a["created_at"]))


@strawberry.type
class Observation:
    id: strawberry.ID
    practitioner_id: strawberry.ID
    observer_id: strawberry.ID
    instrument_id: strawberry.ID
    instrument_version: int
    instrument_family: str
    kind: str = strawberry.field(description="live_observation, recording_review or record_review")
    observed_on: date
    setting: str
    notes: str
    score: float = strawberry.field(description="Total as a percentage of the instrument's maximum")
    passed: bool
    competency_scores: JSON = strawberry.field(description="Competency → percent, e.g. {\"Team process\": 75.0}")
    competencies: list[CompetencyScore] = strawberry.field(description="The same scores as a typed list")
    item_scores: list[ItemScore]
    amendments: int = strawberry.field(description="How many times it was amended")
    amendable_until: date = strawberry.field(description="The last day its observer may amend it")
    created_at: datetime

    @classmethod
    def from_rest(cls, o: dict[str, Any]) -> Observation:
        return cls(
            id=o["id"], practitioner_id=o["practitioner_id"], observer_id=o["observer_id"],
            instrument_id=o["instrument_id"], instrument_version=o["instrument_version"],
            instrument_family=o["instrument_family"], kind=o["kind"],
            observed_on=date.fromisoformat(o["observed_on"]), setting=o["setting"], notes=o["notes"],
            score=o["score"], passed=o["passed"], created_at=datetime.fromisoformat(o["created_at"]),
            competency_scores=dict(o["competency_scores"]),
            competencies=[CompetencyScore(competency=k, score=v) for k, v in o["competency_scores"].items()],
            item_scores=item_scores(o["scores"]), amendments=o["amendments"],
            amendable_until=date.fromisoformat(o["amendable_until"]),
        )

    @strawberry.field(description="Its amendments, oldest first, each with the scores it replaced")
    async def amendment_history(self, info: Ctx) -> list[Amendment]:
        if not self.amendments:
            return []  # nothing to fetch
        rows = await info.context.fidelity.get(f"/v1/observations/{seg(self.id)}/amendments")
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


@strawberry.type
class Certification:
    id: strawberry.ID
    person_id: strawberry.ID
    track: str
    status: str = strawberry.field(description="certified, recertification_due, lapsed or revoked")
    certified_on: date
    expires_on: date
    window_opens_on: date = strawberry.field(description="When the recertification window opens")
    revision: int
    evidence: list[strawberry.ID] = strawberry.field(description="The observations it rests on")
    ended_on: date | None

    @classmethod
    def from_rest(cls, c: dict[str, Any]) -> Certification:
        return cls(id=c["id"], person_id=c["person_id"], track=c["track"], status=c["status"],
                   certified_on=date.fromisoformat(c["certified_on"]), expires_on=date.fromisoformat(c["expires_on"]),
                   window_opens_on=date.fromisoformat(c["window_opens_on"]), revision=c["revision"],
                   evidence=c["evidence"], ended_on=opt_date(c["ended_on"]))


@strawberry.type
class CertificationStep:
    certification_id: strawberry.ID
    revision: int
    status: str
    on: date
    expires_on: date
    reason: str
    observation_ids: list[strawberry.ID]
    actor: strawberry.ID | None = strawberry.field(description="Who made the change; null when time or evidence did")

    @classmethod
    def from_rest(cls, t: dict[str, Any]) -> CertificationStep:
        return cls(certification_id=t["certification_id"], revision=t["revision"], status=t["status"],
                   on=date.fromisoformat(t["on"]), expires_on=date.fromisoformat(t["expires_on"]), reason=t["reason"],
                   observation_ids=t["observation_ids"], actor=t["actor"])


@strawberry.type
class PersonCertification:
    person_id: strawberry.ID
    track: str
    status: str = strawberry.field(description="certified, recertification_due, lapsed, revoked or not_certified")
    current: Certification | None = strawberry.field(description="The certification in force, if any")
    missing: list[str] = strawberry.field(description="What is still needed to certify (when not certified)")
    timeline: list[CertificationStep] = strawberry.field(description="Every state of every certification, "
                                                                     "oldest first")

    @strawberry.field(description="The current certification's expiry; null when none is in force")
    def expires_on(self) -> date | None:
        return self.current.expires_on if self.current else None

    @classmethod
    def from_rest(cls, p: dict[str, Any]) -> PersonCertification:
        return cls(person_id=p["person_id"], track=p["track"], status=p["status"],
                   current=Certification.from_rest(p["current"]) if p["current"] else None, missing=p["missing"],
                   timeline=[CertificationStep.from_rest(t) for t in p["timeline"]])


@strawberry.type
class CertificationPolicy:
    required_passes: int = strawberry.field(description="Passing observations needed for initial certification")
    lookback_days: int
    min_gap_days: int
    valid_months: int
    window_days: int = strawberry.field(description="The recertification window opens this long before expiry")
    calibration_agreement: float
    calibration_valid_days: int
    practitioner_course: str | None
    coach_course: str | None

    @classmethod
    def from_rest(cls, p: dict[str, Any]) -> CertificationPolicy:
        return cls(**{k: p[k] for k in ("required_passes", "lookback_days", "min_gap_days", "valid_months",
                                        "window_days", "calibration_agreement", "calibration_valid_days",
                                        "practitioner_course", "coach_course")})


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


@strawberry.type
class FidelityPoint:
    observation_id: strawberry.ID
    observed_on: date
    seq: int
    score: float
    ewma: float
    centre: float
    lower_limit: float
    upper_limit: float
    pass_threshold: float
    flagged: str | None = strawberry.field(description="The rule that flagged the series at this point, if any")

    @classmethod
    def from_rest(cls, p: dict[str, Any]) -> FidelityPoint:
        return cls(observation_id=p["observation_id"], observed_on=date.fromisoformat(p["observed_on"]), seq=p["seq"],
                   score=p["score"], ewma=p["ewma"], centre=p["centre"], lower_limit=p["lower_limit"],
                   upper_limit=p["upper_limit"], pass_threshold=p["pass_threshold"], flagged=p["flagged"])


@strawberry.type
class DriftMetric:
    metric: str = strawberry.field(description="total, or a competency")
    flagged: str | None
    ewma: float | None
    observations: int


@strawberry.type
class Drift:
    family: str
    drifting: bool
    metrics: list[DriftMetric]
    evidence: list[strawberry.ID] = strawberry.field(description="Observations behind a flagged series")

    @classmethod
    def from_rest(cls, d: dict[str, Any]) -> Drift:
        return cls(family=d["family"], drifting=d["drifting"], metrics=[DriftMetric(**m) for m in d["metrics"]],
                   evidence=d["evidence"])


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


# The batch loads behind PractitionerFidelity: all the people of one level in one call per field.
# A person's id is matched in its canonical form, which is how the service answers.


def people(ids: list[str]) -> list[tuple[str, str]]:
    return [("person_id", i) for i in ids]


async def certifications(info: Ctx, track: str, ids: list[str]) -> dict[str, Any]:
    rows = await info.context.fidelity.get("/v1/people/certification", [("track", track), *people(ids)])
    got = {r["person_id"]: r for r in rows}
    return {i: got[str(UUID(i))] for i in ids}


async def drift(info: Ctx, _: tuple[()], ids: list[str]) -> dict[str, Any]:
    rows = await info.context.fidelity.get("/v1/people/drift", people(ids))
    got: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        got[r["person_id"]].append(r)
    return {i: got.get(str(UUID(i)), []) for i in ids}


async def series(info: Ctx, args: tuple[str, str], ids: list[str]) -> dict[str, Any]:
    family, metric = args
    rows = await info.context.fidelity.get_all("/v1/people/fidelity-series",
                                               [("family", family), ("metric", metric), *people(ids)],
                                               page_size=MAX_PAGE)
    got: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        got[r["person_id"]].append(r)
    return {i: sorted(got.get(str(UUID(i)), []), key=lambda p: p["seq"]) for i in ids}


# ---- the agency summary --------------------------------------------------------------------------


@strawberry.type
class ScoreBin:
    lower: float = strawberry.field(name="from")
    upper: float = strawberry.field(name="to", description="Exclusive, except 100")
    count: int


@strawberry.type
class FidelityFigures:
    active: int
    certified: int
    certified_percent: float | None
    in_recertification_window: int
    in_window_percent: float | None
    lapsed_last_90_days: int
    observations_last_90_days: int
    mean_score_last_90_days: float | None
    distribution_last_90_days: list[ScoreBin]
    drifting: int

    @staticmethod
    def fields_of(g: dict[str, Any]) -> dict[str, Any]:
        return {**{k: g[k] for k in ("active", "certified", "certified_percent", "in_recertification_window",
                                     "in_window_percent", "lapsed_last_90_days", "observations_last_90_days",
                                     "mean_score_last_90_days", "drifting")},
                "distribution_last_90_days": [ScoreBin(lower=b["from"], upper=b["to"], count=b["count"])
                                              for b in g["distribution_last_90_days"]]}


@strawberry.type
class TeamFidelityFigures(FidelityFigures):
    team_id: strawberry.ID | None = strawberry.field(description="null: people in no team")


@strawberry.type
class FidelitySummary:
    agency_id: strawberry.ID
    track: str
    as_of: date
    agency: FidelityFigures
    teams: list[TeamFidelityFigures]

    @classmethod
    def from_rest(cls, s: dict[str, Any]) -> FidelitySummary:
        return cls(agency_id=s["agency_id"], track=s["track"], as_of=date.fromisoformat(s["as_of"]),
                   agency=FidelityFigures(**FidelityFigures.fields_of(s["agency"])),
                   teams=[TeamFidelityFigures(team_id=t["team_id"], **FidelityFigures.fields_of(t))
                          for t in s["teams"]])


async def fidelity_summary(info: Ctx, agency_id: str, track: str) -> FidelitySummary:
    """For gateway.readiness's Agency.fidelitySummary."""
    got = await info.context.fidelity.get(f"/v1/agencies/{seg(agency_id)}/fidelity-summary", {"track": track})
    return FidelitySummary.from_rest(got)


# ---- rater calibration ---------------------------------------------------------------------------


@strawberry.type
class Calibration:
    id: strawberry.ID
    rater_id: strawberry.ID
    family: str
    instrument_id: strawberry.ID
    reference_id: strawberry.ID | None
    observation_id: strawberry.ID | None
    agreement: float = strawberry.field(description="Exact-match agreement on items, percent")
    total_difference: float = strawberry.field(description="Rater's total minus the reference's, percentage points")
    items_compared: int
    mismatched: list[str]
    calibrated_on: date
    calibrated: bool = strawberry.field(description="Whether this result makes the rater calibrated")
    reference_scores: list[ItemScore] = strawberry.field(description="Shown once the rater has scored")

    @classmethod
    def from_rest(cls, c: dict[str, Any]) -> Calibration:
        return cls(id=c["id"], rater_id=c["rater_id"], family=c["family"], instrument_id=c["instrument_id"],
                   reference_id=c["reference_id"], observation_id=c["observation_id"], agreement=c["agreement"],
                   total_difference=c["total_difference"], items_compared=c["items_compared"],
                   mismatched=c["mismatched"], calibrated_on=date.fromisoformat(c["calibrated_on"]),
                   calibrated=c["calibrated"], reference_scores=item_scores(c["reference_scores"]))


@strawberry.type
class CalibrationReference:
    id: strawberry.ID
    agency_id: strawberry.ID | None = strawberry.field(description="null: shared by every agency")
    instrument_id: strawberry.ID
    title: str
    reference_rater: str
    created_at: datetime
    scores: list[ItemScore] | None = strawberry.field(description="The master coding: platform admins only")

    @classmethod
    def from_rest(cls, r: dict[str, Any]) -> CalibrationReference:
        return cls(id=r["id"], agency_id=r["agency_id"], instrument_id=r["instrument_id"], title=r["title"],
                   reference_rater=r["reference_rater"], created_at=datetime.fromisoformat(r["created_at"]),
                   scores=item_scores(r["scores"]) if r.get("scores") is not None else None)


@strawberry.type
class RaterStatus:
    rater_id: strawberry.ID
    family: str
    calibrated: bool
    reason: str
    valid_until: date | None

    @classmethod
    def from_rest(cls, s: dict[str, Any]) -> RaterStatus:
        return cls(rater_id=s["rater_id"], family=s["family"], calibrated=s["calibrated"], reason=s["reason"],
                   valid_until=opt_date(s["valid_until"]))


# ---- root fields ---------------------------------------------------------------------------------


@strawberry.type
class FidelityQuery:
    @strawberry.field(description="Instrument versions with their items; status is draft, active or retired")
    async def instruments(self, info: Ctx, status: str | None = None, family: str | None = None,
                          kind: str | None = None) -> list[Instrument]:
        params = [(k, v) for k, v in (("status", status), ("family", family), ("kind", kind)) if v is not None]
        return [Instrument.from_rest(r) for r in await info.context.fidelity.get_all("/v1/instruments", params)]

    @strawberry.field
    async def instrument(self, info: Ctx, id: strawberry.ID) -> Instrument | None:
        return Instrument.from_rest(await info.context.fidelity.get(f"/v1/instruments/{seg(id)}"))

    @strawberry.field(description="One observation in your agency")
    async def observation(self, info: Ctx, id: strawberry.ID) -> Observation | None:
        return Observation.from_rest(await info.context.fidelity.get(f"/v1/observations/{seg(id)}"))

    @strawberry.field(description="Your agency's certification policy")
    async def certification_policy(self, info: Ctx) -> CertificationPolicy:
        return CertificationPolicy.from_rest(await info.context.fidelity.get("/v1/certification-policy"))

    @strawberry.field(description="Reference observations to calibrate on (their scores only for platform admins)")
    async def calibration_references(self, info: Ctx) -> list[CalibrationReference]:
        rows = await info.context.fidelity.get_all("/v1/calibration-references", [])
        return [CalibrationReference.from_rest(r) for r in rows]

    @strawberry.field(description="Whether a rater may record observations on an instrument family now, and why")
    async def rater_status(self, info: Ctx, rater_id: strawberry.ID,
                           family: str = "miiwrap-practice") -> RaterStatus:
        got = await info.context.fidelity.get(f"/v1/raters/{seg(rater_id)}/status", {"family": family})
        return RaterStatus.from_rest(got)


def instrument_path(instrument_id: strawberry.ID, action: str = "") -> str:
    return f"/v1/instruments/{seg(instrument_id)}" + (f"/{action}" if action else "")


@strawberry.type
class FidelityMutation:
    @strawberry.mutation(description="Record a scored observation (calibrated observers)")
    async def record_observation(self, info: Ctx, input: RecordObservationInput) -> Observation:
        body: dict[str, Any] = {
            "practitioner_id": str(input.practitioner_id), "instrument_id": str(input.instrument_id),
            "observed_on": input.observed_on.isoformat(), "setting": input.setting, "scores": scores_of(input.scores),
            "notes": input.notes}
        if input.kind is not None:
            body["kind"] = input.kind
        return Observation.from_rest(await info.context.fidelity.post("/v1/observations", body, input.idempotency_key))

    @strawberry.mutation(description="Correct an observation's scores (its observer, within 7 days); the old "
                                     "scores are kept. Scores are the complete corrected set; notes, if given, "
                                     "replace the old ones")
    async def amend_observation(self, info: Ctx, id: strawberry.ID, scores: list[ItemScoreInput], reason: str,
                                notes: str | None = None, idempotency_key: IdempotencyKey = None) -> Observation:
        body: dict[str, Any] = {"scores": scores_of(scores), "reason": reason}
        if notes is not None:
            body["notes"] = notes
        row = await info.context.fidelity.post(f"/v1/observations/{seg(id)}/amendments", body, idempotency_key)
        return Observation.from_rest(row)

    @strawberry.mutation(description="Start a new instrument family: version 1, as a draft (platform admins)")
    async def create_instrument(self, info: Ctx, input: CreateInstrumentInput,
                                idempotency_key: IdempotencyKey = None) -> Instrument:
        body = {"family": input.family, "kind": input.kind, "name": input.name, "description": input.description,
                "pass_threshold": input.pass_threshold, "items": [i.to_rest() for i in input.items]}
        return Instrument.from_rest(await info.context.fidelity.post("/v1/instruments", body, idempotency_key))

    @strawberry.mutation(description="Start the next version of an instrument as a draft, copied from this one")
    async def start_instrument_version(self, info: Ctx, id: strawberry.ID,
                                       idempotency_key: IdempotencyKey = None) -> Instrument:
        row = await info.context.fidelity.send("POST", instrument_path(id, "versions"), idempotency_key=idempotency_key)
        return Instrument.from_rest(row)

    @strawberry.mutation(description="Edit a draft; active and retired versions never change")
    async def edit_instrument(self, info: Ctx, id: strawberry.ID, input: EditInstrumentInput) -> Instrument:
        items = input.items if input.items is strawberry.UNSET or input.items is None else [
            i.to_rest() for i in input.items]
        body = present(name=input.name, description=input.description, pass_threshold=input.pass_threshold,
                       items=items)
        return Instrument.from_rest(await info.context.fidelity.send("PATCH", instrument_path(id), json=body))

    @strawberry.mutation(description="Publish a draft; the family's previously active version is retired")
    async def activate_instrument(self, info: Ctx, id: strawberry.ID,
                                  idempotency_key: IdempotencyKey = None) -> Instrument:
        row = await info.context.fidelity.send("POST", instrument_path(id, "activate"), idempotency_key=idempotency_key)
        return Instrument.from_rest(row)

    @strawberry.mutation(description="Retire an active version: no new observations on it; old ones keep their "
                                     "scores")
    async def retire_instrument(self, info: Ctx, id: strawberry.ID,
                                idempotency_key: IdempotencyKey = None) -> Instrument:
        row = await info.context.fidelity.send("POST", instrument_path(id, "retire"), idempotency_key=idempotency_key)
        return Instrument.from_rest(row)

    @strawberry.mutation(description="Revoke a current certification, with a reason (agency or platform admins)")
    async def revoke_certification(self, info: Ctx, id: strawberry.ID, reason: str,
                                   idempotency_key: IdempotencyKey = None) -> Certification:
        row = await info.context.fidelity.post(f"/v1/certifications/{seg(id)}/revoke", {"reason": reason},
                                               idempotency_key)
        return Certification.from_rest(row)

    @strawberry.mutation(description="Calibrate (observers): score a reference observation, or double-code "
                                     "someone else's live one; give exactly one of referenceId and observationId")
    async def calibrate(self, info: Ctx, scores: list[ItemScoreInput], reference_id: strawberry.ID | None = None,
                        observation_id: strawberry.ID | None = None,
                        idempotency_key: IdempotencyKey = None) -> Calibration:
        body: dict[str, Any] = {"scores": scores_of(scores)}
        if reference_id is not None:
            body["reference_id"] = str(reference_id)
        if observation_id is not None:
            body["observation_id"] = str(observation_id)
        return Calibration.from_rest(await info.context.fidelity.post("/v1/calibrations", body, idempotency_key))

    @strawberry.mutation(description="Set your agency's certification policy (agency admins)")
    async def set_certification_policy(self, info: Ctx, input: CertificationPolicyInput) -> CertificationPolicy:
        body = present(required_passes=input.required_passes, lookback_days=input.lookback_days,
                       min_gap_days=input.min_gap_days, valid_months=input.valid_months,
                       window_days=input.window_days, calibration_agreement=input.calibration_agreement,
                       calibration_valid_days=input.calibration_valid_days,
                       practitioner_course=input.practitioner_course, coach_course=input.coach_course)
        got = await info.context.fidelity.send("PUT", "/v1/certification-policy", json=body)
        return CertificationPolicy.from_rest(got)
