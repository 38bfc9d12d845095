"""Browser tests: a case for consultation (/community/cases/new, /community/cases/<id>) with its screening
findings highlighted, fixed or justified, then submitted; the hub's review queue (/community/review)."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

from playwright.sync_api import Page, expect

from devtools.demo import CASE, PRACTITIONERS, RECOMMENDATIONS
from tests.browser.community_support import (
    ANA,
    call,
    facilitator_token,
    make_program,
    practitioner_token,
)
from tests.browser.conftest import Portal, check_a11y, fits_width, screenshots, sign_in, sign_in_with_token

CLEAN = {
    "strengths": "The teen loves drawing and football, and her aunt shows up for every meeting.",
    "needs": "Steady after-school care and a calmer start to school mornings.",
    "tried": "Two family team meetings and a school meeting about attendance.",
    "question": "How do we keep the school involved without the family feeling blamed?",
}


def a_session(portal: Portal) -> dict[str, Any]:
    _, sessions = make_program(portal, capacity=6, starts_in=timedelta(days=5))
    return sessions[0]


def submitted_case(portal: Portal, session_id: str, title: str) -> dict[str, Any]:
    ana = practitioner_token(portal, ANA)
    case = call(portal, "POST", "/v1/cases", ana, json={"session_id": session_id, "title": title, "fields": CLEAN},
                ok=201)
    assert case["state"] == "screened", case["findings"]
    submitted: dict[str, Any] = call(portal, "POST", f"/v1/cases/{case['id']}/submit", ana)
    return submitted


def test_ana_drafts_a_case_fixes_and_justifies_its_findings_and_submits_it(page: Page, portal: Portal) -> None:
    session = a_session(portal)
    sign_in(page, "practitioner")
    page.goto(f"/community/sessions/{session['id']}")
    page.get_by_role("link", name="Present a case at this session").click()
    expect(page.get_by_role("heading", level=1, name="Present a case")).to_be_visible()
    title = f"Keeping school in the loop {uuid.uuid4().hex[:6]}"
    page.get_by_label("Title").fill(title)
    page.get_by_role("textbox", name="The family's strengths").fill(CLEAN["strengths"])
    needs_box = page.get_by_role("textbox", name="The family's needs")
    needs_box.fill("Mom can be reached at jane.roe@example.com most evenings.")
    page.get_by_role("textbox", name="What has been tried").fill("We worked with Ben Okafor on the plan.")
    page.get_by_role("textbox", name="Your question for the group").fill(CLEAN["question"])
    page.get_by_role("button", name="Save and screen").click()

    # Screened at once: each finding highlighted in its text, with its kind; submitting is blocked.
    page.wait_for_url(re.compile(r"/community/cases/[0-9a-f-]{36}$"))
    case_id = page.url.rstrip("/").rsplit("/", 1)[-1]
    expect(page.get_by_test_id("case-state")).to_contain_text("Draft")
    needs = page.get_by_test_id("highlighted-needs")
    expect(needs.locator("mark")).to_have_count(1)
    expect(needs.locator("mark")).to_contain_text("jane.roe@example.com")
    expect(needs.locator("mark")).to_contain_text("[email address]")
    expect(page.get_by_test_id("highlighted-tried").locator("mark")).to_contain_text("Ben Okafor")
    expect(page.get_by_test_id("highlighted-tried").locator("mark")).to_contain_text("[name]")
    expect(page.get_by_test_id("submit-blocked")).to_contain_text("2 open findings")
    submit = page.get_by_role("button", name="Submit for review")
    expect(submit).to_be_disabled()
    check_a11y(page)
    screenshots(page, "community-case-findings")
    page.set_viewport_size({"width": 390, "height": 844})
    fits_width(page)
    page.set_viewport_size({"width": 1280, "height": 800})

    # Fix: the email is selected in its field, rewritten and screened again.
    email = page.get_by_test_id("finding").filter(has_text="jane.roe@example.com")
    email.get_by_role("button", name="Fix").click()
    box = page.get_by_role("textbox", name="The family's needs")
    expect(box).to_be_focused()
    selected = box.evaluate("el => el.value.substring(el.selectionStart, el.selectionEnd)")
    assert selected == "jane.roe@example.com"
    box.fill("Mom can be reached by email most evenings.")
    page.get_by_role("button", name="Save and screen again").click()
    expect(page.get_by_test_id("highlighted-needs")).to_have_count(0)
    # Fixed: the finding stays listed by kind, but the removed address is kept and shown nowhere.
    fixed = page.locator('[data-testid="finding"][data-kind="email"]')
    expect(fixed).to_have_attribute("data-status", "fixed")
    expect(fixed).to_contain_text("removed from the text")
    expect(page.get_by_text("jane.roe@example.com")).to_have_count(0)
    expect(page.get_by_test_id("submit-blocked")).to_contain_text("1 open finding")

    # Justify: a colleague's name is not the family's; a justification needs words.
    name = page.get_by_test_id("finding").filter(has_text="Ben Okafor")
    name.get_by_role("button", name="Justify").click()
    expect(name.get_by_role("alert")).to_contain_text("Write why")
    # The reason is screened too: naming the person again is refused, on the finding itself.
    name.get_by_role("textbox").fill("Ben Okafor is our own practitioner, not a family member.")
    name.get_by_role("button", name="Justify").click()
    expect(name.get_by_test_id("justify-error")).to_be_visible()
    name.get_by_role("textbox").fill("A colleague on our own team, not a family member.")
    name.get_by_role("button", name="Justify").click()
    expect(page.get_by_test_id("finding").filter(has_text="Ben Okafor")).to_have_attribute("data-status", "justified")
    expect(page.get_by_test_id("submit-blocked")).to_have_count(0)

    expect(submit).to_be_enabled()
    submit.click()
    expect(page.get_by_test_id("case-state")).to_contain_text("In review by the hub")
    saved = call(portal, "GET", f"/v1/cases/{case_id}", practitioner_token(portal, ANA))
    assert saved["state"] == "in_review"
    assert "jane.roe" not in saved["fields"]["needs"]
    check_a11y(page)


def test_the_facilitator_approves_and_returns_cases_in_the_review_queue(page: Page, portal: Portal) -> None:
    session = a_session(portal)
    tag = uuid.uuid4().hex[:6]
    approve = submitted_case(portal, session["id"], f"Approve me {tag}")
    ret = submitted_case(portal, session["id"], f"Return me {tag}")
    # A third case had an email, fixed before submitting: the hub does not get to read the removed address.
    ana = practitioner_token(portal, ANA)
    fixed = call(portal, "POST", "/v1/cases", ana, ok=201, json={
        "session_id": session["id"], "title": f"Fixed {tag}",
        "fields": CLEAN | {"needs": "Mom can be reached at jane.roe@example.com most evenings."}})
    call(portal, "PATCH", f"/v1/cases/{fixed['id']}", ana, json={"fields": {"needs": CLEAN["needs"]}})
    call(portal, "POST", f"/v1/cases/{fixed['id']}/submit", ana)
    sign_in(page, "facilitator")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Review queue").click()
    third = page.get_by_test_id("review-case").filter(has_text=fixed["title"])
    expect(third).to_contain_text("1 finding fixed by the presenter")
    expect(third).not_to_contain_text("jane.roe")
    expect(page.get_by_role("heading", level=1, name="Review queue")).to_be_visible()
    first = page.get_by_test_id("review-case").filter(has_text=approve["title"])
    second = page.get_by_test_id("review-case").filter(has_text=ret["title"])
    expect(first).to_contain_text(CLEAN["question"])
    check_a11y(page)
    screenshots(page, "community-review-queue")
    page.set_viewport_size({"width": 390, "height": 844})
    fits_width(page)
    page.set_viewport_size({"width": 1280, "height": 800})

    first.get_by_role("button", name=re.compile(r"^Approve")).click()
    expect(page.get_by_test_id("decided")).to_contain_text(f"Approved “{approve['title']}”")
    expect(first).to_have_count(0)
    assert call(portal, "GET", f"/v1/cases/{approve['id']}", practitioner_token(portal, ANA))["state"] == "approved"

    second.get_by_role("button", name=re.compile(r"^Return with comments")).click()
    expect(second.get_by_role("alert")).to_contain_text("Say what the presenter should change")
    comments = f"Say more about what the school tried {tag}"
    second.get_by_role("textbox").fill(comments)
    second.get_by_role("button", name=re.compile(r"^Return with comments")).click()
    expect(second).to_have_count(0)
    returned = call(portal, "GET", f"/v1/cases/{ret['id']}", practitioner_token(portal, ANA))
    assert returned["state"] == "returned" and returned["hub_comments"] == comments

    # Ana sees the hub's comments on her case, and may edit it again.
    sign_in(page, "practitioner")
    page.goto(f"/community/cases/{ret['id']}")
    expect(page.get_by_test_id("hub-comments")).to_contain_text(comments)
    expect(page.get_by_role("button", name="Save and screen again")).to_be_visible()


def test_ana_sees_the_recommendations_on_her_seeded_case(page: Page, portal: Portal) -> None:
    mine = call(portal, "GET", "/v1/cases", practitioner_token(portal, ANA), params={"mine": "true", "limit": 200})
    case = next(c for c in mine["items"] if c["title"] == CASE["title"])
    sign_in(page, "practitioner")
    page.goto(f"/community/cases/{case['id']}")
    expect(page.get_by_role("heading", level=1, name=CASE["title"])).to_be_visible()
    recommendations = page.get_by_test_id("recommendations")
    for text in RECOMMENDATIONS:
        expect(recommendations).to_contain_text(text)
    expect(page.get_by_role("main")).to_contain_text("Follow-up report due on")
    check_a11y(page)
    screenshots(page, "community-case-recommendations")


def test_people_of_another_agency_see_no_case_of_the_demo_agency(page: Page, portal: Portal) -> None:
    session = a_session(portal)
    case = submitted_case(portal, session["id"], f"Private {uuid.uuid4().hex[:6]}")
    agency = str(uuid.uuid4())
    sign_in_with_token(page, portal.token(agency, "facilitator"), "/community/review")
    expect(page.get_by_text("No case is waiting for review.")).to_be_visible()
    check_a11y(page)
    sign_in_with_token(page, portal.token(agency, "supervisor"), f"/community/cases/{case['id']}")
    expect(page.get_by_text("This case does not exist or you may not see it.")).to_be_visible()
    text = page.get_by_role("main").inner_text()
    assert case["title"] not in text and CLEAN["question"] not in text
    for name in PRACTITIONERS.values():
        assert name not in text
    # Nor does the hub's own queue show it to someone outside the hub of its program.
    assert call(portal, "GET", f"/v1/cases/{case['id']}", facilitator_token(portal))["state"] == "in_review"
