"""The community service through the gateway, on SQLite and PostgreSQL and a real nats-server: programs and
sessions, registering and seeing one's seat and meeting link, a bounded number of service calls for a list, a
service's problem+json as a GraphQL error with its input path, the hub's live roll call (that session only, hub
team only), and the public routes: calendar feeds and certificate verification without signing in, the
certificate PDF only with a token."""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

import gateway.community
from gateway.app import create_app
from gateway.settings import GatewaySettings
from tests.conftest import make_settings
from tests.gateway_harness import GraphQL, RoutingTransport
from tests.integration.test_gateway_portal import listening_gateway, receive
from tests.stack import Instant, Stack, eventually, running_stack
from tests.support import NatsServer

NOW = datetime(2027, 1, 5, 15, 30, tzinfo=UTC)  # half an hour before the first session: open, and roll call taken
FIRST = datetime(2027, 1, 5, 16, 0, tzinfo=UTC)  # 10:00 in Chicago


class Routing(RoutingTransport):
    """Only the community service runs: any other service is unreachable (`me` then has no roster name)."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host not in self.routes:
            raise httpx.ConnectError(f"{request.url.host} is not running in this test", request=request)
        return await super().handle_async_request(request)


@dataclass
class World:
    agency: str
    hub: dict[str, str]  # the facilitator's headers
    hub_id: str
    program: str
    sessions: list[str]
    ana: str  # an enrolled practitioner
    ben: str

    def headers(self, st: Stack, who: str, *roles: str) -> dict[str, str]:
        return st.token(self.agency, *(roles or ("practitioner",)), sub=who)


class Gateway(GraphQL):
    world: World

    def as_(self, who: str, *roles: str) -> dict[str, str]:
        return self.world.headers(self.st, who, *roles)


CREATE = """mutation($input: CreateProgramInput!, $key: String) { createProgram(input: $input, idempotencyKey: $key) {
  id title isHub sessionCount timezone recurrence { dtstart rrule } ceRule hub { personId role } meetingUrl } }"""
SESSIONS = """query($p: ID!, $first: Int!) { community { sessions(programId: $p, first: $first) {
  id title startsAt status capacity seatsTaken waiting registrationOpen isHub meetingUrl
  myRegistration { id status } } } }"""
REGISTER = """mutation($s: ID!, $key: String) { register(sessionId: $s, idempotencyKey: $key) {
  id status position sessionId } }"""
SESSION = """query($id: ID!) { community { session(id: $id) { id title meetingUrl myRegistration { id status via }
  } } }"""
HUB_SESSION = """query($id: ID!) { community { session(id: $id) { id isHub registrations { personId status }
  attendance { threshold items { personId attended source } } cases { id } } } }"""
HUB_NAMES = "query($id: ID!) { community { session(id: $id) { registrations { personId personName } } } }"
CHECK_IN = """mutation($s: ID!, $p: ID!) { checkIn(sessionId: $s, personId: $p) {
  personId attended minutesPresent source } }"""
ROLL_CALL = """subscription($s: ID!) { rollCall(sessionId: $s) {
  type name sessionId personId agencyId registrationId data } }"""
ME = "{ me { calendarUrl certificates { id verificationCode pdfPath verifyPath hours } } }"


def program_input(hub: str, agency: str, **extra: Any) -> dict[str, Any]:
    return {"title": "MiiWrap ECHO: family team meetings", "timezone": "America/Chicago",
            "recurrence": {"dtstart": "2027-01-05T10:00:00", "rrule": "FREQ=WEEKLY;COUNT=20"},
            "durationMinutes": 60, "capacity": 2, "topic": "Needs statements", "competencies": ["engagement"],
            "meetingUrl": "https://meet.example.org/echo", "ceRule": {"kind": "count", "sessions": 1},
            "hub": [{"personId": hub, "agencyId": agency, "role": "facilitator"}], **extra}


async def make_world(gql: Gateway) -> World:
    st = gql.st
    agency, hub = str(uuid.uuid4()), str(uuid.uuid4())
    ana, ben = str(uuid.uuid4()), str(uuid.uuid4())
    await st.enrol(agency, ana, ben, names={ana: "Ana Ruiz", ben: "Ben Okafor"})
    facilitator = st.token(agency, "facilitator", sub=hub)
    made = (await gql.ok(CREATE, facilitator, input=program_input(hub, agency), key="program-1"))["createProgram"]
    sessions = (await gql.ok(SESSIONS, facilitator, p=made["id"], first=20))["community"]["sessions"]
    gql.world = World(agency, facilitator, hub, made["id"], [s["id"] for s in sessions], ana, ben)
    return gql.world


@pytest.fixture
async def gql(nats_server: NatsServer, make_db_url: Any, tmp_path: Path,
              monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Gateway]:
    settings = make_settings(nats_server.url, tmp_path)
    monkeypatch.setenv("TRELLIS_COMMUNITY_BASE_URL", "http://community")
    instant = Instant(NOW)
    async with running_stack(settings, {"community": make_db_url("community")}, now=instant,
                             clock=instant.today) as st:
        transport = Routing(st)
        app = create_app(settings=settings, transport=transport,
                         limits=GatewaySettings(portal_dir=tmp_path / "dist"))
        async with (LifespanManager(app),
                    httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as http):
            g = Gateway(st, http, transport)
            await make_world(g)
            yield g


# ---- queries and mutations -------------------------------------------------------------------------


async def test_programs_sessions_and_a_registration_with_its_meeting_link(gql: Gateway) -> None:
    w = gql.world
    made = (await gql.ok(CREATE, w.hub, input=program_input(w.hub_id, w.agency), key="program-1"))
    assert made["createProgram"]["id"] == w.program  # the Idempotency-Key reached the service: one program
    programs = (await gql.ok("{ community { programs { id title isHub sessionCount ceRule } } }",
                             gql.as_(w.ana)))["community"]["programs"]
    assert [(p["id"], p["isHub"], p["sessionCount"], p["ceRule"]) for p in programs] == [
        (w.program, False, 20, {"kind": "count", "sessions": 1})]
    one = (await gql.ok("query($id: ID!) { community { program(id: $id) { hub { role } meetingUrl } } }", w.hub,
                        id=w.program))["community"]["program"]
    assert one == {"hub": [{"role": "facilitator"}], "meetingUrl": "https://meet.example.org/echo"}

    first = w.sessions[0]
    got = (await gql.ok(SESSION, gql.as_(w.ana), id=first))["community"]["session"]
    assert got["meetingUrl"] is None and got["myRegistration"] is None  # not registered: no link

    reg = (await gql.ok(REGISTER, gql.as_(w.ana), s=first, key="reg-1"))["register"]
    assert reg["status"] == "confirmed" and reg["sessionId"] == first
    again = (await gql.ok(REGISTER, gql.as_(w.ana), s=first, key="reg-1"))["register"]
    assert again["id"] == reg["id"]  # a retried mutation is one registration

    got = (await gql.ok(SESSION, gql.as_(w.ana), id=first))["community"]["session"]
    assert got["myRegistration"] == {"id": reg["id"], "status": "confirmed", "via": "direct"}
    assert got["meetingUrl"] == "https://meet.example.org/echo"
    hub_view = (await gql.ok(HUB_SESSION, w.hub, id=first))["community"]["session"]
    assert hub_view["isHub"] and hub_view["registrations"] == [{"personId": w.ana, "status": "confirmed"}]
    assert hub_view["attendance"] == {"threshold": 0.75, "items": []} and hub_view["cases"] == []

    async def named() -> bool:  # the community learns names by their own consumer: maybe a moment after the roster
        got = (await gql.ok(HUB_NAMES, w.hub, id=first))["community"]["session"]["registrations"]
        return bool(got == [{"personId": w.ana, "personName": "Ana Ruiz"}])

    await eventually(named)

    filtered = """query($from: DateTime!, $tag: String!) { community {
      sessions(from: $from, competency: $tag, first: 5) { id } competencies caseTemplate { fields { key } } } }"""
    data = (await gql.ok(filtered, gql.as_(w.ana), **{"from": (FIRST + timedelta(days=1)).isoformat(),
                                                       "tag": "engagement"}))["community"]
    assert [s["id"] for s in data["sessions"]] == w.sessions[1:6]
    assert {f["key"] for f in data["caseTemplate"]["fields"]} == {"strengths", "needs", "tried", "question"}


async def test_a_list_of_twenty_sessions_and_my_registrations_cost_a_bounded_number_of_calls(gql: Gateway) -> None:
    w = gql.world
    series = """mutation($p: ID!) { registerSeries(programId: $p) { id status } }"""
    assert len((await gql.ok(series, gql.as_(w.ben), p=w.program))["registerSeries"]) == 20

    gql.transport.calls.clear()
    sessions = (await gql.ok(SESSIONS, gql.as_(w.ben), p=w.program, first=20))["community"]["sessions"]
    assert len(sessions) == 20 and all(s["myRegistration"]["status"] == "confirmed" for s in sessions)
    assert all(s["meetingUrl"] == "https://meet.example.org/echo" for s in sessions)
    assert gql.transport.calls["community"] == 1  # one list call, whatever the number of sessions

    gql.transport.calls.clear()
    mine = (await gql.ok("{ me { registrations { id status session { id title startsAt } } } }",
                         gql.as_(w.ben)))["me"]["registrations"]
    assert sorted(r["session"]["id"] for r in mine) == sorted(w.sessions)
    assert gql.transport.calls["community"] == 2  # my registrations, then their program's sessions in one list

    gql.transport.calls.clear()
    ext = await gql.refused(SESSIONS, gql.as_(w.ben), p=w.program, first=201)
    assert ext["code"] == "BAD_USER_INPUT" and ext["errors"][0]["path"] == "first"
    assert gql.transport.calls["community"] == 0  # refused by the gateway, before any service call


async def test_a_services_refusal_is_a_graphql_error_with_the_input_path(gql: Gateway) -> None:
    w = gql.world
    ext = await gql.refused(CREATE, w.hub, input=program_input(str(uuid.uuid4()), w.agency, capacity=0))
    assert ext["code"] == "BAD_USER_INPUT" and ext["status"] == 422 and ext["service"] == "community"
    assert {"path": "input.capacity"}.items() <= ext["errors"][0].items(), ext
    assert ext["problem"]["status"] == 422

    ext = await gql.refused(CHECK_IN, w.hub, s=w.sessions[0], p=w.ben)  # Ben did not register
    assert ext["status"] == 422 and [e["path"] for e in ext["errors"]] == ["personId"], ext

    await gql.ok(REGISTER, gql.as_(w.ana), s=w.sessions[0])
    ext = await gql.refused(REGISTER, gql.as_(w.ana), s=w.sessions[0])
    assert ext["status"] == 409 and ext["problem"]["type"].endswith("already-registered"), ext

    gql.transport.calls.clear()
    ext = await gql.refused(REGISTER, gql.as_(w.ana), s="not-an-id")
    assert ext["errors"] == [{"path": "sessionId", "message": "'not-an-id' is not an id"}]
    assert gql.transport.calls["community"] == 0


# ---- the live roll call ------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def roll_call(url: str, authorization: str, session_id: str) -> AsyncIterator[ClientConnection]:
    """A browser's graphql-transport-ws session: the token in connection_init."""
    async with connect(url, subprotocols=[Subprotocol("graphql-transport-ws")], proxy=None, open_timeout=10) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": authorization}}))
        ack = await receive(ws, 10)
        assert ack is not None and ack["type"] == "connection_ack", ack
        await ws.send(json.dumps({"id": "1", "type": "subscribe",
                                  "payload": {"query": ROLL_CALL, "variables": {"s": session_id}}}))
        yield ws


