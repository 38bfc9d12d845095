"""The practitioner page in Chromium: the coach picks a practitioner and sees the fidelity control chart and its table
with the seeded observations; switches competency; opens a follow-up task; an observation recorded through the API
shows up live; the practitioner sees only their own page; another agency's coach sees nothing."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from playwright.sync_api import Locator, Page, expect

from devtools.demo import DEMO_AGENCY, OBSERVERS, PRACTITIONERS
from tests.browser.conftest import Portal, check_a11y, fits_width, screenshots, sign_in, sign_in_with_token

BY_NAME = {name: pid for pid, name in PRACTITIONERS.items()}
ANA, BEN, CHLOE, FAY = (BY_NAME[n] for n in ("Ana Ruiz", "Ben Okafor", "Chloe Martin", "Fay Chen"))
RULES = {"ewma_below_limit": "EWMA below the lower control limit", "run_of_declines": "Run of declining scores"}
SERIES = """query($id: ID!, $metric: String!) { practitioner(id: $id) { fidelitySeries(metric: $metric) {
  observationId observedOn score flagged } } }"""



def series(portal: Portal, practitioner: str, metric: str = "total") -> list[dict[str, Any]]:
    got = portal.gql(portal.persona_token("coach"), SERIES, id=practitioner, metric=metric)
    points: list[dict[str, Any]] = got["practitioner"]["fidelitySeries"]
    return points


def competencies(portal: Portal) -> list[str]:
    got = portal.gql(portal.persona_token("coach"),
              '{ instruments(status: "active", kind: "practice_observation") { competencies } }')
    names: list[str] = got["instruments"][0]["competencies"]
    return names


def series_rows(page: Page) -> Locator:
    """The chart's table alternative, opened: one body row per observation."""
    chart = page.get_by_test_id("control-chart")
    summary = chart.get_by_text("Show as table")
    if chart.locator("details").get_attribute("open") is None:
        summary.click()
    return page.get_by_test_id("series-table").locator("tbody tr")


