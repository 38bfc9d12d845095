"""The gateway as the portal's host: the built portal at `/` (caching, client-side routes, API 404s kept, a
page saying how to build it), how the portal signs in (`/auth/config`, the dev persona picker's routes, which
exist only for the dev secret on loopback), `me`, and subscriptions authorised by connection_init."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import nats
import pytest
import uvicorn
from asgi_lifespan import LifespanManager
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from devtools.demo import (
    COACH,
    DEMO_AGENCY,
    PERSONAS_FILE,
    PLATFORM,
    PLATFORM_ADMIN,
    load_personas,
    personas,
    save_personas,
)
from gateway.app import create_app
from gateway.settings import GatewaySettings
from tests.conftest import make_settings
from tests.gateway_harness import RoutingTransport
from tests.stack import problem, running_stack
from tests.support import NatsServer
from trellis.auth import TokenVerifier, mint_dev_token
from trellis.settings import Settings

HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}  # what a browser sends for a page
INDEX = "<!doctype html><html><body><div id=root>the portal</div></body></html>"
SCRIPT = "console.log('hashed')"
PERSONA_KEYS = ["agency_admin", "supervisor", "coach", "observer", "practitioner", "facilitator", "platform_admin"]
OIDC = {"oidc_issuer": "https://id.example.org/realms/trellis", "oidc_jwks_url": "https://id.example.org/jwks",
        "oidc_audience": "trellis-api"}
ME = "{ me { id agencyId roles name } }"


@pytest.fixture(autouse=True)
def _loopback_gateway(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever the environment says, the gateway binds loopback unless a test says otherwise."""
    monkeypatch.setenv("TRELLIS_GATEWAY_HOST", "127.0.0.1")
    for key in ("TRELLIS_JWT_SECRET", "TRELLIS_OIDC_ISSUER", "TRELLIS_OIDC_JWKS_URL", "TRELLIS_GATEWAY_PORTAL_DIR"):
        monkeypatch.delenv(key, raising=False)


def build(dist: Path) -> Path:
    """What `make portal` leaves: index.html, hashed assets, a plain file at the root."""
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text(INDEX)
    (dist / "assets" / "index-3f9a1c.js").write_text(SCRIPT)
    (dist / "favicon.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    return dist


@contextlib.asynccontextmanager
async def gateway(settings: Settings, dist: Path, *, client: tuple[str, int] = ("127.0.0.1", 50000),
                  transport: httpx.AsyncBaseTransport | None = None) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings=settings, transport=transport, limits=GatewaySettings(portal_dir=dist))
    async with LifespanManager(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=client), base_url="http://127.0.0.1:8000") as http:
        yield http


# ---- serving the portal ------------------------------------------------------------------------------------------


async def test_the_built_portal_is_served_with_caching_that_fits_each_file(
        nats_server: NatsServer, tmp_path: Path) -> None:
    dist = build(tmp_path / "dist")
    async with gateway(make_settings(nats_server.url, tmp_path), dist) as http:
        page = await http.get("/", headers=HTML)
        assert page.status_code == 200 and page.text == INDEX
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["cache-control"] == "no-cache"  # names the current hashes: always revalidated
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "connect-src 'self' ws://127.0.0.1:8000 wss://127.0.0.1:8000" in csp
        assert "id.example.org" not in csp  # no OIDC configured
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["referrer-policy"] == "no-referrer"

        asset = await http.get("/assets/index-3f9a1c.js")
        assert asset.status_code == 200 and asset.text == SCRIPT
        assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert "javascript" in asset.headers["content-type"]
        assert (await http.get("/favicon.svg")).headers["cache-control"] == "public, max-age=3600"
        # A stale page asking for an old hash gets a 404, never index.html as its script.
        assert (await http.get("/assets/index-000000.js", headers=HTML)).status_code == 404
        forged = await http.get("/", headers={**HTML, "Host": "x; script-src *"})
        assert "script-src *" not in forged.headers["content-security-policy"]  # a client's Host ends no directive
        head = await http.head("/")
        assert head.status_code == 200 and head.content == b""


