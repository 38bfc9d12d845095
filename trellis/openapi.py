"""The OpenAPI document every service publishes: bearer security and the problem+json errors it can answer.

FastAPI documents only the success response and its own 422 shape. Trellis answers errors as RFC 9457
problem+json (trellis/problems.py), so each operation is post-processed to say which of them it can
return, derived from what the route really is: protected (it depends on `bearer_principal`), takes
path parameters, changes state, has a body. A route can declare more with `responses={429: {...}}`;
those get the problem+json content too.

Also: a 405 lists in `Allow` every method of the resource, not only the first route Starlette matched.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import fastapi.routing
from fastapi import FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import get_route_path
from starlette.types import ASGIApp, Receive, Scope, Send

from trellis.auth import bearer_principal
from trellis.problems import MEDIA_TYPE, Problem, problem_body, problem_response

SECURITY_SCHEME = "bearerAuth"
UNSAFE = frozenset({"post", "put", "patch", "delete"})
METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
DESCRIPTIONS = {
    400: "Bad request, e.g. a pagination cursor this API did not issue.",
    401: "No valid bearer token (missing, malformed, expired or signed by another key).",
    403: "The token's roles or agency do not allow this.",
    404: "Not found in your agency.",
    409: "Conflicts with the current state, or a request with the same Idempotency-Key is still running.",
    413: "The body is over the size limit (1 MiB of JSON, 10 MiB of CSV by default). Nothing was read.",
    415: "The body's media type is not one this operation takes.",
    422: "Invalid input: `errors` names each field with a JSON Pointer. Nothing was changed.",
    429: "Too many attempts; retry after the time given.",
}
PROBLEM_SCHEMAS: dict[str, Any] = {
    "Problem": {
        "title": "Problem",
        "description": "RFC 9457 problem details. `type` is a stable URN per kind of problem.",
        "type": "object",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string", "examples": ["urn:trellis:problem:validation-error"]},
            "title": {"type": "string"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": {"type": "string"},
            "instance": {"type": "string", "description": "The request path."},
            "errors": {"type": "array", "items": {"$ref": "#/components/schemas/ProblemFieldError"}},
        },
        "additionalProperties": True,
    },
    "ProblemFieldError": {
        "title": "ProblemFieldError",
        "type": "object",
        "required": ["field", "pointer", "message"],
        "properties": {
            "field": {"type": "string", "description": "Dotted location, e.g. body.scores.family_voice"},
            "pointer": {"type": "string", "description": "JSON Pointer into the request"},
            "message": {"type": "string"},
            "code": {"type": "string"},
        },
        "additionalProperties": True,
    },
}


def install(app: FastAPI) -> None:
    """Replace the app's OpenAPI generator and its 405 handler."""

    documented: list[int] = []

    def openapi() -> dict[str, Any]:
        schema = FastAPI.openapi(app)  # cached by FastAPI; rebuilt when routes change
        if documented != [id(schema)]:
            document(schema, app)
            documented[:] = [id(schema)]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_exception_handler(405, _method_not_allowed)
    app.add_middleware(LiteralPathsMiddleware, fastapi_app=app)


def _uses(dependant: Dependant, call: Any) -> bool:
    return dependant.call is call or any(_uses(d, call) for d in dependant.dependencies)


def _problem_response(status: int, description: str | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description or DESCRIPTIONS.get(status, "Error."),
        "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    if status == 401:
        response["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer challenge"}}
    return response


def routes(app: Any) -> Iterator[Any]:
    """Every route with its full path. FastAPI >= 0.16x keeps included routers as one entry each."""
    contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    yield from contexts(app.router.routes) if contexts is not None else app.router.routes


def _operations(schema: dict[str, Any], app: FastAPI) -> Iterator[tuple[APIRoute, str, dict[str, Any]]]:
    for route in routes(app):
        api_route = getattr(route, "original_route", route)
        if not isinstance(api_route, APIRoute) or not api_route.include_in_schema:
            continue
        for method in route.methods:
            op = schema.get("paths", {}).get(route.path_format, {}).get(method.lower())
            if op is not None:
                yield api_route, method.lower(), op


