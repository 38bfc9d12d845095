"""`trellis seed`: demo data created through the public APIs, so every layer is exercised."""

from __future__ import annotations

import json
import random
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from rich.console import Console
from rich.progress import track

from trellis.auth import mint_dev_token
from trellis.settings import Settings, service_settings

DEMO_AGENCY = "0190a000-0000-7000-8000-00000000a9e1"
NS = uuid.UUID(DEMO_AGENCY)
PRACTITIONERS = {str(uuid.uuid5(NS, f"practitioner-{i}")): name for i, name in enumerate(
    ["Ana Ruiz", "Ben Okafor", "Chloe Martin", "Dev Patel", "Eli Novak", "Fay Chen"])}
OBSERVERS = {str(uuid.uuid5(NS, f"observer-{i}")): name for i, name in enumerate(["Grace Hall", "Hugo Silva"])}
COACH = str(uuid.uuid5(NS, "coach-0"))
FACILITATOR = str(uuid.uuid5(NS, "facilitator-0"))  # runs the community's ECHO program
ADMIN = str(uuid.uuid5(NS, "admin-0"))
PLATFORM = "0190a000-0000-7000-8000-0000000f1a7f"  # the implementation partner's own tenant
PLATFORM_ADMIN = str(uuid.uuid5(NS, "platform-admin-0"))
MONTHS = 6
PERSONAS_FILE = "demo-personas.json"  # under var/: who the seed created, for fresh tokens on every start
TOKEN_TTL_S = 8 * 3600


def personas() -> dict[str, dict[str, Any]]:
    """The people `make run` prints tokens for and the portal's persona picker offers (the gateway reads them
    from var/demo-personas.json): one per role a newcomer tries first."""
    (observer, observer_name), (supervisor, supervisor_name) = list(OBSERVERS.items())[:2]
    practitioner, practitioner_name = next(iter(PRACTITIONERS.items()))

    def person(sub: str, agency: str, roles: list[str], name: str, label: str) -> dict[str, Any]:
        return {"sub": sub, "agency": agency, "roles": roles, "name": name, "label": label}

    return {
        "agency_admin": person(ADMIN, DEMO_AGENCY, ["agency_admin", "supervisor"], "Jon Reyes", "Agency admin"),
        "supervisor": person(supervisor, DEMO_AGENCY, ["supervisor"], supervisor_name, "Supervisor"),
        "coach": person(COACH, DEMO_AGENCY, ["coach"], "Ivy Brooks", "Coach"),
        "observer": person(observer, DEMO_AGENCY, ["observer"], observer_name, "Observer"),
        "practitioner": person(practitioner, DEMO_AGENCY, ["practitioner"], practitioner_name, "Practitioner"),
        "facilitator": person(FACILITATOR, DEMO_AGENCY, ["facilitator"], "Mara Quinn", "Facilitator"),
        "platform_admin": person(PLATFORM_ADMIN, PLATFORM, ["platform_admin"], "Implementation partner",
                                 "Platform admin"),
    }


def save_personas(var: Path) -> None:
    var.mkdir(parents=True, exist_ok=True)
    (var / PERSONAS_FILE).write_text(json.dumps(personas(), indent=2) + "\n")


def load_personas(var: Path) -> dict[str, dict[str, Any]] | None:
    """The seeded personas, or None if this var/ was never seeded (nobody to mint tokens for)."""
    saved = var / PERSONAS_FILE
    if saved.exists():
        loaded: dict[str, dict[str, Any]] = json.loads(saved.read_text())
        if loaded.keys() >= personas().keys():
            return loaded
    elif not (var / ".seeded").exists():
        return None
    # Seeded by an older version, with fewer personas or none recorded: the seed's ids are fixed, so they are
    # these; recorded again for the gateway's persona picker.
    save_personas(var)
    return personas()


def persona_tokens(settings: Settings, people: dict[str, dict[str, Any]] | None = None,
                   ttl_s: int = TOKEN_TTL_S) -> dict[str, str]:
    """Freshly minted dev tokens, one per persona (the dev secret signs them; they last `ttl_s`)."""
    return {role: mint_dev_token(settings, sub=str(p["sub"]), agency=str(p["agency"]),
                                 roles=[str(r) for r in p["roles"]], ttl_s=ttl_s)
            for role, p in (people or personas()).items()}


