"""Browser tests: "my certificates" (/me/certificates) with the PDF and the verification link, and the public
verification page (/verify/<code>) without signing in."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from pathlib import Path

from playwright.sync_api import Browser, Page, expect

from devtools.demo import PRACTITIONERS, PROGRAM_TITLE
from tests.browser.community_support import (
    ANA,
    call,
    facilitator_token,
    make_program,
    register,
    until_live,
    wait_for_subscription,
    watch_frames,
)
from tests.browser.conftest import DESKTOP, Portal, check_a11y, fits_width, screenshots, sign_in, sign_in_with_token


def test_ana_downloads_her_seeded_certificate_and_its_code_verifies_signed_out(page: Page, portal: Portal,
                                                                                browser: Browser) -> None:
    sign_in(page, "practitioner")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="My certificates").click()
    expect(page.get_by_role("heading", level=1, name="My certificates")).to_be_visible()
    card = page.get_by_test_id("certificate").filter(has_text=PROGRAM_TITLE)
    expect(card).to_have_count(1)
    expect(card).to_contain_text("Ana Ruiz")
    code = card.get_by_test_id("verification-code").inner_text()
    assert re.fullmatch(r"[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}", code), code
    check_a11y(page)
    screenshots(page, "community-my-certificates")
    page.set_viewport_size({"width": 390, "height": 844})
    fits_width(page)
    page.set_viewport_size(DESKTOP)  # type: ignore[arg-type]

    # The PDF needs the bearer token: fetched, then saved as a file.
    with page.expect_download() as download:
        card.get_by_role("button", name=re.compile(r"^Download the PDF")).click()
    path = download.value.path()
    assert Path(path).read_bytes()[:5] == b"%PDF-"
    assert download.value.suggested_filename == f"certificate-{code}.pdf"

    # The verification link works for anyone: a fresh browser profile with no sign-in.
    href = card.get_by_test_id("verify-link").get_attribute("href")
    assert href == f"/verify/{code}"
    stranger = browser.new_context(base_url=portal.url, viewport=DESKTOP)  # type: ignore[arg-type]
    try:
        public = stranger.new_page()
        public.goto(href)
        expect(public.get_by_role("heading", level=1, name="Check a certificate")).to_be_visible()
        result = public.get_by_test_id("verify-result")
        expect(result).to_contain_text("Valid certificate")
        expect(result).to_contain_text("Ana Ruiz")
        expect(result).to_contain_text(PROGRAM_TITLE)
        assert "/signin" not in public.url
        check_a11y(public)
        screenshots(public, "community-verify")
        public.set_viewport_size({"width": 390, "height": 844})
        fits_width(public)

        # A code typed with spaces and in lower case is the same code; an unknown one is said to be unknown.
        public.get_by_label("Verification code").fill(code.replace("-", " ").lower())
        public.get_by_role("button", name="Check").click()
        expect(result).to_contain_text("Ana Ruiz")
        public.goto("/verify/ZZZZ-ZZZZ-ZZZZ")
        expect(public.get_by_test_id("verify-unknown")).to_contain_text("No certificate has the code ZZZZ-ZZZZ-ZZZZ")
        check_a11y(public)
    finally:
        stranger.close()


def test_a_certificate_earned_while_the_page_is_open_appears_live(page: Page, portal: Portal) -> None:
    frames = watch_frames(page)
    sign_in(page, "practitioner")
    page.goto("/me/certificates")
    expect(page.get_by_test_id("certificate").first).to_be_visible()
    wait_for_subscription(page, frames, "LiveEvents")
    titles: list[str] = []

    def earn(_attempt: int) -> None:
        # A one-session rule: Ana's check-in at a session starting soon earns a certificate at once.
        program, sessions = make_program(portal, capacity=2, starts_in=timedelta(minutes=30),
                                         ce_rule={"kind": "count", "sessions": 1},
                                         title=f"Live certificate {uuid.uuid4().hex[:6]}")
        titles.append(program["title"])
        register(portal, sessions[0]["id"], ANA)
        call(portal, "POST", f"/v1/sessions/{sessions[0]['id']}/check-ins", facilitator_token(portal),
             json={"person_id": ANA}, ok=201)

    until_live(earn, lambda: expect(page.get_by_test_id("certificate").filter(
        has_text=re.compile("|".join(map(re.escape, titles))))).not_to_have_count(0, timeout=5_000))
    expect(page.get_by_test_id("live")).to_contain_text("Live")


def test_someone_of_another_agency_has_no_certificates_and_sees_none_of_anas(page: Page, portal: Portal) -> None:
    sign_in_with_token(page, portal.token(str(uuid.uuid4()), "practitioner"), "/me/certificates")
    expect(page.get_by_text("No certificates yet.")).to_be_visible()
    text = page.get_by_role("main").inner_text()
    for name in PRACTITIONERS.values():
        assert name not in text
    check_a11y(page)
