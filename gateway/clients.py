"""HTTP clients for the services' REST APIs; the caller's token is passed through."""

from __future__ import annotations

from typing import Any

import httpx
from graphql import GraphQLError

MAX_PAGE = 500


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


class ServiceClient:
    def __init__(self, name: str, base_url: str, http: httpx.AsyncClient, authorization: str) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.http = http
        self.headers = {"Authorization": authorization} if authorization else {}

    async def get(self, path: str, params: Any = None) -> Any:
        r = await self.http.get(f"{self.base_url}{path}", params=params, headers=self.headers)
        if r.status_code >= 400:
            raise UpstreamError(self.name, r)
        return r.json()

    async def get_all(self, path: str, params: list[tuple[str, str]]) -> list[dict[str, Any]]:
        """Every item of a cursor-paginated list (one request per page, not per item)."""
        items: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            page_params = [*params, ("limit", str(MAX_PAGE))] + ([("after", after)] if after else [])
            page = await self.get(path, page_params)
            items += page["items"]
            after = page.get("next")
            if not after:
                return items

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
        r = await self.http.request(method, f"{self.base_url}{path}", json=json, content=content, params=params,
                                    headers=headers)
        if r.status_code >= 400:
            raise UpstreamError(self.name, r)
        return r.json()