def token_lines(tokens: dict[str, str], ttl_s: int = TOKEN_TTL_S) -> list[str]:
    until = (datetime.now() + timedelta(seconds=ttl_s)).strftime("%H:%M")
    lines = [f"Demo tokens, valid until {until} ({ttl_s // 3600} h; every start prints fresh ones). "
             "Send them as 'Authorization: Bearer <token>':"]
    for role, token in tokens.items():
        lines += [f"  {role}:", f"    {token}"]
    return lines


def _scores(items: list[dict[str, object]], level: float, rng: random.Random) -> dict[str, int]:
    out = {}
    for item in items:
        lo, hi = int(item["scale_min"]), int(item["scale_max"])  # type: ignore[call-overload]
        out[str(item["key"])] = max(lo, min(hi, round(lo + (hi - lo) * level + rng.uniform(-0.6, 0.6))))
    return out


def _roster_csv() -> str:
    rows = ["name,email,team,roles,hire_date,id"]
    hired = date.today() - timedelta(days=400)
    for n, (pid, name) in enumerate(PRACTITIONERS.items()):
        team = "North" if n % 2 == 0 else "South"
        rows.append(f"{name},{name.lower().replace(' ', '.')}@demo.example,{team},practitioner,{hired},{pid}")
    for oid, name in OBSERVERS.items():
        rows.append(f"{name},{name.lower().replace(' ', '.')}@demo.example,,observer;supervisor,{hired},{oid}")
    rows.append(f"Ivy Brooks,ivy.brooks@demo.example,North,coach,{hired},{COACH}")
    rows.append(f"Jon Reyes,jon.reyes@demo.example,,agency_admin;supervisor,{hired},{ADMIN}")
    rows.append(f"Mara Quinn,mara.quinn@demo.example,,facilitator,{hired},{FACILITATOR}")
    return "\n".join(rows) + "\n"


def _readiness(http: httpx.Client, settings: Settings, platform: str, admin: str) -> None:
    """The agency, its roster, one readiness round and an approved plan: the agency is in Installation."""
    auth = {"Authorization": f"Bearer {admin}"}
    r = http.post("/v1/agencies", headers={"Authorization": f"Bearer {platform}"},
                  json={"id": DEMO_AGENCY, "name": "Riverside Family Services", "region": "North County",
                        "programs": ["MiiWrap high-fidelity wraparound"]})
    base = f"/v1/agencies/{DEMO_AGENCY}"
    if r.status_code == 409:
        # Seeded before: only the roster again (an upsert by id), for people a newer seed added.
        http.post(f"{base}/staff/import", headers=auth | {"content-type": "text/csv"},
                  content=_roster_csv()).raise_for_status()
        return
    r.raise_for_status()
    for team in ("North", "South"):
        http.post(f"{base}/teams", headers=auth, json={"name": team}).raise_for_status()
    http.post(f"{base}/staff/import", headers=auth | {"content-type": "text/csv"},
              content=_roster_csv()).raise_for_status()
    rnd = http.post(f"{base}/readiness-rounds", headers=auth, json={"title": "Baseline readiness"}).json()
    rng = random.Random(7)
    respondents = [*PRACTITIONERS, *OBSERVERS, COACH, ADMIN]
    instrument = http.get("/v1/readiness-instruments", headers=auth).json()["items"][0]
    for person in respondents:
        token = mint_dev_token(settings, sub=person, agency=DEMO_AGENCY, roles=["practitioner"])
        # Ready everywhere but data systems: "ready with conditions", and the approved plan clears training.
        answers = {i["key"]: (3 if i["domain"] == "data_systems" else 4) + rng.choice([0, 0, 1])
                   for i in instrument["items"]}
        http.put(f"{base}/readiness-rounds/{rnd['id']}/responses/me", json={"answers": answers},
                 headers={"Authorization": f"Bearer {token}"}).raise_for_status()
    http.post(f"{base}/readiness-rounds/{rnd['id']}/close", headers=auth).raise_for_status()
    http.post(f"{base}/plan/actions", headers=auth, json={
        "title": "Protect weekly supervision time for model practice", "readiness_domain": "supervision_capacity",
        "owner_id": ADMIN, "due_on": (date.today() + timedelta(days=30)).isoformat()}).raise_for_status()
    http.post(f"{base}/plan/approve", headers=auth).raise_for_status()


