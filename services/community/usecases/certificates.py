"""The certificate of participation as a PDF (fpdf2): name, agency, program, sessions, hours, code.

Built on request from the certificate row, so it never goes stale and needs no file storage. The
same row gives the same bytes: the creation date is the issue date, not the wall clock.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from fpdf import FPDF

from services.community.domain.attendance import display_code
from services.community.models import Certificate, Program
from services.community.usecases.attendance import GetCertificate, get_certificate
from trellis.db import UnitOfWork

VERIFY_PATH = "/certificates/verify/"


def _latin1(text: str) -> str:
    """The PDF core fonts speak Latin-1: keep accents it has, decompose others, mark what is left."""
    out = []
    for ch in text:
        try:
            ch.encode("latin-1")
            out.append(ch)
        except UnicodeEncodeError:
            base = unicodedata.normalize("NFKD", ch).encode("latin-1", "ignore").decode("latin-1")
            out.append(base or "?")
    return "".join(out)


def _hours(h: float) -> str:
    return f"{h:g}"


def certificate_pdf(cert: Certificate, timezone: str = "UTC") -> bytes:
    """A one-page (more when the sessions run long) A4 landscape certificate."""
    pdf = FPDF(orientation="L", unit="mm", format="A4")
    pdf.set_creation_date(datetime(cert.issued_on.year, cert.issued_on.month, cert.issued_on.day, tzinfo=UTC))
    pdf.set_title(_latin1(f"Certificate of participation: {cert.program_title}"))
    pdf.set_author("Trellis community")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 26)
    pdf.cell(0, 16, "Certificate of participation", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 13)
    pdf.cell(0, 9, "This certifies that", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "B", 22)
    pdf.cell(0, 13, _latin1(cert.person_name), align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 13)
    pdf.cell(0, 8, _latin1(f"of {cert.agency_name}"), align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.multi_cell(0, 8, _latin1(f"took part in {cert.program_title} ({cert.cycle} cycle): "
                                 f"{len(cert.sessions)} sessions, {_hours(cert.hours)} hours of continuing education."),
                   align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.set_font("Helvetica", "B", 11)
    pdf.cell(0, 7, "Sessions attended", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)
    tz = ZoneInfo(timezone)
    with pdf.table(col_widths=(40, 170, 30), text_align=("LEFT", "LEFT", "RIGHT")) as table:
        table.row(["Date", "Session", "Hours"])
        for s in cert.sessions:
            day = datetime.fromisoformat(s["starts_at"]).astimezone(tz).date().isoformat()
            table.row([day, _latin1(s["title"]), _hours(float(s["hours"]))])
    pdf.ln(4)
    pdf.set_font("Helvetica", "", 11)
    pdf.cell(0, 7, f"Issued on {cert.issued_on.isoformat()}. Total: {_hours(cert.hours)} hours.",
             new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Courier", "B", 13)
    pdf.cell(0, 8, f"Verification code: {display_code(cert.verification_code)}", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 9)
    pdf.cell(0, 6, f"Check it at {VERIFY_PATH}{display_code(cert.verification_code)} on the Trellis portal.",
             new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


async def certificate_document(uow: UnitOfWork, q: GetCertificate) -> tuple[Certificate, bytes]:
    """The certificate (as get_certificate allows) and its PDF, dated in the program's time zone."""
    cert = await get_certificate(uow, q)
    program = await uow.get(Program, cert.program_id)
    return cert, certificate_pdf(cert, program.timezone if program else "UTC")
