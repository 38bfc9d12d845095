"""The built web portal (`portal/dist`, `make portal`) served at `/`, so `make run` gives one URL.

Vite names every file under assets/ by its content hash, so those are cached for a year; index.html names the
current hashes and is revalidated on every load. Any other HTML GET is a client-side route (`/practitioners/<id>`)
and gets index.html, except under the API paths, which keep their own 404s. The portal is the router's default:
it answers only what no API route matched, whatever order routes are added in.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from urllib.parse import urlsplit

from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Router
from starlette.types import ASGIApp, Receive, Scope, Send

API_PREFIXES = ("/graphql", "/auth", "/dev", "/docs", "/redoc", "/openapi.json", "/healthz", "/readyz", "/metrics")
HOST = re.compile(r"[A-Za-z0-9.\-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")
IMMUTABLE = "public, max-age=31536000, immutable"
NOT_BUILT = """<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Trellis portal not built</title></head>
<body>
<main>
<h1>The Trellis portal is not built</h1>
<p>Build it with <code>make portal</code> (or start everything with <code>make run</code>, which builds it),
then reload this page. The gateway looks for it in <code>{dir}</code>.</p>
<p>The API works meanwhile: <a href="/graphql">GraphQL</a>.</p>
</main>
</body>
</html>
"""


def is_api_path(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in API_PREFIXES)


def origin(url: str | None) -> str | None:
    """`scheme://host[:port]` of a URL, or None: a CSP source names an origin, not a path."""
    if not url:
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") and parts.netloc else None


def security_headers(request: Request, oidc_authority: str | None) -> dict[str, str]:
    """For the portal's HTML: scripts only from this origin; XHR to this origin, its websocket (subscriptions)
    and the OIDC issuer (discovery, token endpoint)."""
    host = request.headers.get("host", "")
    host = host if HOST.fullmatch(host) else ""  # the Host header is the client's: nothing that could end a directive
    connect = ["'self'", *([f"ws://{host}", f"wss://{host}"] if host else []),
               *([o] if (o := origin(oidc_authority)) else [])]
    csp = "; ".join([
        "default-src 'self'",
        "script-src 'self'",
        # ECharts and React set element styles, ECharts' tooltips as style attributes.
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        f"connect-src {' '.join(connect)}",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'self'",  # the OIDC silent renew frames the portal itself, nothing else may
    ])
    return {"Content-Security-Policy": csp, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


class PortalFiles:
    """An ASGI app for the router's default: the portal's files, the SPA fallback, else `fallback` (the 404)."""

    def __init__(self, dist: Path, fallback: ASGIApp, oidc_authority: str | None = None) -> None:
        self.dist = dist
        self.fallback = fallback
        self.oidc_authority = oidc_authority

    def file(self, rel: str) -> Path | None:
        """A file inside the dist directory, never outside it (`..`, symlinks out)."""
        if not rel or "\x00" in rel:
            return None
        try:
            root = self.dist.resolve()
            path = (root / rel).resolve()
        except (OSError, ValueError):
            return None
        return path if path.is_relative_to(root) and path.is_file() else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            await self.fallback(scope, receive, send)
            return
        request = Request(scope, receive)
        response = self.respond(request, request.url.path)
        if response is None:
            await self.fallback(scope, receive, send)
        else:
            await response(scope, receive, send)

    def respond(self, request: Request, path: str) -> Response | None:
        if is_api_path(path):
            return None
        rel = path.lstrip("/")
        if rel.startswith("assets/"):
            # A missing hashed file is a 404, never index.html: a stale page must not load HTML as a script.
            found = self.file(rel)
            return FileResponse(found, headers={"Cache-Control": IMMUTABLE, "X-Content-Type-Options": "nosniff"}
                                ) if found else None
        if rel and rel != "index.html" and (found := self.file(rel)):
            # favicon, robots.txt: not hashed, so kept briefly.
            return FileResponse(found, headers={"Cache-Control": "public, max-age=3600",
                                                "X-Content-Type-Options": "nosniff"})
        if rel not in ("", "index.html") and "text/html" not in request.headers.get("accept", ""):
            return None  # not a page: a script's or a tool's request keeps its 404
        headers = {"Cache-Control": "no-cache", **security_headers(request, self.oidc_authority)}
        index = self.file("index.html")
        if index is None:
            return HTMLResponse(NOT_BUILT.replace("{dir}", html.escape(str(self.dist))), status_code=503,
                                headers=headers)
        return FileResponse(index, media_type="text/html; charset=utf-8", headers=headers)


def serve_portal(router: Router, dist: Path, oidc_authority: str | None) -> None:
    """Make the portal the router's default answer; the router's own 404 stays behind it."""
    # Compressed when the browser accepts it: the bundle is about a third of its size gzipped.
    router.default = GZipMiddleware(PortalFiles(dist, router.default, oidc_authority), minimum_size=1024)
