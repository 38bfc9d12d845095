"""1. JetStream publish: raw nats-py anchors, then the outbox relay draining N staged events.

Anchors and relay run interleaved, `rounds` times; figures are medians and ratios are the
median of per-round ratios, so load that comes and goes on a shared box cancels out.
Decompositions place any shortfall: FastStream's `broker.publish` alone, the relay publishing
through it instead of JetStream directly, and the relay's database work alone.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict
from typing import Any

from faststream.nats import NatsBroker
from nats.js.client import JetStreamContext
from sqlalchemy import func, insert, select, update
from uuid6 import uuid7

from bench.common import (
    PIPELINE,
    Config,
    Figure,
    Sample,
    anchor_stream,
    backends,
    bench_settings,
    db_url,
    fmt_rate,
    measure,
    median,
    nats_client,
    nats_server,
    observation_envelope,
    say,
)
from trellis import telemetry
from trellis.bus import build_broker, ensure_streams, jetstream, relay_publisher
from trellis.db import Database, add_event, outbox, utcnow
from trellis.migrate import upgrade_async
from trellis.outbox import OutboxRelay, Publish

BENCH = "1 publish"
STAGE_TXN = 500  # add_event rows per transaction while staging


async def raw_sequential(js: JetStreamContext, subject: str, bodies: list[bytes]) -> int:
    ids = [str(uuid7()) for _ in bodies]  # fresh ids: a repeated id is a cheap duplicate, not a write
    for body, msg_id in zip(bodies, ids, strict=True):
        await js.publish(subject, body, headers={"Nats-Msg-Id": msg_id})
    return len(bodies)


async def raw_pipelined(js: JetStreamContext, subject: str, bodies: list[bytes]) -> int:
    ids = [str(uuid7()) for _ in bodies]
    for i in range(0, len(bodies), PIPELINE):
        await asyncio.gather(*(js.publish(subject, bodies[j], headers={"Nats-Msg-Id": ids[j]})
                               for j in range(i, min(i + PIPELINE, len(bodies)))))
    return len(bodies)


def service_publish(broker: NatsBroker) -> Publish:
    """The relay's publish callable, exactly as trellis/service.py builds it."""
    return relay_publisher(broker)


def faststream_publish(broker: NatsBroker) -> Publish:
    """Same connection and PubAck wait, through FastStream's broker.publish and its middlewares."""

    async def publish(subject: str, body: bytes, headers: dict[str, str]) -> Any:
        stream = subject.split(".", 1)[0].upper()
        return await broker.publish(body, subject=subject, headers=headers, stream=stream, timeout=5.0)

    return publish


async def faststream_pipelined(broker: NatsBroker, subject: str, bodies: list[bytes]) -> int:
    publish = faststream_publish(broker)
    headers = [{"Nats-Msg-Id": str(uuid7()), "content-type": "application/cloudevents+json"} for _ in bodies]
    for i in range(0, len(bodies), PIPELINE):
        await asyncio.gather(*(publish(subject, bodies[j], headers[j])
                               for j in range(i, min(i + PIPELINE, len(bodies)))))
    return len(bodies)


async def stage(db: Database, agency: str, n: int) -> int:
    """n outbox rows the way a request handler stages them: add_event inside a unit of work."""
    events = [observation_envelope(agency) for _ in range(n)]
    for i in range(0, n, STAGE_TXN):
        async with db.unit_of_work(agency=agency) as s:
            for event in events[i:i + STAGE_TXN]:
                await add_event(s, event)
    return n


async def stage_bulk(db: Database, agency: str, n: int) -> None:
    """The same rows in one executemany: staging for the decompositions is not what they measure."""
    events = [observation_envelope(agency) for _ in range(n)]
    async with db.unit_of_work() as s:
        await s.execute(insert(outbox), [
            {"event_id": e.id, "subject": e.nats_subject, "event_type": e.type, "aggregate": e.subject,
             "body": e.to_bytes(), "headers": {}, "created_at": utcnow()} for e in events
        ])


