"""`Idempotency-Key` on POST: a retried request gets the first success again, never a second effect.

A keyed request runs in one database transaction (`Database.request_transaction`): the key is
inserted first, the route's units of work join the same transaction, and the response is stored
in it before it commits. A crash before the commit leaves nothing (a retry runs on a clean
slate); a crash after it leaves the stored response (a retry replays it). A concurrent request
with the same key waits on the key's row and then replays, or gets 409 once the database's lock
timeout passes.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from trellis.auth import AuthError, TokenVerifier
from trellis.db import idempotency, utcnow
from trellis.problems import MEDIA_TYPE, problem_body

log = logging.getLogger("trellis.idempotency")

_INSERT = {
    "postgresql": postgresql.insert(idempotency).on_conflict_do_nothing().returning(idempotency.c.key),
    "sqlite": sqlite.insert(idempotency).on_conflict_do_nothing().returning(idempotency.c.key),
}


class _Rollback(Exception):
    """Raised inside the request transaction to undo it (the route refused, or the key was used)."""


class _InFlight(Exception):
    """Another request holds this key's row beyond the database's lock timeout."""


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        # Header values are bytes on the wire: decode only the two read here, as HTTP's Latin-1.
        raw = {k.lower(): v for k, v in scope["headers"] if k.lower() in (b"idempotency-key", b"authorization")}
        state = scope["app"].state
        if b"idempotency-key" not in raw or not hasattr(state, "db"):
            await self.app(scope, receive, send)
            return
        key = raw[b"idempotency-key"].decode("latin-1")
        if not key or len(key) > 255 or not key.isascii() or not key.isprintable():
            await _problem(send, scope, 400, "Idempotency-Key must be 1 to 255 printable ASCII characters.",
                           "bad-idempotency-key")
            return
        principal = await _principal(state.verifier, raw.get(b"authorization", b"").decode("latin-1"))
        if principal is None:  # the route answers 401 itself
            await self.app(scope, receive, send)
            return

        body = await _read_body(receive)
        # The query string is part of the request: `?dry_run=true` and a real run are different requests.
        target = scope["path"].encode() + b"?" + scope.get("query_string", b"")
        digest = hashlib.sha256(scope["method"].encode() + target + b"\n" + body).hexdigest()
        captured: list[Message] = []
        dry_run = False
        try:
            async with state.db.request_transaction() as s:
                captured = await self._run(s, scope, receive, body, key, principal, digest)
                dry_run = bool(s.info.get("discard"))
                if _status(captured) >= 400 or dry_run:
                    # A refusal or a failure changes nothing and is not stored: a retry runs again
                    # (say, once the roster has caught up) rather than replaying the refusal.
                    raise _Rollback
        except _Rollback:
            if dry_run and _status(captured) < 400:
                # A dry run discards its writes; its answer is kept for the key all the same.
                async with state.db.unit_of_work() as s:
                    if await _reserve(s, key, principal, scope["path"], digest) is None:
                        await _store(s, key, principal, captured)
        except _InFlight:
            captured = _problem_messages(scope, 409, "A request with this Idempotency-Key is still being processed.",
                                         "idempotency-key-in-flight", [(b"retry-after", b"1")])
        # Only now, with the outcome durable, does the client hear it.
        await respond(send, captured)

    async def _run(self, s: AsyncSession, scope: Scope, receive: Receive, body: bytes, key: str, principal: str,
                   digest: str) -> list[Message]:
        try:
            existing = await _reserve(s, key, principal, scope["path"], digest)
        except DBAPIError as e:
            if _lock_timeout(e):
                raise _InFlight from e
            raise
        if existing is not None:
            if existing.request_hash != digest:
                return _problem_messages(scope, 422, "This Idempotency-Key was already used for a different request.",
                                         "idempotency-key-reused", [])
            return _messages(existing.status, existing.response or b"", existing.content_type,
                             [(b"idempotent-replayed", b"true")])
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        captured: list[Message] = []

        async def capture(message: Message) -> None:
            captured.append(message)

        await self.app(scope, replay, capture)
        if _status(captured) < 400:
            await _store(s, key, principal, captured)
        return captured


async def _store(s: AsyncSession, key: str, principal: str, captured: list[Message]) -> None:
    start = next(m for m in captured if m["type"] == "http.response.start")
    ctype = next((v.decode("latin-1") for k, v in start.get("headers", []) if k.lower() == b"content-type"), None)
    stored = b"".join(m.get("body", b"") for m in captured if m["type"] == "http.response.body")
    key_match = (idempotency.c.key == key) & (idempotency.c.principal == principal)
    await s.execute(update(idempotency).where(key_match).values(status=int(start["status"]), response=stored,
                                                                 content_type=ctype))


def _status(messages: list[Message]) -> int:
    return next((int(m["status"]) for m in messages if m["type"] == "http.response.start"), 500)


async def respond(send: Send, messages: list[Message]) -> None:
    """Send the buffered response (a seam for tests that crash after the commit)."""
    for message in messages:
        await send(message)


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        msg = await receive()
        chunks.append(msg.get("body", b""))
        if not msg.get("more_body"):
            return b"".join(chunks)


async def _principal(verifier: TokenVerifier, header: str) -> str | None:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    try:
        p = await verifier.verify(token.strip())
    except AuthError:
        return None
    return f"{p.agency}:{p.sub}"


async def _reserve(s: AsyncSession, key: str, principal: str, path: str, digest: str) -> Any:
    """Insert the key in the request's transaction; return the stored row if it was used already.

    On PostgreSQL the insert waits for a concurrent transaction holding the same key, so the
    second request sees the first one's committed outcome (or a clean slate if it rolled back).
    """
    dialect = s.bind.dialect.name
    values = {"key": key, "principal": principal, "method": "POST", "path": path[:1024], "request_hash": digest,
              "created_at": utcnow()}
    key_match = (idempotency.c.key == key) & (idempotency.c.principal == principal)
    for _ in range(2):
        if (await s.execute(_INSERT[dialect], values)).first() is not None:
            return None
        row = (await s.execute(select(idempotency).where(key_match))).one_or_none()
        if row is not None and row.status is not None:
            return row
        if row is not None:
            # Left "in flight" by a release that stored outcomes after the commit: take it over,
            # comparing and swapping so that two retries cannot both take it.
            await s.execute(delete(idempotency).where(key_match, idempotency.c.status.is_(None),
                                                      idempotency.c.created_at == row.created_at))
    raise RuntimeError(f"idempotency key {key!r} could be neither reserved nor read")


def _lock_timeout(e: DBAPIError) -> bool:
    return getattr(e.orig, "sqlstate", None) == "55P03" or "lock timeout" in str(e.orig).lower()


def _messages(status: int, body: bytes, ctype: str | None, extra: list[tuple[bytes, bytes]]) -> list[Message]:
    headers = [(b"content-type", (ctype or "application/json").encode()), (b"content-length", str(len(body)).encode())]
    return [{"type": "http.response.start", "status": status, "headers": headers + extra},
            {"type": "http.response.body", "body": body}]


def _problem_messages(scope: Scope, status: int, detail: str, slug: str,
                      extra_headers: list[tuple[bytes, bytes]]) -> list[Message]:
    titles = {400: "Bad request", 409: "Conflict", 422: "Unprocessable content"}
    body = json.dumps(problem_body(status, detail, slug=slug, title=titles[status], instance=scope["path"],
                                   errors=[])).encode()
    return _messages(status, body, MEDIA_TYPE, extra_headers)


async def _problem(send: Send, scope: Scope, status: int, detail: str, slug: str,
                   extra_headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await respond(send, _problem_messages(scope, status, detail, slug, extra_headers or []))
