"""The readiness survey page: staff answer their agency's open round, privately, and see it saved and prefilled.

The demo seed's round is closed, so the agency admin opens one through the gateway first (or reuses the open one:
the service allows one open round per agency). That round is left open: closing it would change the agency's
latest results for the other pages' tests. Opening and closing live is shown on a fresh agency of its own.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any
from urllib.parse import unquote_plus, urlsplit

import httpx
from playwright.sync_api import Page, Request, Route, expect

from devtools.demo import COACH, DEMO_AGENCY, OBSERVERS, PRACTITIONERS
from tests.browser.conftest import Portal, check_a11y, fits_width, screenshots, sign_in, sign_in_with_token

ITEMS = 30  # the active readiness instrument: 10 domains of 3 statements
LIVE_MS = 10_000  # ReadinessRoundOpened / ReadinessResponseRecorded / ReadinessAssessed reach the page live

OPEN_ROUND = """mutation($agencyId: ID!, $title: String!) {
  openReadinessRound(agencyId: $agencyId, title: $title) { id title status }
}"""
ROUNDS = """query($agencyId: ID!) { agency(id: $agencyId) { readinessRounds {
  id title status respondents myAnswers { answers } } } }"""
ANSWER = """mutation($agencyId: ID!, $roundId: ID!, $answers: JSON!) {
  submitReadinessResponse(agencyId: $agencyId, roundId: $roundId, answers: $answers) { roundId answers }
}"""
CLOSE = """mutation($agencyId: ID!, $roundId: ID!) {
  closeReadinessRound(agencyId: $agencyId, roundId: $roundId) { id status }
}"""
INSTRUMENT_KEYS = "query { readinessInstruments { status items { key } } }"



def open_round(portal: Portal, admin: str, agency: str, title: str) -> dict[str, Any]:
    """Opens a round, or returns the agency's open one (one open round at a time)."""
    r = httpx.post(f"{portal.url}/graphql", json={"query": OPEN_ROUND, "variables": {"agencyId": agency,
                                                                                       "title": title}},
                   headers={"Authorization": f"Bearer {admin}"}, timeout=30, trust_env=False)
    body = r.json()
    if not body.get("errors"):
        opened: dict[str, Any] = body["data"]["openReadinessRound"]
        return opened
    assert body["errors"][0]["extensions"]["status"] == 409, body["errors"]
    rounds = portal.gql(admin, ROUNDS, agencyId=agency)["agency"]["readinessRounds"]
    return next(r for r in rounds if r["status"] == "open")


def item_keys(portal: Portal, token: str) -> list[str]:
    instruments = portal.gql(token, INSTRUMENT_KEYS)["readinessInstruments"]
    return [i["key"] for i in next(x for x in instruments if x["status"] == "active")["items"]]


def is_survey_query(req: Request) -> bool:
    """The page's ReadinessSurvey query (urql sends queries as GET within the URL limit, else POST)."""
    return urlsplit(req.url).path == "/graphql" and "query ReadinessSurvey" in unquote_plus(
        f"{req.url} {req.post_data or ''}")


def the_round(portal: Portal, token: str, agency: str, round_id: str) -> dict[str, Any]:
    rounds = portal.gql(token, ROUNDS, agencyId=agency)["agency"]["readinessRounds"]
    return next(r for r in rounds if r["id"] == round_id)


