"""The agency overview in Chromium: stage, readiness, plan, certification and turnover for the demo agency; an agency
admin marks a plan action done; an action added through the API shows up live; another agency sees nothing."""

from __future__ import annotations

import re
import uuid
from typing import Any

from playwright.sync_api import Page, expect

from devtools.demo import DEMO_AGENCY, PLATFORM
from tests.browser.conftest import Portal, check_a11y, fits_width, screenshots, sign_in, sign_in_with_token

DEMO_NAME = "Riverside Family Services"
STAGE_WORDS = ("Exploration", "Installation", "Initial Implementation", "Full Implementation", "Sustainment")
PAST = "2025-01-15"  # a due date every run's "today" is past: the action is overdue



def add_action(portal: Portal, title: str, *, overdue: bool = False) -> str:
    """A fresh action of the demo plan, through the gateway as the seeded agency admin (unique per test)."""
    token = portal.persona_token("agency_admin")
    got = portal.gql(token, "mutation($a: ID!, $t: String!) { addPlanAction(agencyId: $a, input: {title: $t}) "
                             "{ id } }", a=DEMO_AGENCY, t=title)
    action_id = str(got["addPlanAction"]["id"])
    if overdue:  # new actions cannot be due in the past; a changed due date can
        moved = portal.gql(token, "mutation($a: ID!, $x: ID!, $d: Date!) { updatePlanAction(agencyId: $a, "
                                   "actionId: $x, input: {dueOn: $d}) { overdue } }",
                    a=DEMO_AGENCY, x=action_id, d=PAST)
        assert moved["updatePlanAction"]["overdue"] is True
    return action_id


def action_status(portal: Portal, action_id: str) -> str:
    got = portal.gql(portal.persona_token("agency_admin"),
              "query($a: ID!) { agency(id: $a) { plan { actions { id status } } } }", a=DEMO_AGENCY)
    return next(str(a["status"]) for a in got["agency"]["plan"]["actions"] if a["id"] == action_id)


def open_overview(page: Page, persona: str, agency: str = DEMO_AGENCY) -> None:
    sign_in(page, persona)
    page.goto(f"/agency/{agency}")
    expect(page.get_by_role("heading", level=1, name=DEMO_NAME)).to_be_visible()


def row_of(page: Page, title: str) -> Any:
    return page.get_by_test_id("plan").get_by_role("row").filter(has_text=title)


def test_the_admin_sees_stage_readiness_plan_certification_turnover_and_gate(page: Page, portal: Portal) -> None:
    open_overview(page, "agency_admin")

    stage = page.get_by_test_id("stage")
    expect(page.get_by_test_id("current-stage")).to_have_text(re.compile("|".join(STAGE_WORDS)))
    expect(stage).to_contain_text("The implementation plan was approved")  # the seed's plan approval, as a reason
    expect(stage.locator("[aria-current=step]")).to_have_count(1)
    expect(stage).not_to_contain_text("initial_implementation")  # plain words, never the keys

    readiness = page.get_by_test_id("readiness")
    expect(readiness).to_contain_text("Baseline readiness")
    # The seed's gap is data_systems: the service's reason names it by key, the page by the instrument's label.
    expect(page.get_by_test_id("readiness-reasons")).to_contain_text("Data systems")
    for section in ("readiness", "plan"):
        expect(page.get_by_test_id(section)).not_to_contain_text(re.compile(r"\b[a-z]+_[a-z_]+\b"))
    chart = page.get_by_test_id("readiness-chart")
    expect(chart.locator("div[role=img]")).to_have_attribute("aria-label", re.compile("Readiness per domain"))
    chart.get_by_text("Show as table").click()
    table = chart.get_by_role("table")
    expect(table).to_be_visible()
    assert table.get_by_role("row").count() >= 3  # header + several domains

    cert = page.get_by_test_id("certification")
    expect(cert.get_by_test_id("certified-percent")).to_have_text(re.compile(r"^\d+%$"))
    share = page.get_by_test_id("share-chart")
    expect(share.locator("div[role=img]")).to_have_attribute("aria-label", re.compile("50% Full Implementation line"))
    share.get_by_text("Show as table").click()
    expect(share.get_by_role("table")).to_contain_text(re.compile(r"\d{4}-\d{2}"))

    expect(page.get_by_test_id("turnover")).to_contain_text("Active staff")
    expect(page.get_by_test_id("turnover-chart").locator("div[role=img]")).to_be_visible()
    expect(page.get_by_test_id("training-gate")).to_contain_text(re.compile("(Not cleared|Cleared) for training"))
    # A missing favicon is no page error; anything the page's code threw or logged is.
    errors = [e for e in page.console_errors if "Failed to load resource" not in e]  # type: ignore[attr-defined]
    assert not errors, errors


def test_an_agency_admin_marks_an_overdue_action_done(page: Page, portal: Portal) -> None:
    title = f"Book the booster training {uuid.uuid4().hex[:8]}"
    action_id = add_action(portal, title, overdue=True)
    open_overview(page, "agency_admin")

    row = row_of(page, title)
    expect(row.get_by_test_id("overdue")).to_have_text("Overdue")
    row.get_by_role("button", name=f"Mark done: {title}").click()

    expect(page.get_by_test_id("plan-message")).to_contain_text(f"“{title}” is done.")
    expect(row).to_contain_text("Done")
    expect(row.get_by_test_id("overdue")).to_have_count(0)  # done work is never marked overdue
    expect(row.get_by_role("button")).to_have_count(0)
    assert action_status(portal, action_id) == "done"