async def drain(relay: OutboxRelay, n: int) -> int:
    """drain_once() until n rows are sent; returns how many were."""
    sent = 0
    for _ in range(n // relay.batch * 4 + 10):  # bounded: a stuck relay ends the loop, not the run
        done = await relay.drain_once()
        sent += done.sent
        if sent >= n or done.fetched == 0:
            break
    return sent


async def no_publish(subject: str, body: bytes, headers: dict[str, str]) -> None:
    return None


async def open_db(url: str) -> Database:
    await upgrade_async("fidelity", url)
    db = Database(url)
    telemetry.instrument_engine(db.engine, telemetry.tracer_provider("fidelity"))  # as the service does
    return db


async def mark_last_unsent(db: Database, n: int) -> None:
    async with db.unit_of_work() as s:
        top = int((await s.execute(select(func.max(outbox.c.id)))).scalar_one())
        await s.execute(update(outbox).where(outbox.c.id > top - n).values(sent_at=None))


async def one_round(cfg: Config, js: JetStreamContext, svc: NatsBroker, subjects: tuple[str, str],
                    bodies: list[bytes], dbs: list[tuple[str, Database]], agency: str, batch: int,
                    out: dict[str, list[Sample]]) -> None:
    n, (raw_subject, fs_subject) = cfg.n, subjects
    out["raw seq"].append(await measure(raw_sequential(js, raw_subject, bodies)))
    out["raw pipe"].append(await measure(raw_pipelined(js, raw_subject, bodies)))
    out["fs pipe"].append(await measure(faststream_pipelined(svc, fs_subject, bodies)))
    for name, db in dbs:
        t0 = time.perf_counter()
        await stage(db, agency, n)
        out[f"stage {name}"].append(Sample(n / (time.perf_counter() - t0), 0.0))
        out[f"relay {name}"].append(await measure(drain(OutboxRelay(db, service_publish(svc), batch=batch), n)))
        await stage_bulk(db, agency, n)
        out[f"via-fs {name}"].append(await measure(drain(OutboxRelay(db, faststream_publish(svc), batch=batch), n)))
        # The rows just sent, unsent again, for a relay that does everything but publish.
        await mark_last_unsent(db, n)
        out[f"db-only {name}"].append(await measure(drain(OutboxRelay(db, no_publish, batch=batch), n)))


def _fmt(samples: list[Sample], unit: str = "msg/s") -> str:
    return f"{fmt_rate(median([s.rate for s in samples]), unit)}"


def _cpu(samples: list[Sample]) -> str:
    return f"{median([s.cpu_us for s in samples]):,.0f} µs CPU/msg"


def _ratio(out: dict[str, list[Sample]], key: str, anchor: str) -> float:
    return median([a.rate / b.rate for a, b in zip(out[key], out[anchor], strict=True)])


async def run(cfg: Config) -> list[Figure]:
    root = cfg.root / "publish"
    out: dict[str, list[Sample]] = defaultdict(list)
    with nats_server(root) as server:
        settings = bench_settings(server.url, root)
        agency = str(uuid.uuid4())
        bodies = [observation_envelope(agency).to_bytes() for _ in range(cfg.n)]
        say(f"  event body {len(bodies[0])} bytes (an ObservationRecorded CloudEvent); N={cfg.n}, "
            f"{cfg.rounds} interleaved rounds, medians shown")
        dbs = [(b, await open_db(db_url(cfg, root / b, "fidelity", b))) for b in backends(cfg)]
        svc = build_broker(settings, telemetry.tracer_provider("fidelity"))
        try:
            async with nats_client(server.url) as (_, js):
                await js.add_stream(anchor_stream(settings, "RAW", "raw"))
                await svc.connect()
                await ensure_streams(jetstream(svc), settings)
                subjects = (f"raw.ObservationRecorded.{agency}", f"fidelity.ObservationRecorded.{agency}")
                # Warm-up: connections, stream files, code paths.
                await raw_pipelined(js, subjects[0], bodies[:PIPELINE])
                await faststream_pipelined(svc, subjects[1], bodies[:PIPELINE])
                for r in range(cfg.rounds):
                    await one_round(cfg, js, svc, subjects, bodies, dbs, agency, settings.outbox_batch, out)
                    relays = ", ".join(f"relay {name} {out[f'relay {name}'][-1].rate:,.0f}" for name, _ in dbs)
                    say(f"  round {r + 1}: raw seq {out['raw seq'][-1].rate:,.0f}, raw pipelined "
                        f"{out['raw pipe'][-1].rate:,.0f}, {relays} msg/s")
        finally:
            await svc.stop()
            for _, db in dbs:
                await db.dispose()

    raw_seq = "raw seq"
    lines = [
        ("Anchor: raw nats-py publish, sequential (await each PubAck)", raw_seq, "anchor", ""),
        (f"Anchor: raw nats-py publish, pipelined (gather {PIPELINE})", "raw pipe", None, ""),
        (f"  decomposition: FastStream broker.publish as the relay calls it, pipelined ({PIPELINE})", "fs pipe",
         None, ""),
    ]
    for name, _ in dbs:
        lines += [
            (f"Outbox relay, {name} (drain_once, batch 256, service broker)", f"relay {name}", None, "goal"),
            (f"  decomposition: relay, {name}, publishing through FastStream broker.publish instead",
             f"via-fs {name}", None, ""),
            (f"  decomposition: relay, {name}, database work only (no-op publish)", f"db-only {name}", None, ""),
        ]
    figures: list[Figure] = []
    for label, key, vs, g in lines:
        ratio_seq = _ratio(out, key, raw_seq)
        vs_text = vs or f"{ratio_seq:.2f}x raw seq" + (
            "" if key == "raw pipe" else f"; {_ratio(out, key, 'raw pipe'):.2f}x raw pipelined")
        goal_text = f">= 0.5x raw seq: {'met' if ratio_seq >= 0.5 else 'NOT met'}" if g else ""
        figures.append(Figure(BENCH, label, f"{_fmt(out[key])} ({_cpu(out[key])})", vs_text, goal_text))
        say(f"  {label.strip()}: {_fmt(out[key])}, {_cpu(out[key])}; {vs_text}{'; ' + goal_text if g else ''}")
    for name, _ in dbs:
        say(f"  staging with add_event ({STAGE_TXN}/transaction), {name}: {_fmt(out[f'stage {name}'], 'rows/s')}")
    return figures
