"""The roster page: an agency admin previews a CSV (a dry run with row errors), imports it, and watches the
roster table update live. Names and emails are unique per run: the browser stack is shared by every test."""

from __future__ import annotations

import uuid

from playwright.sync_api import Page, expect

from devtools.demo import DEMO_AGENCY, PRACTITIONERS
from tests.browser.conftest import Portal, check_a11y, fits_width, screenshots, sign_in, sign_in_with_token

STAFF = "query($agencyId: ID!) { agency(id: $agencyId) { staff { name email status } } }"
ADD_STAFF = """mutation($agencyId: ID!, $input: AddStaffMemberInput!) {
  addStaffMember(agencyId: $agencyId, input: $input) { id name } }"""



def emails(portal: Portal, token: str) -> set[str]:
    return {s["email"] for s in portal.gql(token, STAFF, agencyId=DEMO_AGENCY)["agency"]["staff"]}


def test_the_agency_admin_previews_a_bad_file_fixes_it_and_imports_it_with_the_roster_updating_live(
        page: Page, portal: Portal) -> None:
    s = uuid.uuid4().hex[:8]
    ada, bo = f"Ada Quill {s}", f"Bo Strand {s}"
    ada_mail, bo_mail = f"ada.{s}@riverside.example", f"bo.{s}@riverside.example"
    # Not practitioners: the other pages' tests count the demo agency's practitioners and its certified share.
    bad = f"name,email,roles,team\n{ada},{ada_mail},facilitator,North\n{bo},{bo_mail},coach;wizard,\n"
    admin = portal.persona_token("agency_admin")

    sign_in(page, "agency_admin")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Roster").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Roster")
    table = page.get_by_test_id("staff").get_by_role("table")
    expect(table).to_contain_text("Ivy Brooks")  # the demo roster
    expect(page.get_by_text("The columns the file needs")).to_be_visible()

    # A file with one bad row: the preview names the row and its column, and nothing is imported.
    page.get_by_label("Or paste the CSV").fill(bad)
    page.get_by_role("button", name="Preview").click()
    expect(page.get_by_role("alert")).to_contain_text("nothing was imported")
    errors = page.get_by_test_id("row-errors").get_by_role("row")
    expect(errors).to_have_count(2)  # the header and row 3
    expect(errors.nth(1)).to_contain_text("3")
    expect(errors.nth(1)).to_contain_text("roles: unknown role 'wizard'")
    expect(errors.nth(1)).to_contain_text(f"{bo},{bo_mail},coach;wizard")
    expect(page.get_by_role("button", name="Import", exact=False).filter(has_text="change")).to_have_count(0)
    assert not {ada_mail, bo_mail} & emails(portal, admin), "a refused file must import nobody"
    expect(table).not_to_contain_text(ada)
    check_a11y(page)

    # Fixed, and chosen as a file this time: the preview counts, then the import writes.
    fixed = bad.replace("coach;wizard", "coach;supervisor")
    page.get_by_label("CSV file").set_input_files(
        files=[{"name": f"roster-{s}.csv", "mimeType": "text/csv", "buffer": fixed.encode()}])
    expect(page.get_by_label("Or paste the CSV")).to_have_value(fixed)
    page.get_by_role("button", name="Preview").click()
    expect(page.get_by_test_id("preview")).to_contain_text("2 rows: 2 new, 0 updated, 0 unchanged")
    expect(page.get_by_test_id("row-errors")).to_have_count(0)
    assert not {ada_mail, bo_mail} & emails(portal, admin), "a preview must import nobody"
    page.get_by_role("button", name="Import 2 changes").click()
    expect(page.get_by_test_id("imported")).to_contain_text("Imported — 2 rows: 2 new")
    expect(table).to_contain_text(ada)
    expect(table).to_contain_text(bo)
    assert {ada_mail, bo_mail} <= emails(portal, admin)

    # Previewing the same file again: everyone is already there, so there is nothing to import.
    page.get_by_role("button", name="Preview").click()
    expect(page.get_by_test_id("preview")).to_contain_text("2 rows: 0 new, 0 updated, 2 unchanged")

    # Someone added elsewhere (the API, another admin) appears without a reload: the StaffMemberJoined event.
    cy = f"Cy Marsh {s}"
    portal.gql(admin, ADD_STAFF, agencyId=DEMO_AGENCY,
        input={"name": cy, "email": f"cy.{s}@riverside.example", "roles": ["coach"]})
    expect(table).to_contain_text(cy)
    expect(page.locator(".live")).to_contain_text("Live")

    check_a11y(page)
    screenshots(page, "roster")
    page.set_viewport_size({"width": 390, "height": 844})
    fits_width(page)


def test_a_coach_has_no_roster_link_and_is_told_they_cannot_manage_it(page: Page, portal: Portal) -> None:
    sign_in(page, "coach")
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link").first).to_be_visible()
    expect(nav.get_by_role("link", name="Roster")).to_have_count(0)
    page.goto("/roster")
    expect(page.get_by_test_id("roster-not-allowed")).to_contain_text("You cannot manage the roster")
    expect(page.get_by_label("Or paste the CSV")).to_have_count(0)
    check_a11y(page)


def test_another_agencys_admin_sees_none_of_the_demo_staff(page: Page, portal: Portal) -> None:
    s = uuid.uuid4().hex[:8]
    platform = portal.persona_token("platform_admin")
    agency = portal.gql(platform, """mutation($name: String!) { registerAgency(input: {name: $name}) { id } }""",
                 name=f"Lakeside Care {s}")["registerAgency"]["id"]
    sign_in_with_token(page, portal.token(agency, "agency_admin"), "/roster")
    staff = page.get_by_test_id("staff")
    expect(staff).to_contain_text("Nobody is on the roster yet")
    main = page.get_by_role("main")
    for name in [*PRACTITIONERS.values(), "Ivy Brooks", "Jon Reyes", "Riverside"]:
        expect(main).not_to_contain_text(name)

    # Their own import lands in their own agency only.
    page.get_by_label("Or paste the CSV").fill(f"name,email,roles\nDee Lake {s},dee.{s}@lakeside.example,coach\n")
    page.get_by_role("button", name="Preview").click()
    page.get_by_role("button", name="Import 1 change").click()
    expect(staff.get_by_role("table")).to_contain_text(f"Dee Lake {s}")
    assert f"dee.{s}@lakeside.example" not in emails(portal, portal.persona_token("agency_admin"))
