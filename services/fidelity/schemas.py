"""Fidelity request and response bodies."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, RootModel, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from services.fidelity.domain import KINDS, OBSERVATION_KINDS, SETTINGS
from trellis.inputs import Bool, Day, Int, Number

Setting = Literal[SETTINGS]  # type: ignore[valid-type]
InstrumentKind = Literal[KINDS]  # type: ignore[valid-type]
ObservationKind = Literal[OBSERVATION_KINDS]  # type: ignore[valid-type]
Track = Literal["practitioner", "coach"]


class ItemOut(BaseModel):
    key: str
    label: str
    competency: str
    scale_min: int
    scale_max: int
    critical: bool
    critical_min: int
    required: bool
    weight: float


class ItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(max_length=64, description="lower_snake_case, unique in the instrument")
    label: str = Field(min_length=1, max_length=500)
    competency: str = Field(min_length=1, max_length=200)
    scale_min: Int = Field(default=0, ge=0, le=100)
    scale_max: Int = Field(default=2, ge=1, le=100)
    critical: Bool = False
    critical_min: Int = Field(default=1, ge=0, le=100,
                              description="A critical item scored below this fails the observation")
    required: Bool = True
    weight: Number = Field(default=1.0, gt=0, le=100)


class InstrumentIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "family": "dart-record-review", "kind": "record_review", "name": "DART record review",
        "pass_threshold": 80, "items": [{"key": "needs_documented", "label": "Needs documented",
                                         "competency": "Documentation"}],
    }]})

    family: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$", description="Stable key shared by every version")
    kind: InstrumentKind = Field(description=f"One of: {', '.join(KINDS)}")
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=5000)
    pass_threshold: Number = Field(default=80.0, gt=0, le=100)
    items: list[ItemIn] = Field(min_length=1, max_length=200)


class InstrumentPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=5000)
    pass_threshold: Number | None = Field(default=None, gt=0, le=100)
    items: list[ItemIn] | None = Field(default=None, min_length=1, max_length=200)


class InstrumentOut(BaseModel):
    id: str
    family: str
    kind: str
    track: str | None = Field(description="Whose certification its observations count towards")
    name: str
    description: str
    version: int
    status: str
    pass_threshold: float
    competencies: list[str]
    items: list[ItemOut]
    created_at: datetime
    activated_at: datetime | None
    retired_at: datetime | None


class ItemScoreIn(BaseModel):
    """One item's score: `scores` takes a list of these (GraphQL's shape) as well as `{item: score}`."""

    model_config = ConfigDict(extra="forbid")

    item: str = Field(min_length=1, max_length=64, description="The item's key")
    score: Int


class ScoreList(RootModel[Annotated[list[ItemScoreIn], Field(max_length=200)]]):
    """The list form of `scores`: one entry per item, each item at most once."""


def _scores_from_list(v: object) -> object:
    """`[{item, score}]` -> `{item: score}`. Errors keep their place in the list (`scores.2.score`), and an
    item given twice is refused, since the object form cannot carry it."""
    if not isinstance(v, list):
        return v
    entries = ScoreList.model_validate(v).root
    scores: dict[str, int] = {}
    twice: list[InitErrorDetails] = []
    for i, e in enumerate(entries):
        if e.item in scores:
            twice.append({"type": PydanticCustomError("duplicate_item", "item '{item}' is scored twice",
                                                      {"item": e.item}), "loc": (i, "item"), "input": e.item})
        scores.setdefault(e.item, e.score)
    if twice:
        raise ValidationError.from_exception_data("scores", twice)
    return scores


# Item key -> score, given as an object or as a list of {item, score}; use cases always see the object.
Scores = Annotated[dict[str, Int], BeforeValidator(
    _scores_from_list, json_schema_input_type=Annotated[dict[str, Int], Field(max_length=200)] | ScoreList)]


class ObservationIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "practitioner_id": "0190a000-0000-7000-8000-0000000000a1",
        "instrument_id": "0190a000-0000-7000-8000-000000000001",
        "observed_on": "2026-11-02",
        "setting": "team_meeting",
        "scores": {"family_perspective": 2, "needs_not_services": 1},
        "notes": "Strong engagement; needs statements drifted toward services.",
    }]})

    practitioner_id: UUID
    instrument_id: UUID
    observed_on: Day
    setting: Setting = Field(description=f"One of: {', '.join(SETTINGS)}")
    kind: ObservationKind = Field(default="live_observation", description=f"One of: {', '.join(OBSERVATION_KINDS)}")
    scores: Scores = Field(description="Item key → score on the item's scale; or a list of {item, score}",
                           max_length=200)
    notes: str = Field(default="", max_length=10_000)


class ObservationOut(BaseModel):
    id: str
    agency_id: str
    practitioner_id: str
    observer_id: str
    instrument_id: str
    instrument_version: int
    observed_on: date
    setting: str
    kind: str
    instrument_family: str
    notes: str
    scores: dict[str, int]
    score: float = Field(description="Total as a percentage of the instrument's maximum")
    competency_scores: dict[str, float]
    passed: bool
    created_at: datetime
    amendments: int = Field(description="How many times it was amended")
    amendable_until: date = Field(description="The last day its observer may amend it")


class ObservationPage(BaseModel):
    items: list[ObservationOut]
    next: str | None


class InstrumentPage(BaseModel):
    items: list[InstrumentOut]
    next: str | None


class AmendmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scores: Scores = Field(description="The complete corrected scores; an object or a list of {item, score}",
                           max_length=200)
    reason: str = Field(min_length=3, max_length=2000, description="Why; must not identify families")
    notes: str | None = Field(default=None, max_length=10_000)


class AmendmentOut(BaseModel):
    number: int
    amended_by: str
    reason: str
    previous_scores: dict[str, int]
    previous_total: float
    previous_passed: bool
    scores: dict[str, int]
    total_score: float
    passed: bool
    created_at: datetime


class PolicyIO(BaseModel):
    """An agency's certification policy. Every field has a default."""

    model_config = ConfigDict(extra="forbid")

    required_passes: Int = Field(default=2, description="Passing observations needed for initial certification")
    lookback_days: Int = Field(default=365, description="...within this many days")
    min_gap_days: Int = Field(default=30, description="...at least this many days apart")
    valid_months: Int = Field(default=24, description="A certification's term")
    window_days: Int = Field(default=90, description="The recertification window opens this long before expiry")
    calibration_agreement: Number = Field(default=80.0, description="Minimum exact-match agreement, percent")
    calibration_valid_days: Int = Field(default=365, description="How long a calibration lasts")
    practitioner_course: str | None = Field(default="miiwrap-practice", description="null: no course required")
    coach_course: str | None = Field(default="miiwrap-coaching", description="null: no course required")