async def test_the_bundle_is_sent_compressed_to_browsers_that_accept_it(
        nats_server: NatsServer, tmp_path: Path) -> None:
    dist = build(tmp_path / "dist")
    big = "export const x = 1;\n" * 2000  # a bundle worth compressing
    (dist / "assets" / "index-3f9a1c.js").write_text(big)
    async with gateway(make_settings(nats_server.url, tmp_path), dist) as http:
        zipped = await http.get("/assets/index-3f9a1c.js", headers={"Accept-Encoding": "gzip"})
        assert zipped.headers["content-encoding"] == "gzip" and zipped.text == big  # httpx decodes it
        assert int(zipped.headers["content-length"]) < len(big) // 10
        assert zipped.headers["cache-control"] == "public, max-age=31536000, immutable"
        plain = await http.get("/assets/index-3f9a1c.js", headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in plain.headers and plain.text == big


async def test_client_side_routes_get_the_page_and_api_paths_keep_their_json_404s(
        nats_server: NatsServer, tmp_path: Path) -> None:
    dist = build(tmp_path / "dist")
    async with gateway(make_settings(nats_server.url, tmp_path), dist) as http:
        for route in ("/practitioners/0190a000-0000-7000-8000-000000000001", "/agency/x", "/observe", "/callback"):
            r = await http.get(route, headers=HTML)
            assert r.status_code == 200 and r.text == INDEX, route
            assert "content-security-policy" in r.headers
        for api in ("/graphql/nope", "/auth/nope", "/dev/nope", "/docs/nope", "/healthz/x", "/metrics/x",
                    "/openapi.json/x"):
            r = await http.get(api, headers=HTML)
            assert r.status_code == 404 and r.headers["content-type"] == "application/json", api
        # Not a page: a script's or a tool's request for an unknown path is still a 404.
        assert (await http.get("/agency/x", headers={"Accept": "application/json"})).status_code == 404
        # Other methods on unknown paths: 404 as before, not 405 from the portal's fallback.
        assert (await http.post("/agency/x", json={})).status_code == 404
        # The API itself is untouched.
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        assert (await http.get("/openapi.json")).status_code == 200
        assert "GraphiQL" in (await http.get("/graphql", headers=HTML)).text


async def test_nothing_outside_the_build_is_served(nats_server: NatsServer, tmp_path: Path) -> None:
    dist = build(tmp_path / "dist")
    (tmp_path / "secret.txt").write_text("not for the web")
    async with gateway(make_settings(nats_server.url, tmp_path), dist) as http:
        for path in ("/assets/%2e%2e/%2e%2e/secret.txt", "/%2e%2e/secret.txt", "/assets/..%2f..%2fsecret.txt"):
            r = await http.get(path)
            assert r.status_code == 404 and "not for the web" not in r.text, path


async def test_an_unbuilt_portal_says_how_to_build_it(nats_server: NatsServer, tmp_path: Path) -> None:
    dist = tmp_path / "dist"  # never built
    async with gateway(make_settings(nats_server.url, tmp_path), dist) as http:
        for route in ("/", "/agency/x"):
            r = await http.get(route, headers=HTML)
            assert r.status_code == 503 and "make portal" in r.text, route
            assert r.headers["content-type"].startswith("text/html")
            assert "content-security-policy" in r.headers
        assert (await http.get("/assets/index-3f9a1c.js")).status_code == 404
        assert (await http.get("/healthz")).status_code == 200
        build(dist)  # `make portal` while the gateway runs: no restart needed
        r = await http.get("/", headers=HTML)
        assert r.status_code == 200 and r.text == INDEX


# ---- how the portal signs in -------------------------------------------------------------------------------------


async def test_auth_config_dev_mode_with_the_dev_secret_on_loopback(nats_server: NatsServer, tmp_path: Path) -> None:
    async with gateway(make_settings(nats_server.url, tmp_path), tmp_path / "dist") as http:
        assert (await http.get("/auth/config")).json() == {"mode": "dev"}


async def test_auth_config_under_oidc_and_no_dev_routes(nats_server: NatsServer, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRELLIS_GATEWAY_PORTAL_CLIENT_ID", "portal-web")
    save_personas(tmp_path)  # seeded, yet no dev tokens under OIDC
    dist = build(tmp_path / "dist")
    async with gateway(make_settings(nats_server.url, tmp_path, **OIDC), dist) as http:
        assert (await http.get("/auth/config")).json() == {
            "mode": "oidc", "authority": OIDC["oidc_issuer"], "client_id": "portal-web",
            "scope": "openid profile email", "audience": "trellis-api"}
        await _no_dev_routes(http)
        csp = (await http.get("/", headers=HTML)).headers["content-security-policy"]
        assert "connect-src 'self' ws://127.0.0.1:8000 wss://127.0.0.1:8000 https://id.example.org;" in csp


async def test_no_dev_routes_with_a_secret_of_ones_own(nats_server: NatsServer, tmp_path: Path) -> None:
    save_personas(tmp_path)
    settings = make_settings(nats_server.url, tmp_path, jwt_secret="an-operators-own-secret-" + "x" * 24)
    async with gateway(settings, tmp_path / "dist") as http:
        assert (await http.get("/auth/config")).json() == {"mode": "none"}
        await _no_dev_routes(http)


async def test_no_dev_routes_when_the_gateway_binds_beyond_loopback(nats_server: NatsServer, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    save_personas(tmp_path)
    for host in ("0.0.0.0", "192.0.2.10"):
        monkeypatch.setenv("TRELLIS_GATEWAY_HOST", host)
        async with gateway(make_settings(nats_server.url, tmp_path), tmp_path / "dist") as http:
            assert (await http.get("/auth/config")).json() == {"mode": "none"}, host
            await _no_dev_routes(http)


async def _no_dev_routes(http: httpx.AsyncClient) -> None:
    assert (await http.get("/dev/personas")).status_code == 404
    assert (await http.get("/dev/personas", headers=HTML)).status_code == 404  # not the portal page either
    assert (await http.post("/dev/token", json={"persona": "coach"})).status_code == 404


async def test_dev_routes_refuse_a_client_that_is_not_this_machine(nats_server: NatsServer, tmp_path: Path) -> None:
    save_personas(tmp_path)
    async with gateway(make_settings(nats_server.url, tmp_path), tmp_path / "dist",
                       client=("203.0.113.7", 40000)) as http:
        problem(await http.get("/dev/personas"), 403)
        body = problem(await http.post("/dev/token", json={"persona": "coach"}), 403)
        assert "access_token" not in body


async def test_the_persona_picker_lists_the_seeded_people(nats_server: NatsServer, tmp_path: Path) -> None:
    async with gateway(make_settings(nats_server.url, tmp_path), tmp_path / "dist") as http:
        assert (await http.get("/dev/personas")).json() == {"personas": []}  # not seeded yet
        body = problem(await http.post("/dev/token", json={"persona": "coach"}), 404)
        assert "make run" in body["detail"]
        save_personas(tmp_path)  # the seed runs after the gateway has started
        listed = (await http.get("/dev/personas")).json()["personas"]
    assert [p["key"] for p in listed] == PERSONA_KEYS
    by_key = {p["key"]: p for p in listed}
    assert by_key["agency_admin"] == {"key": "agency_admin", "label": "Agency admin", "name": "Jon Reyes",
                                      "agency": DEMO_AGENCY, "sub": personas()["agency_admin"]["sub"],
                                      "roles": ["agency_admin", "supervisor"]}
    assert (by_key["supervisor"]["name"], by_key["supervisor"]["roles"]) == ("Hugo Silva", ["supervisor"])
    assert (by_key["coach"]["name"], by_key["observer"]["name"]) == ("Ivy Brooks", "Grace Hall")
    assert (by_key["practitioner"]["name"], by_key["practitioner"]["roles"]) == ("Ana Ruiz", ["practitioner"])
    assert (by_key["platform_admin"]["agency"], by_key["platform_admin"]["roles"]) == (PLATFORM, ["platform_admin"])


async def test_a_persona_file_from_before_the_picker_still_works(nats_server: NatsServer, tmp_path: Path) -> None:
    """An older seed recorded four personas without names: they are offered with default labels, and the
    ones it lacks are 404 (not seeded), not 422."""
    old = {k: {f: v for f, v in p.items() if f in ("sub", "agency", "roles")}
           for k, p in personas().items() if k in ("observer", "coach", "agency_admin", "platform_admin")}
    (tmp_path / PERSONAS_FILE).write_text(json.dumps(old))
    async with gateway(make_settings(nats_server.url, tmp_path), tmp_path / "dist") as http:
        listed = (await http.get("/dev/personas")).json()["personas"]
        assert [(p["key"], p["label"], p["name"]) for p in listed] == [
            ("agency_admin", "Agency admin", None), ("coach", "Coach", None), ("observer", "Observer", None),
            ("platform_admin", "Platform admin", None)]
        problem(await http.post("/dev/token", json={"persona": "supervisor"}), 404)
        assert (await http.post("/dev/token", json={"persona": "coach"})).status_code == 200


async def test_make_run_records_the_current_personas_in_an_older_var_dir(nats_server: NatsServer,
                                                                        tmp_path: Path) -> None:
    """The runner's start (load_personas) upgrades what an older seed recorded, so the picker offers all six."""
    old = {k: p for k, p in personas().items() if k in ("observer", "coach", "agency_admin", "platform_admin")}
    (tmp_path / PERSONAS_FILE).write_text(json.dumps(old))
    (tmp_path / ".seeded").write_text("2026-01-01T00:00:00")
    assert load_personas(tmp_path) == personas()
    async with gateway(make_settings(nats_server.url, tmp_path), tmp_path / "dist") as http:
        assert [p["key"] for p in (await http.get("/dev/personas")).json()["personas"]] == PERSONA_KEYS
    assert load_personas(tmp_path / "never-seeded") is None


async def test_an_unknown_persona_is_refused_as_a_problem(nats_server: NatsServer, tmp_path: Path) -> None:
    save_personas(tmp_path)
    async with gateway(make_settings(nats_server.url, tmp_path), tmp_path / "dist") as http:
        for bad in ({"persona": "superuser"}, {"persona": 3}, {}, ["coach"]):
            body = problem(await http.post("/dev/token", json=bad), 422)
            assert [e["field"] for e in body["errors"]] == ["body.persona"], bad
        body = problem(await http.post("/dev/token", content=b"coach", headers={"content-type": "text/plain"}), 422)
        assert "coach" in body["errors"][0]["message"]  # the valid keys are named


SERVICES = ("readiness", "fidelity", "coaching")


async def test_a_persona_token_signs_in_and_me_answers_with_its_roles_and_roster_name(
        nats_server: NatsServer, make_db_url, tmp_path: Path,  # type: ignore[no-untyped-def]
        monkeypatch: pytest.MonkeyPatch) -> None:
    settings = make_settings(nats_server.url, tmp_path)
    for name in SERVICES:
        monkeypatch.setenv(f"TRELLIS_{name.upper()}_BASE_URL", f"http://{name}")
    save_personas(tmp_path)
    async with running_stack(settings, {name: make_db_url(name) for name in SERVICES}) as st:
        platform = st.token(PLATFORM, "platform_admin", sub=PLATFORM_ADMIN)
        r = await st.readiness.post("/v1/agencies", headers=platform,
                                    json={"id": DEMO_AGENCY, "name": "Riverside", "region": "North"})
        assert r.status_code == 201, r.text
        admin = st.token(DEMO_AGENCY, "agency_admin")
        r = await st.readiness.post(f"/v1/agencies/{DEMO_AGENCY}/staff", headers=admin, json={
            "id": COACH, "name": "Ivy Brooks", "email": "ivy@example.org", "roles": ["coach"]})
        assert r.status_code == 201, r.text

        async with gateway(settings, tmp_path / "dist", transport=RoutingTransport(st)) as http:
            minted = await http.post("/dev/token", json={"persona": "coach"})
            assert minted.status_code == 200 and minted.headers["cache-control"] == "no-store"
            body = minted.json()
            assert (body["token_type"], body["expires_in"]) == ("Bearer", 28800)
            before = int(time.time())
            principal = await TokenVerifier(settings).verify(body["access_token"])
            exp = jwt.decode(body["access_token"], options={"verify_signature": False})["exp"]
            assert before + 28800 <= exp <= int(time.time()) + 28800
            assert (principal.sub, principal.agency, principal.roles) == (COACH, DEMO_AGENCY, frozenset({"coach"}))

            async def me(token: str) -> dict[str, Any]:
                r = await http.post("/graphql", json={"query": ME}, headers={"Authorization": f"Bearer {token}"})
                assert r.status_code == 200 and "errors" not in r.json(), r.text
                return r.json()["data"]["me"]  # type: ignore[no-any-return]

            assert await me(body["access_token"]) == {"id": COACH, "agencyId": DEMO_AGENCY, "roles": ["coach"],
                                                      "name": "Ivy Brooks"}
            # Not on any roster (the platform's own tenant is no agency): `me` still answers, without a name.
            token = (await http.post("/dev/token", json={"persona": "platform_admin"})).json()["access_token"]
            assert await me(token) == {"id": PLATFORM_ADMIN, "agencyId": PLATFORM, "roles": ["platform_admin"],
                                       "name": None}
            # Without a token, `me` is UNAUTHENTICATED, as every other field.
            r = await http.post("/graphql", json={"query": ME})
            assert r.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


# ---- subscriptions from a browser --------------------------------------------------------------------------------

EVENTS = "subscription ($agency: ID!) { events(agency: $agency) { id type agency } }"


@contextlib.asynccontextmanager
async def listening_gateway(settings: Settings, tmp_path: Path, transport: httpx.AsyncBaseTransport | None = None
                            ) -> AsyncIterator[str]:
    """The gateway on a real socket (uvicorn), for websockets; yields its ws:// GraphQL URL. `transport` reaches
    in-process services instead of their URLs."""
    app = create_app(settings=settings, transport=transport, limits=GatewaySettings(portal_dir=tmp_path / "dist"))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert not task.done() and time.monotonic() < deadline, "the gateway did not start"
            await asyncio.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/graphql"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 20)


async def receive(ws: ClientConnection, timeout: float) -> dict[str, Any] | None:
    try:
        msg: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), timeout))
    except TimeoutError:
        return None
    if msg.get("type") == "ping":
        await ws.send(json.dumps({"type": "pong"}))
        return await receive(ws, timeout)
    return msg