def _calibrate(http: httpx.Client, observer_tokens: list[str], instrument_id: str, platform: str) -> None:
    """Observers score the shared reference recording; the seed's raters agree with its master coding
    (which only the platform admin, who curates references, can read)."""
    refs = http.get("/v1/calibration-references", headers={"Authorization": f"Bearer {platform}"}).json()["items"]
    ref = next(r for r in refs if r["instrument_id"] == instrument_id)
    master = ref["scores"]
    for n, token in enumerate(observer_tokens):
        r = http.post("/v1/calibrations", json={"reference_id": ref["id"], "scores": master},
                      headers={"Authorization": f"Bearer {token}", "Idempotency-Key": f"demo-seed-calibration-{n}"})
        if r.status_code != 409:  # 409: this observer scored the reference in an earlier seed
            r.raise_for_status()


def _post_when_rostered(http: httpx.Client, body: dict[str, object], headers: dict[str, str]) -> None:
    """The roster reaches fidelity by event a moment after the import; wait for it on the first post."""
    deadline = time.monotonic() + 30
    while True:
        r = http.post("/v1/observations", json=body, headers=headers)
        codes = {e.get("code") for e in r.json().get("errors", [])} if r.status_code == 422 else set()
        if "not-active-staff" not in codes or time.monotonic() > deadline:
            r.raise_for_status()
            return
        time.sleep(0.2)


# --- community: an ECHO program, its waiting list, attendance, a certificate and a case -------------------------

PROGRAM_TITLE = "MiiWrap ECHO: family team meetings"
PROGRAM_TZ = "America/Chicago"
PROGRAM_CAPACITY = 4
WAIT_S = 15.0  # for the roster, names and competencies to reach the community by event


def _email(name: str) -> str:
    return f"{name.lower().replace(' ', '.')}@demo.example"


def _bearer(token: str, key: str | None = None) -> dict[str, str]:
    """Auth, and a fixed Idempotency-Key on every write: a second seed replays instead of doing it twice."""
    return {"Authorization": f"Bearer {token}"} | ({"Idempotency-Key": f"demo-seed-community-{key}"} if key else {})


def _program_body(today: date, competencies: list[str]) -> dict[str, Any]:
    """Every second Tuesday 10:00–11:00 Chicago time, from 9–10 weeks ago to about 4 months ahead.

    Starting 63+ days back gives exactly five past sessions (the sixth is 1–7 days ahead), so at least three
    fall in one calendar year: the CE rule counts per year, and Ana Ruiz earns her certificate in any month."""
    first = today - timedelta(days=63)
    first -= timedelta(days=(first.weekday() - 1) % 7)  # back to a Tuesday
    until = today + timedelta(days=120)
    return {
        "title": PROGRAM_TITLE,
        "description": "A cross-agency ECHO: a short teaching segment on family team meetings, then one "
                       "practitioner's real, stuck case and the group's recommendations.",
        "open_to_all": True, "timezone": PROGRAM_TZ,
        "recurrence": {"dtstart": f"{first.isoformat()}T10:00:00",
                       "rrule": f"FREQ=WEEKLY;INTERVAL=2;BYDAY=TU;UNTIL={until:%Y%m%d}T235959Z"},
        "duration_minutes": 60, "capacity": PROGRAM_CAPACITY, "session_title": "Family team meetings ECHO",
        "topic": "Running a family team meeting the family owns", "competencies": competencies,
        "meeting_url": "https://meet.example.org/miiwrap-echo",
        "materials": [{"title": "Family team meeting checklist", "url": "https://example.org/miiwrap/ftm-checklist"},
                      {"title": "ECHO case template guide", "url": "https://example.org/miiwrap/echo-cases"}],
        "ce_rule": {"kind": "count", "sessions": 3},
        "hub": [{"person_id": COACH, "agency_id": DEMO_AGENCY, "role": "expert"}],
    }


def _until(attempt: Any, timeout: float = WAIT_S) -> Any:
    """attempt() until it returns something truthy; its last answer after `timeout` (the caller decides)."""
    deadline = time.monotonic() + timeout
    while not (result := attempt()) and time.monotonic() < deadline:
        time.sleep(0.2)
    return result


def _zoom_report(starts: datetime, attendees: list[tuple[str, list[tuple[int, int]]]]) -> str:
    """A Zoom participant export: one row per join/leave segment (a rejoin is a second row), local times."""
    local = starts.astimezone(ZoneInfo(PROGRAM_TZ))
    rows = ["Name (Original Name),User Email,Join Time,Leave Time,Duration (Minutes),Guest"]
    for name, segments in attendees:
        email = _email(name) if name in PRACTITIONERS.values() else ""
        for joined, left in segments:
            at, to = local + timedelta(minutes=joined), local + timedelta(minutes=left)
            rows.append(f"{name},{email},{at:%m/%d/%Y %I:%M:%S %p},{to:%m/%d/%Y %I:%M:%S %p},{left - joined},"
                        f"{'Yes' if not email else 'No'}")
    return "\n".join(rows) + "\n"