class TimelineOut(BaseModel):
    certification_id: str
    revision: int
    status: str
    on: date
    expires_on: date
    reason: str
    observation_ids: list[str]
    actor: str | None


class CertificationOut(BaseModel):
    id: str
    person_id: str
    track: str
    status: str
    certified_on: date
    expires_on: date
    window_opens_on: date
    revision: int
    evidence: list[str]
    ended_on: date | None


class CertificationPage(BaseModel):
    items: list[CertificationOut]
    next: str | None


class PersonCertificationOut(BaseModel):
    person_id: str
    track: str
    status: str = Field(description="certified, recertification_due, lapsed, revoked or not_certified")
    current: CertificationOut | None
    missing: list[str] = Field(description="What is still needed to certify (when not certified)")
    timeline: list[TimelineOut] = Field(description="Every state of every certification, oldest first")


class RevokeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=3, max_length=2000, description="Must not identify families")


class ReferenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instrument_id: UUID
    title: str = Field(min_length=1, max_length=200)
    reference_rater: str = Field(min_length=1, max_length=200, description="Who master-coded it")
    scores: Scores = Field(max_length=200)


class ReferenceOut(BaseModel):
    id: str
    agency_id: str | None = Field(description="null: shared by every agency")
    instrument_id: str
    title: str
    reference_rater: str
    created_at: datetime
    scores: dict[str, int] | None = Field(default=None, description="The master coding: platform admins only")


