"""Readiness event handlers: fidelity's certifications drive the implementation stage.

Adapters only: each event becomes one use case call, in the unit of work the bus opened for it.
"""

from __future__ import annotations

from contracts.fidelity import CertificationLapsed, CertificationRenewed, CertificationRevoked, PractitionerCertified
from services.readiness import usecases as uc
from trellis.bus import Handlers
from trellis.db import UnitOfWork
from trellis.envelope import Envelope

handlers = Handlers()


@handlers.on(PractitionerCertified, "stage-on-certified")
async def certified(env: Envelope, e: PractitionerCertified, uow: UnitOfWork) -> None:
    await uc.record_certification(uow, uc.CertificationChanged(e, current=True))


@handlers.on(CertificationRenewed, "stage-on-renewed")
async def renewed(env: Envelope, e: CertificationRenewed, uow: UnitOfWork) -> None:
    await uc.record_certification(uow, uc.CertificationChanged(e, current=True))


@handlers.on(CertificationLapsed, "stage-on-lapsed")
async def lapsed(env: Envelope, e: CertificationLapsed, uow: UnitOfWork) -> None:
    await uc.record_certification(uow, uc.CertificationChanged(e, current=False))


@handlers.on(CertificationRevoked, "stage-on-revoked")
async def revoked(env: Envelope, e: CertificationRevoked, uow: UnitOfWork) -> None:
    await uc.record_certification(uow, uc.CertificationChanged(e, current=False))