def open_as_coach(page: Page, name: str) -> None:
    """The coach signs in, goes to Practitioners in the main navigation and picks `name`."""
    sign_in(page, "coach")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Practitioners").click()
    page.get_by_label("Practitioner", exact=True).select_option(label=name)
    page.wait_for_url(re.compile(rf"/practitioners/{BY_NAME[name]}$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text(name)


def test_the_coach_picks_a_practitioner_and_sees_the_control_chart_with_the_seeded_observations(
        page: Page, portal: Portal) -> None:
    open_as_coach(page, "Chloe Martin")
    points = series(portal, CHLOE)
    assert len(points) >= 6, points  # the seed's six months, plus whatever other tests recorded

    chart = page.get_by_test_id("control-chart")
    expect(chart.locator("svg").first).to_be_visible()
    label = chart.locator("div[role=img]").get_attribute("aria-label") or ""
    assert f"{len(points)} observations" in label, label
    rows = series_rows(page)
    expect(rows).to_have_count(len(points))
    for row, p in zip(rows.all(), points, strict=True):
        expect(row.locator("td").first).to_have_text(p["observedOn"])
        expect(row.locator("td").last).to_have_text(RULES.get(p["flagged"], p["flagged"]) if p["flagged"] else "—")
    expect(page.get_by_test_id("drift-status")).to_contain_text(re.compile("No drift|Drifting"))
    expect(page.get_by_test_id("certification")).to_contain_text(
        re.compile("Certified|Not certified|Recertification due|Lapsed|Revoked"))
    # Every seeded observation opened a debrief task.
    expect(page.get_by_test_id("coaching-tasks").locator("tbody tr")).not_to_have_count(0)
    expect(page.get_by_test_id("coaching-tasks")).to_contain_text("Observation debrief")


def test_flagged_points_are_named_with_their_rule_in_the_table(page: Page, portal: Portal) -> None:
    """Whoever the seed left drifting: each flagged observation's row names its rule, the drift status says so."""
    flagged = {name: [p for p in series(portal, pid) if p["flagged"]] for name, pid in BY_NAME.items()}
    drifting = next((n for n, f in flagged.items() if f), None)
    if drifting is None:  # the seed's drifting practitioner is not flagged today: nothing to mark
        open_as_coach(page, "Chloe Martin")
        expect(page.get_by_test_id("series-table").locator("td", has_text=re.compile("EWMA below|Run of"))) \
            .to_have_count(0)
        return
    open_as_coach(page, drifting)
    rows = series_rows(page)
    for p in flagged[drifting]:
        expect(rows.filter(has_text=p["observedOn"]).first).to_contain_text(RULES.get(p["flagged"], p["flagged"]))


def test_switching_competency_shows_that_competencys_series(page: Page, portal: Portal) -> None:
    open_as_coach(page, "Ben Okafor")
    competency = competencies(portal)[0]
    points = series(portal, BEN, competency)
    total = series(portal, BEN)
    assert [p["score"] for p in points] != [p["score"] for p in total], "pick a competency that differs"

    page.get_by_label("Competency").select_option(label=competency)
    table = page.get_by_test_id("series-table")
    series_rows(page)
    expect(table.locator("caption")).to_contain_text(competency.lower())
    expect(table.locator("thead")).to_contain_text(competency)
    label = page.get_by_test_id("control-chart").locator("div[role=img]").get_attribute("aria-label") or ""
    assert f"competency {competency}" in label, label
    scores = [f"{p['score']:.1f}".removesuffix(".0") for p in points]
    cells = table.locator("tbody tr td:nth-child(3)")
    expect(cells).to_have_count(len(points))
    for cell, score in zip(cells.all(), scores, strict=True):
        expect(cell).to_contain_text(score)


def test_the_coach_opens_a_follow_up_task_and_sees_it(page: Page, portal: Portal) -> None:
    open_as_coach(page, "Dev Patel")
    title = f"Rehearse needs statements {uuid.uuid4().hex[:8]}"
    due = (datetime.now(UTC).date() + timedelta(days=10)).isoformat()
    page.get_by_label("What to follow up").fill(title)
    page.get_by_label("Due on").fill(due)
    page.get_by_role("button", name="Open follow-up task").click()

    expect(page.get_by_role("status").filter(has_text="Follow-up task opened")).to_contain_text(title)
    row = page.get_by_test_id("coaching-tasks").get_by_role("row").filter(has_text=title)
    expect(row).to_contain_text("Follow-up")
    expect(row).to_contain_text(due)
    expect(row).to_contain_text("Open")
    tasks = portal.gql(portal.persona_token("coach"), "query($id: ID!) { practitioner(id: $id) { coachingTasks "
                "{ title kind dueOn } } }", id=BY_NAME["Dev Patel"])["practitioner"]["coachingTasks"]
    assert {"title": title, "kind": "follow_up", "dueOn": due} in tasks


def test_a_follow_up_due_in_the_past_is_refused_on_the_due_date_field(page: Page, portal: Portal) -> None:
    open_as_coach(page, "Dev Patel")
    title = f"Too late {uuid.uuid4().hex[:8]}"
    page.get_by_label("What to follow up").fill(title)
    page.get_by_label("Due on").fill("2020-01-01")
    page.get_by_role("button", name="Open follow-up task").click()
    expect(page.get_by_role("alert").first).to_be_visible()
    expect(page.get_by_label("Due on")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_test_id("coaching-tasks")).not_to_contain_text(title)


def record_observation(portal: Portal, practitioner: str) -> dict[str, Any]:
    """An observation for `practitioner`, recorded through the fidelity API by a seeded (calibrated) observer."""
    observer = next(iter(OBSERVERS))
    token = portal.token(DEMO_AGENCY, "observer", sub=observer)
    fidelity = f"http://127.0.0.1:{portal.stack.ports['fidelity']}"
    with httpx.Client(base_url=fidelity, timeout=20, trust_env=False,
                      headers={"Authorization": f"Bearer {token}"}) as http:
        r = http.get("/v1/instruments", params={"kind": "practice_observation", "status": "active"})
        r.raise_for_status()
        instrument = r.json()["items"][0]
        scores = {str(i["key"]): int(i["scale_max"]) for i in instrument["items"]}
        r = http.post("/v1/observations", headers={"Idempotency-Key": f"browser-practitioner-{uuid.uuid4()}"}, json={
            "practitioner_id": practitioner, "instrument_id": instrument["id"],
            "observed_on": datetime.now(UTC).date().isoformat(), "setting": "home_visit", "scores": scores,
            "notes": "Recorded by the practitioner page's browser test."})
        assert r.status_code == 201, r.text
        body: dict[str, Any] = r.json()
        return body


def test_an_observation_recorded_through_the_api_shows_up_live(page: Page, portal: Portal) -> None:
    open_as_coach(page, "Fay Chen")
    rows = series_rows(page)
    before = len(series(portal, FAY))
    expect(rows).to_have_count(before)
    tasks = page.get_by_test_id("coaching-tasks").locator("tbody tr")
    expect(tasks.first).to_be_visible()
    tasks_before = tasks.count()
    assert tasks_before >= before, "every seeded observation opened a debrief task"
    page.evaluate("() => { window.__sameDocument = true; }")  # gone if the page reloads
    expect(page.get_by_test_id("live")).to_have_text("")

    obs = record_observation(portal, FAY)

    expect(rows).to_have_count(before + 1, timeout=15_000)
    expect(rows.last.locator("td").first).to_have_text(obs["observed_on"])
    expect(rows.last.locator("td").nth(2)).to_contain_text("100")
    expect(page.get_by_test_id("live")).to_contain_text("Live")
    label = page.get_by_test_id("control-chart").locator("div[role=img]").get_attribute("aria-label") or ""
    assert f"{before + 1} observations" in label, label
    # The observation opened a debrief task, which arrives by its own event.
    expect(tasks).to_have_count(tasks_before + 1, timeout=15_000)
    assert page.evaluate("() => window.__sameDocument === true"), "the page reloaded instead of updating live"


def test_the_practitioner_sees_only_their_own_page(page: Page, portal: Portal) -> None:
    sign_in(page, "practitioner")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="My practice").click()
    page.wait_for_url(re.compile(rf"/practitioners/{ANA}$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("Ana Ruiz")
    expect(series_rows(page)).to_have_count(len(series(portal, ANA)))
    expect(page.get_by_label("Practitioner", exact=True)).to_have_count(0)  # no picker
    expect(page.get_by_role("button", name="Open follow-up task")).to_have_count(0)  # coaches open tasks
    expect(page.get_by_test_id("certification")).to_be_visible()

    page.goto(f"/practitioners/{BEN}")  # someone else's page, by its URL
    expect(page.get_by_role("alert").first).to_be_visible()
    expect(page.get_by_test_id("control-chart")).to_have_count(0)
    expect(page.get_by_test_id("certification")).to_have_count(0)
    expect(page.get_by_role("main")).not_to_contain_text("Ben Okafor")
    check_a11y(page)


def test_another_agencys_coach_sees_nothing_of_the_demo_agency(page: Page, portal: Portal) -> None:
    other = str(uuid.uuid4())
    sign_in_with_token(page, portal.token(other, "coach"), f"/practitioners/{CHLOE}")
    picker = page.get_by_label("Practitioner", exact=True)
    expect(picker).to_be_visible()
    expect(picker.locator("option")).to_have_count(1)  # only "Choose a practitioner": their agency has nobody
    main = page.get_by_role("main")
    expect(main.get_by_text(re.compile("No observations|not found|no access|can only", re.I)).first).to_be_visible()
    expect(page.get_by_test_id("control-chart")).to_have_count(0)
    for name in PRACTITIONERS.values():
        expect(main).not_to_contain_text(name)
    for p in series(portal, CHLOE):
        expect(main).not_to_contain_text(p["observedOn"])
    expect(page.get_by_test_id("coaching-tasks")).to_have_count(0)  # no tasks of theirs: the empty state instead
    check_a11y(page)


def test_the_page_is_accessible_fits_a_phone_and_is_pictured(page: Page, portal: Portal) -> None:
    open_as_coach(page, "Chloe Martin")
    expect(page.get_by_test_id("control-chart").locator("svg").first).to_be_visible()
    expect(page.get_by_test_id("certification")).to_be_visible()
    check_a11y(page)
    series_rows(page)  # the table open too: it is checked and pictured
    check_a11y(page)
    shots = screenshots(page, "practitioner")
    assert all(p.stat().st_size > 0 for p in shots)
    page.set_viewport_size({"width": 390, "height": 844})
    fits_width(page)
    check_a11y(page)