@contextlib.asynccontextmanager
async def subscribed(url: str, payload: dict[str, Any] | None, agency: str, query: str = EVENTS
                     ) -> AsyncIterator[ClientConnection]:
    """A browser's graphql-transport-ws session: no Authorization header, the token (if any) in connection_init."""
    async with connect(url, subprotocols=[Subprotocol("graphql-transport-ws")], proxy=None, open_timeout=10) as ws:
        await ws.send(json.dumps({"type": "connection_init", **({"payload": payload} if payload else {})}))
        ack = await receive(ws, 10)
        assert ack is not None and ack["type"] == "connection_ack", ack
        await ws.send(json.dumps({"id": "1", "type": "subscribe",
                                  "payload": {"query": query, "variables": {"agency": agency}}}))
        yield ws


async def first_event(ws: ClientConnection, nats_url: str, agency: str) -> dict[str, Any]:
    """Publish probes on the agency's live subject until one arrives (a subscription has no ack); returns the first
    message that is not silence: the event, or the error that ended the subscription."""
    nc = await nats.connect(nats_url)
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            probe = {"id": str(uuid.uuid4()), "type": "probe.Probe.v1", "source": "tests", "subject": "p",
                     "time": "2026-11-01T00:00:00+00:00", "agency": agency, "data": {}}
            await nc.publish(f"probe.Probe.{agency}", json.dumps(probe).encode())
            await nc.flush()
            msg = await receive(ws, 0.3)
            if msg is not None:
                return msg
        raise AssertionError("nothing arrived on the subscription")
    finally:
        await nc.close()


