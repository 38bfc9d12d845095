"""Community request and response bodies: case consultation."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from services.community.domain.cases import TEMPLATE, TITLE_MAX
from services.community.schemas.inputs import In
from trellis.inputs import Day

_MAX = {f.key: f.max_length for f in TEMPLATE}

CaseState = Literal["draft", "screened", "in_review", "approved", "returned", "presented",
                    "recommendations_issued", "follow_up_due", "closed"]


class TemplateFieldOut(BaseModel):
    key: str
    label: str
    help: str
    max_length: int


class TemplateOut(BaseModel):
    fields: list[TemplateFieldOut]


class CaseFieldsIn(In):
    """The template's free-text fields; a draft may leave some empty, a submitted case may not."""

    model_config = ConfigDict(extra="forbid")

    strengths: str = Field("", max_length=_MAX["strengths"])
    needs: str = Field("", max_length=_MAX["needs"])
    tried: str = Field("", max_length=_MAX["tried"])
    question: str = Field("", max_length=_MAX["question"])


class CasePatchFieldsIn(In):
    model_config = ConfigDict(extra="forbid")

    strengths: str | None = Field(None, max_length=_MAX["strengths"])
    needs: str | None = Field(None, max_length=_MAX["needs"])
    tried: str | None = Field(None, max_length=_MAX["tried"])
    question: str | None = Field(None, max_length=_MAX["question"])


class CaseIn(In):
    model_config = ConfigDict(extra="forbid")

    session_id: UUID
    title: str = Field(min_length=1, max_length=TITLE_MAX)
    fields: CaseFieldsIn = Field(default_factory=CaseFieldsIn)


class CasePatch(In):
    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(None, min_length=1, max_length=TITLE_MAX)
    fields: CasePatchFieldsIn | None = None


class JustificationIn(In):
    finding_id: str = Field(min_length=1, max_length=64)
    reason: str = Field(min_length=1, max_length=1000, description="Why this is not identifying, e.g. a staff name")


class JustificationsIn(In):
    model_config = ConfigDict(extra="forbid")

    items: list[JustificationIn] = Field(min_length=1, max_length=100)


class ReviewIn(In):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "return"]
    comments: str = Field("", max_length=4000, description="Required when returning")


class RecommendationItemIn(In):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=2000)
    due_on: Day | None = None


class RecommendationsIn(In):
    model_config = ConfigDict(extra="forbid")

    items: list[RecommendationItemIn] = Field(min_length=1, max_length=20)
    follow_up_on: Day


class FollowUpIn(In):
    model_config = ConfigDict(extra="forbid")

    report: str = Field(min_length=1, max_length=4000)


class FindingOut(BaseModel):
    id: str
    field: str
    start: int
    end: int
    kind: str
    text: str
    status: Literal["open", "fixed", "justified"]
    justification: str | None = None


class RecommendationOut(BaseModel):
    id: str
    text: str
    assigned_to: str
    due_on: date | None = None


class CaseOut(BaseModel):
    id: str
    session_id: str
    program_id: str
    presenter_id: str
    presenter_agency: str
    title: str
    fields: dict[str, str]
    findings: list[FindingOut]
    state: CaseState
    hub_comments: str
    recommendations: list[RecommendationOut]
    follow_up_on: date | None
    follow_up_report: str
    redacted: bool
    revision: int
    created_at: datetime
    updated_at: datetime


class CasePage(BaseModel):
    items: list[CaseOut]
    next: str | None = None


class CaseReadOut(BaseModel):
    reader_id: str
    reader_agency: str
    reader_roles: list[str]
    state: str
    read_at: datetime


class CaseReadPage(BaseModel):
    items: list[CaseReadOut]
    next: str | None = None