def document(schema: dict[str, Any], app: FastAPI) -> dict[str, Any]:
    """Add the bearer scheme and each operation's problem+json responses to `schema`, in place."""
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {})[SECURITY_SCHEME] = {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
        "description": "A JWT with `sub`, `agency` (the tenant's UUID) and `roles`: `trellis token` mints dev ones.",
    }
    schemas = components.setdefault("schemas", {})
    schemas.update(PROBLEM_SCHEMAS)
    for route, method, op in _operations(schema, app):
        params = op.get("parameters", [])
        statuses: set[int] = set()
        if _uses(route.dependant, bearer_principal):
            op["security"] = [{SECURITY_SCHEME: []}]
            statuses |= {401, 403}
        if any(p.get("in") == "path" for p in params) or "requestBody" in op:
            statuses.add(404)  # the path's resource, or one the body names by id, is not in your agency
        if method in UNSAFE:
            statuses.add(409)
        body = op.get("requestBody")
        if body is not None:
            statuses |= {400, 413}  # 400: a body that does not parse (FastAPI's own check)
            if any(not t.endswith("json") for t in body.get("content", {})):
                statuses.add(415)
        if params or body is not None:
            statuses.add(422)
        if any(p.get("in") == "query" and p.get("name") == "after" for p in params):
            statuses.add(400)
        responses = op.setdefault("responses", {})
        # Statuses a route declared itself keep their description but answer problem+json like the rest.
        for code in list(responses):
            if code.isdigit() and int(code) >= 400:
                statuses.add(int(code))
        for status in sorted(statuses):
            declared = responses.get(str(status), {})
            # FastAPI's default 422 text describes its own shape, not ours.
            own = declared.get("description") if status != 422 else None
            responses[str(status)] = _problem_response(status, own)
    # FastAPI's own 422 shape is never sent: the problem handler replaces it.
    for unused in ("HTTPValidationError", "ValidationError"):
        if f'"#/components/schemas/{unused}"' not in json.dumps(schema):
            schemas.pop(unused, None)
    return schema


RouteTable = list[tuple[re.Pattern[str], str, frozenset[str]]]


def route_table(app: Any) -> RouteTable:
    return [(route.path_regex, route.path_format, frozenset(route.methods)) for route in routes(app)
            if getattr(route, "path_regex", None) is not None and getattr(route, "methods", None)]


def _templates(table: RouteTable, path: str) -> dict[str, set[str]]:
    """The path templates matching `path`, most literal first, each with its methods."""
    found: dict[str, set[str]] = {}
    for regex, template, methods in table:
        if regex.match(path):
            found.setdefault(template, set()).update(methods)
    # sorted() is stable: among equally literal templates, route order decides, as in routing.
    return dict(sorted(found.items(), key=lambda kv: kv[0].count("{")))


def _ordered(methods: set[str]) -> list[str]:
    return sorted(methods, key=lambda m: (METHOD_ORDER.index(m) if m in METHOD_ORDER else len(METHOD_ORDER), m))


def allowed_methods(app: Any, scope: dict[str, Any]) -> list[str]:
    """Every method of the path's resource (Starlette reports only the first route's).

    Where templates overlap (`/staff/import` and `/staff/{staff_id}`), the resource is the most literal
    template that matches, as the documentation lists it."""
    templates = _templates(route_table(app), get_route_path(scope))  # type: ignore[arg-type]
    return _ordered(next(iter(templates.values()))) if templates else []


class LiteralPathsMiddleware:
    """`PATCH /staff/import` must be 405 (import takes POST), not `PATCH /staff/{staff_id}` with the id
    "import": a literal segment names its own resource, whatever a broader template would accept."""

    def __init__(self, app: ASGIApp, fastapi_app: FastAPI) -> None:
        self.app = app
        self.fastapi_app = fastapi_app
        self.table: RouteTable | None = None  # built on the first request, once every router is included

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if self.table is None:
                self.table = route_table(self.fastapi_app)
            templates = _templates(self.table, get_route_path(scope))
            if len(templates) > 1:
                own = next(iter(templates.values()))
                if scope["method"] not in own:
                    allow = ", ".join(_ordered(own))
                    body = problem_body(405, f"{scope['method']} is not allowed here; use {allow}.",
                                        slug="method-not-allowed", title="Method not allowed",
                                        instance=scope["path"], errors=[])
                    response = JSONResponse(body, status_code=405, media_type=MEDIA_TYPE, headers={"Allow": allow})
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)


async def _method_not_allowed(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    allow = ", ".join(allowed_methods(request.app, request.scope)) or dict(exc.headers or {}).get("Allow", "")
    detail = f"{request.method} is not allowed here; use {allow}." if allow else "Method not allowed."
    return problem_response(request, Problem(405, detail, slug="method-not-allowed", headers={"Allow": allow}))
