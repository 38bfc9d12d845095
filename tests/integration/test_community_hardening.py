"""The community service's HTTP surface under bad input, on both databases and a real nats-server:
every malformed or out-of-range request is a 4xx problem+json (never a 5xx), a bad body names its
fields and writes nothing (no row in any community table, no outbox message), and every list is
paginated with `limit` capped and a cursor this API did not issue refused."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from services.community.models import Base
from tests.conftest import make_settings
from tests.stack import Instant, Stack, running_stack
from tests.support import NatsServer
from trellis.db import Database, outbox
from trellis.pagination import MAX_LIMIT

NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)  # the first session is the next day
WEEKLY = {"dtstart": "2027-03-02T10:00:00", "rrule": "FREQ=WEEKLY;BYDAY=TU;COUNT=3"}
NUL = "a\x00b"  # PostgreSQL text cannot hold NUL: it must be refused before it reaches the database


@pytest.fixture
async def instant() -> Instant:
    return Instant(NOW)


@pytest.fixture
async def stack(nats_server: NatsServer, make_db_url: Any, tmp_path: Path, instant: Instant
                ) -> AsyncIterator[Stack]:
    settings = make_settings(nats_server.url, tmp_path)
    async with running_stack(settings, {"community": make_db_url("community")}, now=instant,
                             clock=instant.today) as st:
        yield st


def db_of(st: Stack) -> Database:
    return st.apps["community"].state.db  # type: ignore[no-any-return]


async def row_counts(st: Stack) -> dict[str, int]:
    """Rows of every community table and of the outbox."""
    async with db_of(st).reader() as s:
        return {t.name: int((await s.execute(select(func.count()).select_from(t))).scalar_one())
                for t in [*Base.metadata.sorted_tables, outbox]}


async def call(st: Stack, method: str, path: str, **kw: Any) -> tuple[int, str, str, Any]:
    """(status, content type, text, json or None); an exception the app let escape is a 500."""
    try:
        r = await st.community.request(method, path, **kw)
    except Exception as e:  # the in-process transport re-raises what the app did not answer
        return 500, "", f"{type(e).__name__}: {e}"[:300], None
    body = r.json() if r.headers.get("content-type", "").endswith("json") else None
    return r.status_code, r.headers.get("content-type", ""), r.text, body


def program_body(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"title": "ECHO", "timezone": "America/Chicago", "recurrence": WEEKLY,
                            "duration_minutes": 60, "capacity": 5}
    body.update(over)
    return body


class World:
    """A program with sessions, a registration and a drafted case; ids and tokens to aim bad requests at."""

    def __init__(self, st: Stack) -> None:
        self.st = st
        self.agency, self.me, self.practitioner = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
        self.fac = st.token(self.agency, "facilitator", "practitioner", sub=self.me)
        self.admin = st.token(self.agency, "platform_admin", sub=str(uuid.uuid4()))

    async def build(self) -> World:
        await self.st.enrol(self.agency, self.me, self.practitioner)
        r = await self.st.community.post("/v1/programs", json=program_body(), headers=self.fac)
        assert r.status_code == 201, r.text
        self.program = r.json()["id"]
        r = await self.st.community.get("/v1/sessions", params={"program_id": self.program}, headers=self.fac)
        self.session = r.json()["items"][0]["id"]
        r = await self.st.community.post(f"/v1/sessions/{self.session}/registrations", headers=self.fac)
        assert r.status_code == 201, r.text
        self.registration = r.json()["id"]
        r = await self.st.community.post("/v1/cases", headers=self.fac, json={
            "session_id": self.session, "title": "Stuck", "fields": {"strengths": "Warm family"}})
        assert r.status_code == 201, r.text
        self.case = r.json()["id"]
        return self

    def at(self, path: str) -> str:
        return path.format(program=self.program, session=self.session, registration=self.registration,
                           case=self.case, person=self.practitioner)


LONG = "x" * 100_001
# route → bad bodies. Each must be a 4xx problem+json naming a field under `body`, and write nothing.
BAD_BODIES: list[tuple[str, str, list[Any]]] = [
    ("POST", "/v1/programs", [
        {}, program_body(title=""), program_body(title=LONG), program_body(capacity=0), program_body(capacity="5"),
        program_body(timezone="Mars/Olympus"), program_body(timezone=NUL), program_body(surprise=1),
        program_body(recurrence={"dtstart": "2027-03-02", "rrule": "FREQ=WEEKLY"}),
        program_body(recurrence={"dtstart": "2027-03-02T10:00:00", "rrule": "FREQ=SECONDLY"}),
        program_body(recurrence={"dtstart": "2027-03-02T10:00:00", "rrule": "FREQ=WEEKLY;BYDAY=XX"}),
        program_body(recurrence={"dtstart": "2027-03-02T10:00:00", "rrule": "FREQ=WEEKLY;WKST=ZZ"}),
        program_body(recurrence={"dtstart": "0001-01-01T00:00:00", "rrule": "FREQ=DAILY"}, timezone="Asia/Tokyo"),
        program_body(recurrence={"dtstart": "9999-12-31T23:00:00", "rrule": "FREQ=DAILY"},
                     timezone="Pacific/Honolulu"),
        program_body(recurrence={"dtstart": "2027-03-02T10:00:00", "rrule": "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30"}),
        program_body(title=NUL), program_body(competencies=[NUL]), program_body(duration_minutes=True),
        program_body(ce_rule={"kind": "count", "sessions": 0}), program_body(hub=[{"person_id": "me"}]),
    ]),
    ("PATCH", "/v1/programs/{program}", [
        {"capacity": -1}, {"title": ""}, {"timezone": "Nowhere/Else"}, {"extra": True}, {"description": NUL},
        {"recurrence": {"dtstart": "2027-13-40T10:00:00", "rrule": "FREQ=WEEKLY"}},
    ]),
    ("POST", "/v1/programs/{program}/hub", [{}, {"person_id": "x", "agency_id": "y"},
                                            {"person_id": str(uuid.uuid4()), "agency_id": str(uuid.uuid4()),
                                             "role": "boss"}]),
    ("POST", "/v1/programs/{program}/registrations", [{"person_id": "nobody"}, {"who": 1}]),
    ("PATCH", "/v1/sessions/{session}", [
        {"capacity": 0}, {"starts_at": "2027-03-02T10:00:00"}, {"starts_at": "0001-01-01T00:00:00+14:00"},
        {"starts_at": "2027-03-03T10:00:00Z", "ends_at": "2027-03-03T09:00:00Z"}, {"title": NUL}, {"nope": 1},
        {"meeting_url": "javascript:alert(1)"}, {"competencies": [""]},
    ]),
    ("POST", "/v1/sessions/{session}/cancel", [{"reason": LONG}, {"reason": 5}, {"reason": NUL}]),
    ("POST", "/v1/sessions/{session}/registrations", [{"person_id": "nobody"}, {"person_id": 7}, {"x": 1}]),
    ("POST", "/v1/sessions/{session}/check-ins", [{}, {"person_id": "x"}, {"person_id": "{person}", "walk_in": "y"}]),
    ("POST", "/v1/sessions/{session}/attendance-imports", [
        {}, {"csv": ""}, {"csv": "a,b\n", "format": "teams"}, {"csv": "x" * 1_000_001},
        {"csv": "Name,Join Time\n", "mapping": {"Ana": "not-a-uuid"}}, {"csv": NUL},
    ]),
    ("PUT", "/v1/sessions/{session}/attendance/{person}", [
        {}, {"reason": ""}, {"reason": "   "}, {"reason": "ok", "minutes_present": -1},
        {"reason": "ok", "minutes_present": 10**12}, {"reason": "ok", "attended": "yes"}, {"reason": NUL},
    ]),
    ("POST", "/v1/cases", [
        {}, {"session_id": "{session}", "title": ""}, {"session_id": "{session}", "title": "t", "extra": 1},
        {"session_id": "{session}", "title": "t", "fields": {"strengths": LONG}},
        {"session_id": "{session}", "title": "t", "fields": {"mood": "x"}},
        {"session_id": "{session}", "title": NUL},
    ]),
    ("PATCH", "/v1/cases/{case}", [{"title": ""}, {"fields": {"needs": LONG}}, {"fields": {"x": "y"}},
                                   {"fields": {"needs": NUL}}]),
    ("POST", "/v1/cases/{case}/justifications", [
        {}, {"items": []}, {"items": [{"finding_id": "f", "reason": ""}]},
        {"items": [{"finding_id": "f", "reason": "ok", "extra": 1}]},
    ]),
    ("POST", "/v1/cases/{case}/review", [{}, {"decision": "maybe"}, {"decision": "return", "comments": LONG}]),
    ("POST", "/v1/cases/{case}/recommendations", [
        {}, {"items": [], "follow_up_on": "2027-04-01"}, {"items": [{"text": "x"}], "follow_up_on": "soon"},
        {"items": [{"text": "x"}], "follow_up_on": 0}, {"items": [{"text": LONG}], "follow_up_on": "2027-04-01"},
    ]),
    ("POST", "/v1/cases/{case}/follow-up", [{}, {"report": ""}, {"report": LONG}, {"report": NUL}]),
]


def _fill(value: Any, world: World) -> Any:
    if isinstance(value, str):
        return world.at(value) if "{" in value and "}" in value else value
    if isinstance(value, dict):
        return {k: _fill(v, world) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, world) for v in value]
    return value


async def test_bad_bodies_get_problem_json_with_field_errors_and_change_nothing(stack: Stack) -> None:
    w = await World(stack).build()
    before = await row_counts(stack)
    wrong: list[str] = []
    for method, template, bodies in BAD_BODIES:
        path = w.at(template)
        for body in bodies:
            status, ctype, text, got = await call(stack, method, path, json=_fill(body, w), headers=w.fac)
            where = f"{method} {template} {str(body)[:80]!r}: {status}"
            if not (400 <= status < 500 and ctype.startswith("application/problem+json")):
                wrong.append(f"{where} {text[:200]}")
            elif status in (400, 422) and not any(e["field"].startswith("body") for e in got.get("errors", [])):
                wrong.append(f"{where} names no body field: {text[:200]}")
    assert not wrong, "\n".join(wrong)
    assert await row_counts(stack) == before


def _cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


LISTS = ["/v1/programs", "/v1/sessions", "/v1/sessions/{session}/registrations", "/v1/registrations",
         "/v1/certificates", "/v1/cases", "/v1/cases/{case}/reads"]
# Not decodable, too long, or a NUL (PostgreSQL refuses it in a query: once a 500): refused on every list.
GARBAGE_CURSORS = ["!!!", "x", _cursor("x" * 65), "%00", _cursor("\x00"), _cursor("a\x00b")]
# The session list's cursor is "<starts_at>|<id>": these decode but are not one it issued.
SESSION_CURSORS = [_cursor("not|a-time"), _cursor("2027-01-01T00:00:00|"), _cursor("2027-01-01T00:00:00|id"),
                   _cursor("9999-12-31T23:59:59-14:00|id")]


async def test_every_list_is_paginated_capped_and_refuses_cursors_it_did_not_issue(stack: Stack) -> None:
    w = await World(stack).build()
    wrong: list[str] = []
    for template in LISTS:
        path = w.at(template)
        r = await stack.community.get(path, params={"limit": 1}, headers=w.fac)
        if r.status_code != 200 or set(r.json()) < {"items", "next"} or len(r.json()["items"]) > 1:
            wrong.append(f"{template} limit=1: {r.status_code} {r.text[:200]}")
        for limit in (0, -1, MAX_LIMIT + 1, 10**30, "ten"):
            status, _, text, _ = await call(stack, "GET", path, params={"limit": limit}, headers=w.fac)
            if status != 422:
                wrong.append(f"{template} limit={limit}: {status} {text[:200]}")
        for after in GARBAGE_CURSORS + (SESSION_CURSORS if template == "/v1/sessions" else []):
            status, _, text, got = await call(stack, "GET", path, params={"after": after}, headers=w.fac)
            # The kernel answers a cursor it did not issue with 400 bad-cursor, as every service does.
            if status != 400 or (got or {}).get("type") != "urn:trellis:problem:bad-cursor":
                wrong.append(f"{template} after={after!r}: {status} {text[:200]}")
    assert not wrong, "\n".join(wrong)
    # The session list's cursor walks the pages (three sessions, one a page).
    seen, after = [], None
    while True:
        r = await stack.community.get("/v1/sessions", headers=w.fac, params={
            "program_id": w.program, "limit": 1, **({"after": after} if after else {})})
        assert r.status_code == 200, r.text
        seen += [s["id"] for s in r.json()["items"]]
        if not (after := r.json()["next"]):
            break
    assert len(seen) == len(set(seen)) == 3


# Query strings and paths a client can get wrong: a 4xx problem+json each, never a 5xx.
BAD_QUERIES: list[tuple[str, dict[str, Any]]] = [
    ("/v1/sessions", {"to": "0.5"}),  # schemathesis: a number is not a date-time
    ("/v1/sessions", {"from": "1700000000"}),
    ("/v1/sessions", {"from": "2027-03-01T00:00:00"}),  # no offset: which zone?
    ("/v1/sessions", {"from": "0001-01-01T00:00:00+14:00"}),  # before year 1 in UTC
    ("/v1/sessions", {"to": "9999-12-31T23:59:59-14:00"}),  # after year 9999 in UTC
    ("/v1/sessions", {"from": "2027-03-02T00:00:00Z", "to": "2027-03-01T00:00:00Z"}),
    ("/v1/sessions", {"program_id": "not-a-uuid"}),
    ("/v1/sessions/not-a-uuid", {}),
    ("/v1/cases", {"state": "lost"}),
    ("/v1/cases", {"session_id": "1"}),
    ("/v1/registrations", {"person_id": "me"}),
    ("/v1/sessions/{session}/registrations", {"status": "vip"}),
    ("/v1/certificates/not-a-uuid/pdf", {}),
    ("/v1/certificates/verify/" + "x" * 41, {}),
    ("/v1/certificates/verify/a%00b", {}),
    ("/v1/calendar/a%00b.ics", {}),
    ("/v1/calendar/" + "x" * 5000 + ".ics", {}),
    ("/v1/calendar/%E2%98%83.ics", {}),
]


async def test_bad_queries_and_paths_are_4xx_problem_json_never_5xx(stack: Stack) -> None:
    w = await World(stack).build()
    wrong = []
    for template, params in BAD_QUERIES:
        status, ctype, text, _ = await call(stack, "GET", w.at(template), params=params, headers=w.fac)
        if not (400 <= status < 500 and ctype.startswith("application/problem+json")):
            wrong.append(f"{template} {params!r}: {status} {text[:200]}")
    assert not wrong, "\n".join(wrong)


async def test_a_malformed_attendance_report_is_refused_whole_with_line_numbers(stack: Stack, instant: Instant
                                                                                ) -> None:
    w = await World(stack).build()
    instant.move(hours=28)  # the first session (2 March, 16:00 UTC) has begun: attendance is taken
    before = await row_counts(stack)
    head = "Name (Original Name),User Email,Join Time,Leave Time,Duration (Minutes),Guest\n"
    line = "Ana Ruiz,ana@example.org,03/02/2027 10:02:13 AM,03/02/2027 11:00:00 AM,58,No\n"
    wrong = []
    for csv in ["\n", "\ufeff", "just,some\nrandom,text\n", head + "Ana,,nope,nope,1,No\n",
                head + line * 10_000 + "Bob,,03/02/2027 13:00:00 PM,x,1,No\n", head + "\x00,,,,,\n",
                head + "Ana Ruiz,ana@example.org,12/31/9999 11:59:59 PM,12/31/9999 11:59:59 PM,58,No\n"]:
        status, _, text, got = await call(stack, "POST", f"/v1/sessions/{w.session}/attendance-imports",
                                          headers=w.fac, json={"csv": csv, "format": "auto"})
        if status != 422 or not got.get("errors") or not all(e["field"].startswith("body") for e in got["errors"]):
            wrong.append(f"{csv[:60]!r}: {status} {text[:300]}")
    # A report with a header and no participants (BOM or not) is well formed: it imports nothing.
    for csv in [head, "\ufeff" + head]:
        status, _, text, got = await call(stack, "POST", f"/v1/sessions/{w.session}/attendance-imports",
                                          headers=w.fac, json={"csv": csv})
        if status != 200 or got["imported"] != 0:
            wrong.append(f"{csv[:60]!r}: {status} {text[:300]}")
    assert not wrong, "\n".join(wrong)
    assert await row_counts(stack) == before
