"""Events published by the fidelity service."""

from datetime import date
from typing import ClassVar, Literal

from pydantic import Field

from trellis.envelope import EventPayload


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
    total_score: float = Field(ge=0, le=100, description="Percent of the instrument's maximum")
    competency_scores: dict[str, float] = Field(description="Percent per competency")
    passed: bool


Track = Literal["practitioner", "coach"]


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
