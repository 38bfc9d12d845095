"""`trellis seed`: demo data created through the public APIs, so every layer is exercised."""

from __future__ import annotations

import json
import random
import time
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

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
    return "\n".join(rows) + "\n"


def _readiness(http: httpx.Client, settings: Settings, platform: str, admin: str) -> None:
    """The agency, its roster, one readiness round and an approved plan: the agency is in Installation."""
    auth = {"Authorization": f"Bearer {admin}"}
    r = http.post("/v1/agencies", headers={"Authorization": f"Bearer {platform}"},
                  json={"id": DEMO_AGENCY, "name": "Riverside Family Services", "region": "North County",
                        "programs": ["MiiWrap high-fidelity wraparound"]})
    if r.status_code == 409:
        return  # seeded before
    r.raise_for_status()
    base = f"/v1/agencies/{DEMO_AGENCY}"
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
    for token in observer_tokens:
        http.post("/v1/calibrations", json={"reference_id": ref["id"], "scores": master},
                  headers={"Authorization": f"Bearer {token}"}).raise_for_status()


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
    save_personas(settings.var_dir)
    if show_tokens:
        for role, tok in tokens.items():
            console.print(f"\n[bold]{role}[/bold] token (Authorization: Bearer …):\n{tok}", soft_wrap=True)
    return tokens
