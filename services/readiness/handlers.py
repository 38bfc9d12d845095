"""Readiness event handlers: fidelity's certifications drive the implementation stage."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.fidelity import CertificationLapsed, CertificationRenewed, CertificationRevoked, PractitionerCertified
from services.readiness.models import Certification
from services.readiness.workflows import refresh_stage
from trellis.bus import Handlers
from trellis.db import today, utcnow
from trellis.envelope import Envelope

handlers = Handlers()

Event = PractitionerCertified | CertificationRenewed | CertificationLapsed | CertificationRevoked


async def apply(session: AsyncSession, env: Envelope, e: Event, current: bool) -> None:
    """Keep the certification's newest state (by revision, whatever order events arrive in), then the stage."""
    cert = (await session.scalars(select(Certification).where(Certification.id == e.certification_id))).first()
    if cert is None:
        session.add(Certification(id=e.certification_id, agency_id=env.agency, practitioner_id=e.practitioner_id,
                                  track=e.track, current=current, revision=e.revision, updated_at=utcnow()))
    elif e.revision > cert.revision:
        cert.current, cert.revision, cert.updated_at = current, e.revision, utcnow()
    else:
        return  # an older transition arriving late changes nothing
    if e.track == "practitioner":
        await refresh_stage(session, env.agency, today(session))


@handlers.on(PractitionerCertified, "stage-on-certified")
async def certified(env: Envelope, e: PractitionerCertified, session: AsyncSession) -> None:
    await apply(session, env, e, current=True)


@handlers.on(CertificationRenewed, "stage-on-renewed")
async def renewed(env: Envelope, e: CertificationRenewed, session: AsyncSession) -> None:
    await apply(session, env, e, current=True)


@handlers.on(CertificationLapsed, "stage-on-lapsed")
async def lapsed(env: Envelope, e: CertificationLapsed, session: AsyncSession) -> None:
    await apply(session, env, e, current=False)


@handlers.on(CertificationRevoked, "stage-on-revoked")
async def revoked(env: Envelope, e: CertificationRevoked, session: AsyncSession) -> None:
    await apply(session, env, e, current=False)