@pytest.mark.parametrize("key", ["Authorization", "authorization"])
async def test_a_browser_subscribes_with_the_token_in_connection_init(
        nats_server: NatsServer, tmp_path: Path, key: str) -> None:
    settings = make_settings(nats_server.url, tmp_path)
    agency = str(uuid.uuid4())
    token = mint_dev_token(settings, sub=str(uuid.uuid4()), agency=agency, roles=["coach"])
    async with listening_gateway(settings, tmp_path) as url, subscribed(url, {key: f"Bearer {token}"}, agency) as ws:
        msg = await first_event(ws, nats_server.url, agency)
    assert msg["type"] == "next" and not msg["payload"].get("errors"), msg
    event = msg["payload"]["data"]["events"]
    assert (event["type"], event["agency"]) == ("probe.Probe.v1", agency)


async def test_a_subscription_without_a_valid_token_in_connection_init_is_refused(
        nats_server: NatsServer, tmp_path: Path) -> None:
    settings = make_settings(nats_server.url, tmp_path)
    agency = str(uuid.uuid4())
    forged = mint_dev_token(Settings(jwt_secret="someone-elses-secret-" + "y" * 24), sub=str(uuid.uuid4()),  # type: ignore[arg-type]
                            agency=agency, roles=["coach"])
    async with listening_gateway(settings, tmp_path) as url:
        for payload in (None, {"Authorization": f"Bearer {forged}"}, {"Authorization": forged}):
            async with subscribed(url, payload, agency) as ws:
                msg = await first_event(ws, nats_server.url, agency)
            errors = msg["payload"] if msg["type"] == "error" else msg["payload"].get("errors")
            assert errors and errors[0]["extensions"]["code"] == "UNAUTHENTICATED", (payload, msg)


