"""Record an observation (/observe): the generated form, calibration, server errors on their fields, a retry-safe
submit, the recent list's live update, and another agency seeing nothing of the demo agency."""

from __future__ import annotations

import json
import time
import uuid
from datetime import date, timedelta
from typing import Any

import httpx
from playwright.sync_api import Page, Route, expect

from devtools.demo import ADMIN, DEMO_AGENCY, OBSERVERS, PRACTITIONERS
from services.fidelity import domain
from tests.browser.conftest import Portal, check_a11y, fits_width, screenshots, sign_in, sign_in_with_token

GRACE = next(o for o, name in OBSERVERS.items() if name == "Grace Hall")
INSTRUMENT = domain.MIIWRAP_PRACTICE_V1  # the demo's active practice instrument
REFERENCE = domain.SEEDED_REFERENCES[0]  # its shared reference recording, master-coded


def fidelity(portal: Portal) -> str:
    return f"http://127.0.0.1:{portal.stack.ports['fidelity']}"


def readiness(portal: Portal) -> str:
    return f"http://127.0.0.1:{portal.stack.ports['readiness']}"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def observations_with_notes(portal: Portal, practitioner: str, notes: str) -> list[dict[str, Any]]:
    """The practitioner's observations carrying these (unique) notes, straight from the fidelity service."""
    token = portal.token(DEMO_AGENCY, "observer", sub=GRACE)
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    with httpx.Client(base_url=fidelity(portal), headers=auth(token), timeout=10, trust_env=False) as http:
        while True:
            params: dict[str, Any] = {"practitioner_id": practitioner, "limit": 100}
            if cursor:
                params["after"] = cursor
            r = http.get("/v1/observations", params=params)
            assert r.status_code == 200, r.text
            body = r.json()
            found += [o for o in body["items"] if o["notes"] == notes]
            cursor = body.get("next")
            if not cursor:
                return found


def score_items(page: Page, prefix: str, scores: dict[str, int]) -> None:
    for key, value in scores.items():
        page.locator(f"#{prefix}-{key}-{value}").check()


def fill_observation(page: Page, practitioner_name: str, scores: dict[str, int], notes: str,
                     observed_on: date | None = None, setting: str = "Home visit") -> None:
    page.get_by_label("Practitioner").select_option(label=practitioner_name)
    if observed_on is not None:
        page.get_by_label("Observed on").fill(observed_on.isoformat())
    page.get_by_label("Setting").select_option(label=setting)
    score_items(page, "obs", scores)
    page.get_by_label("Notes").fill(notes)


def open_as_grace(page: Page) -> None:
    sign_in(page, "observer")
    page.goto("/observe")
    expect(page.get_by_role("heading", level=1, name="Record an observation")).to_be_visible()


# A mixed set of scores that passes (the running total must match the service's own scoring).
SCORES = {item.key: 2 for item in INSTRUMENT.items} | {"natural_supports": 1, "options_brainstormed": 1}


def test_grace_sees_she_is_calibrated_records_an_observation_and_sees_it_confirmed(page: Page,
                                                                                  portal: Portal) -> None:
    open_as_grace(page)
    status = page.get_by_test_id("rater-status")
    expect(status).to_contain_text("Calibrated")
    expect(status).to_contain_text("until")
    expect(page.get_by_test_id("calibration")).to_have_count(0)

    # The form is generated from the instrument: every item is a radio group named by its label.
    for item in INSTRUMENT.items:
        expect(page.get_by_role("radiogroup", name=item.label)).to_be_visible()
    expect(page.locator("fieldset.competency > legend")).to_have_text(INSTRUMENT.competencies)
    critical = [i for i in INSTRUMENT.items if i.critical]
    expect(page.locator("fieldset.item .badge", has_text="Critical")).to_have_count(len(critical))
    expect(page.get_by_label("Observed on")).to_have_value(date.today().isoformat())

    notes = f"Browser test {uuid.uuid4()}"
    ben, ben_name = next((p, n) for p, n in PRACTITIONERS.items() if n == "Ben Okafor")
    fill_observation(page, ben_name, SCORES, notes)
    expected = domain.score(INSTRUMENT, SCORES)
    expect(page.get_by_test_id("running-total-value")).to_have_text(f"{expected.total:g}%")

    page.get_by_role("button", name="Record observation").click()
    confirmation = page.get_by_test_id("confirmation")
    expect(confirmation).to_contain_text(f"{expected.total:g}%")
    expect(confirmation).to_contain_text("passed")
    expect(confirmation.get_by_role("link")).to_have_attribute("href", f"/practitioners/{ben}")
    saved = observations_with_notes(portal, ben, notes)
    assert len(saved) == 1 and saved[0]["score"] == expected.total and saved[0]["observer_id"] == GRACE
    # The form is ready for the next one.
    expect(page.get_by_test_id("running-total-value")).to_have_text("—")

    recent = page.get_by_test_id("recent-observations")
    expect(recent.locator("tbody tr").first).to_contain_text(ben_name)

    check_a11y(page)
    screenshots(page, "record-observation")
    page.set_viewport_size({"width": 390, "height": 844})
    fits_width(page)


