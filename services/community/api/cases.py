"""Community REST: ECHO case consultation. Routes parse, call one use case, shape the answer.

Reads are units of work too: each one writes its audit row (case_reads) in the same transaction.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Response

from services.community.domain.cases import TEMPLATE
from services.community.models import Case
from services.community.schemas.cases import (
    CaseIn,
    CaseOut,
    CasePage,
    CasePatch,
    CaseReadOut,
    CaseReadPage,
    CaseState,
    FollowUpIn,
    JustificationsIn,
    RecommendationsIn,
    ReviewIn,
    TemplateOut,
)
from services.community.usecases import cases as uc
from trellis.auth import CurrentPrincipal, Principal, require_roles
from trellis.deps import DB, Page
from trellis.pagination import page_of

router = APIRouter(prefix="/v1", tags=["community"])
Presenter = Annotated[Principal, require_roles(*uc.PRESENTERS)]


def case_out(c: Case) -> CaseOut:
    return CaseOut(id=c.id, session_id=c.session_id, program_id=c.program_id, presenter_id=c.presenter_id,
                   presenter_agency=c.presenter_agency, title=c.title, fields=c.fields,
                   findings=c.findings or [], state=c.state, hub_comments=c.hub_comments,  # type: ignore[arg-type]
                   recommendations=c.recommendations or [], follow_up_on=c.follow_up_on,  # type: ignore[arg-type]
                   follow_up_report=c.follow_up_report, redacted=c.redacted_at is not None, revision=c.revision,
                   created_at=c.created_at, updated_at=c.updated_at)


@router.get("/case-template", response_model=TemplateOut, summary="The case template's fields")
async def case_template(principal: CurrentPrincipal) -> dict[str, object]:
    return {"fields": [{"key": f.key, "label": f.label, "help": f.help, "max_length": f.max_length}
                       for f in TEMPLATE]}


@router.post("/cases", status_code=201, response_model=CaseOut,
             summary="Draft a case for a session; it is screened for identifiers at once")
async def draft_case(body: CaseIn, db: DB, principal: Presenter, response: Response) -> CaseOut:
    cmd = uc.DraftCase(principal, str(body.session_id), body.title, body.fields.model_dump())
    async with db.unit_of_work() as uow:
        case = await uc.draft_case(uow, cmd)
    response.headers["Location"] = f"/v1/cases/{case.id}"
    return case_out(case)


@router.patch("/cases/{case_id}", response_model=CaseOut, summary="Edit a draft or returned case (re-screened)")
async def edit_case(case_id: UUID, body: CasePatch, db: DB, principal: CurrentPrincipal) -> CaseOut:
    fields = body.fields.model_dump(exclude_none=True) if body.fields is not None else {}
    async with db.unit_of_work() as uow:
        return case_out(await uc.edit_case(uow, uc.EditCase(principal, str(case_id), body.title, fields)))


@router.post("/cases/{case_id}/justifications", response_model=CaseOut,
             summary="Justify screening findings that are not identifying")
async def justify(case_id: UUID, body: JustificationsIn, db: DB, principal: CurrentPrincipal) -> CaseOut:
    reasons = {i.finding_id: i.reason for i in body.items}
    async with db.unit_of_work() as uow:
        return case_out(await uc.justify_findings(uow, uc.Justify(principal, str(case_id), reasons)))


@router.post("/cases/{case_id}/submit", response_model=CaseOut, summary="Submit a screened case for the hub's review")
async def submit(case_id: UUID, db: DB, principal: CurrentPrincipal) -> CaseOut:
    async with db.unit_of_work() as uow:
        return case_out(await uc.submit_case(uow, uc.Act(principal, str(case_id))))


@router.post("/cases/{case_id}/review", response_model=CaseOut, summary="The hub approves or returns a case")
async def review(case_id: UUID, body: ReviewIn, db: DB, principal: CurrentPrincipal) -> CaseOut:
    async with db.unit_of_work() as uow:
        return case_out(await uc.review_case(uow, uc.Review(principal, str(case_id), body.decision, body.comments)))


@router.post("/cases/{case_id}/presented", response_model=CaseOut,
             summary="The hub marks a case presented (on or after the session's day)")
async def presented(case_id: UUID, db: DB, principal: CurrentPrincipal) -> CaseOut:
    async with db.unit_of_work() as uow:
        return case_out(await uc.mark_presented(uow, uc.Act(principal, str(case_id))))


@router.post("/cases/{case_id}/recommendations", response_model=CaseOut,
             summary="The hub issues written recommendations to the presenter, and a follow-up date")
async def recommendations(case_id: UUID, body: RecommendationsIn, db: DB, principal: CurrentPrincipal) -> CaseOut:
    items = [uc.RecommendationIn(i.text, i.due_on) for i in body.items]
    async with db.unit_of_work() as uow:
        return case_out(await uc.issue_recommendations(
            uow, uc.IssueRecommendations(principal, str(case_id), items, body.follow_up_on)))


@router.post("/cases/{case_id}/follow-up", response_model=CaseOut,
             summary="The presenter reports what happened; the case closes")
async def follow_up(case_id: UUID, body: FollowUpIn, db: DB, principal: CurrentPrincipal) -> CaseOut:
    async with db.unit_of_work() as uow:
        return case_out(await uc.report_follow_up(uow, uc.ReportFollowUp(principal, str(case_id), body.report)))


@router.get("/cases", response_model=CasePage, summary="Cases the caller may see (each one returned is audited)")
async def list_cases(
    db: DB, principal: CurrentPrincipal, page: Page,
    session_id: UUID | None = None, state: CaseState | None = None,
    mine: Annotated[bool, Query(description="Only cases I present")] = False,
    review_queue: Annotated[bool, Query(description="Only cases in review on programs whose hub I am on")] = False,
) -> dict[str, object]:
    q = uc.ListCases(principal, page, str(session_id) if session_id else None, state, mine, review_queue)
    async with db.unit_of_work() as uow:
        rows = await uc.list_cases(uow, q)
    return page_of(rows, page, case_out, lambda c: c.id)


@router.get("/cases/{case_id}", response_model=CaseOut, summary="One case (the read is audited)")
async def get_case(case_id: UUID, db: DB, principal: CurrentPrincipal) -> CaseOut:
    async with db.unit_of_work() as uow:
        return case_out(await uc.read_case(uow, uc.Act(principal, str(case_id))))


@router.get("/cases/{case_id}/reads", response_model=CaseReadPage,
            summary="Who read a case, when and in which state (presenter and hub team)")
async def case_reads(case_id: UUID, db: DB, principal: CurrentPrincipal, page: Page) -> dict[str, object]:
    async with db.reader() as uow:
        rows = await uc.list_reads(uow, uc.ListReads(principal, str(case_id), page))
    return page_of(rows, page, lambda r: CaseReadOut.model_validate(r, from_attributes=True), lambda r: r.id)
