"""Issue 9 §5 on the real stack (SQLite and PostgreSQL): body limits before auth and parsing, bad input
that used to answer 500, and staff ids that no longer tell one agency about another."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from sqlalchemy import select

from gateway.app import create_app as gateway_app
from services.readiness.models import Staff
from tests.stack import Stack
from trellis.db import Database
from trellis.migrate import upgrade
from trellis.pagination import encode_cursor
from trellis.settings import Settings

MiB = 1024 * 1024
CHUNK = 64 * 1024


SERVICES = ("readiness", "fidelity", "coaching")


def problem(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text[:500]
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert body["status"] == status and body["type"].startswith("urn:trellis:problem:")
    return body


class Upload:
    """A body streamed in 64 KiB chunks, counting how many the server pulled."""

    def __init__(self, total: int) -> None:
        self.total, self.pulled = total, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.total // CHUNK):
            self.pulled += 1
            yield b" " * CHUNK


async def register(st: Stack) -> tuple[str, dict[str, str]]:
    platform = st.token(str(uuid.uuid4()), "platform_admin")
    r = await st.readiness.post("/v1/agencies", headers=platform,
                                json={"name": "Agency", "region": "North", "programs": ["Wraparound"]})
    assert r.status_code == 201, r.text
    agency = r.json()["id"]
    return agency, st.token(agency, "agency_admin")


def staff(email: str, **extra: Any) -> dict[str, Any]:
    return {"name": "Pat Doe", "email": email, "roles": ["practitioner"], **extra}


# ---- body limits -------------------------------------------------------------------------------------------


async def test_a_huge_body_without_a_token_is_refused_at_once_and_never_reaches_the_app(st: Stack) -> None:
    for name, client in st.clients.items():
        path = "/v1/agencies" if name == "readiness" else "/v1/observations"
        chunked = Upload(64 * MiB)  # no Content-Length: the server has to count
        start = time.perf_counter()
        r = await client.post(path, content=chunked, headers={"content-type": "application/json"})
        elapsed = time.perf_counter() - start
        body = problem(r, 413)
        assert body["max_bytes"] == MiB and "1 MiB" in body["detail"]
        assert chunked.pulled <= MiB // CHUNK + 1, f"{name} read {chunked.pulled} chunks"  # not 1,024
        assert elapsed < 2, elapsed

        declared = Upload(300 * MiB)  # a Content-Length over the limit: not one byte is read
        r = await client.post(path, content=declared,
                              headers={"content-type": "application/json", "content-length": str(300 * MiB)})
        problem(r, 413)
        assert declared.pulled == 0

        # Nothing inside the limit layer ran: the request counter (the app's own middleware) saw nothing.
        metrics = (await client.get("/metrics")).text
        assert 'method="POST"' not in metrics, f"{name} ran the app for an oversized body"


async def test_a_roster_csv_may_be_10_mib_and_no_more(st: Stack) -> None:
    agency, admin = await register(st)
    csv_headers = {**admin, "content-type": "text/csv"}
    # ~3 MB of valid rows (a wide ignored column): over the JSON limit and the old 2 MB cap, under 10 MiB.
    rows = [f"Person {i},p{i}@example.org,practitioner,{'n' * 100_000}" for i in range(30)]
    text = "name,email,roles,notes\n" + "\n".join(rows) + "\n"
    assert MiB < len(text) < 10 * MiB
    r = await st.readiness.post(f"/v1/agencies/{agency}/staff/import", params={"dry_run": "true"},
                                content=text.encode(), headers=csv_headers)
    assert r.status_code == 200, r.text[:300]
    assert r.json()["created"] == 30

    big = Upload(11 * MiB)
    r = await st.readiness.post(f"/v1/agencies/{agency}/staff/import", content=big, headers=csv_headers)
    assert "10 MiB" in problem(r, 413)["detail"] and big.pulled <= 10 * MiB // CHUNK + 1
    # The same bytes as JSON meet the 1 MiB limit.
    r = await st.readiness.post("/v1/agencies", content=text.encode(),
                                headers={**admin, "content-type": "application/json"})
    problem(r, 413)


async def test_the_gateway_has_the_same_limit(tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path)
    app = gateway_app(settings)  # no lifespan needed: the limit answers before anything else runs
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as gw:
        big = '{"query": "{ __typename }", "variables": {"pad": "' + "x" * (2 * MiB) + '"}}'
        r = await gw.post("/graphql", content=big.encode(), headers={"content-type": "application/json"})
        problem(r, 413)
        chunked = Upload(64 * MiB)
        r = await gw.post("/graphql", content=chunked, headers={"content-type": "application/json"})
        problem(r, 413)
        assert chunked.pulled <= MiB // CHUNK + 1


# ---- bad input that used to answer 500 ---------------------------------------------------------------------


@pytest.mark.parametrize("after", [
    "wrI",                                   # base64 of '²': str.isdigit() passes it, int() does not
    encode_cursor("9" * 30),                 # beyond any integer column
    encode_cursor(str(2**31)),               # beyond drift_points.seq (INTEGER)
])
async def test_a_fidelity_series_cursor_it_never_issued_is_a_400(st: Stack, after: str) -> None:
    agency = str(uuid.uuid4())
    reader = st.token(agency, "supervisor")
    person = str(uuid.uuid4())
    r = await st.fidelity.get(f"/v1/people/{person}/fidelity-series", headers=reader, params={"after": after})
    body = problem(r, 400)
    assert body["type"] == "urn:trellis:problem:bad-cursor" and body["errors"][0]["field"] == "query.after"
    r = await st.fidelity.get(f"/v1/people/{person}/fidelity-series", headers=reader,
                              params={"after": encode_cursor(str(2**31 - 1))})
    assert r.status_code == 200 and r.json()["points"] == []


async def test_a_csv_cell_over_the_field_size_limit_is_a_422_that_changes_nothing(st: Stack) -> None:
    agency, admin = await register(st)
    text = f"name,email,roles\nAna,ana@example.org,practitioner\n{'a' * 131_073},bo@example.org,practitioner\n"
    for dry_run in ("true", "false"):
        r = await st.readiness.post(f"/v1/agencies/{agency}/staff/import", params={"dry_run": dry_run},
                                    content=text.encode(), headers={**admin, "content-type": "text/csv"})
        body = problem(r, 422)
        assert body["errors"][0]["line"] == 3 and "field limit" in body["errors"][0]["message"]
    listed = (await st.readiness.get(f"/v1/agencies/{agency}/staff", headers=admin)).json()
    assert listed["items"] == []


# ---- staff ids are per agency: one in use elsewhere is neither refused nor revealed ----------------------


async def test_post_staff_with_an_id_of_another_agency_behaves_as_for_a_new_id(st: Stack) -> None:
    a, a_admin = await register(st)
    b, b_admin = await register(st)
    taken, fresh = str(uuid.uuid4()), str(uuid.uuid4())
    r = await st.readiness.post(f"/v1/agencies/{a}/staff", headers=a_admin,
                                json=staff("a@example.org", id=taken, name="In Agency A"))
    assert r.status_code == 201, r.text

    answers = []
    for person in (taken, fresh):
        r = await st.readiness.post(f"/v1/agencies/{b}/staff", headers=b_admin,
                                    json=staff(f"{person}@example.org", id=person))
        answers.append((r.status_code, sorted(r.json())))
    assert answers[0] == answers[1] and answers[0][0] == 201  # same answer: nothing learnt about agency A

    # Each agency sees and changes only its own record of that id.
    a_view = (await st.readiness.get(f"/v1/agencies/{a}/staff/{taken}", headers=a_admin)).json()
    b_view = (await st.readiness.get(f"/v1/agencies/{b}/staff/{taken}", headers=b_admin)).json()
    assert (a_view["name"], a_view["email"]) == ("In Agency A", "a@example.org")
    assert (b_view["name"], b_view["email"]) == ("Pat Doe", f"{taken}@example.org")
    r = await st.readiness.post(f"/v1/agencies/{b}/staff/{taken}/leave", headers=b_admin, json={})
    assert r.status_code == 200, r.text
    assert (await st.readiness.get(f"/v1/agencies/{a}/staff/{taken}", headers=a_admin)).json()["status"] == "active"

    # Within one agency an id is still used once.
    r = await st.readiness.post(f"/v1/agencies/{a}/staff", headers=a_admin, json=staff("x@example.org", id=taken))
    assert problem(r, 409)["detail"] == f"Staff id {taken} is already on this agency's roster."


async def test_a_csv_import_naming_another_agencys_staff_id_does_what_its_dry_run_said(st: Stack) -> None:
    a, a_admin = await register(st)
    b, b_admin = await register(st)
    taken = str(uuid.uuid4())
    r = await st.readiness.post(f"/v1/agencies/{a}/staff", headers=a_admin, json=staff("a@example.org", id=taken))
    assert r.status_code == 201, r.text
    text = f"name,email,roles,id\nSam Roe,sam@example.org,practitioner,{taken}\n"
    results = []
    for dry_run in ("true", "false"):
        r = await st.readiness.post(f"/v1/agencies/{b}/staff/import", params={"dry_run": dry_run},
                                    content=text.encode(), headers={**b_admin, "content-type": "text/csv"})
        assert r.status_code == 200, r.text
        results.append({k: v for k, v in r.json().items() if k != "dry_run"})
    assert results[0] == results[1] == {"rows": 1, "created": 1, "updated": 0, "unchanged": 0}
    b_view = (await st.readiness.get(f"/v1/agencies/{b}/staff/{taken}", headers=b_admin)).json()
    assert b_view["email"] == "sam@example.org"
    a_view = (await st.readiness.get(f"/v1/agencies/{a}/staff/{taken}", headers=a_admin)).json()
    assert a_view["email"] == "a@example.org"


async def test_the_staff_key_migration_keeps_existing_rows(make_db_url) -> None:
    url = make_db_url("readiness_mig")
    await anyio.to_thread.run_sync(upgrade, "readiness", url, "0001")
    db = Database(url)
    person, a, b = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    stamp = datetime(2025, 1, 6, tzinfo=UTC)
    row = {"id": person, "name": "Old Row", "email": "old@example.org", "team_id": None, "roles": ["coach"],
           "hire_date": stamp.date(), "status": "active", "left_on": None, "created_at": stamp,
           "updated_at": stamp}
    async with db.engine.begin() as conn:
        await conn.execute(Staff.__table__.insert().values(agency_id=a, **row))
    await db.dispose()
    await anyio.to_thread.run_sync(upgrade, "readiness", url, "head")
    db = Database(url)
    async with db.reader(all_agencies=True) as s:
        kept = (await s.scalars(select(Staff))).all()
        assert [(m.id, m.agency_id, m.name) for m in kept] == [(person, a, "Old Row")]
    async with db.unit_of_work(agency=b) as s:  # the same id in another agency is a row of its own
        s.add(Staff(agency_id=b, **{**row, "name": "New Row"}))
    async with db.reader(all_agencies=True) as s:
        rows = (await s.execute(select(Staff.agency_id, Staff.name).where(Staff.id == person))).all()
        assert sorted(rows) == sorted([(a, "Old Row"), (b, "New Row")])
    await db.dispose()