async def test_platform_wide_events_reach_every_agencys_feed_data_withheld_and_no_other_agencys(
        nats_server: NatsServer, tmp_path: Path) -> None:
    """A session cancelled (subject `community.SessionCancelled.platform`) arrives on an agency's feed without its
    data (a program may be open to some agencies only); another agency's events never do, whatever their subject."""
    settings = make_settings(nats_server.url, tmp_path)
    mine, theirs = str(uuid.uuid4()), str(uuid.uuid4())
    token = mint_dev_token(settings, sub=str(uuid.uuid4()), agency=mine, roles=["coach"])
    session = str(uuid.uuid4())

    def envelope(kind: str, agency: str, data: dict[str, Any]) -> bytes:
        return json.dumps({"id": str(uuid.uuid4()), "type": f"community.{kind}.v1", "source": "tests",
                           "subject": session, "time": "2027-01-04T10:00:00+00:00", "agency": agency,
                           "data": data}).encode()

    query = "subscription ($agency: ID!) { events(agency: $agency) { type subject agency data } }"
    got: list[dict[str, Any]] = []
    nc = await nats.connect(nats_server.url)
    try:
        async with listening_gateway(settings, tmp_path) as url, \
                subscribed(url, {"Authorization": f"Bearer {token}"}, mine, query) as ws:
            deadline = time.monotonic() + 15
            while not any(e["type"] == "community.SessionCancelled.v1" for e in got):
                assert time.monotonic() < deadline, f"no platform event arrived: {got}"
                await nc.publish(f"community.RegistrationCancelled.{theirs}",
                                 envelope("RegistrationCancelled", theirs, {"session_id": session}))
                # Mislabelled: on the platform subject but another agency's in its body.
                await nc.publish("community.SessionScheduled.platform",
                                 envelope("SessionScheduled", theirs, {"title": "theirs"}))
                await nc.publish("community.SessionCancelled.platform",
                                 envelope("SessionCancelled", "platform", {"session_id": session, "reason": "x"}))
                await nc.flush()
                while (msg := await receive(ws, 0.3)) is not None:
                    assert msg["type"] == "next" and not msg["payload"].get("errors"), msg
                    got.append(msg["payload"]["data"]["events"])
            await nc.publish(f"community.RegistrationConfirmed.{mine}",
                             envelope("RegistrationConfirmed", mine, {"session_id": session}))
            await nc.flush()
            while (msg := await receive(ws, 1.0)) is not None:
                got.append(msg["payload"]["data"]["events"])
    finally:
        await nc.close()
    assert {e["agency"] for e in got} == {"platform", mine}, got  # never theirs
    cancelled = next(e for e in got if e["type"] == "community.SessionCancelled.v1")
    assert (cancelled["subject"], cancelled["data"]) == (session, {})
    own = next(e for e in got if e["agency"] == mine)
    assert own["data"] == {"session_id": session}  # the agency's own events keep their data
    assert not any(e["type"] == "community.SessionScheduled.v1" for e in got)
