"""Browser tests: the hub's roll call (/community/sessions/<id>/roll-call): check-in, a Zoom report imported
after a dry-run preview, line-numbered errors, an adjustment with its required reason, and live updates."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from playwright.sync_api import Page, expect

from devtools.demo import PRACTITIONERS
from tests.browser.community_support import (
    ANA,
    BEN,
    CHLOE,
    ZONE,
    call,
    facilitator_token,
    make_program,
    register,
    until_live,
    wait_for_subscription,
    watch_frames,
)
from tests.browser.conftest import Portal, check_a11y, fits_width, screenshots, sign_in, sign_in_with_token


def zoom_report(starts_at: str, rows: list[tuple[str, str, int, int]]) -> str:
    """Zoom's participant export: name, email, join and leave (minutes after the start), in local time."""
    local = datetime.fromisoformat(starts_at).astimezone(ZoneInfo(ZONE))
    lines = ["Name (Original Name),User Email,Join Time,Leave Time,Duration (Minutes),Guest"]
    for name, email, joined, left in rows:
        at, to = local + timedelta(minutes=joined), local + timedelta(minutes=left)
        lines.append(f"{name},{email},{at:%m/%d/%Y %I:%M:%S %p},{to:%m/%d/%Y %I:%M:%S %p},{left - joined},No")
    return "\n".join(lines) + "\n"


def session_starting_soon(portal: Portal) -> dict:
    """A session of this test's own, starting in 30 minutes (attendance is taken from an hour before)."""
    _, sessions = make_program(portal, capacity=4, starts_in=timedelta(minutes=30))
    return sessions[0]


def test_the_facilitator_imports_a_zoom_report_and_sees_a_check_in_arrive_live(page: Page, portal: Portal) -> None:
    session = session_starting_soon(portal)
    for person in (ANA, BEN, CHLOE):
        register(portal, session["id"], person)
    frames = watch_frames(page)
    sign_in(page, "facilitator")
    page.goto(f"/community/sessions/{session['id']}/roll-call")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Roll call")
    expect(page.get_by_test_id("registrants").locator("tbody tr")).to_have_count(3)
    expect(page.get_by_text("No attendance recorded yet")).to_be_visible()
    # Named from the community's directory before any attendance, not "Registrant N (id…)".
    for person in (ANA, BEN, CHLOE):
        expect(page.get_by_test_id("registrants").locator("tbody")).to_contain_text(PRACTITIONERS[person])
    expect(page.get_by_test_id("registrants").locator("tbody")).not_to_contain_text(re.compile(r"Registrant \d"))

    # Preview first: Ana (with a rejoin) and Ben match by name; a dial-in does not. Nothing is recorded yet.
    report = zoom_report(session["starts_at"], [
        ("Ana Ruiz", "", 0, 20), ("Ana Ruiz", "", 22, 60), ("Ben Okafor", "", 0, 25), ("Call-in user 7", "", 3, 50)])
    page.get_by_label("Or paste the report").fill(report)
    page.get_by_role("button", name="Preview").click()
    preview = page.get_by_test_id("import-preview")
    expect(preview).to_contain_text("2 matched, 1 not matched")
    expect(preview).to_contain_text("Call-in user 7")
    assert call(portal, "GET", f"/v1/sessions/{session['id']}/attendance", facilitator_token(portal))["items"] == []
    check_a11y(page)

    page.get_by_role("button", name="Import 2 people").click()
    expect(page.get_by_test_id("import-done")).to_contain_text("Imported")
    attendance = page.get_by_test_id("attendance")
    expect(page.get_by_test_id("attendance-summary")).to_have_text("1 of 3 attended")
    ana_row = attendance.locator("table").last.locator("tbody tr", has_text="Ana Ruiz")
    expect(ana_row).to_contain_text("attended")
    ben_row = attendance.locator("table").last.locator("tbody tr", has_text="Ben Okafor")
    expect(ben_row).to_contain_text("below the 75% line")

    # Chloe is checked in from another device: the roll call shows her without a reload.
    wait_for_subscription(page, frames, "CommunityRollCallLive")
    chloe_name = PRACTITIONERS[CHLOE]
    until_live(
        lambda attempt: call(portal, "POST", f"/v1/sessions/{session['id']}/check-ins", facilitator_token(portal),
                             json={"person_id": CHLOE}, ok=201) if attempt == 0 else call(
            portal, "PUT", f"/v1/sessions/{session['id']}/attendance/{CHLOE}", facilitator_token(portal),
            json={"attended": True, "reason": f"nudge {uuid.uuid4()}"}),
        lambda: expect(attendance.locator("table").last).to_contain_text(chloe_name, timeout=5_000))
    expect(page.get_by_test_id("live")).to_contain_text("Live")
    expect(page.get_by_test_id("attendance-summary")).to_have_text("2 of 3 attended")
    check_a11y(page)
    screenshots(page, "community-roll-call")
    page.set_viewport_size({"width": 390, "height": 844})
    fits_width(page)


