"""Community request and response bodies: registration, waiting list and offers."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from services.community.schemas.inputs import In

RegistrationStatus = Literal["confirmed", "waiting", "offered", "cancelled"]


class RegistrationOut(BaseModel):
    id: str
    session_id: str
    program_id: str
    person_id: str
    agency_id: str
    display_name: str | None = Field(None, description="The person's name; null while the community does not "
                                     "know it (no StaffMemberJoined seen)")
    status: RegistrationStatus
    position: int = Field(description="First come, first served order within the session (1-based)")
    waitlist_position: int | None = Field(None, description="1-based place among those waiting; null otherwise")
    via: Literal["direct", "series", "waitlist"]
    offer_expires_at: datetime | None = None
    cancel_reason: str | None = None
    created_at: datetime
    updated_at: datetime


class RegistrationPage(BaseModel):
    items: list[RegistrationOut]
    next: str | None


class RegistrationList(BaseModel):
    items: list[RegistrationOut]


class RegisterIn(In):
    """Who to register; the caller by default. An agency admin may name active staff of their agency."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{}, {
        "person_id": "0190a000-0000-7000-8000-0000000000a1"}]})

    person_id: UUID | None = None
