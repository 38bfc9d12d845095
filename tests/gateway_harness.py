"""The gateway in process over an in-process stack: GraphQL calls, and upstream calls counted per service."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
from asgi_lifespan import LifespanManager

from gateway.app import create_app as gateway_app
from tests.stack import Stack
from trellis.settings import Settings


class RoutingTransport(httpx.AsyncBaseTransport):
    """Routes http://<service>/ to the in-process app and counts upstream requests per service."""

    def __init__(self, st: Stack) -> None:
        self.routes = {name: httpx.ASGITransport(app=app) for name, app in st.apps.items()}
        self.calls: Counter[str] = Counter()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.calls[request.url.host] += 1
        return await self.routes[request.url.host].handle_async_request(request)


class GraphQL:
    def __init__(self, st: Stack, http: httpx.AsyncClient, transport: RoutingTransport) -> None:
        self.st, self.http, self.transport = st, http, transport

    async def __call__(self, query: str, headers: dict[str, str], **variables: Any) -> dict[str, Any]:
        r = await self.http.post("/graphql", json={"query": query, "variables": variables}, headers=headers)
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    async def ok(self, query: str, headers: dict[str, str], **variables: Any) -> dict[str, Any]:
        body = await self(query, headers, **variables)
        assert "errors" not in body, body
        return body["data"]  # type: ignore[no-any-return]

    async def refused(self, query: str, headers: dict[str, str], **variables: Any) -> dict[str, Any]:
        """The one error of a refused request (its data is null); returns the error's extensions."""
        body = await self(query, headers, **variables)
        assert body["data"] is None, body
        [err] = body["errors"]
        return err["extensions"]  # type: ignore[no-any-return]


@contextlib.asynccontextmanager
async def serving_gateway(st: Stack, settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, RoutingTransport]]:
    """The gateway app wired to the stack (set TRELLIS_<SERVICE>_BASE_URL=http://<service> first)."""
    transport = RoutingTransport(st)
    app = gateway_app(settings=settings, transport=transport)
    async with LifespanManager(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                                       base_url="http://gateway") as http:
        yield http, transport