def test_the_practitioner_answers_the_open_round_privately_and_finds_the_answers_prefilled(
        page: Page, portal: Portal) -> None:
    admin = portal.persona_token("agency_admin")
    rnd = open_round(portal, admin, DEMO_AGENCY, f"Readiness check {uuid.uuid4().hex[:6]}")
    me = portal.persona_token("practitioner")
    assert the_round(portal, me, DEMO_AGENCY, rnd["id"])["myAnswers"] is None, "the practitioner answered already"
    before = the_round(portal, admin, DEMO_AGENCY, rnd["id"])["respondents"]

    sign_in(page, "practitioner")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Readiness survey").click()
    expect(page.get_by_role("heading", level=1, name="Readiness survey")).to_be_visible()
    form = page.get_by_role("form", name=rnd["title"])
    expect(form).to_be_visible()
    expect(form.get_by_test_id("respondents")).to_have_text(str(before))
    privacy = form.get_by_role("region", name="Your answers are never shown individually")
    expect(privacy).to_contain_text("at least 5 people answered")
    # Grouped by domain, every statement a 1-5 radio group with its anchors.
    expect(form.get_by_role("heading", level=3, name="Leadership commitment")).to_be_visible()
    statements = form.locator("fieldset[data-item]")
    expect(statements).to_have_count(ITEMS)
    expect(statements.first.get_by_role("radio")).to_have_count(5)
    expect(statements.first.get_by_role("radio", name="1 Strongly disagree")).to_be_visible()

    statements.first.get_by_role("radio", name="5 Strongly agree").check()
    for i in range(1, ITEMS):
        statements.nth(i).get_by_role("radio", name="4 Agree").check()
    expect(form.get_by_test_id("completeness")).to_contain_text(f"{ITEMS} of {ITEMS} statements answered")
    check_a11y(page)
    form.get_by_role("button", name="Save my answers").click()
    expect(form.get_by_role("status")).to_contain_text("your answers are saved")

    # The agency's count moved by one; the admin still sees no one's answers, only the count.
    assert the_round(portal, admin, DEMO_AGENCY, rnd["id"])["respondents"] == before + 1
    mine = the_round(portal, me, DEMO_AGENCY, rnd["id"])["myAnswers"]["answers"]
    assert len(mine) == ITEMS and sorted(set(mine.values())) == [4, 5]
    expect(form.get_by_test_id("respondents")).to_have_text(str(before + 1), timeout=LIVE_MS)

    # Someone else answers through the API: the count on the open page follows without a reload.
    other = next(p for p in [*PRACTITIONERS, *OBSERVERS, COACH]
                 if p != next(iter(PRACTITIONERS))
                 and the_round(portal, portal.token(DEMO_AGENCY, "practitioner", sub=p), DEMO_AGENCY,
                               rnd["id"])["myAnswers"] is None)
    keys = item_keys(portal, me)
    asked: list[str] = []  # the count comes from the ReadinessResponseRecorded event, not from asking again
    page.on("request", lambda req: asked.append(req.url) if is_survey_query(req) else None)
    portal.gql(portal.token(DEMO_AGENCY, "practitioner", sub=other), ANSWER, agencyId=DEMO_AGENCY,
        roundId=rnd["id"], answers={k: 3 for k in keys})
    expect(form.get_by_test_id("respondents")).to_have_text(str(before + 2), timeout=LIVE_MS)
    assert asked == [], "the page fetched the survey again instead of taking the count from the event"

    # Revisiting: the answers are filled in, and changing one is an update.
    page.reload()
    form = page.get_by_role("form", name=rnd["title"])
    statements = form.locator("fieldset[data-item]")
    expect(statements.first.get_by_role("radio", name="5 Strongly agree")).to_be_checked()
    assert asked, "the request listener above sees the page's survey query (so its empty list meant something)"
    expect(statements.nth(1).get_by_role("radio", name="4 Agree")).to_be_checked()
    expect(form.get_by_role("button", name="Update my answers")).to_be_disabled()
    statements.nth(1).get_by_role("radio", name="2 Disagree").check()
    form.get_by_role("button", name="Update my answers").click()
    expect(form.get_by_role("status")).to_contain_text("your answers are saved")
    second = statements.nth(1).get_attribute("data-item")
    assert the_round(portal, me, DEMO_AGENCY, rnd["id"])["myAnswers"]["answers"][second] == 2
    assert the_round(portal, admin, DEMO_AGENCY, rnd["id"])["respondents"] == before + 2  # an update, not a new one

    screenshots(page, "readiness-survey")
    page.set_viewport_size({"width": 390, "height": 844})
    fits_width(page)


