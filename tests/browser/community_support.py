"""Helpers for the community pages' browser tests: each test makes its own program and session through the
community service's REST API (as the seeded facilitator, Mara Quinn), so tests never share seats or order."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from playwright.sync_api import Page

from devtools.demo import DEMO_AGENCY, FACILITATOR, PRACTITIONERS
from tests.browser.conftest import Portal

ANA = next(p for p, n in PRACTITIONERS.items() if n == "Ana Ruiz")
BEN = next(p for p, n in PRACTITIONERS.items() if n == "Ben Okafor")
CHLOE = next(p for p, n in PRACTITIONERS.items() if n == "Chloe Martin")
ZONE = "America/Chicago"
MEETING = "https://meet.example.org/browser-test"


def community(portal: Portal) -> str:
    return f"http://127.0.0.1:{portal.stack.ports['community']}"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def facilitator_token(portal: Portal) -> str:
    return portal.token(DEMO_AGENCY, "facilitator", sub=FACILITATOR)


def practitioner_token(portal: Portal, person: str) -> str:
    return portal.token(DEMO_AGENCY, "practitioner", sub=person)


def call(portal: Portal, method: str, path: str, token: str, json: Any = None, ok: int = 200,
         params: dict[str, Any] | None = None) -> Any:
    r = httpx.request(method, f"{community(portal)}{path}", headers=auth(token), json=json, params=params,
                      timeout=15, trust_env=False)
    assert r.status_code == ok, f"{method} {path}: {r.status_code} {r.text}"
    return r.json()


def make_program(portal: Portal, *, capacity: int, starts_in: timedelta, sessions: int = 1,
                 ce_rule: dict[str, Any] | None = None, title: str | None = None) -> tuple[dict[str, Any],
                                                                                            list[dict[str, Any]]]:
    """A program of this test's own (unique title), weekly from `starts_in` from now, in Chicago time."""
    start = (datetime.now(UTC) + starts_in).astimezone(ZoneInfo(ZONE)).replace(second=0, microsecond=0)
    tag = uuid.uuid4().hex[:6]
    body = {
        "title": title or f"Browser test program {tag}", "timezone": ZONE, "open_to_all": True,
        "recurrence": {"dtstart": start.strftime("%Y-%m-%dT%H:%M:%S"), "rrule": f"FREQ=WEEKLY;COUNT={sessions}"},
        "duration_minutes": 60, "capacity": capacity, "session_title": f"Browser test session {tag}",
        "topic": "Strengths-based needs statements", "meeting_url": MEETING,
        "materials": [{"title": "Needs statement guide", "url": "https://example.org/guide"}],
        "ce_rule": ce_rule or {"kind": "count", "sessions": 5},
    }
    program = call(portal, "POST", "/v1/programs", facilitator_token(portal), json=body, ok=201)
    got = call(portal, "GET", "/v1/sessions", facilitator_token(portal),
               params={"program_id": program["id"], "limit": 50})
    return program, got["items"]


def register(portal: Portal, session_id: str, person: str, ok: int = 201) -> dict[str, Any]:
    """Registers a demo practitioner (the community learns the roster by event: retried while it is new)."""
    token = practitioner_token(portal, person)
    deadline = time.monotonic() + 20
    while True:
        r = httpx.post(f"{community(portal)}/v1/sessions/{session_id}/registrations", headers=auth(token), json={},
                       timeout=15, trust_env=False)
        if r.status_code != 422 or time.monotonic() > deadline:
            assert r.status_code == ok, r.text
            body: dict[str, Any] = r.json()
            return body
        time.sleep(0.2)


def wait_for_subscription(page: Page, frames: list[str], operation: str, timeout_s: float = 10) -> None:
    """Until the page has sent the graphql-ws subscribe for `operation` (collect frames with `watch_frames`)."""
    deadline = time.monotonic() + timeout_s
    while not any('"subscribe"' in f and operation in f for f in frames):
        assert time.monotonic() < deadline, f"the page never subscribed to {operation}"
        page.wait_for_timeout(100)


def watch_frames(page: Page) -> list[str]:
    sent: list[str] = []
    page.on("websocket", lambda ws: ws.on("framesent", lambda payload: sent.append(str(payload))))
    return sent


def until_live(cause: Callable[[int], None], check: Callable[[], None], attempts: int = 3) -> None:
    """Causes a change and checks the page shows it; the gateway's NATS subscription starts a moment after the
    browser's subscribe, so a change made in that moment is missed: a later attempt covers it."""
    for attempt in range(attempts):
        cause(attempt)
        try:
            check()
            return
        except AssertionError:
            if attempt == attempts - 1:
                raise

