"""`Idempotency-Key` on POST: a retried request gets the first success again, not a second effect."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from trellis.auth import AuthError, TokenVerifier
from trellis.db import Database, idempotency, utcnow
from trellis.problems import MEDIA_TYPE, problem_body

IN_FLIGHT_TTL = timedelta(seconds=60)


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        key = headers.get("idempotency-key")
        state = scope["app"].state
        if key is None or not hasattr(state, "db"):
            await self.app(scope, receive, send)
            return
        if not key or len(key) > 255:
            await _problem(send, scope, 400, "Idempotency-Key must be 1 to 255 characters.", "bad-idempotency-key")
            return
        principal = await _principal(state.verifier, headers.get("authorization", ""))
        if principal is None:  # the route answers 401 itself
            await self.app(scope, receive, send)
            return

        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        # The query string is part of the request: `?dry_run=true` and a real run are different requests.
        target = scope["path"].encode() + b"?" + scope.get("query_string", b"")
        digest = hashlib.sha256(scope["method"].encode() + target + b"\n" + body).hexdigest()
        db: Database = state.db
        existing = await _reserve(db, key, principal, scope, digest)
        if existing is not None:
            if existing.request_hash != digest:
                await _problem(send, scope, 422, "This Idempotency-Key was already used for a different request.",
                               "idempotency-key-reused")
            elif existing.status is None:
                await _problem(send, scope, 409, "A request with this Idempotency-Key is still being processed.",
                               "idempotency-key-in-flight", extra_headers=[(b"retry-after", b"1")])
            else:
                await _send(send, existing.status, existing.response or b"", existing.content_type,
                            [(b"idempotent-replayed", b"true")])
            return

        sent_body = False

        async def replay() -> Message:
            nonlocal sent_body
            if sent_body:
                return await receive()
            sent_body = True
            return {"type": "http.request", "body": body, "more_body": False}

        captured: dict[str, Any] = {"status": 500, "body": b"", "ctype": None}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                for k, v in message.get("headers", []):
                    if k.lower() == b"content-type":
                        captured["ctype"] = v.decode()
            elif message["type"] == "http.response.body":
                captured["body"] += message.get("body", b"")
            await send(message)

        try:
            await self.app(scope, replay, capture)
        finally:
            key_match = (idempotency.c.key == key) & (idempotency.c.principal == principal)
            async with db.unit_of_work() as s:
                if captured["status"] >= 400:
                    # A refusal or a failure wrote nothing, so a retry runs again (say, once the
                    # roster has caught up) rather than replaying the refusal.
                    await s.execute(delete(idempotency).where(key_match))
                else:
                    await s.execute(update(idempotency).where(key_match).values(
                        status=captured["status"], response=captured["body"], content_type=captured["ctype"]))


async def _principal(verifier: TokenVerifier, header: str) -> str | None:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    try:
        p = await verifier.verify(token.strip())
    except AuthError:
        return None
    return f"{p.agency}:{p.sub}"


async def _reserve(db: Database, key: str, principal: str, scope: Scope, digest: str) -> Any:
    """Insert an in-flight row; return the existing row if the key was seen already."""
    key_match = (idempotency.c.key == key) & (idempotency.c.principal == principal)
    try:
        async with db.unit_of_work() as s:
            await s.execute(idempotency.insert().values(
                key=key, principal=principal, method=scope["method"], path=scope["path"],
                request_hash=digest, created_at=utcnow()))
        return None
    except IntegrityError:
        pass
    async with db.unit_of_work() as s:
        row = (await s.execute(select(idempotency).where(key_match))).one_or_none()
        if row is None:
            return await _reserve(db, key, principal, scope, digest)
        created = row.created_at
        if row.status is None and utcnow() - created > IN_FLIGHT_TTL:
            # The first attempt died mid-flight; this retry takes over.
            await s.execute(update(idempotency).where(key_match).values(created_at=utcnow(), request_hash=digest))
            return None
        return row


async def _send(send: Send, status: int, body: bytes, ctype: str | None, extra: list[tuple[bytes, bytes]]) -> None:
    headers = [(b"content-type", (ctype or "application/json").encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + extra})
    await send({"type": "http.response.body", "body": body})


async def _problem(send: Send, scope: Scope, status: int, detail: str, slug: str,
                   extra_headers: list[tuple[bytes, bytes]] | None = None) -> None:
    titles = {400: "Bad request", 409: "Conflict", 422: "Unprocessable content"}
    body = json.dumps(problem_body(status, detail, slug=slug, title=titles[status], instance=scope["path"],
                                   errors=[])).encode()
    await _send(send, status, body, MEDIA_TYPE, extra_headers or [])
