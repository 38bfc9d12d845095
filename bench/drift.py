"""5. Drift: the cost of recording one more observation of a person stays flat as their history grows.

The fidelity service runs in-process (as in the end-to-end benchmark) on a real nats-server and a
real database. Four certified practitioners of one agency have histories of 10, 100, 1,000 and
10,000 observations; then, in rounds, each gets one more observation by POST /v1/observations
(sequential, each its own commit: validation, the certification check, the drift update of every
series, the chart points, the outbox), in a shuffled order each round so that load on the machine
falls on every history length alike. The anchor is the practitioner with 10 prior observations,
measured in the same rounds.

The histories are built by the same POST up to HTTP_FILL observations a person (the first two certify
them); past that (10,000 by POST would take minutes) the rest are stored with the write path's own
drift folding step, `usecases._fold`, BATCH to a transaction.

A second table times the pure rule, `domain.update`, on series states that have folded N scores,
alone and with the JSON round trip the service does around it.
"""

from __future__ import annotations

import random
import statistics
import time
import uuid
from datetime import date, timedelta

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import func, select
from uuid6 import uuid7

from bench.common import Config, Figure, backends, bench_settings, db_url, fmt_ms, nats_server, percentile, say
from contracts.learning import CourseCompleted
from services.fidelity import domain, usecases
from services.fidelity.app import create_app as fidelity_app
from services.fidelity.models import ROSTER, Certification, CourseCompletion, DriftSeries, Observation
from tests.stack import INSTRUMENT, eventually, publish_joined
from trellis.auth import mint_dev_token
from trellis.bus import jetstream
from trellis.db import utcnow
from trellis.envelope import Envelope
from trellis.migrate import upgrade_async

BENCH = "5 drift"
HISTORY = (10, 100, 1_000, 10_000)
SAMPLES = 30  # timed POSTs at each history length
WARMUP = 5  # untimed rounds first
HTTP_FILL = 1_000  # a history is built by POST up to here, by the batched write step beyond
BATCH = 500
FLAT = 1.5  # "flat": the median at 10,000 prior observations within this factor of the one at 10
UPDATE_CALLS = 10_000
UPDATE_ROUNDS = 9
INSTRUMENT_V1 = domain.MIIWRAP_PRACTICE_V1


def item_scores(r: random.Random) -> dict[str, int]:
    """Mostly full marks, one item in five partly: totals around 90, nearly all passing."""
    return {i.key: 2 if r.random() < 0.8 else 1 for i in INSTRUMENT_V1.items}


async def enrol(app: FastAPI, agency: str, people: list[str]) -> None:
    """Roster (StaffMemberJoined) and the practice course (CourseCompleted), as readiness and learning send them."""
    js = jetstream(app.state.broker)
    await publish_joined(js, agency, people)
    for person in people:
        done = CourseCompleted(enrollment_id=str(uuid.uuid4()), learner_id=person, course_id=str(uuid.uuid4()),
                               course_key="miiwrap-practice", completed_on=date.today() - timedelta(days=90))
        env = Envelope.wrap(done, source="bench", subject=person, agency=agency)
        await js.publish(env.nats_subject, env.to_bytes(), headers={"Nats-Msg-Id": env.id}, stream="LEARNING")

    async def arrived() -> bool:
        async with app.state.db.reader(agency=agency) as s:
            rostered = set(await ROSTER.active_ids(s, agency))
            done = set((await s.scalars(select(CourseCompletion.person_id))).all())
        return set(people) <= rostered & done

    await eventually(arrived, timeout=30)


async def history_length(app: FastAPI, agency: str, person: str) -> int:
    async with app.state.db.reader(agency=agency) as s:
        return int((await s.scalar(select(func.count()).select_from(Observation)
                                   .where(Observation.practitioner_id == person))) or 0)


