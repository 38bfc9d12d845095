"""Request body size limits, enforced while the body streams in: before parsing and before auth.

Pure ASGI and the outermost layer, so an oversized body never reaches a route, a token check or the
idempotency store. The body is read here (at most `limit` bytes are ever held) and then replayed to
the app, which therefore never sees a request that is too large. `Content-Length` is checked first;
a body without one (chunked) is counted chunk by chunk and refused as soon as it passes the limit.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from trellis.problems import MEDIA_TYPE, problem_body
from trellis.settings import Settings, get_settings

MiB = 1024 * 1024
# The roster import takes these; every other body (JSON, GraphQL, anything else) has the JSON limit.
CSV_TYPES = frozenset({"text/csv", "application/csv", "text/plain"})


def _human(n: int) -> str:
    for unit, size in (("MiB", MiB), ("KiB", 1024)):
        if n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} bytes"


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings | None = None, *,
                 json_bytes: int | None = None, csv_bytes: int | None = None) -> None:
        settings = settings or get_settings()
        self.app = app
        self.json_bytes = json_bytes if json_bytes is not None else settings.max_json_body_bytes
        self.csv_bytes = csv_bytes if csv_bytes is not None else settings.max_csv_body_bytes

    def limit_for(self, content_type: str) -> tuple[int, str]:
        kind = content_type.split(";", 1)[0].strip().lower()
        return (self.csv_bytes, "CSV") if kind in CSV_TYPES else (self.json_bytes, "JSON")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        content_type, declared = "", None
        for k, v in scope["headers"]:
            if k == b"content-type":
                content_type = v.decode("latin-1")
            elif k == b"content-length":
                declared = v
        limit, kind = self.limit_for(content_type)
        if declared is not None:
            if not declared.isdigit() or len(declared) > 18:
                await _refuse(send, scope, 400, "Bad request", "bad-content-length",
                              "The Content-Length header is not a number of bytes.")
                return
            if int(declared) > limit:
                await _too_large(send, scope, limit, kind)
                return

        # Read (and count) the whole body before the app runs; a body past the limit is refused
        # without reading further, so memory stays at `limit` whatever the client sends.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client went away: nothing to answer, nothing to run
            body = message.get("body", b"")
            size += len(body)
            if size > limit:
                await _too_large(send, scope, limit, kind)
                return
            if body:
                chunks.append(body)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # after the body: the app may wait for http.disconnect
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


async def _too_large(send: Send, scope: Scope, limit: int, kind: str) -> None:
    await _refuse(send, scope, 413, "Content too large", "content-too-large",
                  f"The request body is larger than the {_human(limit)} allowed for {kind}; nothing was read "
                  "further and nothing was changed.", limit)


async def _refuse(send: Send, scope: Scope, status: int, title: str, slug: str, detail: str,
                  limit: int | None = None) -> None:
    problem = problem_body(status, detail, slug=slug, title=title, instance=scope.get("path", ""), errors=[])
    if limit is not None:
        problem["max_bytes"] = limit  # an RFC 9457 extension member: what the client may send
    payload = json.dumps(problem).encode()
    # `connection: close`: the server must not try to read (and discard) the rest of a huge body.
    headers = [(b"content-type", MEDIA_TYPE.encode()), (b"content-length", str(len(payload)).encode()),
               (b"connection", b"close")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
