"""Browser tests: the programme calendar (/community) and a session's page (/community/sessions/<id>)."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import httpx
from playwright.sync_api import Page, expect

from devtools.demo import DEMO_AGENCY, PRACTITIONERS, PROGRAM_TITLE
from tests.browser.community_support import (
    ANA,
    BEN,
    MEETING,
    call,
    facilitator_token,
    make_program,
    practitioner_token,
    register,
    until_live,
    wait_for_subscription,
    watch_frames,
)
from tests.browser.conftest import Portal, check_a11y, fits_width, screenshots, sign_in, sign_in_with_token


def test_ana_sees_the_calendar_and_registers_for_a_session_with_free_seats(page: Page, portal: Portal) -> None:
    program, sessions = make_program(portal, capacity=5, starts_in=timedelta(days=3))
    session = sessions[0]
    frames = watch_frames(page)
    sign_in(page, "practitioner")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Community").click()
    expect(page.get_by_role("heading", level=1, name="Community")).to_be_visible()

    # The seeded ECHO program and this test's own, in the program list and as a filter.
    programs = page.get_by_test_id("programs")
    expect(programs).to_contain_text(PROGRAM_TITLE)
    expect(programs).to_contain_text(program["title"])
    page.get_by_label("Program", exact=True).select_option(label=program["title"])
    item = page.get_by_test_id("session").filter(has_text=session["title"])
    expect(item).to_have_count(1)
    expect(page.get_by_test_id("session")).to_have_count(1)
    expect(item).to_contain_text("5 of 5 seats free")
    expect(item.get_by_test_id("own-time")).to_contain_text(re.compile(r"C[SD]T"))  # the session's own zone

    # A colleague registers on another device: the seats shown drop without a reload.
    wait_for_subscription(page, frames, "LiveEvents")
    colleagues = [p for p in PRACTITIONERS if p != ANA]
    taken: list[str] = []

    def colleague_registers(attempt: int) -> None:
        register(portal, session["id"], colleagues[attempt])
        taken.append(colleagues[attempt])

    until_live(colleague_registers, lambda: expect(item).not_to_contain_text("5 of 5", timeout=5_000))
    free = 5 - len(taken)
    expect(item).to_contain_text(f"{free} of 5 seats free")
    expect(page.get_by_test_id("live")).to_contain_text("Live")

    # The personal calendar feed: an absolute .ics URL that works without signing in.
    feed = page.get_by_label("Calendar feed address")
    expect(feed).to_have_value(re.compile(r"^http://.+/calendar/[A-Za-z0-9_-]+\.ics$"))
    url = feed.input_value()
    r = httpx.get(url, timeout=10, trust_env=False)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/calendar"), r.text
    check_a11y(page)
    screenshots(page, "community-calendar")

    item.get_by_role("link", name=session["title"]).click()
    expect(page.get_by_role("heading", level=1, name=session["title"])).to_be_visible()
    expect(page.get_by_test_id("details")).to_contain_text(program["title"])
    expect(page.get_by_test_id("seats")).to_contain_text(f"{free} of 5 seats free")
    expect(page.get_by_test_id("meeting-link")).to_have_count(0)  # not before a confirmed seat
    expect(page.get_by_test_id("meeting-hidden")).to_be_visible()
    expect(page.get_by_test_id("materials")).to_contain_text("Needs statement guide")
    expect(page.get_by_test_id("hub")).to_have_count(0)  # Ana is not on the hub

    page.get_by_role("button", name="Register").click()
    expect(page.get_by_test_id("my-registration")).to_contain_text("your seat is confirmed")
    expect(page.get_by_test_id("meeting-link")).to_have_attribute("href", MEETING)
    expect(page.get_by_test_id("seats")).to_contain_text(f"{free - 1} of 5 seats free")
    mine = call(portal, "GET", "/v1/registrations", practitioner_token(portal, ANA))["items"]
    assert [r["status"] for r in mine if r["session_id"] == session["id"]] == ["confirmed"]
    check_a11y(page)
    screenshots(page, "community-session")
    page.set_viewport_size({"width": 390, "height": 844})
    fits_width(page)

    # Rotating the feed makes a new address; the old one stops working.
    page.goto("/community")
    feed = page.get_by_label("Calendar feed address")
    expect(feed).to_have_value(url)
    page.get_by_role("button", name="Make a new address…").click()
    page.get_by_role("button", name="Make a new address", exact=True).click()
    expect(page.get_by_test_id("feed-status")).to_contain_text("old one no longer works")
    expect(feed).not_to_have_value(url)
    assert httpx.get(url, timeout=10, trust_env=False).status_code == 404
    assert httpx.get(feed.input_value(), timeout=10, trust_env=False).status_code == 200
    fits_width(page)


def test_a_full_session_puts_ana_on_the_waiting_list_and_a_freed_seat_is_offered_live(page: Page,
                                                                                      portal: Portal) -> None:
    _, sessions = make_program(portal, capacity=1, starts_in=timedelta(days=4))
    session = sessions[0]
    bens = register(portal, session["id"], BEN)
    assert bens["status"] == "confirmed"
    frames = watch_frames(page)
    sign_in(page, "practitioner")
    page.goto(f"/community/sessions/{session['id']}")
    expect(page.get_by_test_id("seats")).to_contain_text("Full (1 seat), no one waiting")
    page.get_by_role("button", name="Join the waiting list").click()
    expect(page.get_by_test_id("my-registration")).to_contain_text("waiting list: 1st in line")
    expect(page.get_by_test_id("meeting-link")).to_have_count(0)
    check_a11y(page)
    screenshots(page, "community-session-waiting")

    # Ben cancels on another device: the seat is offered to Ana, and her page shows it without a reload.
    wait_for_subscription(page, frames, "LiveEvents")
    ben = practitioner_token(portal, BEN)
    offered = page.get_by_test_id("my-registration").filter(has_text="A seat is offered")

    def cancel_or_nudge(attempt: int) -> None:
        if attempt == 0:
            call(portal, "POST", f"/v1/registrations/{bens['id']}/cancel", ben)
        else:  # the cancel's events were missed: a harmless change that sends another event to the agency
            other = register(portal, session["id"], next(p for p in PRACTITIONERS if p not in (ANA, BEN)))
            call(portal, "POST", f"/v1/registrations/{other['id']}/cancel",
                 practitioner_token(portal, other["person_id"]))

    until_live(cancel_or_nudge, lambda: expect(offered).to_be_visible(timeout=5_000))
    expect(page.get_by_test_id("live")).to_contain_text("Live")
    expect(page.get_by_test_id("offer-expiry")).to_contain_text("expires in")
    page.get_by_role("button", name="Accept the seat").click()
    expect(page.get_by_test_id("my-registration")).to_contain_text("your seat is confirmed")
    expect(page.get_by_test_id("meeting-link")).to_have_attribute("href", MEETING)


def test_a_session_cancelled_elsewhere_shows_as_cancelled_on_the_open_page_without_a_reload(
        page: Page, portal: Portal) -> None:
    """SessionCancelled is platform-wide (subject `platform`): it reaches the agency's live feed all the same."""
    program, sessions = make_program(portal, capacity=3, starts_in=timedelta(days=5))
    session = sessions[0]
    frames = watch_frames(page)
    sign_in(page, "practitioner")
    page.goto(f"/community/sessions/{session['id']}")
    expect(page.get_by_test_id("seats")).to_contain_text("3 of 3 seats free")
    wait_for_subscription(page, frames, "LiveEvents")

    # First the feed is shown to be flowing (an own-agency registration comes and goes), so that when the
    # session is cancelled no registration of this agency is left: only SessionCancelled can tell the page.
    colleagues = [p for p in PRACTITIONERS if p != ANA]
    seats: list[dict] = []
    until_live(lambda attempt: seats.append(register(portal, session["id"], colleagues[attempt])),
               lambda: expect(page.get_by_test_id("seats")).not_to_contain_text("3 of 3", timeout=5_000))
    for r in seats:
        call(portal, "POST", f"/v1/registrations/{r['id']}/cancel", practitioner_token(portal, r["person_id"]))
    expect(page.get_by_test_id("seats")).to_contain_text("3 of 3 seats free")
    expect(page.get_by_test_id("details")).not_to_contain_text("Cancelled")

    call(portal, "POST", f"/v1/sessions/{session['id']}/cancel", facilitator_token(portal),
         json={"reason": "Facilitator unwell"})
    expect(page.get_by_test_id("details")).to_contain_text("Cancelled", timeout=10_000)
    expect(page.get_by_role("button", name="Register")).to_have_count(0)
    expect(page.get_by_test_id("live")).to_contain_text("Live")
    assert program["title"] in page.get_by_test_id("details").inner_text()