# Minutes present (joined, left) per past session, by practitioner index: Ana Ruiz attends every one (with a
# dropped connection and a rejoin in the second), others miss some or leave early (under the 75% threshold).
ATTENDANCE = [
    [[(0, 60)], [(1, 20), (24, 60)], [(2, 60)], [(0, 58)], [(0, 60)]],
    [[(0, 60)], [(0, 60)], [], [(5, 60)], [(0, 60)]],
    [[(3, 60)], [], [(0, 60)], [(0, 60)], [(0, 25)]],
    [[(0, 30)], [(0, 60)], [(0, 60)], [], [(0, 60)]],
    [[], [(0, 60)], [(10, 55)], [(0, 60)], []],
    [[(0, 60)], [(0, 40)], [], [(0, 60)], [(0, 60)]],
]

CASE = {
    "title": "Keeping a grandmother-led team going after a placement change",
    "fields": {
        "strengths": "A grandmother raising two grandchildren, 9 and 13, with a warm bond, and a neighbour and a "
                     "pastor who show up. The older child is proud of her drawing and wants to join an art club.",
        "needs": "Stable after-school care, help for the younger child with school refusal, and respite so the "
                 "grandmother can rest. She wants the family to stay together.",
        "tried": "Three family team meetings since spring; a school meeting about attendance; a respite referral "
                 "that stalled on a waiting list. A crisis plan written with the family.",
        "question": "How do we keep natural supports engaged when formal services are slow, and bring the school "
                    "to the table without the grandmother feeling blamed?",
    },
}
RECOMMENDATIONS = [
    "Co-write a short respite back-up plan with the family and the pastor before the next team meeting.",
    "Invite the school counsellor to the next family team meeting and open with the strengths summary.",
]


