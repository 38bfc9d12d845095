"""Exactly-once effects over a real nats-server: dedup, redelivery, poison messages and the DLQ."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import nats
import pytest
from faststream.nats.message import NatsMessage
from sqlalchemy import func, select

from contracts.fidelity import ObservationRecorded
from services.coaching import domain as coaching_domain
from services.coaching.models import Task
from tests.conftest import make_settings
from tests.stack import Stack, eventually, observation, running_stack
from tests.support import NatsServer
from trellis.bus import GroupCommit, ensure_streams
from trellis.envelope import Envelope

CONSUMER = "coaching--open-debrief-task"


def recorded(agency: str, practitioner: str) -> Envelope:
    payload = ObservationRecorded(
        observation_id=str(uuid.uuid4()), practitioner_id=practitioner, observer_id=str(uuid.uuid4()),
        instrument_id=str(uuid.uuid4()), instrument_version=1, observed_on=date(2026, 11, 1),
        setting="team_meeting", total_score=90.0, competency_scores={"Team process": 90.0}, passed=True,
    )
    return Envelope.wrap(payload, source="tests", subject=payload.observation_id, agency=agency)


async def task_count(st: Stack, agency: str | None = None) -> int:
    async with st.apps["coaching"].state.db.reader(all_agencies=True) as s:
        stmt = select(func.count()).select_from(Task)
        if agency:
            stmt = stmt.where(Task.agency_id == agency)
        return int((await s.execute(stmt)).scalar_one())


def consumed(st: Stack, outcome: str) -> float:
    value = st.apps["coaching"].state.metrics.registry.get_sample_value(
        "trellis_events_consumed_total", {"consumer": CONSUMER, "outcome": outcome})
    return value or 0.0


def break_handler_for(monkeypatch: pytest.MonkeyPatch) -> str:
    """Make the coaching handler fail on every delivery for one new practitioner; returns their id."""
    cursed = str(uuid.uuid4())
    real_rule = coaching_domain.debrief_for_observation

    def failing_rule(practitioner_id: str, *args: Any) -> Any:
        if practitioner_id == cursed:
            raise RuntimeError("handler bug for this practitioner")
        return real_rule(practitioner_id, *args)

    monkeypatch.setattr(coaching_domain, "debrief_for_observation", failing_rule)
    return cursed


@pytest.fixture
async def js_client(nats_server: NatsServer) -> Any:
    nc = await nats.connect(nats_server.url)
    yield nc.jetstream()
    await nc.close()


async def test_dedup_window_and_republished_event_open_one_task(nats_server, make_db_url, tmp_path: Path, js_client):
    settings = make_settings(nats_server.url, tmp_path)
    urls = {"fidelity": make_db_url("fidelity"), "coaching": make_db_url("coaching")}
    agency = str(uuid.uuid4())
    event = recorded(agency, str(uuid.uuid4()))
    async with running_stack(settings, urls) as st:
        first = await js_client.publish(event.nats_subject, event.to_bytes(), headers={"Nats-Msg-Id": event.id})
        again = await js_client.publish(event.nats_subject, event.to_bytes(), headers={"Nats-Msg-Id": event.id})
        assert not first.duplicate and again.duplicate  # JetStream drops the retry inside its window
        # Outside the window (another msg id), the same event reaches the consumer twice.
        await js_client.publish(event.nats_subject, event.to_bytes(), headers={"Nats-Msg-Id": f"{event.id}-late"})

        async def both_seen() -> bool:
            return consumed(st, "handled") + consumed(st, "duplicate") >= 2

        await eventually(both_seen)
        assert await task_count(st, agency) == 1
        assert consumed(st, "handled") == 1 and consumed(st, "duplicate") == 1


async def test_lost_ack_redelivers_without_second_task(nats_server, make_db_url, tmp_path, monkeypatch):
    settings = make_settings(nats_server.url, tmp_path)
    urls = {"fidelity": make_db_url("fidelity"), "coaching": make_db_url("coaching")}
    agency, practitioner = str(uuid.uuid4()), str(uuid.uuid4())
    real_ack = NatsMessage.ack
    lost = {"n": 0}

    async def flaky_ack(self: NatsMessage) -> None:
        observation = "ObservationRecorded" in self.raw_message.subject
        if observation and lost["n"] == 0:  # the effect committed, then the ack never reached the server
            lost["n"] += 1
            raise ConnectionError("ack lost")
        await real_ack(self)

    monkeypatch.setattr(NatsMessage, "ack", flaky_ack)
    async with running_stack(settings, urls) as st:
        await st.enrol(agency, practitioner)
        r = await st.fidelity.post("/v1/observations", json=observation(practitioner),
                                   headers=await st.observer(agency))
        assert r.status_code == 201

        async def redelivered() -> bool:
            return consumed(st, "duplicate") >= 1

        await eventually(redelivered)
        assert lost["n"] == 1
        assert await task_count(st, agency) == 1


async def test_poison_messages_go_to_dlq_and_the_consumer_keeps_going(
    nats_server, make_db_url, tmp_path, js_client, monkeypatch
):
    settings = make_settings(nats_server.url, tmp_path)
    urls = {"fidelity": make_db_url("fidelity"), "coaching": make_db_url("coaching")}
    agency = str(uuid.uuid4())
    cursed = break_handler_for(monkeypatch)
    async with running_stack(settings, urls) as st:
        # 1. Not a CloudEvent at all: dead-lettered on first delivery.
        await js_client.publish(f"fidelity.ObservationRecorded.{agency}", b"{not json",
                                headers={"Nats-Msg-Id": "garbage-1"})
        # 2. A valid event whose handler fails every time: dead-lettered after max_deliver.
        bad = recorded(agency, cursed)
        await js_client.publish(bad.nats_subject, bad.to_bytes(), headers={"Nats-Msg-Id": bad.id})
        # 3. A good event behind them is still handled.
        (good_practitioner,) = await st.staffed(agency)
        r = await st.fidelity.post("/v1/observations", json=observation(good_practitioner),
                                   headers=await st.observer(agency))
        assert r.status_code == 201

        async def settled() -> bool:
            return consumed(st, "dead_lettered") >= 2 and await task_count(st, agency) == 1

        await eventually(settled)
        dlq = await js_client.stream_info("DLQ", subjects_filter=f"dlq.{CONSUMER}")
        assert dlq.state.messages == 2
        first = await js_client.get_msg("DLQ", seq=1)
        second = await js_client.get_msg("DLQ", seq=2)
        by_error = {m.headers["Trellis-Deliveries"]: m for m in (first, second)}
        garbage, failing = by_error["1"], by_error[str(settings.consumer_max_deliver)]
        assert garbage.data == b"{not json"
        assert "not a Trellis CloudEvent" in garbage.headers["Trellis-Error"]
        assert "handler bug" in failing.headers["Trellis-Error"]
        assert failing.headers["Trellis-Original-Subject"] == bad.nats_subject
        assert Envelope.from_bytes(failing.data).id == bad.id
        assert consumed(st, "retried") == settings.consumer_max_deliver - 1
        metrics = (await st.coaching.get("/metrics")).text
        assert f'trellis_dlq_depth{{consumer="{CONSUMER}"}} 2.0' in metrics


async def test_group_commit_keeps_agencies_apart_and_isolates_a_poison_event(
    nats_server, make_db_url, tmp_path, js_client, monkeypatch
):
    """A burst lands in shared transactions: every event still gets its own agency, exactly once."""
    settings = make_settings(nats_server.url, tmp_path)
    urls = {"fidelity": make_db_url("fidelity"), "coaching": make_db_url("coaching")}
    agencies = [str(uuid.uuid4()) for _ in range(5)]
    cursed = break_handler_for(monkeypatch)
    group_agencies: list[set[str]] = []
    real_commit = GroupCommit._commit

    async def spying_commit(self: GroupCommit, ready: list) -> list[str]:
        group_agencies.append({item.env.agency for item in ready})
        return await real_commit(self, ready)

    monkeypatch.setattr(GroupCommit, "_commit", spying_commit)
    events = [recorded(agencies[i % 5], str(uuid.uuid4())) for i in range(200)]
    events.insert(77, recorded(agencies[2], cursed))
    await ensure_streams(js_client, settings)
    await asyncio.gather(*(js_client.publish(e.nats_subject, e.to_bytes(), headers={"Nats-Msg-Id": e.id})
                           for e in events))
    async with running_stack(settings, urls) as st:  # starts after the burst: big fetches, big groups

        async def settled() -> bool:
            return consumed(st, "handled") >= 200 and consumed(st, "dead_lettered") >= 1

        await eventually(settled, timeout=60)
        for agency in agencies:
            assert await task_count(st, agency) == 40
        async with st.apps["coaching"].state.db.reader(all_agencies=True) as s:
            rows = (await s.execute(select(Task.observation_id, Task.agency_id))).all()
        expected = {e.data["observation_id"]: e.agency for e in events if e.data["practitioner_id"] != cursed}
        assert dict(rows) == expected  # each task under its own event's agency, none twice
        assert consumed(st, "handled") == 200 and consumed(st, "dead_lettered") == 1
        assert max(len(a) for a in group_agencies) == 5  # some transaction really served every agency
        # The coaching events it published went out once each, under the right tenant subject.
        info = await js_client.stream_info("COACHING")
        assert info.state.messages == 200
