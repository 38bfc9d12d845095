"""The services' OpenAPI documents say how they authenticate and which problem+json errors they answer;
405s list every method of the path; /docs and GraphiQL load nothing from another host."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from gateway.app import create_app as gateway_app
from services.coaching.app import create_app as coaching_app
from services.community.app import create_app as community_app
from services.fidelity.app import create_app as fidelity_app
from services.readiness.app import create_app as readiness_app
from trellis.problems import MEDIA_TYPE

SERVICES: dict[str, Callable[..., FastAPI]] = {
    "readiness": readiness_app, "fidelity": fidelity_app, "coaching": coaching_app, "community": community_app,
}
# Operations that are public on purpose, beyond the probes: the secret in the URL is the credential (a calendar
# client cannot send a bearer token) or the check is meant for anyone (a certificate's verification code).
PUBLIC: dict[str, list[str]] = {
    "community": ["/v1/calendar/{token}.ics", "/v1/certificates/verify/{code}"],
}
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
UNSAFE = {"post", "put", "patch", "delete"}
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
EXTERNAL = re.compile(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}", re.IGNORECASE)


@pytest.fixture(params=list(SERVICES))
async def service(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    # No lifespan: documents, docs pages and routing need neither the database nor NATS.
    app = SERVICES[request.param](database_url=f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    app.state.db = None  # resolved before the token; no route here gets past the token check to use it
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield c


async def _document(client: httpx.AsyncClient) -> dict[str, Any]:
    r = await client.get("/openapi.json")
    assert r.status_code == 200
    doc: dict[str, Any] = r.json()
    return doc


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, item in doc["paths"].items() for method, op in item.items()
            if method in HTTP_METHODS]


async def test_the_bearer_scheme_is_declared_and_every_protected_operation_requires_it(
        service: httpx.AsyncClient, request: pytest.FixtureRequest) -> None:
    doc = await _document(service)
    schemes = doc["components"]["securitySchemes"]
    [(name, scheme)] = schemes.items()
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer" and scheme["bearerFormat"] == "JWT"

    ops = _operations(doc)
    protected = [(p, m) for p, m, op in ops if op.get("security") == [{name: []}]]
    open_ops = sorted(p for p, m, op in ops if "security" not in op)
    assert len(protected) >= 3
    public = PUBLIC.get(request.node.callspec.params["service"], [])
    assert open_ops == sorted(["/healthz", "/metrics", "/readyz", *public]), open_ops
    # The declaration matches behaviour: a protected operation without a token answers 401.
    path, method = protected[0]
    r = await service.request(method.upper(), re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path))
    assert r.status_code == 401 and r.headers["content-type"].startswith(MEDIA_TYPE)


async def test_every_operation_documents_its_problem_json_errors(service: httpx.AsyncClient) -> None:
    doc = await _document(service)
    assert doc["components"]["schemas"]["Problem"]["required"] == ["type", "title", "status", "detail"]
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    for path, method, op in _operations(doc):
        where = f"{method.upper()} {path}"
        responses = op["responses"]
        expected = set()
        if "security" in op:
            expected |= {"401", "403"}
        if "{" in path or "requestBody" in op:
            expected.add("404")
        if method in UNSAFE:
            expected.add("409")
        if "requestBody" in op:
            expected |= {"400", "413", "422"}
        if op.get("parameters"):
            expected.add("422")
        assert expected <= set(responses), f"{where}: {sorted(responses)} lacks {sorted(expected - set(responses))}"
        for status, response in responses.items():
            if int(status) >= 400:
                assert response["content"] == {MEDIA_TYPE: {"schema": PROBLEM_REF}}, f"{where} {status}"
                assert response["description"] and "Validation Error" not in response["description"]
        if "401" in responses:
            assert "WWW-Authenticate" in responses["401"]["headers"]


async def test_a_405_allows_every_method_the_path_has(service: httpx.AsyncClient) -> None:
    """Starlette's Allow names only the first route matching the path; a path served by two routes
    (GET and POST /v1/…) must list both, and a literal path is its own resource."""
    doc = await _document(service)
    multi = 0
    for path, item in doc["paths"].items():
        documented = {m.upper() for m in item if m in HTTP_METHODS}
        multi += len(documented) > 1
        url = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)
        # PATCH /staff/import once reached PATCH /staff/{staff_id}: every undocumented method is a 405.
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
            if method.lower() in item:
                continue
            r = await service.request(method, url)
            assert r.status_code == 405, f"{method} {path}: {r.status_code}"
            assert r.headers["content-type"].startswith(MEDIA_TYPE)
            allow = {m.strip() for m in r.headers["allow"].split(",")}
            assert allow == documented, f"{method} {path}: Allow {allow}, documented {documented}"
            assert r.json()["status"] == 405
    assert multi >= 1  # the case that used to be wrong is really exercised


def _asset_urls(html: str) -> list[str]:
    return re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html) + \
        re.findall(r"""url:\s*['"]([^'"]+\.(?:js|css))['"]""", html)


async def _assert_offline_page(client: httpx.AsyncClient, page: str, **headers: str) -> list[str]:
    r = await client.get(page, headers=headers)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), r.text[:300]
    html = r.text
    assert not EXTERNAL.search(html), f"{page} names another host: {EXTERNAL.findall(html)}"
    assets = [u for u in _asset_urls(html) if u.endswith((".js", ".css", ".png"))]
    assert any(u.endswith(".js") for u in assets), assets
    for url in assets:
        got = await client.get(url)
        assert got.status_code == 200 and len(got.content) > 1000, f"{page}: {url} -> {got.status_code}"
        kind = "javascript" if url.endswith(".js") else "css" if url.endswith(".css") else "image"
        assert kind in got.headers["content-type"], (url, got.headers["content-type"])
    return assets


async def test_swagger_ui_and_redoc_load_only_local_assets(service: httpx.AsyncClient) -> None:
    assets = await _assert_offline_page(service, "/docs")
    assert {"swagger-ui-bundle.js", "swagger-ui.css"} <= {a.rsplit("/", 1)[-1] for a in assets}
    await _assert_offline_page(service, "/redoc")


async def test_graphiql_and_the_gateway_docs_load_only_local_assets(tmp_path: Path) -> None:
    app = gateway_app()
    app.state.http = None  # no lifespan: the GraphQL context is built, but nothing here calls a service
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        assets = await _assert_offline_page(c, "/graphql", accept="text/html")
        names = {a.rsplit("/", 1)[-1] for a in assets}
        assert {"graphiql.min.js", "graphiql.min.css", "react.production.min.js",
                "react-dom.production.min.js", "graphql-ws.min.js"} <= names
        assert (await c.get(assets[0].rsplit("/", 1)[0] + "/../../../pyproject.toml")).status_code == 404
        assert (await c.get(assets[0].rsplit("/", 1)[0] + "/views.py")).status_code == 404
        await _assert_offline_page(c, "/docs")
