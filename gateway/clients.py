"""HTTP clients for the services' REST APIs; the caller's token is passed through.

Every call of one GraphQL request draws on that request's `Budget`, so no document can fan out unbounded."""

from __future__ import annotations

from typing import Any

import httpx
from graphql import GraphQLError

MAX_PAGE = 500
BATCH = 200  # ids per batched call: 200 repeated query parameters keep the URL well under servers' 16 KiB


class UpstreamError(GraphQLError):
    """A service refused the request; its problem+json travels in the error's extensions."""

    def __init__(self, service: str, response: httpx.Response) -> None:
        try:
            problem = response.json()
        except ValueError:
            problem = {"status": response.status_code, "detail": response.text[:500]}
        detail = problem.get("detail") or problem.get("title") or f"{service} answered {response.status_code}"
        code = {401: "UNAUTHENTICATED", 403: "FORBIDDEN", 404: "NOT_FOUND", 422: "BAD_USER_INPUT"}.get(
            response.status_code, "UPSTREAM_ERROR")
        super().__init__(detail, extensions={"code": code, "service": service, "status": response.status_code,
                                             "problem": problem})


class UpstreamUnavailable(GraphQLError):
    """A service did not answer in time, or could not be reached."""

    def __init__(self, service: str, error: httpx.TransportError) -> None:
        what = "did not answer in time" if isinstance(error, httpx.TimeoutException) else "could not be reached"
        super().__init__(f"The {service} service {what}; try again later.",
                         extensions={"code": "UPSTREAM_UNAVAILABLE", "service": service})


class Budget:
    """The upstream calls one GraphQL request may still make, shared by its clients."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def spend(self, service: str) -> None:
        if self.used >= self.limit:
            raise GraphQLError(
                f"This request needs more than {self.limit} calls to the services; ask for fewer fields or "
                "fewer items, or split it.",
                extensions={"code": "UPSTREAM_BUDGET_EXCEEDED", "service": service, "limit": self.limit})
        self.used += 1


class ServiceClient:
    def __init__(self, name: str, base_url: str, http: httpx.AsyncClient, authorization: str,
                 budget: Budget | None = None) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.http = http
        self.headers = {"Authorization": authorization} if authorization else {}
        self.budget = budget or Budget(10**9)

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        self.budget.spend(self.name)
        try:
            r = await self.http.request(method, f"{self.base_url}{path}", **kwargs)
        except httpx.TransportError as e:
            raise UpstreamUnavailable(self.name, e) from e
        if r.status_code >= 400:
            raise UpstreamError(self.name, r)
        return r.json()

    async def get(self, path: str, params: Any = None) -> Any:
        return await self._request("GET", path, params=params, headers=self.headers)

    async def get_all(self, path: str, params: list[tuple[str, str]], *, page_size: int | None = None,
                      items: str = "items") -> list[dict[str, Any]]:
        """Every item of a cursor-paginated list (one request per page, not per item)."""
        out: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            page_params = [*params, ("limit", str(page_size or MAX_PAGE))] + ([("after", after)] if after else [])
            page = await self.get(path, page_params)
            out += page[items]
            after = page.get("next")
            if not after:
                return out

    async def post(self, path: str, body: dict[str, Any], idempotency_key: str | None = None) -> Any:
        return await self.send("POST", path, json=body, idempotency_key=idempotency_key)

    async def send(self, method: str, path: str, *, json: Any = None, content: str | None = None,
                   content_type: str | None = None, params: Any = None, idempotency_key: str | None = None) -> Any:
        """Any write: a JSON body, or raw `content` (e.g. CSV) with its content type."""
        headers = dict(self.headers)
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        if content_type:
            headers["Content-Type"] = content_type
        return await self._request(method, path, json=json, content=content, params=params, headers=headers)
