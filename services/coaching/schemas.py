"""Coaching request and response bodies."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel


class TaskOut(BaseModel):
    id: str
    agency_id: str
    practitioner_id: str
    kind: str
    status: str
    due_on: date
    observation_id: str | None
    created_at: datetime


class TaskPage(BaseModel):
    items: list[TaskOut]
    next: str | None
