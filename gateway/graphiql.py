"""GraphiQL served from the gateway itself, so it works offline.

strawberry's GraphiQL loads its scripts from public CDNs and shows a blank page without the internet.
The assets come from the `graphene-django-graphiql-static` PyPI package instead (GraphiQL, React,
graphql-ws; plain files, no Django needed). Nothing on the page names another host.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse
from strawberry.fastapi import GraphQLRouter

GRAPHIQL_ASSETS = "/graphiql-assets"  # under the GraphQL router's prefix
GRAPHIQL_FILES = (
    "graphiql.min.css", "react.production.min.js", "react-dom.production.min.js", "graphiql.min.js",
    "graphql-ws.min.js",
)


@cache
def graphiql_dir() -> Path:
    # Located without importing: the package is a Django app, but its static files are all we use.
    spec = importlib.util.find_spec("graphene_django_graphiql_static")
    assert spec is not None and spec.origin is not None, "graphene-django-graphiql-static is not installed"
    return Path(spec.origin).parent / "static" / "graphene_django_graphiql_static"


GRAPHIQL_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Trellis GraphiQL</title>
  <style>html, body, #graphiql { height: 100%; margin: 0; overflow: hidden; width: 100%; }</style>
  <link rel="stylesheet" href="{assets}/graphiql.min.css">
  <script src="{assets}/react.production.min.js"></script>
  <script src="{assets}/react-dom.production.min.js"></script>
  <script src="{assets}/graphiql.min.js"></script>
  <script src="{assets}/graphql-ws.min.js"></script>
</head>
<body>
  <div id="graphiql">Loading GraphiQL…</div>
  <script>
    // Same origin for queries; subscriptions over graphql-transport-ws. The Headers tab's
    // {"Authorization": "Bearer …"} goes with every query and, for subscriptions, in connection_init.
    const url = window.location.href.split("?")[0].split("#")[0];
    const ws = new URL(url);
    ws.protocol = ws.protocol === "https:" ? "wss:" : "ws:";
    const fetcher = GraphiQL.createFetcher({
      url: url,
      subscriptionUrl: ws.toString(),
    });
    ReactDOM.render(
      React.createElement(GraphiQL, {
        fetcher: fetcher,
        defaultEditorToolsVisibility: "headers",
        isHeadersEditorEnabled: true,
        shouldPersistHeaders: true,
        defaultHeaders: '{"Authorization": "Bearer <a token printed by make run>"}',
      }),
      document.getElementById("graphiql"),
    );
  </script>
</body>
</html>
"""


class OfflineGraphQLRouter(GraphQLRouter):  # type: ignore[type-arg]
    """strawberry's router with a GraphiQL page whose scripts it serves itself."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        files = {name: graphiql_dir() / name for name in GRAPHIQL_FILES}

        async def asset(name: str) -> FileResponse:
            if name not in files:
                raise HTTPException(404, f"No GraphiQL asset {name!r}.")
            # Versioned by the installed package; a day of caching spares reloads without pinning stale files.
            return FileResponse(files[name], headers={"Cache-Control": "public, max-age=86400"})

        self.add_api_route(GRAPHIQL_ASSETS + "/{name}", asset, methods=["GET"], include_in_schema=False)

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        # Below the page's own path, wherever the router is mounted.
        return HTMLResponse(GRAPHIQL_PAGE.replace("{assets}", request.url.path.rstrip("/") + GRAPHIQL_ASSETS))
