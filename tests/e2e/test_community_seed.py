"""The demo seed's community part, on the stack as `make run` starts it, read back through the community's REST
API (the gateway's community fields are not there yet): a program with past and future sessions, a full next
session with a waiting list, imported attendance with a rejoin, Ana Ruiz's certificate and a case with
recommendations. Seeding again changes nothing."""

from __future__ import annotations

import io
import json
import os
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest
from rich.console import Console

from devtools.demo import (
    COACH,
    DEMO_AGENCY,
    FACILITATOR,
    OBSERVERS,
    PRACTITIONERS,
    PROGRAM_TITLE,
    RECOMMENDATIONS,
    personas,
    seed,
)
from tests.e2e.test_stack import JWT, REPO, SERVICES, Stack, _stop, start_runner
from trellis.settings import Settings

pytestmark = pytest.mark.e2e

ANA = next(iter(PRACTITIONERS))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    st = start_runner(tmp_path_factory.mktemp("community-seed"))
    yield st
    rc = _stop(st)
    if rc is None:
        st.kill_everything()
    assert rc == 0, st.diagnostics()


def _client(stack: Stack) -> httpx.Client:
    return httpx.Client(base_url=f"http://127.0.0.1:{stack.ports['community']}", timeout=30, trust_env=False)


def _get(http: httpx.Client, token: str, path: str, **params: Any) -> Any:
    r = http.get(path, params=params, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, (path, r.status_code, r.text)
    return r.json()


def _snapshot(stack: Stack) -> dict[str, Any]:
    """What the seed left, as the facilitator, Ana and the platform admin see it."""
    fac = stack.token(DEMO_AGENCY, "facilitator", sub=FACILITATOR)
    ana = stack.token(DEMO_AGENCY, "practitioner", sub=ANA)
    with _client(stack) as http:
        programs = [p for p in _get(http, fac, "/v1/programs", limit=500)["items"] if p["title"] == PROGRAM_TITLE]
        assert len(programs) == 1, programs
        program = programs[0]
        sessions = _get(http, fac, "/v1/sessions", program_id=program["id"], limit=500)["items"]
        nxt = next(s for s in sessions if s["registration_open"])
        regs = _get(http, fac, f"/v1/sessions/{nxt['id']}/registrations", limit=500)["items"]
        past = [s for s in sessions if datetime.fromisoformat(s["starts_at"]) < datetime.now(UTC)]
        attendance = {s["id"]: _get(http, fac, f"/v1/sessions/{s['id']}/attendance")["items"] for s in past}
        certificates = _get(http, ana, "/v1/certificates")["items"]
        cases = _get(http, ana, "/v1/cases", mine="true")["items"]
    return {"program": program, "sessions": sessions, "next": nxt, "registrations": regs, "past": past,
            "attendance": attendance, "certificates": certificates, "cases": cases}


def test_the_facilitator_is_a_persona_and_on_the_roster(stack: Stack) -> None:
    assert personas()["facilitator"] == {"sub": FACILITATOR, "agency": DEMO_AGENCY, "roles": ["facilitator"],
                                         "name": "Mara Quinn", "label": "Facilitator"}
    saved = json.loads((stack.var / "demo-personas.json").read_text())
    assert saved["facilitator"]["sub"] == FACILITATOR
    admin = stack.token(DEMO_AGENCY, "agency_admin")
    with httpx.Client(base_url=f"http://127.0.0.1:{stack.ports['readiness']}", trust_env=False) as http:
        staff = _get(http, admin, f"/v1/agencies/{DEMO_AGENCY}/staff", limit=500)["items"]
    mara = next(m for m in staff if m["id"] == FACILITATOR)
    assert (mara["name"], mara["roles"], mara["status"]) == ("Mara Quinn", ["facilitator"], "active"), mara


def test_the_seeded_program_has_past_and_future_sessions_and_a_full_next_session(stack: Stack) -> None:
    seen = _snapshot(stack)
    program, sessions, nxt = seen["program"], seen["sessions"], seen["next"]
    assert program["owner_id"] == FACILITATOR and program["open_to_all"] and program["capacity"] == 4
    assert program["timezone"] == "America/Chicago" and program["ce_rule"] == {"kind": "count", "sessions": 3}
    assert {(m["person_id"], m["role"]) for m in program["hub"]} == {(FACILITATOR, "facilitator"), (COACH, "expert")}
    assert program["meeting_url"] == "https://meet.example.org/miiwrap-echo" and program["materials"]
    with _client(stack) as http:  # tagged with competencies fidelity's observations taught the community
        known = _get(http, stack.token(DEMO_AGENCY, "facilitator"), "/v1/competencies")["items"]
    assert program["competencies"] and set(program["competencies"]) <= set(known), (program["competencies"], known)
    assert "INTERVAL=2" in program["recurrence"]["rrule"] and "BYDAY=TU" in program["recurrence"]["rrule"]
    # Every second Tuesday, 10:00-11:00 Chicago time; five past, the rest ahead for about four months.
    assert len(seen["past"]) == 5 and len(sessions) - 5 >= 6, [s["starts_at"] for s in sessions]
    for s in sessions:
        starts = datetime.fromisoformat(s["starts_at"])
        assert starts.weekday() == 1 and (datetime.fromisoformat(s["ends_at"]) - starts).total_seconds() == 3600
    assert nxt["seats_taken"] == 4 and nxt["waiting"] == 2, nxt
    by_status = {st: [r["person_id"] for r in seen["registrations"] if r["status"] == st]
                 for st in ("confirmed", "waiting")}
    assert by_status == {"confirmed": list(PRACTITIONERS)[:4], "waiting": list(PRACTITIONERS)[4:]}, by_status
    assert [r["waitlist_position"] for r in seen["registrations"] if r["status"] == "waiting"] == [1, 2]

    # The meeting link: for Ana (confirmed), not for Eli Novak (waiting).
    with _client(stack) as http:
        for person, link in ((ANA, program["meeting_url"]), (list(PRACTITIONERS)[4], None)):
            token = stack.token(DEMO_AGENCY, "practitioner", sub=person)
            assert _get(http, token, f"/v1/sessions/{nxt['id']}")["meeting_url"] == link


def test_imported_attendance_gives_ana_a_certificate_and_her_case_has_recommendations(stack: Stack) -> None:
    seen = _snapshot(stack)
    rows = {sid: {a["person_id"]: a for a in items} for sid, items in seen["attendance"].items()}
    ana_rows = [rows[s["id"]][ANA] for s in seen["past"]]
    assert all(a["attended"] and a["source"] == "import" for a in ana_rows), ana_rows
    assert len(ana_rows[1]["segments"]) == 2 and ana_rows[1]["minutes_present"] == 55  # the rejoin, merged
    assert any(not a["attended"] for r in rows.values() for a in r.values())  # someone left early
    walk_in = rows[seen["past"][-1]["id"]][list(OBSERVERS)[1]]
    assert walk_in["source"] == "check_in" and walk_in["attended"]

    [cert] = seen["certificates"]
    assert (cert["program_id"], cert["person_name"], cert["agency_name"]) == (
        seen["program"]["id"], "Ana Ruiz", "Riverside Family Services")
    assert len(cert["sessions"]) >= 3 and cert["hours"] >= 3
    with _client(stack) as http:
        verified = http.get(f"/v1/certificates/verify/{cert['verification_code']}")  # public: no token
    assert verified.status_code == 200 and verified.json()["valid"] is True

    [case] = seen["cases"]
    assert case["session_id"] == seen["past"][-1]["id"] and case["presenter_id"] == ANA
    assert case["state"] == "recommendations_issued", case
    assert not [f for f in case["findings"] if f["status"] == "open"]
    assert [r["text"] for r in case["recommendations"]] == RECOMMENDATIONS
    assert {r["assigned_to"] for r in case["recommendations"]} == {ANA}
    assert date.fromisoformat(case["follow_up_on"]) > date.today()


def test_seeding_again_changes_nothing(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    before = _snapshot(stack)
    for name in SERVICES:
        monkeypatch.setenv(f"TRELLIS_{name.upper()}_PORT", str(stack.ports[name]))
    settings = Settings(var_dir=stack.var, services=list(SERVICES), **JWT)  # type: ignore[arg-type]
    started = time.monotonic()
    seed(settings, Console(file=io.StringIO()), show_tokens=False)
    after = _snapshot(stack)
    assert time.monotonic() - started < 60
    assert after["program"]["id"] == before["program"]["id"]
    assert len(after["sessions"]) == len(before["sessions"])
    assert [(r["person_id"], r["status"]) for r in after["registrations"]] == \
        [(r["person_id"], r["status"]) for r in before["registrations"]]
    assert [c["id"] for c in after["certificates"]] == [c["id"] for c in before["certificates"]]
    assert [(c["id"], c["state"]) for c in after["cases"]] == [(c["id"], c["state"]) for c in before["cases"]]
    assert {sid: [(a["person_id"], a["revision"]) for a in items] for sid, items in after["attendance"].items()} == \
        {sid: [(a["person_id"], a["revision"]) for a in items] for sid, items in before["attendance"].items()}


def test_the_readmes_walkthrough_runs_a_session_end_to_end(stack: Stack) -> None:
    """docs/community-walkthrough.sh, which the README walks a newcomer through, works as written: program,
    registration, imported attendance, a verified certificate, and a case from draft to recommendations."""
    env = {**os.environ, "TRELLIS_COMMUNITY_URL": f"http://127.0.0.1:{stack.ports['community']}",
           "TRELLIS": str(REPO / ".venv" / "bin" / "trellis")}
    run = subprocess.run(["bash", str(REPO / "docs" / "community-walkthrough.sh")], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert lines[1:3] == ["confirmed", "https://meet.example.org/walkthrough"], lines
    assert lines[3] == "58"  # minutes present: the rejoin's two segments, merged
    verified = json.loads(lines[4])
    assert verified["valid"] and verified["person_name"] == "Ana Ruiz" and verified["hours"] == 1.0
    assert lines[5].startswith("draft [('name', 'Delgado'), ('phone', '555-201-3344')]"), lines[5]
    assert lines[6:] == ["screened", "in_review", "approved", "presented", "recommendations_issued"], lines