async def fill_batched(app: FastAPI, agency: str, person: str, observer: str, count: int, r: random.Random,
                       on: date) -> None:
    """`count` more observations of a certified person, folded into their drift series by the write path's
    own folding step (usecases._fold: the state update and the chart points), BATCH per transaction."""
    db = app.state.db
    while count > 0:
        n, count = min(BATCH, count), count - BATCH
        async with db.unit_of_work(agency=agency) as s:
            series = await usecases._series(s, person, INSTRUMENT_V1.family)
            for _ in range(n):
                scores = item_scores(r)
                scored = domain.score(INSTRUMENT_V1, scores)
                obs = Observation(id=str(uuid7()), agency_id=agency, practitioner_id=person, observer_id=observer,
                                  instrument_id=INSTRUMENT_V1.id, instrument_version=INSTRUMENT_V1.version,
                                  instrument_family=INSTRUMENT_V1.family, kind="live_observation", observed_on=on,
                                  setting="team_meeting", notes="", item_scores=scores, total_score=scored.total,
                                  competency_scores=scored.competencies, passed=scored.passed, amendments=0,
                                  recorded_on=db.clock(), created_at=utcnow())
                s.add_all([obs, *usecases._fold(series, obs, INSTRUMENT_V1, certified=True)])
            s.add_all(series.values())


def ratio_to(x: float, anchor: float) -> str:
    return f"{x / anchor:.2f}x N=10"


def flat_goal(x: float, anchor: float) -> str:
    return f"flat (<= {FLAT}x N=10): {'met' if x / anchor <= FLAT else 'NOT met'}"


async def run_backend(cfg: Config, backend: str) -> list[Figure]:
    root = cfg.root / "drift" / backend
    r = random.Random(2026)
    times: dict[int, list[float]] = {n: [] for n in HISTORY}
    fill_s = {"http": 0.0, "batched": 0.0}
    with nats_server(root) as server:
        settings = bench_settings(server.url, root)
        url = db_url(cfg, root, "fidelity", backend)
        await upgrade_async("fidelity", url)
        app = fidelity_app(settings=settings, database_url=url)
        async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://fidelity", timeout=30) as client:
            agency, observer = str(uuid.uuid4()), str(uuid.uuid4())
            person = {n: str(uuid.uuid4()) for n in HISTORY}
            headers = {"Authorization": "Bearer " + mint_dev_token(settings, sub=observer, agency=agency,
                                                                   roles=["observer"])}
            await enrol(app, agency, list(person.values()))
            ref = domain.SEEDED_REFERENCES[0]
            cal = await client.post("/v1/calibrations", json={"reference_id": ref.id, "scores": ref.scores},
                                    headers=headers)
            assert cal.status_code == 201, cal.text
            today = app.state.db.clock()

            async def post(who: str, on: date = today - timedelta(days=30)) -> float:
                body = {"practitioner_id": who, "instrument_id": INSTRUMENT, "observed_on": on.isoformat(),
                        "setting": "team_meeting", "scores": item_scores(r), "notes": ""}
                t = time.perf_counter()
                resp = await client.post("/v1/observations", json=body, headers=headers)
                elapsed = time.perf_counter() - t
                assert resp.status_code == 201, resp.text
                return elapsed

            for n, who in person.items():
                t0 = time.perf_counter()
                # Two passes 30 days apart certify the practitioner; from their fifth score the drift
                # baseline is their own, as it is for everyone whose chart matters.
                await post(who, today - timedelta(days=60))
                for _ in range(min(n, HTTP_FILL) - 1):
                    await post(who)
                fill_s["http"] += time.perf_counter() - t0
                t0 = time.perf_counter()
                await fill_batched(app, agency, who, observer, n - min(n, HTTP_FILL), r, today - timedelta(days=30))
                fill_s["batched"] += time.perf_counter() - t0
                assert await history_length(app, agency, who) == n
            for round_ in range(WARMUP + SAMPLES):
                for n in r.sample(HISTORY, len(HISTORY)):
                    elapsed = await post(person[n])
                    if round_ >= WARMUP:
                        times[n].append(elapsed)
            async with app.state.db.reader(agency=agency) as s:
                certified = len(set((await s.scalars(select(Certification.person_id).where(
                    Certification.status == domain.CertStatus.CERTIFIED.value))).all()))
                series = len((await s.scalars(select(DriftSeries.id))).all())
    p50 = {n: statistics.median(ts) for n, ts in times.items()}
    p90 = {n: percentile(ts, 90) for n, ts in times.items()}
    anchor = p50[HISTORY[0]]
    say(f"  [{backend}] one more observation by POST, {certified}/{len(HISTORY)} practitioners certified, "
        f"{series} drift series; {SAMPLES} rounds after {WARMUP} warm-up, shuffled order each round:")
    say(f"    {'prior observations':>20} {'p50':>10} {'p90':>10}  p50 vs N=10")
    for n in HISTORY:
        say(f"    {n:>20,} {fmt_ms(p50[n]):>10} {fmt_ms(p90[n]):>10}  {p50[n] / anchor:.2f}x")
    say(f"    (histories built in {fill_s['http']:.0f} s by POST, up to {HTTP_FILL:,} each, and "
        f"{fill_s['batched']:.0f} s batched)")
    figures = [Figure(BENCH, f"Anchor: POST /v1/observations, 10 prior observations, {backend}",
                      f"p50 {fmt_ms(anchor)}, p90 {fmt_ms(p90[HISTORY[0]])}", "anchor")]
    for n in HISTORY[1:]:
        figures.append(Figure(BENCH, f"  POST /v1/observations, {n:,} prior observations, {backend}",
                              f"p50 {fmt_ms(p50[n])}, p90 {fmt_ms(p90[n])}", ratio_to(p50[n], anchor),
                              flat_goal(p50[n], anchor) if n == HISTORY[-1] else ""))
    return figures


