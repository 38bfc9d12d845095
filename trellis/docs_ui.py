"""Swagger UI and ReDoc served from this process, so /docs works offline.

FastAPI's /docs loads its scripts from public CDNs and shows a blank page without the internet. The
assets come from the `fastapi-offline` package instead; nothing on these pages names another host.
(The gateway's GraphiQL does the same in gateway/graphiql.py.)
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

DOCS_ASSETS = "/docs/assets"


def offline_fastapi(**kwargs: Any) -> FastAPI:
    """A FastAPI app whose /docs (Swagger UI) and /redoc use bundled assets."""
    return FastAPIOffline(static_url=DOCS_ASSETS, **kwargs)
