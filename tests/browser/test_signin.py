"""Signing in on the dev stack: the persona picker, the dev-only token endpoint, and the page's accessibility."""

from __future__ import annotations

import re

import httpx
import jwt
from playwright.sync_api import BrowserContext, Page, expect

from devtools.demo import COACH, DEMO_AGENCY
from tests.browser.conftest import TOKEN_KEY, Portal, check_a11y, fits_width, screenshots, sign_in, sign_in_with_token

PERSONAS = {"agency_admin", "supervisor", "coach", "observer", "practitioner", "facilitator", "platform_admin"}


def test_the_signin_page_lists_the_seven_seeded_personas(page: Page, portal: Portal) -> None:
    people = portal.personas()
    assert {p["key"] for p in people} == PERSONAS, people
    page.goto("/signin")
    for person in people:
        expect(page.get_by_role("button", name=f"{person['label']} — {person['name']}")).to_be_visible()
    expect(page.get_by_role("button", name=re.compile(" — "))).to_have_count(len(PERSONAS))


def test_picking_the_coach_signs_in_and_lands_on_home_with_the_coachs_name(page: Page, portal: Portal) -> None:
    page.goto("/signin")
    page.get_by_role("button", name="Coach — Ivy Brooks").click()  # the picker itself, no token fallback

    page.wait_for_url(re.compile(r"/$"))
    expect(page.get_by_role("main")).to_contain_text("Ivy Brooks")
    token = page.evaluate("(key) => sessionStorage.getItem(key)", TOKEN_KEY)
    assert token, "the portal keeps no token in sessionStorage after signing in"
    # The start page offers what a coach's roles allow, and nothing an observer or admin does.
    tiles = page.get_by_role("main").get_by_role("link")
    expect(tiles).to_have_text([re.compile("^Agency overview"), re.compile("^Practitioners"),
                                re.compile("^Readiness survey")])


def test_dev_tokens_exist_on_the_loopback_dev_stack(portal: Portal) -> None:
    with httpx.Client(base_url=portal.url, timeout=10, trust_env=False) as http:
        assert http.get("/auth/config").json() == {"mode": "dev"}
        r = http.post("/dev/token", json={"persona": "coach"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["token_type"] == "Bearer" and body["expires_in"] > 0
        # Signed with the stack's dev secret, for the seeded coach (sync: the browser's loop owns this thread).
        s = portal.settings
        claims = jwt.decode(body["access_token"], s.jwt_secret.get_secret_value(), algorithms=["HS256"],
                            audience=s.jwt_audience, issuer=s.jwt_issuer)
        assert (claims["sub"], claims["agency"], claims["roles"]) == (COACH, DEMO_AGENCY, ["coach"])

        unknown = http.post("/dev/token", json={"persona": "root"})
        assert unknown.status_code == 422, unknown.text
        assert unknown.headers["content-type"].startswith("application/problem+json")


def test_the_signin_page_is_accessible_and_fits_a_phone(page: Page, portal: Portal) -> None:
    page.goto("/signin")
    expect(page.get_by_role("button", name=re.compile(" — ")).first).to_be_visible()
    check_a11y(page)
    shots = screenshots(page, "signin")
    assert all(p.stat().st_size > 0 for p in shots)
    page.set_viewport_size({"width": 390, "height": 844})
    fits_width(page)


def test_every_persona_of_the_demo_agency_signs_in_by_key(context: BrowserContext, portal: Portal) -> None:
    for person in portal.personas():
        if person["agency"] != DEMO_AGENCY:
            continue  # the platform admin's tenant has no roster to name them from
        page = context.new_page()  # sessionStorage is per tab: a new page starts signed out
        sign_in(page, person["key"])
        expect(page.get_by_role("main")).to_contain_text(person["name"])
        page.close()


def test_a_token_signs_in_whoever_it_names(page: Page, portal: Portal) -> None:
    sign_in_with_token(page, portal.token(DEMO_AGENCY, "coach", sub=COACH))
    expect(page.get_by_role("main")).to_contain_text("Ivy Brooks")
    assert "/signin" not in page.url