def folded(n: int) -> domain.SeriesState:
    """A certified person's total-score series after n observations."""
    r = random.Random(n)
    state = domain.SeriesState()
    for i in range(n):
        state, _ = domain.update(state, domain.TOTAL, r.gauss(90, 5), str(uuid7()), i >= 3)
    return state


def per_call(state: domain.SeriesState, stored: bool) -> float:
    """Seconds per `update` from `state`, bare or with the JSON round trip of usecases._fold."""
    t = time.perf_counter()
    if stored:
        data = state.to_json()
        for _ in range(UPDATE_CALLS):
            domain.update(domain.SeriesState.from_json(data), domain.TOTAL, 88.0, "next", True)[0].to_json()
    else:
        for _ in range(UPDATE_CALLS):
            domain.update(state, domain.TOTAL, 88.0, "next", True)
    return (time.perf_counter() - t) / UPDATE_CALLS


def fmt_us(seconds: float) -> str:
    return f"{seconds * 1e6:,.2f} µs"


def domain_figures() -> list[Figure]:
    states = {n: folded(n) for n in HISTORY}
    r = random.Random(7)
    bare: dict[int, list[float]] = {n: [] for n in HISTORY}
    stored: dict[int, list[float]] = {n: [] for n in HISTORY}
    for _ in range(UPDATE_ROUNDS):  # interleaved, as above
        for n in r.sample(HISTORY, len(HISTORY)):
            bare[n].append(per_call(states[n], stored=False))
            stored[n].append(per_call(states[n], stored=True))
    b = {n: statistics.median(xs) for n, xs in bare.items()}
    s = {n: statistics.median(xs) for n, xs in stored.items()}
    first, last = HISTORY[0], HISTORY[-1]
    say(f"  domain.update on a state that has folded N scores (median of {UPDATE_ROUNDS} interleaved rounds of "
        f"{UPDATE_CALLS:,} calls):")
    say(f"    {'prior scores':>20} {'update':>10}  vs N=10 {'+ JSON round trip':>18}  vs N=10")
    for n in HISTORY:
        say(f"    {n:>20,} {fmt_us(b[n]):>10}  {b[n] / b[first]:>6.2f}x {fmt_us(s[n]):>18}  {s[n] / s[first]:>6.2f}x")
    return [
        Figure(BENCH, "Anchor: domain.update after 10 scores", fmt_us(b[first]),
               f"anchor (with the JSON round trip {fmt_us(s[first])})"),
        Figure(BENCH, f"  domain.update after {last:,} scores", fmt_us(b[last]),
               f"{ratio_to(b[last], b[first])} (with the JSON round trip {ratio_to(s[last], s[first])})",
               flat_goal(b[last], b[first])),
    ]


async def run(cfg: Config) -> list[Figure]:
    figures: list[Figure] = []
    for backend in backends(cfg):
        figures += await run_backend(cfg, backend)
    return figures + domain_figures()