def _community(settings: Settings, tokens: dict[str, str]) -> str:
    """The community's demo, through its REST API: a program with past and future sessions, a full next
    session with a waiting list, imported attendance, Ana Ruiz's certificate and a case with recommendations.
    Safe to run again: an existing program is reused, and every write has a fixed Idempotency-Key or is
    skipped when already done."""
    facilitator, ana_token = tokens["facilitator"], tokens["practitioner"]
    ana = next(iter(PRACTITIONERS))
    staff = {pid: mint_dev_token(settings, sub=pid, agency=DEMO_AGENCY, roles=["practitioner"])
             for pid in PRACTITIONERS} | {ana: ana_token}
    today = datetime.now(ZoneInfo(PROGRAM_TZ)).date()
    with httpx.Client(base_url=service_settings("community", settings).url, timeout=30) as http:
        fac = _bearer(facilitator)

        def known_competencies() -> list[str]:
            r = http.get("/v1/competencies", headers=fac)
            r.raise_for_status()
            return list(r.json()["items"])

        # Fidelity's ObservationRecorded events teach the community the competency names; none after the
        # wait means the program carries no tags (any tag would be refused once names arrive).
        competencies = (_until(known_competencies) or [])[:3]
        programs = http.get("/v1/programs", headers=fac, params={"limit": 500})
        programs.raise_for_status()
        program = next((p for p in programs.json()["items"]
                        if p["title"] == PROGRAM_TITLE and p["owner_id"] == FACILITATOR), None)
        if program is None:
            r = http.post("/v1/programs", json=_program_body(today, competencies), headers=_bearer(facilitator,
                                                                                                   "program"))
            r.raise_for_status()
            program = r.json()
        r = http.get("/v1/sessions", headers=fac, params={"program_id": program["id"], "limit": 500})
        r.raise_for_status()
        sessions = [s for s in r.json()["items"] if s["status"] == "scheduled"]
        now = datetime.now(UTC)
        past = [s for s in sessions if datetime.fromisoformat(s["starts_at"]) < now]
        upcoming = [s for s in sessions if s["registration_open"]]
        nxt = upcoming[0]

        # The next session, in roster order: four seats, then the waiting list. The roster reaches the
        # community by event a moment after readiness's import; wait for it on the first registration.
        for pid, token in staff.items():
            def register(pid: str = pid, token: str = token) -> httpx.Response | None:
                r = http.post(f"/v1/sessions/{nxt['id']}/registrations", json={},
                              headers=_bearer(token, f"register-{nxt['id']}-{pid}"))
                return None if r.status_code == 422 else r  # not on the community's roster yet

            r = _until(register)
            if r is None:
                raise RuntimeError(f"{PRACTITIONERS[pid]} did not reach the community's roster in {WAIT_S:.0f} s")
            if not (r.status_code == 409 and r.json().get("type", "").endswith("already-registered")):
                r.raise_for_status()  # (already registered: by an earlier seed)

        # Past sessions: the hub imports each Zoom report (participants matched by e-mail through the mapping:
        # nobody registers for a past session) and checks in a supervisor who joined in the room.
        names = list(PRACTITIONERS.values())
        mapping = {_email(name): pid for pid, name in PRACTITIONERS.items()}
        reported = past[-len(ATTENDANCE[0]):]
        for i, s in enumerate(reported):
            attendees = [(names[n], ATTENDANCE[n][i]) for n in range(len(names)) if ATTENDANCE[n][i]]
            attendees.append(("Call-in user 1", [(4, 50)]))  # a phone dial-in nobody can match: left unmatched
            report = _zoom_report(datetime.fromisoformat(s["starts_at"]), attendees)
            if i == 0:
                # Names reach the community by event too: certificates carry them, so wait for them first
                # (a dry run shows each matched person's display name and records nothing).
                def named(s: dict[str, Any] = s, report: str = report) -> bool:
                    r = http.post(f"/v1/sessions/{s['id']}/attendance-imports", headers=fac,
                                  json={"csv": report, "mapping": mapping, "dry_run": True})
                    seen = r.json()["attendance"] if r.status_code == 200 else []
                    return bool(seen) and all(a["display_name"] in names for a in seen)

                _until(named)
            http.post(f"/v1/sessions/{s['id']}/attendance-imports", headers=_bearer(facilitator, f"import-{s['id']}"),
                      json={"csv": report, "format": "zoom", "mapping": mapping}).raise_for_status()
        supervisor = list(OBSERVERS)[1]  # Hugo Silva, the supervisor persona
        http.post(f"/v1/sessions/{past[-1]['id']}/check-ins", headers=_bearer(facilitator, f"walk-in-{past[-1]['id']}"),
                  json={"person_id": supervisor, "walk_in": True}).raise_for_status()
        r = http.get("/v1/certificates", headers=_bearer(ana_token))
        r.raise_for_status()
        certificates = r.json()["items"]

        # Ana's case on the latest past session: screened clean, submitted, approved, presented, recommended.
        r = http.get("/v1/cases", headers=_bearer(ana_token), params={"mine": "true", "limit": 500})
        r.raise_for_status()
        case = next((c for c in r.json()["items"] if c["title"] == CASE["title"]), None)
        if case is None:
            r = http.post("/v1/cases", json={"session_id": past[-1]["id"], **CASE},
                          headers=_bearer(ana_token, f"case-{past[-1]['id']}"))
            r.raise_for_status()
            case = r.json()
        follow_up = today + timedelta(days=28)
        steps: dict[str, tuple[str, str, dict[str, Any]]] = {
            "screened": (ana_token, "submit", {}),
            "in_review": (facilitator, "review", {"decision": "approve",
                                                 "comments": "A clear question; bring the school angle."}),
            "approved": (facilitator, "presented", {}),
            "presented": (facilitator, "recommendations", {
                "items": [{"text": text, "due_on": (today + timedelta(days=14 * (n + 1))).isoformat()}
                          for n, text in enumerate(RECOMMENDATIONS)],
                "follow_up_on": follow_up.isoformat()}),
        }
        while case["state"] in steps:
            token, action, body = steps[case["state"]]
            r = http.post(f"/v1/cases/{case['id']}/{action}", json=body,
                          headers=_bearer(token, f"case-{case['id']}-{action}"))
            r.raise_for_status()
            case = r.json()
    cert = next((c for c in certificates if c["program_id"] == program["id"]), None)
    start = datetime.fromisoformat(nxt["starts_at"]).astimezone(ZoneInfo(PROGRAM_TZ))
    return (f"[bold]Community[/bold] \"{PROGRAM_TITLE}\": {len(sessions)} sessions ({len(past)} past), "
            f"the next on {start:%a %d %b %H:%M} {PROGRAM_TZ} with {PROGRAM_CAPACITY} confirmed and "
            f"{len(PRACTITIONERS) - PROGRAM_CAPACITY} waiting; Zoom attendance for {len(reported)} past sessions; "
            + (f"{PRACTITIONERS[ana]}'s certificate {code[:4]}-{code[4:8]}-{code[8:]}; "
               if cert and (code := cert["verification_code"]) else "no certificate yet; ")
            + f"her case: {case['state'].replace('_', ' ')}, follow-up on {case['follow_up_on']}.")


