"""Body size limits as a pure ASGI layer (trellis/limits.py), and the roster CSV's own limits."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest

from services.readiness.domain import parse_roster
from trellis.limits import BodyLimitMiddleware
from trellis.settings import Settings

KiB = 1024


class Spy:
    """The app behind the middleware: records whether it ran and the body it read."""

    def __init__(self) -> None:
        self.calls = 0
        self.body = b""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.calls += 1
        if scope["type"] == "http":
            while True:
                msg = await receive()
                self.body += msg.get("body", b"")
                if not msg.get("more_body"):
                    break
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})


class Client:
    """Feeds a body in chunks, counting how many the middleware pulled."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.pulled = 0
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        try:
            chunk = next(self.chunks)
        except StopIteration:
            return {"type": "http.request", "body": b"", "more_body": False}
        self.pulled += 1
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])

    @property
    def problem(self) -> dict[str, Any]:
        headers = dict(self.sent[0]["headers"])
        assert headers[b"content-type"] == b"application/problem+json"
        return json.loads(b"".join(m.get("body", b"") for m in self.sent[1:]))  # type: ignore[no-any-return]


def endless(size: int = 64 * KiB) -> Iterator[bytes]:
    while True:
        yield b"x" * size


def scope(content_type: str = "application/json", length: int | str | None = None) -> dict[str, Any]:
    headers = [(b"content-type", content_type.encode())]
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    return {"type": "http", "method": "POST", "path": "/v1/things", "headers": headers, "query_string": b""}


def limited(spy: Spy, json_bytes: int = 256 * KiB, csv_bytes: int = 1024 * KiB) -> BodyLimitMiddleware:
    return BodyLimitMiddleware(spy, Settings(), json_bytes=json_bytes, csv_bytes=csv_bytes)


async def test_a_declared_length_over_the_limit_is_refused_before_reading_or_running_the_app() -> None:
    spy, client = Spy(), Client(endless())
    await limited(spy)(scope(length=300 * 1024 * KiB), client.receive, client.send)
    assert client.status == 413 and spy.calls == 0 and client.pulled == 0
    p = client.problem
    assert p["type"] == "urn:trellis:problem:content-too-large" and p["status"] == 413
    assert p["max_bytes"] == 256 * KiB and p["instance"] == "/v1/things" and "256 KiB" in p["detail"]
    assert (b"connection", b"close") in client.sent[0]["headers"]


async def test_a_chunked_body_is_counted_and_refused_as_soon_as_it_passes_the_limit() -> None:
    spy, client = Spy(), Client(endless(64 * KiB))
    await limited(spy)(scope(), client.receive, client.send)  # no Content-Length: chunked
    assert client.status == 413 and spy.calls == 0
    assert client.pulled == 256 // 64 + 1  # one chunk past the limit, then nothing more is read


async def test_a_body_that_lies_about_its_length_is_still_counted() -> None:
    spy, client = Spy(), Client(endless(64 * KiB))
    await limited(spy)(scope(length=10), client.receive, client.send)
    assert client.status == 413 and spy.calls == 0 and client.pulled == 5


async def test_a_body_within_the_limit_reaches_the_app_whole() -> None:
    spy = Spy()
    parts = [bytes([i]) * 1000 for i in range(100)]
    client = Client(iter(parts))
    await limited(spy)(scope(), client.receive, client.send)
    assert client.status == 200 and spy.calls == 1 and spy.body == b"".join(parts)


@pytest.mark.parametrize("content_type", ["text/csv", "text/csv; charset=utf-8", "application/csv", "text/plain"])
async def test_csv_has_its_own_larger_limit(content_type: str) -> None:
    spy = Spy()
    body = [b"y" * (64 * KiB)] * 8  # 512 KiB: over the JSON limit, under the CSV one
    ok = Client(iter(body))
    await limited(spy)(scope(content_type), ok.receive, ok.send)
    assert ok.status == 200 and len(spy.body) == 512 * KiB
    big = Client(endless())
    await limited(spy)(scope(content_type, length=1024 * KiB + 1), big.receive, big.send)
    assert big.status == 413 and "CSV" in big.problem["detail"] and spy.calls == 1
    as_json = Client(iter(body))
    await limited(spy)(scope("application/json"), as_json.receive, as_json.send)
    assert as_json.status == 413 and "JSON" in as_json.problem["detail"]


@pytest.mark.parametrize("length", ["abc", "-1", "1e9", "9" * 40])
async def test_a_malformed_content_length_is_a_400(length: str) -> None:
    spy, client = Spy(), Client(endless())
    await limited(spy)(scope(length=length), client.receive, client.send)
    assert client.status == 400 and client.problem["type"] == "urn:trellis:problem:bad-content-length"
    assert spy.calls == 0


async def test_a_client_that_disconnects_midway_runs_nothing() -> None:
    spy = Spy()
    messages = iter([{"type": "http.request", "body": b"{", "more_body": True}, {"type": "http.disconnect"}])

    async def receive() -> dict[str, Any]:
        return next(messages)

    sent: list[Any] = []

    async def send(m: Any) -> None:
        sent.append(m)

    await limited(spy)(scope(), receive, send)
    assert spy.calls == 0 and sent == []


async def test_websockets_and_lifespan_pass_through() -> None:
    spy = Spy()
    for kind in ("websocket", "lifespan"):
        await limited(spy)({"type": kind, "headers": []}, None, None)  # type: ignore[arg-type]
    assert spy.calls == 2


def test_defaults_are_1_mib_json_and_10_mib_csv_and_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    s = Settings()
    assert (s.max_json_body_bytes, s.max_csv_body_bytes) == (1024 * 1024, 10 * 1024 * 1024)
    monkeypatch.setenv("TRELLIS_MAX_JSON_BODY_BYTES", "2048")
    monkeypatch.setenv("TRELLIS_MAX_CSV_BODY_BYTES", "4096")
    m = BodyLimitMiddleware(Spy(), Settings())
    assert (m.json_bytes, m.csv_bytes) == (2048, 4096)


def test_a_csv_cell_over_the_field_size_limit_is_a_row_error_not_a_crash() -> None:
    huge = "a" * (csv.field_size_limit() + 1)
    text = f"name,email,roles\nAna,ana@example.org,practitioner\n{huge},bo@example.org,practitioner\n"
    parsed = parse_roster(text, {}, {}, date(2026, 1, 1))
    assert len(parsed.errors) == 1
    err = parsed.errors[0]
    assert err.line == 3 and "field limit" in err.message