def test_the_recent_list_updates_live_when_an_observation_is_recorded_elsewhere(page: Page, portal: Portal) -> None:
    sent: list[str] = []
    page.on("websocket", lambda ws: ws.on("framesent", lambda payload: sent.append(str(payload))))
    open_as_grace(page)
    recent = page.get_by_test_id("recent-observations")
    expect(recent).to_be_visible()
    fay, fay_name = next((p, n) for p, n in PRACTITIONERS.items() if n == "Fay Chen")
    token = portal.token(DEMO_AGENCY, "observer", sub=GRACE)
    first = recent.locator("tbody tr").first
    expect(first).not_to_contain_text("Community")  # the demo seed observes in team meetings and home visits
    deadline = time.monotonic() + 10
    while not any('"subscribe"' in f and "LiveEvents" in f for f in sent):
        assert time.monotonic() < deadline, "the page never subscribed to live events"
        page.wait_for_timeout(100)
    # Recorded by Grace from another device (the service directly), while this page stays as it is. The
    # gateway's NATS subscription starts a moment after the browser's subscribe: a second try covers that.
    for attempt in range(3):
        r = httpx.post(f"{fidelity(portal)}/v1/observations", headers=auth(token), timeout=10, trust_env=False,
                       json={"practitioner_id": fay, "instrument_id": INSTRUMENT.id,
                             "observed_on": (date.today() - timedelta(days=1)).isoformat(), "setting": "community",
                             "scores": SCORES, "notes": f"Live test {uuid.uuid4()}"})
        assert r.status_code == 201, r.text
        try:
            expect(first).to_contain_text("Community", timeout=5_000)
            break
        except AssertionError:
            if attempt == 2:
                raise
    expect(first).to_contain_text(fay_name)
    expect(page.get_by_text("Live: updated just now")).to_be_visible()


def test_a_future_date_shows_the_servers_error_on_the_date_field(page: Page, portal: Portal) -> None:
    open_as_grace(page)
    notes = f"Future {uuid.uuid4()}"
    chloe, chloe_name = next((p, n) for p, n in PRACTITIONERS.items() if n == "Chloe Martin")
    fill_observation(page, chloe_name, SCORES, notes, observed_on=date.today() + timedelta(days=5))
    page.get_by_role("button", name="Record observation").click()

    date_input = page.get_by_label("Observed on")
    expect(date_input).to_have_attribute("aria-invalid", "true")
    error = page.locator("#obs-date-error")
    expect(error).to_contain_text("cannot be dated in the future")  # the fidelity service's own words
    assert "obs-date-error" in (date_input.get_attribute("aria-describedby") or "")
    summary = page.get_by_role("alert").filter(has_text="The observation was not recorded")
    link = summary.get_by_role("link", name="Observed on: an observation cannot be dated in the future")
    expect(link).to_have_attribute("href", "#obs-date")
    link.click()
    expect(date_input).to_be_focused()
    assert observations_with_notes(portal, chloe, notes) == []
    check_a11y(page)

    # Fixing the date records it; the error goes away.
    date_input.fill(date.today().isoformat())
    page.get_by_role("button", name="Record observation").click()
    expect(page.get_by_test_id("confirmation")).to_be_visible()
    expect(date_input).not_to_have_attribute("aria-invalid", "true")
    assert len(observations_with_notes(portal, chloe, notes)) == 1


def test_a_submit_retried_after_a_lost_answer_records_one_observation(page: Page, portal: Portal) -> None:
    open_as_grace(page)
    notes = f"Retry {uuid.uuid4()}"
    dev, dev_name = next((p, n) for p, n in PRACTITIONERS.items() if n == "Dev Patel")
    fill_observation(page, dev_name, SCORES, notes)

    keys: list[str] = []

    def lose_the_first_answer(route: Route) -> None:
        body = route.request.post_data or ""
        if "recordObservation" not in body:
            route.continue_()
            return
        keys.append(json.loads(body)["variables"]["input"]["idempotencyKey"])
        if len(keys) == 1:
            route.fetch()  # the gateway and the service do the work...
            route.abort("connectionreset")  # ...and the answer is lost on the way back
        else:
            route.continue_()

    page.route("**/graphql", lose_the_first_answer)
    button = page.get_by_role("button", name="Record observation")
    button.click()
    expect(page.get_by_role("alert").filter(has_text="cannot be reached")).to_be_visible()
    assert len(observations_with_notes(portal, dev, notes)) == 1  # it was recorded, the browser does not know

    expect(button).to_be_enabled()
    button.click()
    expect(page.get_by_test_id("confirmation")).to_be_visible()
    assert len(keys) == 2 and keys[0] == keys[1], keys  # the retry carried the same Idempotency-Key
    assert len(observations_with_notes(portal, dev, notes)) == 1  # and recorded nothing twice

    # A new observation, even with the same content, gets a new key.
    fill_observation(page, dev_name, SCORES, notes)
    # The previous confirmation may still be on screen: wait for this submit's own answer.
    with page.expect_response(lambda r: "recordObservation" in (r.request.post_data or "")):
        button.click()
    expect(page.get_by_test_id("confirmation")).to_be_visible()
    assert len(keys) == 3 and keys[2] != keys[0]
    assert len(observations_with_notes(portal, dev, notes)) == 2


