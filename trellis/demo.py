"""`trellis seed`: demo data created through the public APIs, so every layer is exercised."""

from __future__ import annotations

import random
import uuid
from datetime import date, timedelta

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
MONTHS = 6


def _scores(items: list[dict[str, object]], level: float, rng: random.Random) -> dict[str, int]:
    out = {}
    for item in items:
        lo, hi = int(item["scale_min"]), int(item["scale_max"])  # type: ignore[call-overload]
        out[str(item["key"])] = max(lo, min(hi, round(lo + (hi - lo) * level + rng.uniform(-0.6, 0.6))))
    return out


def seed(settings: Settings, console: Console | None = None) -> dict[str, str]:
    console = console or Console()
    fidelity = service_settings("fidelity", settings).url
    tokens = {
        "observer": mint_dev_token(settings, sub=next(iter(OBSERVERS)), agency=DEMO_AGENCY, roles=["observer"]),
        "coach": mint_dev_token(settings, sub=COACH, agency=DEMO_AGENCY, roles=["coach"]),
        "agency_admin": mint_dev_token(settings, sub=ADMIN, agency=DEMO_AGENCY, roles=["agency_admin", "supervisor"]),
    }
    observer_tokens = [mint_dev_token(settings, sub=o, agency=DEMO_AGENCY, roles=["observer"]) for o in OBSERVERS]
    with httpx.Client(base_url=fidelity, timeout=30) as http:
        r = http.get("/v1/instruments", headers={"Authorization": f"Bearer {tokens['observer']}"})
        r.raise_for_status()
        instrument = next(i for i in r.json()["items"] if i["status"] == "active")
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
            http.post("/v1/observations", json=body, headers=headers).raise_for_status()
    console.print(f"\n[bold]Demo agency[/bold] {DEMO_AGENCY}: {len(PRACTITIONERS)} practitioners, "
                  f"{len(plan)} observations over {MONTHS} months.")
    first = next(iter(PRACTITIONERS))
    console.print(f"Try, in GraphQL ({service_settings('gateway', settings).url}/graphql) with the coach token:")
    query = (f'{{ practitioner(id: "{first}") {{ observations {{ observedOn score }} '
             'coachingTasks { kind dueOn } } }')
    console.print(f"  {query}", soft_wrap=True)
    for role, tok in tokens.items():
        console.print(f"\n[bold]{role}[/bold] token (Authorization: Bearer …):\n{tok}", soft_wrap=True)
    return tokens