def test_the_servers_refusal_of_an_answer_is_shown_on_that_statement(page: Page, portal: Portal) -> None:
    admin = portal.persona_token("agency_admin")
    rnd = open_round(portal, admin, DEMO_AGENCY, f"Readiness check {uuid.uuid4().hex[:6]}")
    sign_in_with_token(page, portal.persona_token("supervisor"), "/readiness")
    form = page.get_by_role("form", name=rnd["title"])
    first = form.locator("fieldset[data-item]").first
    key = first.get_attribute("data-item")
    assert key

    # A value off the scale, as an older or broken client would send: the service names `answers.<key>`.
    def off_the_scale(route: Route) -> None:
        body = json.loads(route.request.post_data or "{}")
        if "submitReadinessResponse" in body.get("query", ""):
            body["variables"]["answers"][key] = 9
        route.continue_(post_data=json.dumps(body))

    page.route("**/graphql", off_the_scale)
    first.get_by_role("radio", name="3 Neither agree nor disagree").check()
    form.get_by_role("button", name=re.compile("(Save|Update) my answers")).click()
    expect(first.get_by_role("alert")).to_have_text("9 is outside the scale 1-5")
    expect(form.get_by_role("alert").filter(has_text="nothing was changed")).to_be_visible()
    expect(first.get_by_role("radio").first).to_have_attribute("aria-invalid", "true")
    check_a11y(page)
    page.unroute("**/graphql")


def test_another_agencys_staff_see_only_their_own_round_opening_and_closing_live(page: Page, portal: Portal) -> None:
    suffix = uuid.uuid4().hex[:8]
    platform = portal.persona_token("platform_admin")
    agency = portal.gql(platform, """mutation($name: String!) { registerAgency(input: {name: $name}) { id } }""",
                 name=f"Hillside Youth {suffix}")["registerAgency"]["id"]
    admin = portal.token(agency, "agency_admin")
    people = [portal.gql(admin, """mutation($agencyId: ID!, $input: AddStaffMemberInput!) {
        addStaffMember(agencyId: $agencyId, input: $input) { id } }""", agencyId=agency,
                  input={"name": f"{name} {suffix}", "email": f"{name.lower()}.{suffix}@hillside.example",
                         "roles": ["practitioner"]})["addStaffMember"]["id"] for name in ("Kim", "Lee")]

    sign_in_with_token(page, portal.token(agency, "practitioner", sub=people[0]), "/readiness")
    empty = page.get_by_test_id("no-open-round")
    expect(empty).to_contain_text("no open readiness round")
    main = page.get_by_role("main")
    for demo in ("Baseline readiness", "Readiness check", "Riverside"):
        expect(main).not_to_contain_text(demo)
    check_a11y(page)

    title = f"Hillside baseline {suffix}"
    rnd = open_round(portal, admin, agency, title)
    form = page.get_by_role("form", name=title)
    expect(form).to_be_visible(timeout=LIVE_MS)
    expect(form.get_by_test_id("respondents")).to_have_text("0")

    portal.gql(portal.token(agency, "practitioner", sub=people[1]), ANSWER, agencyId=agency,
        roundId=rnd["id"], answers={k: 4 for k in item_keys(portal, admin)})
    expect(form.get_by_test_id("respondents")).to_have_text("1", timeout=LIVE_MS)

    portal.gql(admin, CLOSE, agencyId=agency, roundId=rnd["id"])  # ReadinessAssessed: the live event
    expect(page.get_by_role("status").filter(has_text=f"\u201c{title}\u201d has just closed")).to_be_visible()
    expect(form).to_have_count(0)
    expect(empty).to_contain_text(f"The last round, \u201c{title}\u201d, closed")
