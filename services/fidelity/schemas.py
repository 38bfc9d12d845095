"""Fidelity request and response bodies."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from services.fidelity.domain import SETTINGS

Setting = Literal[SETTINGS]  # type: ignore[valid-type]


class ItemOut(BaseModel):
    key: str
    label: str
    competency: str
    scale_min: int
    scale_max: int
    critical: bool
    critical_min: int
    required: bool


class InstrumentOut(BaseModel):
    id: str
    name: str
    version: int
    status: str
    pass_threshold: float
    competencies: list[str]
    items: list[ItemOut]


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
    observed_on: date
    setting: Setting = Field(description=f"One of: {', '.join(SETTINGS)}")
    scores: dict[str, int] = Field(description="Item key → score on the item's scale", max_length=200)
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
    notes: str
    scores: dict[str, int]
    score: float = Field(description="Total as a percentage of the instrument's maximum")
    competency_scores: dict[str, float]
    passed: bool
    created_at: datetime


class ObservationPage(BaseModel):
    items: list[ObservationOut]
    next: str | None


class InstrumentPage(BaseModel):
    items: list[InstrumentOut]
    next: str | None