def seed(settings: Settings, console: Console | None = None, *, show_tokens: bool = True) -> dict[str, str]:
    console = console or Console()
    fidelity = service_settings("fidelity", settings).url
    readiness = service_settings("readiness", settings).url
    tokens = persona_tokens(settings)
    with httpx.Client(base_url=readiness, timeout=30) as http:
        _readiness(http, settings, tokens["platform_admin"], tokens["agency_admin"])
    observer_tokens = [mint_dev_token(settings, sub=o, agency=DEMO_AGENCY, roles=["observer"]) for o in OBSERVERS]
    with httpx.Client(base_url=fidelity, timeout=30) as http:
        r = http.get("/v1/instruments", headers={"Authorization": f"Bearer {tokens['observer']}"},
                     params={"kind": "practice_observation", "status": "active"})
        r.raise_for_status()
        instrument = r.json()["items"][0]
        # No learning service yet to report course completions: the demo agency certifies on observations alone.
        http.put("/v1/certification-policy", json={"practitioner_course": None, "coach_course": None},
                 headers={"Authorization": f"Bearer {tokens['agency_admin']}"}).raise_for_status()
        _calibrate(http, observer_tokens, instrument["id"], tokens["platform_admin"])
        rng = random.Random(42)
        plan = []
        today = date.today()
        for p_index, practitioner in enumerate(PRACTITIONERS):
            # Some practitioners grow into the model, one slowly drifts: momentum both ways.
            start, end = [(0.55, 0.95), (0.7, 0.9), (0.9, 0.6), (0.8, 0.85), (0.5, 0.8), (0.85, 0.9)][p_index]
            for m in range(MONTHS):
                level = start + (end - start) * m / (MONTHS - 1)
                observed = today - timedelta(days=30 * (MONTHS - 1 - m) + rng.randint(0, 6))
                plan.append((practitioner, observed, level, m))
        for practitioner, observed, level, m in track(plan, description="Seeding observations", console=console):
            body = {
                "practitioner_id": practitioner, "instrument_id": instrument["id"],
                "observed_on": observed.isoformat(), "setting": "team_meeting" if m % 2 == 0 else "home_visit",
                "scores": _scores(instrument["items"], level, rng), "notes": "Demo observation.",
            }
            headers = {"Authorization": f"Bearer {observer_tokens[m % len(observer_tokens)]}",
                       "Idempotency-Key": f"demo-seed-{practitioner}-{m}"}
            _post_when_rostered(http, body, headers)
    console.print(f"\n[bold]Demo agency[/bold] {DEMO_AGENCY}: {len(PRACTITIONERS)} practitioners in 2 teams, "
                  f"a closed readiness round, an approved plan, {len(plan)} observations over {MONTHS} months.")
    first = next(iter(PRACTITIONERS))
    console.print(f"Try, in GraphQL ({service_settings('gateway', settings).url}/graphql) with the coach token:")
    query = (f'{{ practitioner(id: "{first}") {{ observations {{ observedOn score }} '
             'coachingTasks { kind dueOn } certification { status expiresOn } drift { family drifting } '
             'fidelitySeries { observedOn score ewma lowerLimit passThreshold } } }')
    console.print(f"  {query}", soft_wrap=True)
    console.print("and with the agency_admin token:")
    console.print(f'  {{ agency(id: "{DEMO_AGENCY}") {{ stage trainingClearance {{ cleared reasons }} '
                  'readinessRounds { level results { key status mean agreement } } '
                  'plan { approved actions { title status overdue } } stageHistory { stage enteredOn } } }',
                  soft_wrap=True)
    if "community" in settings.services:
        console.print(_community(settings, tokens), soft_wrap=True)
    save_personas(settings.var_dir)
    if show_tokens:
        for role, tok in tokens.items():
            console.print(f"\n[bold]{role}[/bold] token (Authorization: Bearer …):\n{tok}", soft_wrap=True)
    return tokens