def test_a_malformed_report_is_refused_with_line_numbers_and_an_adjustment_needs_a_reason(page: Page,
                                                                                           portal: Portal) -> None:
    session = session_starting_soon(portal)
    register(portal, session["id"], ANA)
    sign_in(page, "facilitator")
    page.goto(f"/community/sessions/{session['id']}/roll-call")
    good = zoom_report(session["starts_at"], [("Ana Ruiz", "", 0, 60)])
    bad = good + "Ben Okafor,,not a time,also not,5,No\n"
    page.get_by_label("Or paste the report").fill(bad)
    page.get_by_role("button", name="Preview").click()
    expect(page.get_by_role("alert").filter(has_text="bad line")).to_be_visible()
    errors = page.get_by_test_id("report-errors")
    expect(errors.locator("tbody tr")).to_have_count(1)
    expect(errors.locator("tbody tr").first).to_contain_text("3")  # the third line of the text
    expect(errors).to_contain_text("not a date and time")
    expect(page.get_by_role("button", name=re.compile(r"^Import \d"))).to_have_count(0)
    check_a11y(page)

    # An adjustment without a reason is not sent; with one it is recorded (and audited by the service).
    page.get_by_label("Counts as").select_option(label="Attended")
    page.get_by_role("button", name="Adjust").click()
    expect(page.get_by_role("alert").filter(has_text="Give a reason")).to_be_visible()
    expect(page.get_by_label("Reason (required, audited)")).to_be_focused()
    reason = f"Joined by phone {uuid.uuid4()}"
    page.get_by_label("Reason (required, audited)").fill(reason)
    page.get_by_role("button", name="Adjust").click()
    expect(page.get_by_test_id("attendance")).to_contain_text("Adjusted")
    audit = call(portal, "GET", f"/v1/sessions/{session['id']}/attendance/{ANA}/adjustments", facilitator_token(portal))
    assert [a["reason"] for a in audit["items"]] == [reason]


def test_someone_off_the_hub_gets_no_roll_call(page: Page, portal: Portal) -> None:
    session = session_starting_soon(portal)
    register(portal, session["id"], ANA)
    sign_in(page, "practitioner")
    page.goto(f"/community/sessions/{session['id']}/roll-call")
    expect(page.get_by_text("The roll call is for the session's hub team.")).to_be_visible()
    expect(page.get_by_test_id("registrants")).to_have_count(0)
    check_a11y(page)

    stranger = portal.token(str(uuid.uuid4()), "facilitator")
    sign_in_with_token(page, stranger, f"/community/sessions/{session['id']}/roll-call")
    expect(page.get_by_text("The roll call is for the session's hub team.")).to_be_visible()
    assert "Ana Ruiz" not in page.get_by_role("main").inner_text()