async def drain(ws: ClientConnection) -> list[dict[str, Any]]:
    got = []
    while (msg := await receive(ws, 1.0)) is not None:
        got.append(msg)
    return got


async def test_the_roll_call_delivers_its_own_sessions_check_ins_to_the_hub_only(
        gql: Gateway, tmp_path: Path) -> None:
    w, st = gql.world, gql.st
    first, second = w.sessions[0], w.sessions[1]
    await gql.ok(REGISTER, gql.as_(w.ana), s=first)
    cancel = "mutation($id: ID!) { cancelRegistration(id: $id) { status } }"
    async with listening_gateway(st.settings, tmp_path, gql.transport) as url:
        # Not on the hub team: refused before anything is subscribed.
        async with roll_call(url, gql.as_(w.ben)["Authorization"], first) as ws:
            msg = await receive(ws, 10)
        assert msg is not None
        errors = msg["payload"] if msg["type"] == "error" else msg["payload"].get("errors")
        assert errors and errors[0]["extensions"]["code"] == "FORBIDDEN", msg

        async with roll_call(url, w.hub["Authorization"], first) as ws:
            # A subscription has no ack: Ben registers for (and leaves) this session until the feed shows it.
            deadline = time.monotonic() + 15
            while (msg := await receive(ws, 0.3)) is None:
                assert time.monotonic() < deadline, "the roll call never started"
                reg = (await gql.ok(REGISTER, gql.as_(w.ben), s=first))["register"]
                await gql.ok(cancel, gql.as_(w.ben), id=reg["id"])
            assert msg["type"] == "next" and msg["payload"]["data"]["rollCall"]["sessionId"] == first, msg
            await drain(ws)

            # Another session's event does not arrive; this session's check-in does, with its person's agency.
            await gql.ok(REGISTER, gql.as_(w.ben), s=second)
            checked = (await gql.ok(CHECK_IN, w.hub, s=first, p=w.ana))["checkIn"]
            assert checked["attended"] and checked["source"] == "check_in"
            msgs = await drain(ws)
    events = [m["payload"]["data"]["rollCall"] for m in msgs if m["type"] == "next"]
    assert [(e["name"], e["sessionId"], e["personId"], e["agencyId"]) for e in events] == [
        ("AttendanceRecorded", first, w.ana, w.agency)], msgs
    assert events[0]["type"] == "community.AttendanceRecorded.v1" and events[0]["data"]["attended"] is True


