"""Community REST: attendance (check-in, report import, adjustments) and continuing-education certificates."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path, Query, Response

from services.community.schemas.attendance import (
    AdjustIn,
    AdjustmentList,
    AdjustmentOut,
    AttendanceList,
    AttendanceOut,
    CertificateOut,
    CertificatePage,
    CheckInIn,
    ImportIn,
    ImportOut,
    VerificationOut,
)
from services.community.usecases import attendance as uc
from services.community.usecases.certificates import certificate_document
from trellis.deps import DB, Anyone, Page
from trellis.pagination import page_of

router = APIRouter(prefix="/v1", tags=["community"])


def attendance_out(v: uc.AttendanceView) -> AttendanceOut:
    r = v.row
    return AttendanceOut(session_id=r.session_id, person_id=r.person_id, agency_id=r.agency_id,
                         display_name=v.display_name, attended=r.attended, minutes_present=r.minutes_present,
                         share=r.share, source=r.source, segments=r.segments, revision=r.revision,  # type: ignore[arg-type]
                         recorded_at=r.recorded_at)


def certificate_out(c: object) -> CertificateOut:
    return CertificateOut.model_validate(c, from_attributes=True)


@router.post("/sessions/{session_id}/check-ins", status_code=201, response_model=AttendanceOut,
             summary="The hub checks a person in: present for the whole session")
async def check_in(session_id: UUID, body: CheckInIn, db: DB, principal: Anyone) -> AttendanceOut:
    cmd = uc.CheckIn(principal, str(session_id), str(body.person_id), body.walk_in)
    async with db.unit_of_work(all_agencies=True) as uow:
        return attendance_out(await uc.check_in(uow, cmd))


@router.post("/sessions/{session_id}/attendance-imports", response_model=ImportOut,
             summary="The hub imports a Zoom or BigBlueButton participant report (all or nothing)")
async def import_attendance(session_id: UUID, body: ImportIn, db: DB, principal: Anyone) -> ImportOut:
    cmd = uc.ImportReport(principal, str(session_id), body.csv, body.format,
                          {k: str(v) for k, v in body.mapping.items()}, body.dry_run)
    async with db.unit_of_work(all_agencies=True) as uow:
        result = await uc.import_report(uow, cmd)
        return ImportOut(format=result.format, imported=result.imported, dry_run=body.dry_run,  # type: ignore[arg-type]
                         matched=result.matched, unmatched=result.unmatched,  # type: ignore[arg-type]
                         attendance=[attendance_out(v) for v in result.attendance])


@router.get("/sessions/{session_id}/attendance", response_model=AttendanceList,
            summary="A session's roll call (the hub), or the caller's own attendance")
async def list_attendance(session_id: UUID, db: DB, principal: Anyone) -> AttendanceList:
    async with db.reader(all_agencies=True) as uow:
        views, threshold = await uc.list_attendance(uow, uc.ListAttendance(principal, str(session_id)))
    return AttendanceList(items=[attendance_out(v) for v in views], threshold=threshold)


@router.put("/sessions/{session_id}/attendance/{person_id}", response_model=AttendanceOut,
            summary="The hub adjusts a person's attendance, with a reason (audited)")
async def adjust_attendance(session_id: UUID, person_id: UUID, body: AdjustIn, db: DB,
                            principal: Anyone) -> AttendanceOut:
    cmd = uc.Adjust(principal, str(session_id), str(person_id), body.reason, body.attended, body.minutes_present)
    async with db.unit_of_work(all_agencies=True) as uow:
        return attendance_out(await uc.adjust(uow, cmd))


@router.get("/sessions/{session_id}/attendance/{person_id}/adjustments", response_model=AdjustmentList,
            summary="The audit of a person's attendance: who, when, why, before and after")
async def list_adjustments(session_id: UUID, person_id: UUID, db: DB, principal: Anyone) -> AdjustmentList:
    async with db.reader(all_agencies=True) as uow:
        rows = await uc.list_adjustments(uow, uc.ListAdjustments(principal, str(session_id), str(person_id)))
    return AdjustmentList(items=[AdjustmentOut.model_validate(r, from_attributes=True) for r in rows])


# ---- certificates -------------------------------------------------------------------------------------


@router.get("/certificates/verify/{code}", response_model=VerificationOut,
            summary="Public: check a certificate's verification code (no sign-in)")
async def verify_certificate(code: Annotated[str, Path(max_length=40)], db: DB) -> VerificationOut:
    async with db.reader(all_agencies=True) as uow:
        c = await uc.verify(uow, code)
    return VerificationOut(valid=True, person_name=c.person_name, agency_name=c.agency_name,
                           program_title=c.program_title, cycle=c.cycle, hours=c.hours,
                           sessions=c.sessions, issued_on=c.issued_on)  # type: ignore[arg-type]


@router.get("/certificates", response_model=CertificatePage,
            summary="Certificates: your own; an agency admin's staff's; any for a platform admin")
async def list_certificates(db: DB, principal: Anyone, page: Page,
                            person_id: Annotated[UUID | None, Query()] = None) -> dict[str, object]:
    q = uc.ListCertificates(principal, page, str(person_id) if person_id else None)
    async with db.reader(all_agencies=True) as uow:
        rows = await uc.list_certificates(uow, q)
    return page_of(rows, page, certificate_out, lambda c: c.id)


@router.get("/certificates/{certificate_id}", response_model=CertificateOut)
async def get_certificate(certificate_id: UUID, db: DB, principal: Anyone) -> CertificateOut:
    async with db.reader(all_agencies=True) as uow:
        return certificate_out(await uc.get_certificate(uow, uc.GetCertificate(principal, str(certificate_id))))


@router.get("/certificates/{certificate_id}/pdf", response_class=Response,
            responses={200: {"content": {"application/pdf": {}}, "description": "The certificate as a PDF"}},
            summary="The certificate of participation as a PDF")
async def certificate_pdf(certificate_id: UUID, db: DB, principal: Anyone) -> Response:
    async with db.reader(all_agencies=True) as uow:
        cert, pdf = await certificate_document(uow, uc.GetCertificate(principal, str(certificate_id)))
    name = f"certificate-{cert.cycle}-{cert.verification_code}.pdf"
    return Response(pdf, media_type="application/pdf", headers={"Content-Disposition": f'inline; filename="{name}"'})