def test_the_seeded_echo_session_is_full_with_a_waiting_list_for_its_hub(page: Page, portal: Portal) -> None:
    sign_in(page, "facilitator")
    page.goto("/community")
    page.get_by_label("Program", exact=True).select_option(label=PROGRAM_TITLE)
    first = page.get_by_test_id("session").first
    expect(first).to_contain_text("Full (4 seats), 2 waiting")
    expect(first).to_contain_text("You are on the hub")
    first.get_by_role("link").first.click()
    hub = page.get_by_test_id("hub")
    expect(hub).to_contain_text("Hub: registrations")
    expect(hub.locator("tbody tr")).to_have_count(6)
    expect(hub.get_by_role("link", name="Open the roll call")).to_be_visible()
    expect(page.get_by_test_id("meeting-link")).to_be_visible()  # the hub always sees the link
    check_a11y(page)


def test_a_practitioner_of_another_agency_sees_the_open_program_but_nothing_private(page: Page,
                                                                                    portal: Portal) -> None:
    agency = str(uuid.uuid4())
    sign_in_with_token(page, portal.token(agency, "practitioner"), "/community")
    expect(page.get_by_test_id("programs")).to_contain_text(PROGRAM_TITLE)  # open to all agencies by design
    page.get_by_label("Program", exact=True).select_option(label=PROGRAM_TITLE)
    first = page.get_by_test_id("session").first
    expect(first).to_contain_text("Full (4 seats)")
    expect(first.get_by_test_id("my-registration")).to_have_count(0)
    first.get_by_role("link").first.click()
    expect(page.get_by_test_id("seats")).to_be_visible()
    expect(page.get_by_test_id("meeting-link")).to_have_count(0)
    expect(page.get_by_test_id("hub")).to_have_count(0)
    text = page.get_by_role("main").inner_text()
    for name in PRACTITIONERS.values():
        assert name not in text, f"{name} (demo agency) is shown to another agency's practitioner"
    assert DEMO_AGENCY not in text
    check_a11y(page)
