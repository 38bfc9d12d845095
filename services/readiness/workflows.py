"""Steps shared by api.py and handlers.py: load the facts a rule needs, apply it, stage the events.

They run inside the caller's unit of work, so the change and its events commit together.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from uuid6 import uuid7

from contracts.readiness import ImplementationStageChanged
from services.readiness import domain
from services.readiness.models import Agency, Certification, Plan, Staff, StageEntry
from trellis.db import Database, add_event, utcnow
from trellis.envelope import Envelope, EventPayload

SOURCE = "trellis/readiness"


async def emit(session: AsyncSession, payload: EventPayload, *, agency: str, subject: str) -> None:
    await add_event(session, Envelope.wrap(payload, source=SOURCE, subject=subject, agency=agency))


async def stage_facts(session: AsyncSession) -> domain.StageFacts:
    """Facts for the stage rules, in the session's agency (tenant scoping filters every query)."""
    plan = (await session.scalars(select(Plan))).one_or_none()
    practitioners = {s.id for s in (await session.scalars(select(Staff).where(Staff.status == "active"))).all()
                     if "practitioner" in s.roles}
    certs = (await session.scalars(select(Certification).where(Certification.track == "practitioner"))).all()
    certified = {c.practitioner_id for c in certs if c.current} & practitioners
    return domain.StageFacts(plan_approved=plan is not None and plan.approved, ever_certified=bool(certs),
                             active_practitioners=len(practitioners), certified_practitioners=len(certified))


async def enter_stage(session: AsyncSession, agency: Agency, stage: domain.Stage, reason: str, today: date,
                      share: float | None, previous: str | None) -> None:
    session.add(StageEntry(id=str(uuid7()), agency_id=agency.id, stage=stage, previous_stage=previous,
                           entered_on=today, reason=reason, certified_share=share, created_at=utcnow()))
    agency.stage, agency.stage_entered_on = stage, today
    await emit(session, ImplementationStageChanged(stage=stage.value, previous_stage=previous, entered_on=today,
                                                   reason=reason, certified_share=share),
               agency=agency.id, subject=agency.id)


async def sweep_stages(db: Database, today: date | None = None) -> int:
    """Re-apply the stage rules where time alone moves them (Full Implementation held long enough).

    Safe on several replicas at once: the agency row is locked, and a second pass finds nothing to do.
    """
    today = today or db.clock()
    async with db.reader(all_agencies=True) as s:
        ids = list((await s.scalars(select(Agency.id).where(Agency.stage == domain.Stage.FULL))).all())
    moved = 0
    for agency_id in ids:
        async with db.unit_of_work(agency=agency_id) as s:
            moved += len(await refresh_stage(s, agency_id, today))
    return moved


async def refresh_stage(session: AsyncSession, agency_id: str, today: date) -> list[domain.Stage]:
    """Apply the stage rules until they rest; each stage passed is recorded and published."""
    await session.flush()  # the facts must include the caller's pending change
    # Locked so two transactions (say a lapse and a certification) apply the rules one after the other.
    agency = (await session.scalars(select(Agency).where(Agency.id == agency_id).with_for_update())).one_or_none()
    if agency is None:
        return []  # events about an agency this service does not know yet change nothing
    facts = await stage_facts(session)
    moved: list[domain.Stage] = []
    for _ in range(len(domain.Stage)):
        move = domain.next_stage(domain.Stage(agency.stage), agency.stage_entered_on, facts, today)
        if move is None:
            break
        share = round(facts.share, 3) if facts.active_practitioners else None
        await enter_stage(session, agency, move.stage, move.reason, today, share, agency.stage)
        moved.append(move.stage)
    return moved