def test_a_change_through_the_api_shows_up_live(page: Page, portal: Portal) -> None:
    open_overview(page, "supervisor")
    expect(page.get_by_role("button", name=re.compile("^Mark "))).to_have_count(0)  # only admins complete actions
    page.evaluate("() => { window.__sameDocument = true; }")  # gone if the page reloads
    expect(page.get_by_test_id("live")).to_have_text("")

    title = f"Review the coaching schedule {uuid.uuid4().hex[:8]}"
    add_action(portal, title)  # publishes PlanActionAdded on the agency's events, and nothing else

    expect(row_of(page, title)).to_contain_text("Open", timeout=15_000)
    expect(page.get_by_test_id("live")).to_contain_text("Live")
    assert page.evaluate("() => window.__sameDocument === true"), "the page reloaded instead of updating live"


def test_another_agencys_admin_sees_nothing_of_the_demo_agency(page: Page, portal: Portal) -> None:
    other = str(uuid.uuid4())
    sign_in_with_token(page, portal.token(other, "agency_admin"), f"/agency/{DEMO_AGENCY}")

    expect(page.get_by_test_id("no-access")).to_contain_text("not found, or you have no access")
    main = page.get_by_role("main")
    expect(main).not_to_contain_text(DEMO_NAME)
    for section in ("stage", "readiness", "plan", "certification", "turnover", "training-gate"):
        expect(page.get_by_test_id(section)).to_have_count(0)
    check_a11y(page)


def fresh_agency_with_one_respondent(portal: Portal) -> tuple[str, str, str]:
    """A new agency whose only readiness round closed with one answer: every domain is under the privacy floor.

    Returns the agency id, its name and an agency admin's token.
    """
    name = f"Hilltop Youth Services {uuid.uuid4().hex[:6]}"
    made = portal.gql(portal.persona_token("platform_admin"),
               "mutation($n: String!) { registerAgency(input: {name: $n, region: \"East\"}) { id } }", n=name)
    agency = str(made["registerAgency"]["id"])
    admin = portal.token(agency, "agency_admin")
    # Only the agency's active staff answer its rounds: one person on the roster, who answers alone.
    staff = portal.gql(admin, "mutation($a: ID!) { addStaffMember(agencyId: $a, input: {name: \"Kim Lee\", "
                               "email: \"kim.lee@hilltop.example\", roles: [\"practitioner\"]}) { id } }",
                a=agency)["addStaffMember"]["id"]
    respondent = portal.token(agency, "practitioner", sub=str(staff))
    opened = portal.gql(admin, "mutation($a: ID!) { openReadinessRound(agencyId: $a, title: \"First look\") "
                                "{ id instrument { scaleMax items { key } } } }", a=agency)["openReadinessRound"]
    answers = {item["key"]: opened["instrument"]["scaleMax"] for item in opened["instrument"]["items"]}
    portal.gql(respondent, "mutation($a: ID!, $r: ID!, $x: JSON!) { submitReadinessResponse(agencyId: $a, "
                            "roundId: $r, answers: $x) { roundId } }", a=agency, r=opened["id"], x=answers)
    portal.gql(admin, "mutation($a: ID!, $r: ID!) { closeReadinessRound(agencyId: $a, roundId: $r) { id } }",
        a=agency, r=opened["id"])
    return agency, name, admin


def test_domains_under_the_privacy_floor_show_no_figures(page: Page, portal: Portal) -> None:
    agency, name, admin = fresh_agency_with_one_respondent(portal)
    sign_in_with_token(page, admin, f"/agency/{agency}")
    expect(page.get_by_role("heading", level=1, name=name)).to_be_visible()

    chart = page.get_by_test_id("readiness-chart")
    expect(chart.locator("div[role=img]")).to_have_attribute("aria-label", re.compile("Insufficient respondents"))
    chart.get_by_text("Show as table").click()
    rows = chart.get_by_role("table").locator("tbody tr")
    assert rows.count() >= 3
    for row in rows.all():  # the one answer was the top of the scale: no mean, spread or agreement may show it
        cells = row.locator("td").all_inner_texts()
        assert cells[1] == "Insufficient respondents", cells
        assert cells[3:] == ["—", "—", "—"], cells
    expect(page.get_by_test_id("readiness")).not_to_contain_text(re.compile(r"\d\.\d\d"))
    expect(page.get_by_test_id("readiness")).not_to_contain_text(re.compile(r"\bGaps?:"))
    check_a11y(page)


def test_the_partner_picks_any_agency(page: Page, portal: Portal) -> None:
    sign_in(page, "platform_admin")
    page.goto(f"/agency/{PLATFORM}")  # the partner's own tenant is no agency: the page asks to pick one
    picker = page.get_by_label("Agency", exact=True)
    expect(picker.locator("option", has_text=DEMO_NAME)).to_have_count(1)
    picker.select_option(value=DEMO_AGENCY)
    page.wait_for_url(f"**/agency/{DEMO_AGENCY}")
    expect(page.get_by_role("heading", level=1, name=DEMO_NAME)).to_be_visible()
    expect(page.get_by_test_id("plan")).to_be_visible()


def test_the_overview_is_accessible_fits_a_phone_and_is_pictured(page: Page, portal: Portal) -> None:
    open_overview(page, "agency_admin")
    expect(page.get_by_test_id("share-chart")).to_be_visible()
    check_a11y(page)
    shots = screenshots(page, "agency-overview")
    assert all(p.stat().st_size > 0 for p in shots)
    for details in page.locator("details.chart-table").all():
        details.locator("summary").click()  # the tables are part of the page too
    check_a11y(page)
    page.set_viewport_size({"width": 390, "height": 844})
    fits_width(page)  # waits for the charts to redraw at the new width
