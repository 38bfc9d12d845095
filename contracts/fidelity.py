"""Events published by the fidelity service."""

from datetime import date
from typing import ClassVar

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
