"""RFC 9457 problem details for every error a service or the gateway returns."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("trellis.problems")
MEDIA_TYPE = "application/problem+json"
TITLES = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    415: "Unsupported media type",
    422: "Unprocessable content",
    500: "Internal server error",
    503: "Service unavailable",
}


class Problem(Exception):
    """Raise from a route: becomes `application/problem+json` with the given status."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        slug: str | None = None,
        title: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.slug = slug or TITLES.get(status, "error").lower().replace(" ", "-")
        self.title = title or TITLES.get(status, "Error")
        self.errors = errors or []
        self.headers = headers or {}


def field_error(location: str, message: str, **extra: Any) -> dict[str, Any]:
    """One entry of a problem's `errors`: `field` is dotted, `pointer` a JSON Pointer."""
    parts = location.split(".")
    if parts and parts[0] in {"body", "query", "path", "header"}:
        pointer_parts = parts[1:] if parts[0] == "body" else parts
    else:
        pointer_parts = parts
    return {"field": location, "pointer": "#/" + "/".join(pointer_parts), "message": message, **extra}


def problem_body(
    status: int, detail: str, *, slug: str, title: str, instance: str, errors: list[dict[str, Any]]
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"urn:trellis:problem:{slug}",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
    }
    if errors:
        body["errors"] = errors
    return body


def problem_response(request: Request, problem: Problem) -> JSONResponse:
    body = problem_body(
        problem.status, problem.detail, slug=problem.slug, title=problem.title,
        instance=request.url.path, errors=problem.errors,
    )
    return JSONResponse(body, status_code=problem.status, media_type=MEDIA_TYPE, headers=problem.headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err.get("loc", ()))
            errors.append(field_error(loc, err.get("msg", "invalid"), code=err.get("type", "invalid")))
        n = len(errors)
        detail = f"The request has {n} invalid field{'s' if n != 1 else ''}; nothing was changed."
        return problem_response(request, Problem(422, detail, slug="validation-error", errors=errors))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else TITLES.get(exc.status_code, "Error")
        return problem_response(request, Problem(exc.status_code, detail, headers=dict(exc.headers or {})))

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(
            request, Problem(500, "An unexpected error occurred; it has been logged.", slug="internal-error")
        )


def invalid(errors: list[dict[str, Any]], what: str = "The request") -> Problem:
    """422 with every field error at once; raised before anything is written."""
    return Problem(422, f"{what} has {len(errors)} problem(s); nothing was changed.", slug="validation-error",
                   errors=errors)