# ---- public routes ------------------------------------------------------------------------------------------


async def test_calendar_feeds_and_verification_need_no_sign_in_and_the_pdf_needs_a_token(gql: Gateway) -> None:
    w, http = gql.world, gql.http
    await gql.ok(REGISTER, gql.as_(w.ana), s=w.sessions[0])
    me = (await gql.ok(ME, gql.as_(w.ana)))["me"]
    feed = me["calendarUrl"]
    assert feed.startswith("http://gateway/calendar/") and feed.endswith(".ics"), feed
    ics = await http.get(feed)  # no Authorization: the secret is the URL
    assert ics.status_code == 200, ics.text
    assert ics.headers["content-type"].startswith("text/calendar")
    assert "BEGIN:VCALENDAR" in ics.text and "TZID=America/Chicago" in ics.text

    rotated = (await gql.ok("mutation { rotateCalendarUrl { url createdAt } }", gql.as_(w.ana)))["rotateCalendarUrl"]
    assert rotated["url"] != feed and (await http.get(rotated["url"])).status_code == 200
    gone = await http.get(feed)
    assert gone.status_code == 404 and gone.headers["content-type"].startswith("application/problem+json")

    gql.transport.calls.clear()
    for bad in ("/calendar/..%2F..%2Fetc.ics", "/calendar/short.ics", f"/calendar/{'a' * 43}.txt"):
        r = await http.get(bad, headers={"Accept": "text/html"})
        assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json"), bad
    assert gql.transport.calls["community"] == 0  # refused without asking the service

    # Ana attends: the program's rule (one session) gives her a certificate.
    await gql.ok(CHECK_IN, w.hub, s=w.sessions[0], p=w.ana)
    [cert] = (await gql.ok(ME, gql.as_(w.ana)))["me"]["certificates"]
    assert cert["hours"] == 1.0 and cert["pdfPath"] == f"/files/certificates/{cert['id']}.pdf"

    verified = await http.get(cert["verifyPath"])  # no Authorization
    assert verified.status_code == 200, verified.text
    assert verified.json()["valid"] is True and verified.json()["person_name"] == "Ana Ruiz"
    unknown = await http.get("/public/certificates/verify/ZZZZ-ZZZZ-ZZZZ")
    assert unknown.status_code == 404 and unknown.headers["content-type"].startswith("application/problem+json")

    gql.transport.calls.clear()
    assert (await http.get("/public/certificates/verify/%3Cscript%3E")).status_code == 404
    refused = await http.get(cert["pdfPath"])
    assert refused.status_code == 401 and refused.headers["content-type"].startswith("application/problem+json")
    bad_id = await http.get("/files/certificates/not-a-uuid.pdf", headers=gql.as_(w.ana))
    assert bad_id.status_code == 422 and bad_id.json()["errors"][0]["field"] == "path.name"
    assert gql.transport.calls["community"] == 0

    pdf = await http.get(cert["pdfPath"], headers=gql.as_(w.ana))
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF") and "filename=" in pdf.headers["content-disposition"]
    other = await http.get(cert["pdfPath"], headers=gql.as_(w.ben))  # someone else's certificate
    assert other.status_code in (403, 404)


def test_every_plain_field_of_a_community_type_comes_from_its_model() -> None:
    """As tests/unit/test_gateway_upstream.py checks for the other services' modules: a rename cannot slip."""
    found = [v for v in vars(gateway.community).values()
             if isinstance(v, type) and hasattr(v, "_pydantic_type") and hasattr(v, "__strawberry_definition__")]
    assert len(found) >= 20
    for t in found:
        for f in t.__strawberry_definition__.fields:
            if f.base_resolver is None:
                assert f.python_name in t._pydantic_type.model_fields, f"{t.__name__}.{f.python_name}"
