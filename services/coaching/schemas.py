"""Coaching request and response bodies."""

from __future__ import annotations

from datetime import date, datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field


class TaskOut(BaseModel):
    id: str
    agency_id: str
    practitioner_id: str
    kind: str
    status: str
    due_on: date
    observation_id: str | None
    title: str
    opened_by: str | None
    created_at: datetime


class TaskPage(BaseModel):
    items: list[TaskOut]
    next: str | None


class FollowUpIn(BaseModel):
    """A coach opens a follow-up to act early on something they saw."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "practitioner_id": "0190a000-0000-7000-8000-0000000000a1", "due_on": "2026-12-01",
        "title": "Rehearse needs statements before the next team meeting"}]})

    practitioner_id: UUID
    due_on: date
    title: str = Field(min_length=1, max_length=200)
