"""6. The web portal: what the agency overview costs the gateway, how much JavaScript the portal ships,
and how soon its first page is usable.

- Gateway: the stack as `make run` starts it (nats-server, every service and the gateway as processes,
  SQLite), one agency with 200 practitioners imported through readiness's roster API, a closed readiness
  round, an approved plan and observations (most practitioners certified). The agency overview query is the
  one the page sends: read from portal/src/pages/AgencyOverview.tsx at bench time. The gateway here is the
  real one built with a counting httpx transport (`counted_gateway`), so every upstream call of a request is
  seen. Anchor: the same upstream GETs made directly, all at once, by one httpx client in this process.
- Bundle: the portal built by vite into a scratch directory (portal/dist is left alone), gzip -9 of its JS
  and CSS; anchor: an app that only renders React, built by the same vite.
- Time to first page: Debian's chromium through Playwright, a cold load each time; anchor: a tiny static
  page from the same gateway. Skipped with a reason when Playwright or chromium is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
from graphql import (
    FragmentDefinitionNode,
    FragmentSpreadNode,
    ListTypeNode,
    NonNullTypeNode,
    OperationDefinitionNode,
    TypeNode,
    parse,
    visit,
)
from graphql.language import Visitor

from bench.common import Config, Figure, fmt_ms, percentile, say
from bench.http_api import stop, wait_ready
from services.fidelity.domain import SEEDED_REFERENCES
from tests.stack import observation
from tests.support import NatsServer, free_port
from trellis.auth import mint_dev_token
from trellis.migrate import upgrade_async
from trellis.settings import Settings

BENCH = "6 portal"
ROOT = Path(__file__).resolve().parent.parent
PORTAL = ROOT / "portal"
PAGE = PORTAL / "src" / "pages" / "AgencyOverview.tsx"
OPERATION = "AgencyOverview"
PRACTITIONERS = 200
CERTIFIED = 120  # of them, with two passing observations 40 days apart; the rest have one failing one
WARMUP, ROUNDS = 10, 100
TTI_GOAL_S = 2.0
TTI_LOADS = 5
SERVICES = ("readiness", "fidelity", "coaching")

# Until the page has its query: the page's sections, as the issue lists them.
REPRESENTATIVE = """
query AgencyOverview($id: ID!) {
  agency(id: $id) {
    id name stage stageEnteredOn planApproved
    stageHistory { stage previousStage enteredOn reason certifiedShare }
    readinessRounds { id title status closedAt respondents level reasons
                      results { key status respondents mean spread agreement } }
    plan { approved openActions overdueActions actions { id title status dueOn overdue readinessDomain } }
    turnover { asOf agency { active joined12m left12m turnoverRate newStaffShare }
               teams { teamName active turnoverRate } }
    trainingClearance { cleared reasons }
    fidelitySummary { fullImplementationPercent agency { active certified certifiedPercent drifting } }
    certifiedShareHistory { month certifiedPercent }
  }
}
"""
PRACTITIONERS_QUERY = """
query Practitioners($ids: [ID!]!) { practitioners(ids: $ids) { id certification { status } drift { drifting } } }
"""

# ---- pure parts (tests/unit/test_bench_portal.py) -------------------------------------------------------

# graphql(`...`) or graphql(/* GraphQL */ `...`), as graphql-codegen's client preset finds them.
_DOCUMENT = re.compile(r"\bgraphql\(\s*(?:/\*.*?\*/\s*)?`([^`]*)`\s*\)", re.DOTALL)


def documents(source: str) -> list[str]:
    """The GraphQL documents written with `graphql(\\`...\\`)` in a TypeScript source."""
    return [m.group(1).strip() for m in _DOCUMENT.finditer(source)]


class _Spreads(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def enter_fragment_spread(self, node: FragmentSpreadNode, *_: Any) -> None:
        self.names.add(node.name.value)


def _spreads(text: str) -> set[str]:
    found = _Spreads()
    visit(parse(text), found)
    return found.names


def extract_operation(source: str, name: str, others: Iterable[str] = ()) -> str | None:
    """The operation `name` written in `source`, with every fragment it spreads (found in `source` or in
    `others`, e.g. the components' files) appended, so the gateway can run it as the page's client does."""
    ops = [d for d in documents(source) if re.match(rf"(query|mutation|subscription)\s+{re.escape(name)}\b", d)]
    if not ops:
        return None
    fragments: dict[str, str] = {}
    for text in [*documents(source), *(d for other in others for d in documents(other))]:
        for definition in parse(text).definitions:
            if isinstance(definition, FragmentDefinitionNode) and definition.loc is not None:
                fragments.setdefault(definition.name.value, text[definition.loc.start:definition.loc.end])
    out, wanted, seen = [ops[0]], _spreads(ops[0]), set()
    while wanted - seen:
        frag = sorted(wanted - seen)[0]
        seen.add(frag)
        if frag not in fragments:
            raise ValueError(f"the operation {name} spreads the fragment {frag}, which no portal source defines")
        out.append(fragments[frag])
        wanted |= _spreads(fragments[frag])
    return "\n\n".join(out)


AGENCY_VARIABLES = {"id", "agency", "agencyid"}


def operation_names(source: str) -> list[str]:
    """The names of the queries written in a source, in order."""
    return [m.group(1) for d in documents(source) if (m := re.match(r"query\s+(\w+)", d))]


def takes_agency(text: str) -> bool:
    """Whether an operation asks about one agency (a `$id`, `$agency` or `$agencyId` variable)."""
    op = next(d for d in parse(text).definitions if isinstance(d, OperationDefinitionNode))
    return any(v.variable.name.value.lower() in AGENCY_VARIABLES for v in op.variable_definitions or ())


def overview_operations(page: Path = PAGE, sources: Path = PORTAL / "src") -> tuple[dict[str, str], str]:
    """({name: operation text}, where they came from): the queries the page sends for one agency on load
    (every `query` in the page file with the agency's id as a variable; an agency picker without one is not
    the overview's cost), or the representative query while the page has none."""
    if page.exists():
        source = page.read_text()
        others = [p.read_text() for p in sorted(sources.rglob("*.ts*")) if "gql" not in p.relative_to(sources).parts
                  and p != page] if sources.exists() else []
        found = {name: text for name in operation_names(source)
                 if (text := extract_operation(source, name, others)) is not None and takes_agency(text)}
        if found:
            return found, str(page.relative_to(ROOT) if page.is_relative_to(ROOT) else page)
    return {OPERATION: REPRESENTATIVE.strip()}, f"representative query ({page.name} has no agency query yet)"


def _named(t: TypeNode) -> tuple[str, bool, bool]:
    """(type name, required, is a list)."""
    required = isinstance(t, NonNullTypeNode)
    inner = t.type if isinstance(t, NonNullTypeNode) else t
    if isinstance(inner, ListTypeNode):
        return _named(inner.type)[0], required, True
    return inner.name.value, required, False  # type: ignore[attr-defined]


# What the pages pass for the other variables (AgencyOverview.tsx: SHARE_MONTHS = 12).
KNOWN_VARIABLES: dict[str, Any] = {"months": 12, "track": "practitioner"}


def operation_variables(text: str, agency_id: str, **known: Any) -> dict[str, Any]:
    """Variables for the operation: the agency's id for `$id`/`$agency`/`$agencyId`, `known` by name; the
    rest keep their defaults. A required variable the bench cannot fill is an error, said plainly."""
    op = next(d for d in parse(text).definitions if isinstance(d, OperationDefinitionNode))
    out: dict[str, Any] = {}
    for v in op.variable_definitions or ():
        name = v.variable.name.value
        type_name, required, _ = _named(v.type)
        if name in known:
            out[name] = known[name]
        elif name.lower() in AGENCY_VARIABLES and type_name in ("ID", "String"):
            out[name] = agency_id
        elif required and v.default_value is None:
            raise ValueError(f"${name}: {type_name}! has no default and the bench does not know what to send")
    return out


def gzip_size(data: bytes) -> int:
    return len(gzip.compress(data, compresslevel=9, mtime=0))


@dataclass(frozen=True)
class Bundle:
    js_raw: int
    js_gzip: int
    css_raw: int
    css_gzip: int
    files: int
    largest: str  # the largest JS chunk by gzip size
    largest_gzip: int


def bundle_sizes(dist: Path) -> Bundle:
    """Raw and gzip -9 sizes of every JS and CSS file under dist/assets, and the largest JS chunk."""
    assets = dist / "assets"
    js = {p: p.read_bytes() for p in sorted(assets.rglob("*.js"))} if assets.exists() else {}
    css = {p: p.read_bytes() for p in sorted(assets.rglob("*.css"))} if assets.exists() else {}
    if not js:
        raise FileNotFoundError(f"no JavaScript under {assets}")
    js_gz = {p: gzip_size(b) for p, b in js.items()}
    largest = max(js_gz, key=lambda p: (js_gz[p], p.name))
    return Bundle(js_raw=sum(map(len, js.values())), js_gzip=sum(js_gz.values()),
                  css_raw=sum(map(len, css.values())), css_gzip=sum(gzip_size(b) for b in css.values()),
                  files=len(js) + len(css), largest=largest.name, largest_gzip=js_gz[largest])


def kib(n: int) -> str:
    return f"{n / 1024:,.1f} KiB"


# ---- the gateway, counted (a uvicorn factory run in the gateway's own process) ---------------------------

_calls: ContextVar[list[str] | None] = ContextVar("bench_upstream_calls", default=None)
_last: list[str] = []


class CountingTransport(httpx.AsyncBaseTransport):
    """The gateway's upstream transport, noting each call in the current request's list."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        calls = _calls.get()
        if calls is not None:
            calls.append(f"{request.method} {request.url}")
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


class CountUpstream:
    """ASGI middleware: each HTTP request gets its own call list; the count goes out as x-upstream-calls."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_bench"):
            await self.app(scope, receive, send)
            return
        calls: list[str] = []
        token = _calls.set(calls)

        async def counted(message: Any) -> None:
            if message["type"] == "http.response.start":  # strawberry answers once the whole result is known
                message = {**message, "headers": [*message.get("headers", []),
                                                  (b"x-upstream-calls", str(len(calls)).encode())]}
            await send(message)

        try:
            await self.app(scope, receive, counted)
        finally:
            _calls.reset(token)
            _last[:] = calls


def counted_gateway() -> Any:
    """uvicorn factory: gateway.app.create_app with its httpx pool behind a CountingTransport, plus
    GET /_bench/upstream (the last request's calls, for the direct anchor to replay)."""
    from gateway.app import create_app
    from gateway.settings import GatewaySettings

    limits = GatewaySettings()
    pool = httpx.Limits(max_connections=limits.upstream_max_connections,
                        max_keepalive_connections=limits.upstream_max_keepalive)
    app = create_app(transport=CountingTransport(httpx.AsyncHTTPTransport(limits=pool)), limits=limits)

    async def last_upstream() -> list[str]:
        return list(_last)

    app.add_api_route("/_bench/upstream", last_upstream, methods=["GET"])
    app.add_middleware(CountUpstream)
    return app


# ---- the stack ---------------------------------------------------------------------------------------------


@dataclass
class Stack:
    settings: Settings
    urls: dict[str, str]  # service (and "gateway") → base URL
    nats_url: str

    def token(self, agency: str, *roles: str, sub: str | None = None) -> str:
        return mint_dev_token(self.settings, sub=sub or str(uuid.uuid4()), agency=agency, roles=list(roles),
                              ttl_s=3600)

    def auth(self, agency: str, *roles: str, sub: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(agency, *roles, sub=sub)}"}


@contextlib.asynccontextmanager
async def running_stack(root: Path, portal_dir: Path) -> AsyncIterator[Stack]:
    """nats-server, the services as `python -m services.<name>` and the counted gateway, on free ports."""
    root.mkdir(parents=True, exist_ok=True)
    nats = NatsServer(root / "nats")
    nats.start()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        ports = {name: free_port() for name in (*SERVICES, "gateway")}
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_EXPORTER_OTLP", "TRELLIS_"))}
        env.update({"TRELLIS_NATS_URL": nats.url, "TRELLIS_VAR_DIR": str(root), "TRELLIS_LOG_LEVEL": "WARNING",
                    "TRELLIS_GATEWAY_PORT": str(ports["gateway"]), "TRELLIS_GATEWAY_HOST": "127.0.0.1",
                    "TRELLIS_GATEWAY_PORTAL_DIR": str(portal_dir)})
        for name in SERVICES:
            url = f"sqlite+aiosqlite:///{root / f'{name}.db'}"
            await upgrade_async(name, url)
            env.update({f"TRELLIS_{name.upper()}_DATABASE_URL": url, f"TRELLIS_{name.upper()}_PORT": str(ports[name]),
                        f"TRELLIS_{name.upper()}_HOST": "127.0.0.1"})
        commands = {name: ["-m", f"services.{name}"] for name in SERVICES}
        commands["gateway"] = ["-m", "uvicorn", "bench.portal:counted_gateway", "--factory", "--host", "127.0.0.1",
                               "--port", str(ports["gateway"]), "--no-access-log", "--log-level", "warning"]
        for name, argv in commands.items():
            with open(root / f"{name}.log", "ab") as out:
                procs.append(subprocess.Popen([sys.executable, *argv], env=env, stdout=out, stderr=out, cwd=ROOT))
        urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        await asyncio.gather(*(wait_ready(urls[n], p) for n, p in zip(commands, procs, strict=True)))
        yield Stack(Settings(nats_url=nats.url, var_dir=root), urls, nats.url)
    finally:
        for p in procs:
            stop(p)
        nats.stop()


def roster_csv(practitioners: list[str], observer: str, admin: str, hired: date) -> str:
    rows = ["name,email,team,roles,hire_date,id"]
    for n, pid in enumerate(practitioners):
        rows.append(f"Practitioner {n},p{n}@bench.example,{'North' if n % 2 == 0 else 'South'},practitioner,"
                    f"{hired},{pid}")
    rows.append(f"Olive Observer,olive@bench.example,,observer;supervisor,{hired},{observer}")
    rows.append(f"Adam Admin,adam@bench.example,,agency_admin;supervisor,{hired},{admin}")
    return "\n".join(rows) + "\n"


def ok(r: httpx.Response) -> httpx.Response:
    """`r`, if it succeeded; else an error that says what the service refused (raise_for_status does not)."""
    if r.is_error:
        raise RuntimeError(f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text[:400]}")
    return r


async def seed(st: Stack, agency: str) -> tuple[list[str], dict[str, str]]:
    """The agency through the services' own APIs: roster, a closed readiness round, an approved plan,
    observations. Returns (practitioner ids, the agency admin's headers)."""
    admin, observer = str(uuid.uuid4()), str(uuid.uuid4())
    people = [str(uuid.uuid4()) for _ in range(PRACTITIONERS)]
    admin_h = st.auth(agency, "agency_admin", "supervisor", sub=admin)
    today = date.today()
    async with httpx.AsyncClient(base_url=st.urls["readiness"], timeout=60) as r:
        ok(await r.post("/v1/agencies", headers=st.auth(str(uuid.uuid4()), "platform_admin"),
                        json={"id": agency, "name": "Bench Family Services", "region": "Bench County",
                              "programs": ["MiiWrap"]}))
        base = f"/v1/agencies/{agency}"
        for team in ("North", "South"):
            ok(await r.post(f"{base}/teams", headers=admin_h, json={"name": team}))
        ok(await r.post(f"{base}/staff/import", headers=admin_h | {"content-type": "text/csv"},
                        content=roster_csv(people, observer, admin, today - timedelta(days=400))))
        rnd = ok(await r.post(f"{base}/readiness-rounds", headers=admin_h, json={"title": "Baseline"})).json()
        items = ok(await r.get("/v1/readiness-instruments", headers=admin_h)).json()["items"][0]["items"]
        for n, person in enumerate(people[:40]):
            answers = {i["key"]: (3 if i["domain"] == "data_systems" else 4) + n % 2 for i in items}
            ok(await r.put(f"{base}/readiness-rounds/{rnd['id']}/responses/me", json={"answers": answers},
                           headers=st.auth(agency, "practitioner", sub=person)))
        ok(await r.post(f"{base}/readiness-rounds/{rnd['id']}/close", headers=admin_h))
        for n, domain in enumerate(("data_systems", "supervision_capacity", "coaching_capacity")):
            ok(await r.post(f"{base}/plan/actions", headers=admin_h, json={
                "title": f"Action {n}", "readiness_domain": domain, "owner_id": admin,
                "due_on": (today + timedelta(days=30 * (n + 1))).isoformat()}))
        ok(await r.post(f"{base}/plan/approve", headers=admin_h))
    observer_h = st.auth(agency, "observer", sub=observer)
    async with httpx.AsyncClient(base_url=st.urls["fidelity"], timeout=60) as f:
        ok(await f.put("/v1/certification-policy", json={"practitioner_course": None, "coach_course": None},
                       headers=admin_h))
        ref = SEEDED_REFERENCES[0]
        ok(await f.post("/v1/calibrations", json={"reference_id": ref.id, "scores": ref.scores},
                        headers=observer_h))
        bodies = [observation(p, value=2, observed_on=str(today - timedelta(days=d)))
                  for p in people[:CERTIFIED] for d in (50, 10)]
        bodies += [observation(p, value=1, observed_on=str(today - timedelta(days=5))) for p in people[CERTIFIED:]]
        gate = asyncio.Semaphore(8)

        async def post(body: dict[str, Any]) -> None:
            deadline = time.monotonic() + 30
            async with gate:
                while True:  # the roster reaches fidelity by event a moment after the import
                    resp = await f.post("/v1/observations", json=body, headers=observer_h)
                    codes = {e.get("code") for e in resp.json().get("errors", [])} if resp.status_code == 422 else set()
                    if "not-active-staff" not in codes or time.monotonic() > deadline:
                        ok(resp)
                        return
                    await asyncio.sleep(0.2)

        await asyncio.gather(*(post(b) for b in bodies))
    return people, admin_h


# ---- measuring -----------------------------------------------------------------------------------------------


async def ask(c: httpx.AsyncClient, headers: dict[str, str], query: str, variables: dict[str, Any]) -> int:
    """One request; returns its upstream call count. Any GraphQL error fails the bench: a figure for an
    answer the page could not use would mean nothing."""
    r = await c.post("/graphql", json={"query": query, "variables": variables}, headers=headers)
    body = r.json()
    if r.status_code != 200 or body.get("errors"):
        raise RuntimeError(f"the gateway answered {r.status_code}: {json.dumps(body.get('errors'))[:600]}")
    return int(r.headers["x-upstream-calls"])


async def direct(c: httpx.AsyncClient, headers: dict[str, str], urls: list[str]) -> None:
    async def one(url: str) -> Any:
        return ok(await c.get(url, headers=headers)).json()

    await asyncio.gather(*(one(u) for u in urls))


def distinct_gets(calls: list[str]) -> list[str]:
    """The URLs of the GETs among `calls`, each once, in order: the least a client needs for the same data."""
    out: list[str] = []
    for call in calls:
        method, _, url = call.partition(" ")
        if method != "GET":
            raise RuntimeError(f"the overview query wrote upstream: {call}")
        if url not in out:
            out.append(url)
    return out


def summary(xs: list[float]) -> str:
    return f"p50 {fmt_ms(percentile(xs, 50))}, p95 {fmt_ms(percentile(xs, 95))}"


async def gateway_figures(st: Stack, agency: str, people: list[str], headers: dict[str, str]) -> list[Figure]:
    operations, where = overview_operations()
    asks = [(text, operation_variables(text, agency, **KNOWN_VARIABLES)) for text in operations.values()]
    names = " + ".join(operations)
    say(f"  the page's queries ({names}) from {where}")
    limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
    async with (httpx.AsyncClient(base_url=st.urls["gateway"], timeout=30, limits=limits) as gw,
                httpx.AsyncClient(timeout=30, limits=limits) as svc):
        calls: list[str] = []
        each: list[str] = []
        for name, (text, variables) in zip(operations, asks, strict=True):  # one at a time, to read each back
            each.append(f"{name} {await ask(gw, headers, text, variables)}")
            calls += (await gw.get("/_bench/upstream")).json()
        urls = distinct_gets(calls)

        async def page_load() -> int:
            """The page's queries at once, as urql sends them on mount; their upstream calls in all."""
            return sum(await asyncio.gather(*(ask(gw, headers, text, variables) for text, variables in asks)))

        for _ in range(WARMUP):
            await page_load()
            await direct(svc, headers, urls)
        glat: list[float] = []
        dlat: list[float] = []
        counts: set[int] = set()
        for _ in range(ROUNDS):  # alternating, so a load drift hits both alike
            t = time.perf_counter()
            counts.add(await page_load())
            glat.append(time.perf_counter() - t)
            t = time.perf_counter()
            await direct(svc, headers, urls)
            dlat.append(time.perf_counter() - t)
        # 200 practitioners by id: batched per service, so a few calls, not one per person and field.
        plat: list[float] = []
        pcounts: set[int] = set()
        pvars = {"ids": people}
        for i in range(WARMUP + 20):
            t = time.perf_counter()
            pc = await ask(gw, headers, PRACTITIONERS_QUERY, pvars)
            if i >= WARMUP:
                plat.append(time.perf_counter() - t)
                pcounts.add(pc)
        pcalls = [c.split("?")[0] for c in (await gw.get("/_bench/upstream")).json()]
    g50, d50 = percentile(glat, 50), percentile(dlat, 50)
    per_load = "/".join(str(c) for c in sorted(counts))
    say(f"  upstream calls of one overview load ({', '.join(each)}): " + "; ".join(c.split("?")[0] for c in calls))
    say(f"  gateway, agency overview ({names} at once; {PRACTITIONERS} practitioners, {ROUNDS} sequential loads): "
        f"{summary(glat)}; {per_load} upstream calls per load")
    say(f"  direct, the same {len(urls)} GETs at once: {summary(dlat)}; gateway/direct p50 {g50 / d50:.2f}x")
    say(f"  practitioners(ids: {len(people)} ids) {{ certification drift }}: {summary(plat)}; "
        f"{'/'.join(map(str, sorted(pcounts)))} upstream calls: {', '.join(pcalls)}")
    source = "the page's queries" if where.endswith(".tsx") else "representative query"
    return [
        Figure(BENCH, f"Anchor: the overview's {len(urls)} service GETs made directly, concurrently (httpx)",
               summary(dlat), "anchor"),
        Figure(BENCH, f"Agency overview through the gateway ({source}: {names}, at once), {PRACTITIONERS} "
                      f"practitioners, {ROUNDS} sequential loads",
               f"{summary(glat)}; {per_load} upstream calls per load", f"{g50 / d50:.2f}x the direct p50"),
        Figure(BENCH, f"practitioners(ids: {len(people)} ids) {{ certification {{ status }} drift {{ drifting }} }}",
               f"{'/'.join(map(str, sorted(pcounts)))} upstream calls per request; {summary(plat)}",
               f"vs {2 * len(people)} unbatched", "a few calls, not one per person: "
               + ("met" if max(pcounts) <= 10 else "NOT met")),
    ]


# ---- the bundle -------------------------------------------------------------------------------------------------

REACT_ONLY = """import { createElement } from "react";
import { createRoot } from "react-dom/client";
createRoot(document.getElementById("root")).render(createElement("p", null, "React alone"));
"""


def vite(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    binary = PORTAL / "node_modules" / ".bin" / "vite"
    if not binary.exists():
        raise FileNotFoundError(f"{binary} is missing (cd portal && npm ci)")
    return subprocess.run([str(binary), *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def build_portal(out: Path) -> str:
    """The portal's current sources built into `out` (vite only: the type check is the tests' job); portal/dist
    when vite cannot run. Returns what was measured."""
    try:
        done = vite("build", "--outDir", str(out), "--emptyOutDir", "--logLevel", "warn", cwd=PORTAL)
        if done.returncode == 0:
            return "built from portal/src by vite"
        reason = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
    except (FileNotFoundError, subprocess.TimeoutExpired) as e:
        reason = [str(e)]
    dist = PORTAL / "dist"
    if not (dist / "index.html").exists():
        raise RuntimeError(f"the portal could not be built ({reason[0]}) and portal/dist is missing")
    shutil.copytree(dist, out, dirs_exist_ok=True)
    return f"portal/dist as it was (vite build failed: {reason[0][:120]})"


def build_react_only(root: Path) -> Bundle:
    """An app that only mounts React, built by the same vite: React and ReactDOM minified as the portal's are."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "index.html").write_text('<!doctype html><div id="root"></div><script type="module" src="/main.js">'
                                     '</script>\n')
    (root / "main.js").write_text(REACT_ONLY)
    link = root / "node_modules"
    if not link.exists():
        link.symlink_to(PORTAL / "node_modules", target_is_directory=True)
    done = vite("build", "--outDir", "dist", "--emptyOutDir", "--logLevel", "warn", cwd=root)
    if done.returncode != 0:
        raise RuntimeError(f"vite could not build the React-only app: {done.stderr[-400:]}")
    return bundle_sizes(root / "dist")


def bundle_figures(dist: Path, scratch: Path, how: str) -> list[Figure]:
    ours = bundle_sizes(dist)
    try:
        react = build_react_only(scratch / "react-only")
        anchor_what, react_gz = "React + ReactDOM alone, built by the same vite", react.js_gzip
    except (RuntimeError, FileNotFoundError, subprocess.TimeoutExpired) as e:
        say(f"  React-only build failed ({e}); anchor from the unminified CJS files instead")
        files = [PORTAL / "node_modules" / p for p in ("react/cjs/react.production.js",
                                                        "react-dom/cjs/react-dom-client.production.js",
                                                        "scheduler/cjs/scheduler.production.js")]
        react_gz = gzip_size(b"".join(p.read_bytes() for p in files if p.exists()))
        anchor_what = "React + ReactDOM CJS production files (unminified)"
    total = ours.js_gzip + ours.css_gzip
    say(f"  portal bundle ({how}): JS {kib(ours.js_raw)} → {kib(ours.js_gzip)} gzip, CSS {kib(ours.css_raw)} → "
        f"{kib(ours.css_gzip)} gzip, {ours.files} files; largest chunk {ours.largest} {kib(ours.largest_gzip)} gzip")
    say(f"  {anchor_what}: {kib(react_gz)} gzip; the portal is {ours.js_gzip / react_gz:.2f}x that "
        f"(+{kib(ours.js_gzip - react_gz)})")
    return [
        Figure(BENCH, f"Anchor: {anchor_what} (gzip -9)", kib(react_gz), "anchor"),
        Figure(BENCH, f"Portal JS + CSS under dist/assets (gzip -9, {ours.files} files)",
               f"{kib(total)} (JS {kib(ours.js_gzip)}, CSS {kib(ours.css_gzip)}); largest chunk "
               f"{kib(ours.largest_gzip)}",
               f"JS {ours.js_gzip / react_gz:.2f}x React alone (+{kib(ours.js_gzip - react_gz)})"),
    ]


# ---- time to the first page (optional) --------------------------------------------------------------------------

TINY = "bench-tiny.html"
# Records, in page time (ms since navigation start), when the main heading and the first drawn chart appear.
MARKS = """
window.__bench = {};
const seen = (el) => el && el.getBoundingClientRect().height > 0;
new MutationObserver(() => {
  const b = window.__bench;
  if (b.heading === undefined && seen(document.querySelector("main h1, h1"))) b.heading = performance.now();
  if (b.chart === undefined && [...document.querySelectorAll("figure.chart svg, [role=img] svg")]
        .some((svg) => seen(svg) && svg.querySelector("path")))  // a path: drawn, not just the background
    b.chart = performance.now();
}).observe(document, { childList: true, subtree: true, attributes: true });
"""


def chromium() -> str | None:
    return shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


def load_times(base: str, token: str, agency: str) -> tuple[dict[str, list[float | None]], list[str]]:
    """Cold loads (a fresh browser context each) of the tiny page, /signin and the agency overview; and notes."""
    from playwright.sync_api import sync_playwright

    pages = {"tiny": (f"/{TINY}", False), "signin": ("/signin", False), "overview": (f"/agency/{agency}", True)}
    out: dict[str, list[float | None]] = {f"{k}.{m}": [] for k in pages for m in ("heading", "chart")}
    notes: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium(), args=["--no-sandbox", "--disable-gpu"])
        try:
            for _ in range(TTI_LOADS):
                for key, (path, signed_in) in pages.items():
                    context = browser.new_context(viewport={"width": 1280, "height": 800})
                    init = MARKS + (f"sessionStorage.setItem('trellis.token', {json.dumps(token)});"
                                    if signed_in else "")
                    context.add_init_script(init)
                    page = context.new_page()
                    page.goto(base + path, wait_until="domcontentloaded")
                    # Polled from here: the page's CSP forbids the eval that wait_for_function needs. The marks
                    # themselves are taken in the page, so the polling interval does not blur them.
                    wanted = ("heading", "chart") if key == "overview" else ("heading",)
                    deadline = time.monotonic() + 20
                    while time.monotonic() < deadline and not all(
                            m in page.evaluate("Object.keys(window.__bench)") for m in wanted):
                        page.wait_for_timeout(25)
                    marks = page.evaluate("window.__bench")
                    if key == "overview" and marks.get("chart") is None:  # say why, once: a figure needs a cause
                        alerts = [t.strip()[:120] for t in page.locator("[role=alert]").all_inner_texts()]
                        note = (f"no drawn chart on {path} within 20 s: {page.locator('figure.chart').count()} "
                                f"chart figures, alerts {alerts}")
                        if note not in notes:
                            notes.append(note)
                    for m in ("heading", "chart"):
                        got = marks.get(m)
                        out[f"{key}.{m}"].append(None if got is None else got / 1000)
                    context.close()
        finally:
            browser.close()
    return out, notes


def _median(xs: list[float | None]) -> float | None:
    got = [x for x in xs if x is not None]
    return percentile(got, 50) if len(got) == len(xs) and got else None


async def tti_figures(st: Stack, agency: str, admin: dict[str, str], portal_dir: Path) -> list[Figure]:
    why = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        why = "Python playwright is not installed (pip install -e '.[dev]')"
    if why is None and chromium() is None:
        why = "chromium is not installed (apt-get install -y chromium)"
    if why is not None:
        say(f"  time to first page: skipped: {why}")
        return [Figure(BENCH, "Time to the first page (Chromium)", "skipped", why)]
    (portal_dir / TINY).write_text('<!doctype html><html lang="en"><title>tiny</title><main><h1>Tiny</h1></main>'
                                   '</html>\n')
    token = admin["Authorization"].removeprefix("Bearer ")
    times, notes = await asyncio.to_thread(load_times, st.urls["gateway"], token, agency)
    for note in notes:
        say(f"  {note}")
    tiny = _median(times["tiny.heading"])
    signin = _median(times["signin.heading"])
    heading = _median(times["overview.heading"])
    chart = _median(times["overview.chart"])

    def ms(x: float | None) -> str:
        return "not seen" if x is None else fmt_ms(x)

    say(f"  cold loads in chromium (median of {TTI_LOADS}): tiny page {ms(tiny)}; /signin heading {ms(signin)}; "
        f"agency overview heading {ms(heading)}, first chart {ms(chart)}")
    done = chart if chart is not None else heading
    goal = ("no heading seen" if done is None else
            f"<= {TTI_GOAL_S:g} s: {'met' if done <= TTI_GOAL_S else 'NOT met'}"
            + ("" if chart is not None else " (heading only: no chart seen in every load)"))
    vs = "" if tiny is None or done is None else f"{done / tiny:.1f}x the tiny page"
    return [
        Figure(BENCH, f"Anchor: a tiny static page from the same gateway, cold load (median of {TTI_LOADS})",
               f"heading at {ms(tiny)}", "anchor"),
        Figure(BENCH, f"Agency overview, cold load in Chromium, signed in (median of {TTI_LOADS})",
               f"heading {ms(heading)}, first chart {ms(chart)}; /signin heading {ms(signin)}", vs, goal),
    ]


# ---- the bench ----------------------------------------------------------------------------------------------------


async def run(cfg: Config) -> list[Figure]:
    root = cfg.root / "portal"
    dist = root / "dist"
    how = await asyncio.to_thread(build_portal, dist)
    figures = await asyncio.to_thread(bundle_figures, dist, root, how)
    async with running_stack(root / "stack", dist) as st:
        agency = str(uuid.uuid4())
        t = time.perf_counter()
        people, admin = await seed(st, agency)
        say(f"  seeded {PRACTITIONERS} practitioners in {time.perf_counter() - t:.1f} s")
        figures = await gateway_figures(st, agency, people, admin) + figures
        figures += await tti_figures(st, agency, admin, dist)
    return figures