class ReferencePage(BaseModel):
    items: list[ReferenceOut]
    next: str | None


class CalibrationIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "reference_id": "0190a000-0000-7000-8000-000000000101", "scores": {"family_perspective": 2}}]})

    reference_id: UUID | None = Field(default=None, description="A reference recording to score")
    observation_id: UUID | None = Field(default=None, description="Or a live observation to double-code")
    scores: Scores = Field(max_length=200)


class CalibrationOut(BaseModel):
    id: str
    rater_id: str
    family: str
    instrument_id: str
    reference_id: str | None
    observation_id: str | None
    agreement: float = Field(description="Exact-match agreement on items, percent")
    total_difference: float = Field(description="Rater's total minus the reference's, percentage points")
    items_compared: int
    mismatched: list[str]
    calibrated_on: date
    calibrated: bool = Field(description="Whether this result makes the rater calibrated")
    reference_scores: dict[str, int] = Field(description="Shown once the rater has scored")


class CalibrationPage(BaseModel):
    items: list[CalibrationOut]
    next: str | None


class RaterStatusOut(BaseModel):
    rater_id: str
    family: str
    calibrated: bool
    reason: str
    valid_until: date | None


class SeriesPointOut(BaseModel):
    observation_id: str
    observed_on: date
    seq: int
    score: float
    ewma: float
    centre: float
    lower_limit: float
    upper_limit: float
    pass_threshold: float
    flagged: str | None


class SeriesOut(BaseModel):
    person_id: str
    family: str
    metric: str
    points: list[SeriesPointOut]
    next: str | None


class PeopleSeriesPointOut(SeriesPointOut):
    person_id: str


class PeopleSeriesPage(BaseModel):
    """Several people's points on one series, in pages; each person's points come in `seq` order."""

    items: list[PeopleSeriesPointOut]
    next: str | None


class DriftMetricOut(BaseModel):
    metric: str
    flagged: str | None
    ewma: float | None
    observations: int


class DriftOut(BaseModel):
    person_id: str
    family: str
    drifting: bool
    metrics: list[DriftMetricOut]
    evidence: list[str]


class DistributionBin(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    lower: float = Field(alias="from")
    upper: float = Field(alias="to")
    count: int


class GroupSummary(BaseModel):
    active: int
    certified: int
    certified_percent: float | None
    in_recertification_window: int
    in_window_percent: float | None
    lapsed_last_90_days: int
    observations_last_90_days: int
    mean_score_last_90_days: float | None
    distribution_last_90_days: list[DistributionBin]
    drifting: int


class TeamSummary(GroupSummary):
    team_id: str | None


class SummaryOut(BaseModel):
    agency_id: str
    track: str
    as_of: date
    full_implementation_percent: float = Field(
        description="NIRN's Full Implementation line: at least this share of the track's staff certified")
    agency: GroupSummary
    teams: list[TeamSummary]


class SharePointOut(BaseModel):
    month: str = Field(description="YYYY-MM")
    on: date = Field(description="The month's last day, or today for the current month")
    active: int = Field(description="Active staff on the track counted that day")
    certified: int = Field(description="How many of them held a certification in force that day")
    certified_percent: float | None = Field(description="null when nobody was counted")


class ShareHistoryOut(BaseModel):
    agency_id: str
    track: str
    as_of: date
    full_implementation_percent: float
    basis: str = Field(description="What the counts rest on, in words")
    points: list[SharePointOut] = Field(description="Oldest first, one per month")