def add_observer_to_the_demo_roster(portal: Portal) -> tuple[str, str]:
    """A new observer on the demo agency's roster (readiness), once the roster has reached fidelity."""
    person = str(uuid.uuid4())
    name = f"Kim Newman {person[:4]}"
    admin = portal.token(DEMO_AGENCY, "agency_admin", sub=ADMIN)
    r = httpx.post(f"{readiness(portal)}/v1/agencies/{DEMO_AGENCY}/staff", headers=auth(admin), timeout=10,
                   trust_env=False, json={"id": person, "name": name, "email": f"kim.{person[:8]}@demo.example",
                                          "roles": ["observer"]})
    assert r.status_code == 201, r.text
    # Fidelity learns of the roster by event: ask it about the person (on an instrument that does not exist, so
    # nothing can be recorded) until it no longer says they are not on the roster.
    grace = portal.token(DEMO_AGENCY, "observer", sub=GRACE)
    deadline = time.monotonic() + 30
    while True:
        r = httpx.post(f"{fidelity(portal)}/v1/observations", headers=auth(grace), timeout=10, trust_env=False, json={
            "practitioner_id": person, "instrument_id": str(uuid.uuid4()), "observed_on": date.today().isoformat(),
            "setting": "office", "scores": {}})
        assert r.status_code == 422, r.text
        codes = {e.get("code") for e in r.json().get("errors", [])}
        if "not-active-staff" not in codes:
            return person, name
        assert time.monotonic() < deadline, "the new observer never reached the fidelity service's roster"
        time.sleep(0.2)


def test_an_uncalibrated_observer_sees_why_and_calibrates_on_the_reference(page: Page, portal: Portal) -> None:
    person, name = add_observer_to_the_demo_roster(portal)
    sign_in_with_token(page, portal.token(DEMO_AGENCY, "observer", sub=person), "/observe")
    expect(page.get_by_test_id("signed-in-as")).to_have_text(name)  # named from the roster

    status = page.get_by_test_id("rater-status")
    expect(status).to_contain_text("Not calibrated")
    expect(status).to_contain_text("never calibrated")
    expect(page.get_by_role("button", name="Record observation")).to_have_count(0)
    panel = page.get_by_test_id("calibration")
    reference = panel.get_by_label(REFERENCE.title)
    expect(reference).to_be_visible()
    check_a11y(page)

    reference.check()
    panel.get_by_role("button", name="Submit my scores").click()  # nothing scored: each item is pointed at
    expect(panel.get_by_role("alert")).to_contain_text(INSTRUMENT.items[0].label)
    expect(panel.get_by_role("radiogroup", name=INSTRUMENT.items[0].label)).to_have_attribute("aria-invalid", "true")

    score_items(page, "cal", REFERENCE.scores)  # scored as the master coding: full agreement
    panel.get_by_role("button", name="Submit my scores").click()
    result = page.get_by_test_id("calibration-result")
    expect(result).to_contain_text("100% agreement")
    expect(result).to_contain_text("You are now calibrated")
    expect(status).to_contain_text("Calibrated")
    expect(page.get_by_role("button", name="Record observation")).to_be_visible()
    check_a11y(page)

    # One attempt per reference: the same reference again is refused with the service's reason.
    panel.get_by_role("button", name="Submit my scores").click()
    expect(panel.get_by_role("alert")).to_contain_text("already scored this reference")


def test_an_observer_of_another_agency_sees_no_demo_practitioners(page: Page, portal: Portal) -> None:
    agency, person = str(uuid.uuid4()), str(uuid.uuid4())
    token = portal.token(agency, "observer", sub=person)
    # Calibrated on the shared reference, so the whole form shows.
    r = httpx.post(f"{fidelity(portal)}/v1/calibrations", headers=auth(token), timeout=10, trust_env=False,
                   json={"reference_id": REFERENCE.id, "scores": REFERENCE.scores})
    assert r.status_code == 201, r.text
    sign_in_with_token(page, token, "/observe")
    expect(page.get_by_test_id("rater-status")).to_contain_text("Calibrated")
    picker = page.get_by_label("Practitioner")
    expect(picker).to_be_visible()
    expect(picker.locator("option")).to_have_count(1)  # only "no practitioners"
    main = page.get_by_role("main")
    expect(main).to_contain_text("Recent observations I recorded")
    text = main.inner_text()
    for name in [*PRACTITIONERS.values(), *OBSERVERS.values()]:
        assert name not in text, f"{name} (demo agency) is shown to another agency's observer"
    check_a11y(page)
