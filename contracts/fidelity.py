"""Events published by the fidelity service."""

from datetime import date
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from trellis.envelope import EventPayload

Track = Literal["practitioner", "coach"]
ObservationKind = Literal["live_observation", "recording_review", "record_review"]


class ObservationRecorded(EventPayload):
    """An observer scored a practitioner's observed practice against an instrument.

    Notes are deliberately absent: they may mention families and never leave the agency's
    fidelity records.
    """

    domain: ClassVar[str] = "fidelity"
    name: ClassVar[str] = "ObservationRecorded"

    observation_id: str
    practitioner_id: str
    observer_id: str
    instrument_id: str
    instrument_version: int
    observed_on: date
    setting: str
    kind: ObservationKind = "live_observation"
    instrument_family: str | None = Field(default=None, description="Stable key of the instrument across versions")
    total_score: float = Field(ge=0, le=100, description="Percent of the instrument's maximum")
    competency_scores: dict[str, float] = Field(description="Percent per competency")
    passed: bool




class PractitionerCertified(EventPayload):
    """A person was certified on demonstrated competence (practitioners, and coaches on their track).

    `revision` counts the certification's transitions (1 here); a consumer applies a transition
    only if its revision is higher than the one it holds, so redelivery order never matters.
    """

    domain: ClassVar[str] = "fidelity"
    name: ClassVar[str] = "PractitionerCertified"

    certification_id: str
    practitioner_id: str
    track: Track = "practitioner"
    instrument_id: str
    certified_on: date
    expires_on: date
    revision: int = Field(default=1, ge=1)
    evidence: list[str] = Field(default_factory=list, description="Ids of the passing observations")


class RecertificationDue(EventPayload):
    """The recertification window of a certification opened."""

    domain: ClassVar[str] = "fidelity"
    name: ClassVar[str] = "RecertificationDue"

    certification_id: str
    practitioner_id: str
    track: Track = "practitioner"
    window_opened_on: date
    expires_on: date
    revision: int = Field(ge=1)


class CertificationRenewed(EventPayload):
    """A passing observation inside the window renewed the certification for another term."""

    domain: ClassVar[str] = "fidelity"
    name: ClassVar[str] = "CertificationRenewed"

    certification_id: str
    practitioner_id: str
    track: Track = "practitioner"
    renewed_on: date
    expires_on: date
    revision: int = Field(ge=1)
    observation_id: str | None = None


class CertificationLapsed(EventPayload):
    """The certification expired without renewal."""

    domain: ClassVar[str] = "fidelity"
    name: ClassVar[str] = "CertificationLapsed"

    certification_id: str
    practitioner_id: str
    track: Track = "practitioner"
    lapsed_on: date
    revision: int = Field(ge=1)


class CertificationRevoked(EventPayload):
    """An agency or platform admin revoked the certification, with a reason."""

    domain: ClassVar[str] = "fidelity"
    name: ClassVar[str] = "CertificationRevoked"

    certification_id: str
    practitioner_id: str
    track: Track = "practitioner"
    revoked_on: date
    revoked_by: str
    reason: str = Field(max_length=2000, description="Must not identify families")
    revision: int = Field(ge=1)


class ObservationAmended(EventPayload):
    """The observer corrected an observation within its amendment window; these are the new scores.

    Consumers that kept the old scores replace them. Notes and the reason stay in fidelity.
    """

    domain: ClassVar[str] = "fidelity"
    name: ClassVar[str] = "ObservationAmended"

    observation_id: str
    practitioner_id: str
    observer_id: str
    instrument_id: str
    instrument_version: int
    amendment: int = Field(ge=1, description="1 for the first amendment, then 2, ...")
    amended_on: date
    total_score: float = Field(ge=0, le=100)
    competency_scores: dict[str, float]
    passed: bool


class SlippingMetric(BaseModel):
    """One series that signals drift: the total score or one competency."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: str = Field(description="`total`, or a competency name")
    ewma: float
    lower_limit: float
    centre: float
    rule: Literal["ewma_below_limit", "run_of_declines"]


class FidelityDriftDetected(EventPayload):
    """A person's practice is slipping: an EWMA fell below its lower control limit, or scores kept
    declining, possibly while still above the pass threshold (the early warning).

    Published when drift starts and again whenever another competency starts slipping.
    """

    domain: ClassVar[str] = "fidelity"
    name: ClassVar[str] = "FidelityDriftDetected"

    practitioner_id: str
    instrument_family: str
    track: Track | None = Field(description="None for record reviews, which certify no one")
    competencies: list[str] = Field(description="Competencies slipping")
    metrics: list[SlippingMetric]
    ewma: float = Field(description="EWMA of the total score")
    lower_limit: float = Field(description="Lower control limit of the total score's EWMA")
    pass_threshold: float
    latest_score: float
    observation_ids: list[str] = Field(description="The observations that are the evidence, oldest first")
    detected_on: date


class FidelityDriftCleared(EventPayload):
    """Every slipping series recovered (its EWMA is back inside the limits, with a margin)."""

    domain: ClassVar[str] = "fidelity"
    name: ClassVar[str] = "FidelityDriftCleared"

    practitioner_id: str
    instrument_family: str
    track: Track | None
    ewma: float
    observation_id: str
    cleared_on: date
